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


VERSIONS = "raw_versions"  # commit metadata of catalogue/privacy_scan: the raw version each dataset was scanned at


def scan_registry(
    reg: Registry, lake: Lake, previous: pl.DataFrame | None = None, scanned: dict[str, int] | None = None
) -> tuple[pl.DataFrame, dict[str, int]]:
    """One row per raw column the scanner finds personal or sensitive: what it proposes, what is declared,
    and whether they agree; and the raw version of each dataset scanned. A dataset whose raw table is at the
    version ``scanned`` records keeps its findings from ``previous`` (the last scan) — only what was
    delivered since is read again — while what is declared, and whether it agrees, is always the
    registry's now."""
    now = dt.datetime.now(dt.UTC)
    rows, versions = [], {}
    for ds in reg.datasets:
        table = lake.table("raw", ds.id)
        if table is None:
            continue
        versions[ds.id] = table.version()
        declared = {c.name: c for c in ds.columns}
        if previous is not None and scanned is not None and scanned.get(ds.id) == versions[ds.id]:
            found = [
                (
                    r["column"],
                    r["detected"],
                    r["detected_by"],
                    r["share"],
                    r["proposed_classification"],
                    r["proposed_grade"],
                    r["proposed_role"],
                    r["scanned_at"],
                )
                for r in previous.filter(pl.col("dataset_id") == ds.id).iter_rows(named=True)
                if r["column"] in declared
            ]
        else:
            frame = pl.from_arrow(table.to_pyarrow_table())
            found = [
                (f.column, f.kind, f.by, f.share, f.classification, f.level, f.role, now)
                for f in scan.scan_frame(frame, {c.name: c.source for c in ds.columns})
            ]
        for column, kind, by, share, classification, level, role, at in found:
            d = declared[column]
            # agreement is on what protects people: the role, and a grade at least as high as proposed
            agrees = d.role == role and (d.grade or "L0") >= level
            rows.append(
                {
                    "dataset_id": ds.id,
                    "column": column,
                    "detected": kind,
                    "detected_by": by,
                    "share": share,
                    "proposed_classification": classification,
                    "proposed_grade": level,
                    "proposed_role": role,
                    "declared_classification": d.classification,
                    "declared_grade": d.grade,
                    "declared_role": d.role,
                    "agrees": agrees,
                    "scanned_at": at,
                }
            )
    return pl.DataFrame(rows, schema=SCHEMA), versions
