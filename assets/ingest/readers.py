"""Stream a delivered file as Arrow record batches of text, in bounded memory.

Each reader yields ``(batch, first_row_number)`` with warehouse column names and raises ``FileRejected``
— possibly after yielding — when the file turns out bad; the caller's Delta commit then never happens.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import fastexcel
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from assets.ingest import gb18030_2022
from assets.ingest.encoding import Sniff
from assets.ingest.layout import check_header, raw_schema, to_warehouse_names
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.registry import Dataset

Batches = Iterator[tuple[pa.RecordBatch, int]]
BLOCK_BYTES = 16 << 20


def _first_line(path: Path, encoding: str) -> list[str]:
    with path.open("r", encoding=encoding, newline="") as fh:
        return next(csv.reader([fh.readline()]), [])


def _locate_line(path: Path, encoding: str, text: str) -> int | None:
    """Physical line number of a bad row pyarrow reported without one (its parallel reader)."""
    with path.open("r", encoding=encoding, newline="") as fh:
        for number, line in enumerate(fh, start=1):
            if line.rstrip("\r\n") == text:
                return number
    return None


def count_lines(path: Path, sniff: Sniff) -> int:
    """Physical lines, the last one counted even without a final line break."""
    lines = 0
    with path.open("rb") as fh:
        while chunk := fh.read(8 << 20):
            lines += chunk.count(b"\n")
    return lines + (0 if sniff.ends_with_newline or sniff.size == 0 else 1)


def native_path(path: Path) -> str | None:
    """The path as Arrow and fastexcel take it (UTF-8 text), or None for a name that is not UTF-8 (a GBK
    name from a Windows archive): such a file is handed over opened instead."""
    try:
        return os.fsencode(path).decode("utf-8")
    except UnicodeDecodeError:
        return None


def read_csv(path: Path, dataset: Dataset, sniff: Sniff) -> Batches:
    encoding = sniff.encoding or "utf-8"
    try:
        header = check_header(_first_line(path, encoding), dataset)
    except FileRejected as exc:  # a refused layout still counts its rows, so totals reconcile
        raise FileRejected(dataclasses.replace(exc.rejection, rows_read=max(0, count_lines(path, sniff) - 1))) from None
    bad: list[tuple[int | None, int, int, str]] = []

    def on_invalid(row) -> str:
        bad.append((row.number, row.expected_columns, row.actual_columns, row.text))
        return "skip"

    reader = pacsv.open_csv(
        native_path(path) or pa.PythonFile(path.open("rb"), mode="r"),
        read_options=pacsv.ReadOptions(
            # GB18030 through Python's own (2005) table, at its speed; ``read`` applies the 2022 mapping
            encoding="utf8" if encoding.startswith("utf-8") else _FAST.get(encoding, encoding),
            block_size=8 << 20,
            column_names=header,
            skip_rows=1,
        ),
        parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid, newlines_in_values=False),
        convert_options=pacsv.ConvertOptions(
            column_types={h: pa.string() for h in header}, strings_can_be_null=False, quoted_strings_can_be_null=False
        ),
    )
    rows = 0
    for batch in reader:
        if batch.num_rows:
            yield to_warehouse_names(batch, dataset), rows + 1
            rows += batch.num_rows
    if rows + len(bad) == 0:
        raise FileRejected(Rejection("empty", "header only, no data rows", "file", 0))
    if bad:
        rows_read = rows + len(bad)
        number, expected, actual, text = bad[-1]
        line = number or _locate_line(path, encoding, text)
        at = f"line {line}" if line else "an unknown line"
        if len(bad) == 1 and not sniff.ends_with_newline and line is not None and line == rows_read + 1:
            raise FileRejected(
                Rejection(
                    "truncated",
                    f"last row has {actual} of {expected} fields and the file does not end with a line break",
                    at,
                    rows_read,
                )
            )
        first = bad[0][0] or _locate_line(path, encoding, bad[0][3])
        raise FileRejected(
            Rejection(
                "malformed_rows",
                f"{len(bad)} row(s) with a wrong number of fields, first at line {first}: {bad[0][3][:80]!r}",
                f"line {first}",
                rows_read,
            )
        )


def _data_sheet(workbook, dataset: Dataset):
    """The worksheet that holds the delivery, loaded with every cell as text: the one the registry names
    (``sheet:``), else the only visible sheet with content. Hidden sheets are never read; two visible sheets
    with content are refused (which one is the delivery is not ours to guess), and so is a workbook without
    the registered sheet. Each sheet is parsed once (calamine parses a whole sheet even to see its width)."""
    names = list(workbook.sheet_names)
    if dataset.sheet is not None:
        if dataset.sheet not in names:
            raise FileRejected(
                Rejection("sheet_missing", f"no sheet {dataset.sheet!r}; sheets are {names}", "file", None)
            )
        return workbook.load_sheet(dataset.sheet, dtypes="string")
    hidden, candidates = [], []
    for name in names:
        sheet = workbook.load_sheet(name, dtypes="string")
        if sheet.visible != "visible":
            hidden.append(name)
        elif sheet.width > 0:
            candidates.append(sheet)
    if len(candidates) != 1:
        what = f"visible sheets with content: {[c.name for c in candidates]}" + (
            f"; hidden (never read): {hidden}" if hidden else ""
        )
        raise FileRejected(Rejection("sheets", what, "file", None))
    return candidates[0]


def read_xlsx(path: Path, dataset: Dataset, sniff: Sniff) -> Batches:
    """The delivery's worksheet (``_data_sheet``), every cell as text. XLSX caps a sheet at 1,048,576 rows,
    which bounds memory."""
    try:
        workbook = fastexcel.read_excel(native_path(path) or path.read_bytes())
        sheet = _data_sheet(workbook, dataset)
    except FileRejected:
        raise
    except Exception as exc:  # fastexcel raises its own error types for damaged workbooks
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise FileRejected(Rejection("unreadable", f"{type(exc).__name__}: {first_line[:200]}", "file", None)) from exc
    name = sheet.name
    check_header(
        sheet.available_columns_names
        if hasattr(sheet, "available_columns_names")
        else [c.name for c in sheet.available_columns()],
        dataset,
        sheet.height,
    )
    table = pa.Table.from_batches([sheet.to_arrow()])
    if table.num_rows == 0:
        raise FileRejected(Rejection("empty", "worksheet has a header but no data rows", f"sheet {name}", 0))
    start = 1
    for batch in table.to_batches(max_chunksize=250_000):
        yield to_warehouse_names(batch, dataset), start
        start += batch.num_rows


def _blocks(path: Path) -> Iterator[bytes]:
    """Line-aligned blocks of a JSON Lines file. Blank lines at the very end of the file are dropped, as a
    CSV may end in an empty line; a blank line anywhere else stays (and is refused)."""
    carry, pending = b"", None
    with path.open("rb") as fh:
        while chunk := fh.read(BLOCK_BYTES):
            chunk = carry + chunk
            cut = chunk.rfind(b"\n") + 1
            if cut == 0:
                carry = chunk
                continue
            carry = chunk[cut:]
            if pending is not None:
                yield pending
            pending = chunk[:cut]
    last = (pending or b"") + carry
    body = last.rstrip(b" \t\r\n")
    if body:  # keep the line end after the last record (its absence means truncation), drop blank lines after
        yield body + (b"\n" if b"\n" in last[len(body) :] else b"")


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "true/false"}


def _bad_json_line(block: bytes, encoding: str) -> tuple[int, str]:
    """The first line of a block that is not one JSON object, and why (line numbers from 1)."""
    for i, line in enumerate(block.decode(encoding).split("\n"), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line, parse_constant=_refuse_constant)
        except ValueError as exc:  # JSONDecodeError included
            return i, getattr(exc, "msg", None) or str(exc)
        if not isinstance(value, dict):
            return i, f"{'null' if value is None else _KINDS.get(type(value), type(value).__name__)}, not a JSON object"
        for v in value.values():
            if isinstance(v, float) and v != v:  # NaN that slipped through (cannot with parse_constant)
                return i, "NaN is not a JSON value"
    return 0, "unknown"


# Every JSON string of a line, a key when a colon follows it. Matching every string (keys and values alike)
# from its opening quote keeps the scan aligned: outside strings JSON has no quotes, so a '":' inside a
# value, a blank before a colon or an escaped quote cannot be taken for a key.
_STRING = r'"(?:[^"\\]|\\.)*"\s*:?'
_KEY = r'^"((?:[^"\\]|\\.)*)"\s*:$'


_BLANK_BEFORE_COLON = re.compile(rb'"[ \t\r\n]+:')


class DuplicateKey(ValueError):
    def __init__(self, line: int, key: str):
        super().__init__(f"key {key!r} appears twice in one object")
        self.line, self.key = line, key


def _line_keys(data: bytes) -> pl.Series:
    """The keys of each line's object (at any depth), in order."""
    lines = pl.Series("line", data.split(b"\n"), dtype=pl.Binary).cast(pl.String)
    if data.endswith(b"\n"):
        lines = lines.head(-1)
    tokens = lines.str.extract_all(_STRING)
    return tokens.list.eval(pl.element().filter(pl.element().str.ends_with(":")).str.replace(_KEY, "$1"))


