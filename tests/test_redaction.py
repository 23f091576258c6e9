"""The free-text redactor measured against the generator's labelled remarks: recall ≥ 99 % of the spans of
personal information, precision ≥ 95 % of what it redacts (distractor remarks without any included).

Recall: a labelled span counts as caught when its text no longer appears in the redacted remark.
Precision: each redaction label in the output is one redaction; those beyond the caught spans — in a
distractor remark, or a second label where the remark had one span — are false positives.
"""

from __future__ import annotations

import re

import numpy as np
import polars as pl

from privacy.transforms import REDACTED, redact
from sourcegen import remarks

LABEL = re.compile("|".join(re.escape(v) for v in set(REDACTED.values())))


def measure(seed: int, n: int = 800, clean: int = 400) -> dict:
    rng = np.random.default_rng(seed)
    labelled = remarks.labelled(rng, n)
    distractors = remarks.distractors(rng, clean)
    texts = [t for t, _ in labelled] + distractors
    out = pl.DataFrame({"t": texts}).select(redact(pl.col("t")))["t"].to_list()
    spans = caught = labels = 0
    missed, false = [], []
    for (text, marked), red in zip(labelled, out[:n], strict=True):
        values = [text[a:b] for a, b, _ in marked]
        hit = [v for v in values if v not in red]
        spans, caught = spans + len(values), caught + len(hit)
        found = len(LABEL.findall(red))
        labels += found
        missed += [(text, v) for v in values if v in red]
        if found > len(hit):
            false.append((text, red))
    for text, red in zip(distractors, out[n:], strict=True):
        found = len(LABEL.findall(red))
        labels += found
        if found:
            false.append((text, red))
    kinds = {}
    for _, marked in labelled:
        for *_, kind in marked:
            kinds[kind] = kinds.get(kind, 0) + 1
    return {
        "spans": spans,
        "kinds": kinds,
        "recall": caught / spans,
        "precision": caught / labels if labels else 1.0,
        "missed": missed[:10],
        "false": false[:10],
    }


def test_the_redactor_finds_99_percent_of_personal_information_at_95_percent_precision():
    for seed in (11, 2026):  # two independent draws of remarks
        m = measure(seed)
        assert m["spans"] >= 500 and len(m["kinds"]) >= 7, m["kinds"]
        assert m["recall"] >= 0.99, (m["recall"], m["missed"])
        assert m["precision"] >= 0.95, (m["precision"], m["false"])


def test_the_variants_the_audit_found_missed_are_redacted():
    cases = {
        "联系电话 138 1234 5678": "138 1234 5678",
        "手机138-1234-5678": "138-1234-5678",
        "联系人欧阳明轩": "欧阳明轩",
        "诸葛亮负责": "诸葛亮",
        "经办：王小红": "王小红",
        "业务员李强": "李强",
        "已通知张伟尽快补报": "张伟",
        "微信号 zhangsan_88": "zhangsan_88",
        "座机0576-84123456": "0576-84123456",
        "(0576)84123456": "(0576)84123456",
    }
    out = pl.DataFrame({"t": list(cases)}).select(redact(pl.col("t")))["t"].to_list()
    for (text, value), red in zip(cases.items(), out, strict=True):
        assert value not in red, (text, red)


def test_what_only_looks_like_personal_information_stays():
    keep = [
        "客户：台州市黄岩王氏模具有限公司",
        "黄岩区经信局通知：5日前完成填报",
        "订单号PO2023-000123，金额12345678元",
        "统一社会信用代码91331003MA2ABCDE1X",
        "发货至张家港保税区",
    ]
    assert pl.DataFrame({"t": keep}).select(redact(pl.col("t")))["t"].to_list() == keep


def test_no_labelled_personal_information_of_the_generated_deliveries_survives_redaction(manifest):
    """The remarks the generator hid in this run's deliveries (the truth manifest): every labelled span is
    gone after the std stage's redaction."""
    records = manifest["pii_remarks"]
    assert len(records) > 10 and len({k for r in records for *_, k in r["spans"]}) >= 5
    out = pl.DataFrame({"t": [r["text"] for r in records]}).select(redact(pl.col("t")))["t"].to_list()
    left = [
        (r["text"], r["text"][a:b])
        for r, red in zip(records, out, strict=True)
        for a, b, _ in r["spans"]
        if r["text"][a:b] in red
    ]
    assert left == []
