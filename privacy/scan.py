"""The personal-information scanner: proposes classifications from content and from column names.

Content detectors check what the standards define, not just shapes: a resident ID must pass GB 11643
(MOD 11-2, birth date, area), a USCC GB 32100, a bank card Luhn; mobiles follow the 1[3-9] plan; person
names are 2–3 Han characters starting with a common surname; free text is searched for all of these,
names only after a cue word (联系人、经办人…). Results go to the steward (the privacy_scan asset and
catalogue/privacy_scan); declarations stay the steward's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import polars as pl

from privacy.transforms import CJK, PATTERNS, SURNAMES
from quality import identifiers

# what a detected kind proposes: (classification, level, role)
PROPOSALS = {
    "ric": ("personal.identity", "L4", "direct"),
    "bank_card": ("personal.finance", "L4", "direct"),
    "mobile": ("personal.contact", "L3", "direct"),
    "email": ("personal.contact", "L3", "direct"),
    "person_name": ("personal.identity", "L3", "direct"),
    "free_text_pi": ("free_text", "L3", "sensitive"),
    "address": ("organisation.location", "L2", "quasi"),
    "uscc": ("organisation.identity", "L1", "none"),
}
NAME_HINTS = {
    "ric": r"id_no|身份证|证件号",
    "mobile": r"mobile|手机|联系电话",
    "email": r"email|邮箱",
    "person_name": r"legal_rep_name|reporter_name|person|姓名|法定代表人$|联系人|填报人",
    "address": r"address|location|住所|地址|坐落",
    "free_text_pi": r"remark|note|备注|说明",
    "bank_card": r"card|银行卡|账号",
}
CONTENT_SHARE = 0.5  # a structured column is proposed as a kind when at least half its values are of it


def luhn_ok(e: pl.Expr) -> pl.Expr:
    """Luhn check of a digit string (bank cards), vectorised over up to 19 digits."""
    n = e.str.len_chars()
    total = pl.lit(0)
    for i in range(19):  # i-th digit from the right
        d = e.str.slice(-(i + 1), 1).cast(pl.Int64, strict=False)
        d = pl.when(n > i).then(d).otherwise(0)
        if i % 2 == 1:
            d = pl.when(d * 2 > 9).then(d * 2 - 9).otherwise(d * 2)
        total = total + d
    return (total % 10) == 0


def is_kind(e: pl.Expr, kind: str) -> pl.Expr:
    """True where the whole value is of ``kind`` (structured columns)."""
    v = e.cast(pl.String).str.strip_chars()
    match kind:
        case "ric":
            return v.str.contains(r"^\d{17}[\dXx]$") & identifiers.ric_problem(v.str.to_uppercase()).is_null()
        case "mobile":
            return v.str.contains(r"^(?:\+?86)?1[3-9]\d{9}$")
        case "email":
            return v.str.contains(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")
        case "bank_card":
            return v.str.contains(r"^\d{16,19}$") & luhn_ok(v)
        case "person_name":
            return v.str.contains(f"^[{SURNAMES}][{CJK}]{{1,2}}$")
        case "uscc":
            return (v.str.len_chars() == 18) & identifiers.uscc_problem(v).is_null()
        case "address":
            return v.str.contains(r"[省市区县]") & v.str.contains(r"[路街巷号镇村道弄]")
    raise ValueError(kind)


def pi_in_text(e: pl.Expr) -> pl.Expr:
    """True where free text holds personal information: a valid resident ID, a card number passing Luhn, or
    anything else the redactor takes out (mobiles, landlines, e-mails, WeChat IDs, names)."""
    t = e.cast(pl.String)
    ric = t.str.extract_all(PATTERNS["ric"]).list.eval(pl.element().str.replace_all(r"[^0-9Xx]", "").str.to_uppercase())
    ric_ok = ric.list.eval(identifiers.ric_problem(pl.element()).is_null()).list.any()
    card = t.str.extract_all(PATTERNS["bank_card"]).list.eval(pl.element().str.replace_all(r"\D", ""))
    card_ok = card.list.eval(luhn_ok(pl.element())).list.any()
    others = [k for k in PATTERNS if k not in ("ric", "bank_card")]  # what the redactor takes out of text
    found = ric_ok.fill_null(False) | card_ok.fill_null(False)
    for kind in others:
        found = found | t.str.contains(PATTERNS[kind]).fill_null(False)
    return found


@dataclass(frozen=True)
class Finding:
    column: str
    kind: str
    by: str  # content | name
    share: float  # of non-null values (content); 1.0 for a name hint
    classification: str
    level: str
    role: str


def scan_frame(frame: pl.DataFrame, headers: dict[str, str] | None = None, sample: int = 200_000) -> list[Finding]:
    """Findings for every column of ``frame`` (a sample of it when large). ``headers`` maps column names to
    delivered headers, which the name hints also read."""
    headers = headers or {}
    if frame.height > sample:
        frame = frame.sample(sample, seed=35273)
    out: list[Finding] = []
    for column in frame.columns:
        if column.startswith("_"):
            continue
        values = frame.get_column(column).cast(pl.String).drop_nulls()
        values = values.filter(values.str.len_chars() > 0)
        if values.len():
            v = values.to_frame("v")
            shares = v.select(
                *(is_kind(pl.col("v"), k).mean().alias(k) for k in PROPOSALS if k != "free_text_pi"),
                pi_in_text(pl.col("v")).mean().alias("free_text_pi"),
            ).row(0, named=True)
            kind = max((k for k in shares if k != "free_text_pi"), key=lambda k: shares[k])
            if shares[kind] >= CONTENT_SHARE:
                out.append(Finding(column, kind, "content", shares[kind], *PROPOSALS[kind]))
            elif shares["free_text_pi"] > 0:
                out.append(
                    Finding(column, "free_text_pi", "content", shares["free_text_pi"], *PROPOSALS["free_text_pi"])
                )
        text = f"{column} {headers.get(column, '')}"
        for kind, hint in NAME_HINTS.items():
            if re.search(hint, text, re.IGNORECASE) and not any(f.column == column for f in out):
                out.append(Finding(column, kind, "name", 1.0, *PROPOSALS[kind]))
                break
    return out


def valid_identifiers(frame: pl.DataFrame) -> dict[str, int]:
    """How many values in the string columns of ``frame`` are valid resident IDs or mobile numbers, whole
    or inside text: the zero the policy promises outside raw."""
    found = {"ric": 0, "mobile": 0}
    for column, dtype in frame.schema.items():
        if dtype != pl.String:
            continue
        t = pl.col(column)
        ric = t.str.extract_all(PATTERNS["ric"]).list.eval(
            pl.element().str.replace_all(r"[^0-9Xx]", "").str.to_uppercase()
        )
        counts = frame.select(
            ric.list.eval(identifiers.ric_problem(pl.element()).is_null()).list.sum().sum().alias("ric"),
            t.str.count_matches(PATTERNS["mobile"]).sum().alias("mobile"),
        ).row(0, named=True)
        for k in found:
            found[k] += int(counts[k] or 0)
    return found