def _duplicate_keys(found: pl.Series) -> None:
    twice = (found.list.len() != found.list.n_unique()).arg_true()
    if len(twice):
        line = int(twice[0])
        seen: set[str] = set()
        key = next(k for k in found[line] if k in seen or seen.add(k))
        raise DuplicateKey(line + 1, key)


def _parse_block(data: bytes, keys: list[str]) -> pl.DataFrame:
    """Parse a block with every registered key as text, keeping any key that is not registered; a key twice
    in one object is refused (a parser would keep one of the values silently).

    Fast path: a typed parse ignores unknown keys, so it is trusted only when the block provably has none:
    no blank between a string and a colon anywhere (so every key is written ``"…":`` and makes one ``":``),
    as many ``":`` as lines × registered keys (a ``\\":`` inside a value only adds one), and a value for every
    registered key on every line in the typed parse (so each line has all of them as keys, hence at least
    keys × lines occurrences — equality leaves no room for another key, or a key twice). Anything else is
    scanned for duplicate keys (``_line_keys``) and parsed again with full schema inference, which
    surfaces unknown keys as extra columns. Property-tested against a strict reference parser
    (tests/test_reader_properties.py).
    """
    lines = data.count(b"\n") + (not data.endswith(b"\n"))
    if data.count(b'":') == lines * len(keys) and not _BLANK_BEFORE_COLON.search(data):
        typed = pl.read_ndjson(io.BytesIO(data), schema={k: pl.String for k in keys})
        if typed.height == lines and typed.null_count().sum_horizontal().item() == 0:
            return typed
    _duplicate_keys(_line_keys(data))
    overrides = {k: pl.String for k in keys}
    while True:
        try:
            return pl.read_ndjson(io.BytesIO(data), schema_overrides=overrides, infer_schema_length=None)
        except pl.exceptions.SchemaFieldNotFoundError as exc:  # a registered key absent from the whole block
            absent = str(exc).strip().splitlines()[0]
            if absent not in overrides:
                raise
            del overrides[absent]


