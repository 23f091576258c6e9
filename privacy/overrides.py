"""Grade overrides: a steward sets the effective grade of a column in a zone against what propagation
computed (e.g. a derived column reviewed and found less sensitive), with a reason. Kept in the lake
(``catalogue/grade_overrides``, newest wins), applied by the catalogue, and written to the audit log."""

from __future__ import annotations

import datetime as dt

import polars as pl

from lakehouse.lake import Lake
from lakehouse.tables import GRADE_OVERRIDES
from privacy.access import Principal, require_steward
from privacy.audit import AuditLog
from privacy.grading import level_rank

TABLE = (GRADE_OVERRIDES.zone, GRADE_OVERRIDES.name)
SCHEMA = {
    "dataset_id": pl.String,
    "zone": pl.String,
    "column": pl.String,
    "level": pl.String,
    "previous": pl.String,
    "reason": pl.String,
    "approved_by": pl.String,
    "approved_at": pl.Datetime("us", "UTC"),
}


def override(
    lake: Lake,
    audit: AuditLog,
    who: Principal,
    dataset: str,
    zone: str,
    column: str,
    level: str,
    previous: str,
    reason: str,
) -> dict:
    require_steward(who, audit, "grade.override", dataset=dataset, zone=zone, column=column, level=level)
    level_rank(level)  # a known level
    if not reason.strip():
        raise ValueError("a grade override needs a reason")
    row = {
        "dataset_id": dataset,
        "zone": zone,
        "column": column,
        "level": level,
        "previous": previous,
        "reason": reason,
        "approved_by": who.name,
        "approved_at": dt.datetime.now(dt.UTC),
    }
    version = lake.append(*TABLE, pl.DataFrame([row], schema=SCHEMA).to_arrow())
    audit.append(
        "grade.override",
        actor=who.name,
        dataset=dataset,
        zone=zone,
        column=column,
        level=level,
        previous=previous,
        reason=reason,
    )
    return {**row, "delta_version": version}


def current(lake: Lake | None) -> dict[tuple[str, str, str], str]:
    """(dataset, zone, column) → overriding level, the newest approval winning."""
    frame = lake.read(*TABLE) if lake is not None else None
    if frame is None or frame.height == 0:
        return {}
    latest = frame.sort("approved_at").unique(["dataset_id", "zone", "column"], keep="last")
    return {(r["dataset_id"], r["zone"], r["column"]): r["level"] for r in latest.iter_rows(named=True)}
