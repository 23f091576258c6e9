"""Collection you can trust (issue 14): every delivered file lands exactly once, correctly, or is refused
with a reason. One test per class of fault, the bad input built in the test."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import polars as pl
import pyarrow as pa
import pytest

from assets.ingest.collector import Collector, collect_history, landed_fingerprints
from lakehouse.lake import Lake
from lakehouse.provenance import raw_table_schema
from lakehouse.registry import registry
from quality.conform import conform
from quality.rulebook import rules_for
from sensors.landing import arrivals, scan

USCC = "91331003MA2AAAAA7K"  # valid (GB 32100)
TAX = registry().dataset("tax_monthly")
HEADER = ",".join(TAX.source_headers)


def raw_rows(ds, rows: list[dict], file: str, ingested: dt.datetime) -> pl.DataFrame:
    """Delivered rows of one file as the raw table holds them: text values and provenance."""
    n = len(rows)
    data = {f.name: [r.get(f.name) for r in rows] for f in raw_table_schema(ds)}
    data.update(
        _source_department=[ds.department] * n,
        _source_file=[file] * n,
        _file_sha256=[file.ljust(64, "0")] * n,
        _row_number=list(range(1, n + 1)),
        _batch_id=[file] * n,
        _ingested_at=[ingested] * n,
        _period=[None] * n,
    )
    return pl.from_arrow(pa.Table.from_pydict(data, schema=raw_table_schema(ds)))


def _filing(revenue: str, kind: str = "正常") -> dict:
    return dict(
        uscc=USCC,
        taxpayer_name="甲公司",
        period="2024-01",
        filing_type=kind,
        revenue=revenue,
        tax_paid="1",
        amount_unit="元",
        filed_on="2024-02-10",
    )


def test_a_second_correction_back_to_the_original_value_wins():
    """Delivery 1: revenue 100; delivery 2 corrects it to 200; delivery 3 corrects it back to 100 — the very
    values of delivery 1. The latest delivery wins: std says 100."""
    day = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    raw = pl.concat(
        [
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1.csv", day),
            raw_rows(TAX, [_filing("200", "更正")], "tax/monthly/d2.csv", day + dt.timedelta(days=1)),
            raw_rows(TAX, [_filing("100")], "tax/monthly/d3.csv", day + dt.timedelta(days=2)),
        ]
    )
    out = conform(TAX, rules_for(TAX.id), raw, {"amr_registration.uscc": pl.Series([USCC])})
    assert out.std["revenue"].to_list() == [100.0]
    assert (out.exact_duplicates, out.key_duplicates, out.rows_out) == (1, 1, 1)
    superseded = out.duplicates.filter(pl.col("kind") == "superseded")["_source_file"].to_list()
    assert superseded == ["tax/monthly/d2.csv"]  # the first correction is what was superseded
    # and a correction that stays corrected still wins over the original delivered again before it
    raw = pl.concat(
        [
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1.csv", day),
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1-again.csv", day + dt.timedelta(days=1)),
            raw_rows(TAX, [_filing("200", "更正")], "tax/monthly/d2.csv", day + dt.timedelta(days=2)),
        ]
    )
    out = conform(TAX, rules_for(TAX.id), raw, {"amr_registration.uscc": pl.Series([USCC])})
    assert out.std["revenue"].to_list() == [200.0]