def read_jsonl(path: Path, dataset: Dataset, sniff: Sniff) -> Batches:
    encoding = sniff.encoding or "utf-8"
    keys = dataset.source_headers
    overrides = {k: pl.String for k in keys}
    rows, seen = 0, dict.fromkeys(keys, 0)
    for block in _blocks(path):
        data = block if encoding == "utf-8" else block.decode(_FAST.get(encoding, encoding)).encode("utf-8")
        if data.startswith(b"\xef\xbb\xbf"):
            data = data[3:]
        try:
            df = _parse_block(data, keys)
        except DuplicateKey as exc:
            raise FileRejected(
                Rejection("duplicate_keys", str(exc), f"line {rows + exc.line}", rows + exc.line)
            ) from None
        except pl.exceptions.PolarsError as exc:
            line, msg = _bad_json_line(data, "utf-8")
            last = line == data.count(b"\n") + 1 and not sniff.ends_with_newline
            read = rows + line
            raise FileRejected(
                Rejection(
                    "truncated" if last else "malformed_json",
                    f"{msg} ({exc.__class__.__name__})",
                    f"line {rows + line}",
                    read,
                )
            ) from exc
        if df.height != data.count(b"\n") + (not data.endswith(b"\n")):
            blank = next(i for i, ln in enumerate(data.split(b"\n"), start=1) if not ln.strip())
            raise FileRejected(
                Rejection("malformed_json", "blank line inside the file", f"line {rows + blank}", rows + df.height)
            )
        df = df.rename({a: src for a, src in dataset.alias_map.items() if a in df.columns and src not in df.columns})
        extra = [c for c in df.columns if c not in overrides]
        if extra:
            first = df.select(pl.col(extra[0]).is_not_null().arg_true().first()).item()
            raise FileRejected(
                Rejection(
                    "unexpected_columns",
                    f"unregistered key(s) {extra}",
                    f"line {rows + (first or 0) + 1}",
                    count_lines(path, sniff),
                )
            )
        for k in keys:
            if k not in df.columns:
                df = df.with_columns(pl.lit(None, pl.String).alias(k))
            seen[k] += df.height - df[k].null_count()
        # one record batch per block: fewer, larger batches are cheaper for everything downstream
        batch = df.select(keys).rechunk().to_arrow().cast(pa.schema([pa.field(k, pa.string()) for k in keys]))
        for b in batch.to_batches():
            yield to_warehouse_names(b, dataset), rows + 1
            rows += b.num_rows
    if rows == 0:
        raise FileRejected(Rejection("empty", "no JSON lines", "file", 0))
    never = [k for k, n in seen.items() if n == 0]
    if never:
        raise FileRejected(Rejection("missing_columns", f"key(s) never present: {never}", "file", rows))


READERS = {"csv": read_csv, "xlsx": read_xlsx, "jsonl": read_jsonl}


_FAST = {gb18030_2022.NAME: "gb18030"}


def _as_2022(batch: pa.RecordBatch) -> pa.RecordBatch:
    """The GB 18030-2022 characters of a batch decoded by the 2005 table: a column is searched for the 24
    private-use characters that edition gave standard code points (Arrow's regex, at column speed) and
    translated only where one is found."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) and pc.any(pc.match_substring_regex(column, gb18030_2022.PATTERN)).as_py():
            for old, new in gb18030_2022.PAIRS:
                column = pc.replace_substring(column, old, new)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


def read(path: Path, dataset: Dataset, sniff: Sniff) -> Batches:
    if sniff.size == 0:
        raise FileRejected(Rejection("empty", "0 bytes", "file", 0))
    batches = READERS[dataset.format](path, dataset, sniff)
    if sniff.encoding != gb18030_2022.NAME:
        return batches
    return ((_as_2022(b), first) for b, first in batches)


__all__ = ["read", "raw_schema"]
