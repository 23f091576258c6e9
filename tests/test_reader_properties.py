"""The JSON Lines and CSV readers against simple strict reference parsers, on generated input (hypothesis):
whatever fast path a reader takes, it lands exactly what the reference reads, or refuses what the reference
refuses — never drops a key, never keeps one of two values silently."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assets.ingest.encoding import sniff
from assets.ingest.readers import read
from assets.ingest.rejection import FileRejected
from lakehouse.registry import registry

EQUIPMENT = registry().dataset("ent_equipment")  # JSON Lines
LAND = registry().dataset("land_parcels")  # CSV
KEYS = EQUIPMENT.source_headers
SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

# text that stresses a key scanner: quotes, colons, escapes, CJK, 4-byte characters
TEXT = st.text(alphabet=st.sampled_from(list('ab"\\:, {}[]注塑机𠂇\t') + ["\u00e9"]), max_size=12)
VALUE = st.one_of(TEXT, st.integers(-(10**6), 10**6), st.floats(allow_nan=False, allow_infinity=False), st.none())


@st.composite
def json_line(draw) -> str:
    """One line: the registered keys in some order, sometimes one missing, one unregistered, one twice,
    blanks around the colons."""
    keys = draw(st.permutations(KEYS))
    pairs = [(k, draw(VALUE)) for k in keys]
    if draw(st.booleans()) and len(pairs) > 1:
        pairs.pop(draw(st.integers(0, len(pairs) - 1)))
    if draw(st.integers(0, 9)) == 0:
        pairs.append((draw(st.sampled_from(["resident_id", "备注", 'x"y', "firmware"])), draw(VALUE)))
    if draw(st.integers(0, 14)) == 0:
        pairs.append((pairs[0][0], draw(VALUE)))
    parts = []
    for k, v in pairs:
        sep = draw(st.sampled_from([":", " :", ": ", " : ", "\t:"]))
        parts.append(json.dumps(k, ensure_ascii=draw(st.booleans())) + sep + json.dumps(v, ensure_ascii=False))
    return "{" + ", ".join(parts) + "}"


def reference_jsonl(lines: list[str]) -> list[dict] | set[str]:
    """The strict reading: each line one object, no key twice, every key registered and present somewhere.
    Returns the rows, or every reason the file must be refused for (a reader reports one of them)."""
    rows, problems = [], set()

    def pairs_hook(pairs):
        names = [k for k, _ in pairs]
        if len(set(names)) != len(names):
            problems.add("duplicate_keys")
        return dict(pairs)

    for line in lines:
        obj = json.loads(line, object_pairs_hook=pairs_hook)
        if set(obj) - set(KEYS):
            problems.add("unexpected_columns")
        rows.append(obj)
    if any(all(r.get(k) is None for r in rows) for k in KEYS):
        problems.add("missing_columns")
    return problems or rows


def _latin_without_chinese(text: str) -> bool:
    latin = any("\u0080" <= ch <= "\u07ff" and ch not in "°²³±×÷·µ§¹º‰¼½¾€£¥©®" for ch in text)
    chinese = any("\u2e80" <= ch <= "\u9fff" or ch >= "\U00020000" for ch in text)
    return latin and not chinese


def _read(path: Path, dataset):
    s = sniff(path, text=True)
    out = []
    for batch, _ in read(path, dataset, s):
        out += batch.to_pylist()
    return out


def _as_text(value) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value)


@SETTINGS
@given(st.lists(json_line(), min_size=1, max_size=8))
def test_json_lines_reader_agrees_with_the_strict_reference(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("jsonl") / "d.jsonl"
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    expected = reference_jsonl(lines)
    if _latin_without_chinese(text):  # by design: refused as ambiguous (valid as GB18030 too, other text)
        expected = (expected if isinstance(expected, set) else set()) | {"encoding_ambiguous"}
    try:
        got = _read(path, EQUIPMENT)
    except FileRejected as exc:
        assert isinstance(expected, set), (exc.rejection, lines)
        assert exc.rejection.code in expected, (exc.rejection, expected, lines)
        return
    assert not isinstance(expected, set), (expected, lines)
    names = {c.source: c.name for c in EQUIPMENT.columns}
    for row, ref in zip(got, expected, strict=True):
        for key in KEYS:
            want = ref.get(key)
            have = row[names[key]]
            if isinstance(want, float | int) and not isinstance(want, bool) and have is not None:
                assert float(have) == pytest.approx(float(want)), (key, have, want)
            else:
                assert have == _as_text(want), (key, have, want, lines)


CSV_TEXT = st.text(alphabet=st.sampled_from(list('ab,"\n 注塑𠂇') + ["\u3000"]), max_size=10)


@SETTINGS
@given(st.lists(st.tuples(*[CSV_TEXT for _ in LAND.source_headers]), min_size=1, max_size=6), st.booleans())
def test_csv_reader_agrees_with_the_strict_reference(tmp_path_factory, rows, gbk):
    """Quoted commas, quotes and line breaks inside values, CJK and 4-byte characters, UTF-8 or GB18030."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(LAND.source_headers)
    writer.writerows(rows)
    text = buf.getvalue()
    encoding = "gb18030" if gbk else "utf-8"
    path = tmp_path_factory.mktemp("csv") / "d.csv"
    path.write_bytes(text.encode(encoding))
    reference = list(csv.reader(io.StringIO(text, newline="")))[1:]
    try:
        got = _read(path, LAND)
    except FileRejected as exc:
        # the only refusal a well-formed CSV may get: a value with a line break (one row per line is the
        # delivery convention here), said with its line
        assert exc.rejection.code in ("malformed_rows", "truncated"), exc.rejection
        assert any("\n" in v or "\r" in v for r in rows for v in r)
        return
    names = [c.name for c in LAND.columns]
    assert [[row[n] for n in names] for row in got] == [[v for v in r] for r in reference]


