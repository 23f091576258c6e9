"""Write deliveries to the landing zone the way departments send them, damage included."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from pathlib import Path

import polars as pl
import xlsxwriter

from sourcegen.delivery import Delivery

_FIXED_TIME = dt.datetime(2024, 1, 15, 9, 0, 0)  # XLSX properties: fixed so output is byte-identical


def _csv_bytes(df: pl.DataFrame, encoding: str) -> bytes:
    return df.write_csv(line_terminator="\n").encode(encoding)


def _xlsx_bytes(df: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    wb = xlsxwriter.Workbook(buf, {"in_memory": True})
    wb.set_properties({"created": _FIXED_TIME, "author": "shucang sourcegen"})
    ws = wb.add_worksheet("Sheet1")
    ws.write_row(0, 0, df.columns)
    for r, row in enumerate(df.iter_rows(), start=1):
        ws.write_row(r, 0, row)
    wb.close()
    return buf.getvalue()


def _truncate_mid_row(data: bytes, fraction: float = 0.6) -> bytes:
    """Cut inside a data row, right after an ASCII field separator, as an interrupted transfer does."""
    cut = int(len(data) * fraction)
    while data[cut - 1 : cut] != b"," or data[cut : cut + 1] in (b"\n", b"\r"):
        cut += 1
    return data[:cut]


def render(delivery: Delivery) -> tuple[bytes, int]:
    """File bytes and the number of data rows a reader will find in them."""
    df = delivery.frame
    if delivery.damage == "empty":
        return b"", 0
    if delivery.damage == "schema_drift" and delivery.drift:
        df = df.rename(delivery.drift).with_columns(pl.lit("").alias("抄表员"))
    if delivery.fmt == "csv":
        data = _csv_bytes(df, delivery.encoding)
        if delivery.damage == "truncated":
            data = _truncate_mid_row(data)
            # the header is one line; every remaining line, the partial last one included, is a row
            return data, data.count(b"\n")
        return data, df.height
    if delivery.fmt == "xlsx":
        data = _xlsx_bytes(df)
        if delivery.damage == "unreadable":
            data = data[: len(data) * 2 // 5]
        return data, df.height
    if delivery.fmt == "jsonl":
        return df.write_ndjson().encode("utf-8"), df.height
    raise ValueError(f"unknown delivery format {delivery.fmt!r} for {delivery.path}")


def write(delivery: Delivery, landing: Path) -> dict:
    data, rows = render(delivery)
    target = landing / delivery.path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
    return {
        "path": delivery.path,
        "dataset": delivery.dataset,
        "format": delivery.fmt,
        "encoding": delivery.encoding if delivery.fmt == "csv" else ("utf-8" if delivery.fmt == "jsonl" else None),
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "rows": None if delivery.damage == "unreadable" else rows,
        "rows_generated": delivery.frame.height,
        "damage": delivery.damage,
        "expected_status": "rejected" if delivery.damage else "landed",
    }
