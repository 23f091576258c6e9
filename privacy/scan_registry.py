"""The privacy scan of the whole raw zone: what the scanner proposes for every raw column, beside what the
source registry declares. Stewards read it as ``catalogue/privacy_scan``; the declarations stay theirs.

Plain code over the lake, free of Dagster; the privacy_scan asset calls it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from lakehouse.lake import Lake
from lakehouse.registry import Registry
from privacy import scan

SCHEMA = {
    "dataset_id": pl.String,
    "column": pl.String,
    "detected": pl.String,
    "detected_by": pl.String,
    "share": pl.Float64,
    "proposed_classification": pl.String,
    "proposed_grade": pl.String,
    "proposed_role": pl.String,
    "declared_classification": pl.String,
    "declared_grade": pl.String,
    "declared_role": pl.String,
    "agrees": pl.Boolean,
    "scanned_at": pl.Datetime("us", "UTC"),
}


def scan_registry(reg: Registry, lake: Lake) -> pl.DataFrame:
    """One row per raw column the scanner finds personal or sensitive: what it proposes, what is declared,
    and whether they agree."""
    now = dt.datetime.now(dt.UTC)
    rows = []
    for ds in reg.datasets:
        frame = lake.read("raw", ds.id)
        if frame is None:
            continue
        declared = {c.name: c for c in ds.columns}
        for f in scan.scan_frame(frame, {c.name: c.source for c in ds.columns}):
            d = declared[f.column]
            # agreement is on what protects people: the role, and a grade at least as high as proposed
            agrees = d.role == f.role and (d.grade or "L0") >= f.level
            rows.append(
                {
                    "dataset_id": ds.id,
                    "column": f.column,
                    "detected": f.kind,
                    "detected_by": f.by,
                    "share": f.share,
                    "proposed_classification": f.classification,
                    "proposed_grade": f.level,
                    "proposed_role": f.role,
                    "declared_classification": d.classification,
                    "declared_grade": d.grade,
                    "declared_role": d.role,
                    "agrees": agrees,
                    "scanned_at": now,
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA)