# pieces of a delivered file for the encoding sniffer: ASCII, Chinese (3 bytes), 4-byte characters, the signs a
# Chinese delivery uses and Latin letters (2 bytes), and bytes that break UTF-8 — a lone continuation, a cut
# character, a surrogate, an overlong form, a lead byte that never starts a character, GBK bytes
SNIFF_PIECES = st.sampled_from(
    [b"a,b\n", b"1", "注塑".encode(), "𠂇".encode(), "°×".encode(), "é".encode(), "ƽ".encode(), b"\x80", b"\xe6\xb3",
     b"\xed\xa0\x80", b"\xc0\xaf", b"\xf8", "平衡".encode("gbk"), b"\xef\xbb\xbf"]
)  # fmt: skip


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(SNIFF_PIECES, max_size=24), st.sampled_from([1, 2, 3, 5, 7, 64, 1 << 20]))
def test_the_sniffer_judges_a_file_in_chunks_as_it_judges_it_whole(tmp_path_factory, monkeypatch, pieces, chunk):
    """Whatever the chunk size — characters cut between chunks, the fast byte-level checks once Chinese was
    seen — the sniffer's verdict (encoding, or refusal and its byte) is the one reached by decoding the whole
    file at once with Python's strict UTF-8 codec."""
    from assets.ingest import encoding
    from assets.ingest.rejection import Rejection

    data = b"".join(pieces)
    path = tmp_path_factory.mktemp("sniff") / "d.csv"
    path.write_bytes(data)
    try:  # the reference: the whole file decoded at once
        text, bad = data.decode("utf-8"), None
    except UnicodeDecodeError as exc:  # a character cut by the end of the file is bad at the end
        text = data[: exc.start].decode("utf-8")
        bad = len(data) if exc.reason == "unexpected end of data" else exc.start
    cjk = encoding._CJK.search(text) is not None
    m = encoding._implausible_latin(text)
    latin = len(text[: m.start()].encode("utf-8")) if m else None

    def verdict(fn) -> str | Rejection:
        try:
            return fn()
        except FileRejected as exc:
            return exc.rejection

    want = verdict(lambda: encoding._decide(path, bad, cjk, latin, data[:3]))
    with monkeypatch.context() as patch:
        patch.setattr(encoding, "CHUNK", chunk)
        got = verdict(lambda: sniff(path, text=True))
    assert (got.encoding if isinstance(got, encoding.Sniff) else got) == want, (data, chunk)
