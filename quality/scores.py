"""Quality scores along the GB/T 36344 dimensions, per dataset and per source department.

A dimension scores 100 × the share of checks that passed: every row evaluated against every rule of
that dimension (规范性 validity, 完整性 completeness, 准确性 accuracy, 一致性 uniqueness/consistency/
referential, 时效性 timeliness), plus exact duplicates under 一致性, and 可访问性 from delivered files
that could be read. A dimension with nothing to assess is left out, not scored 100.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from quality.rulebook import GBT36344, RuleSet

DIMENSIONS = ("规范性", "完整性", "准确性", "一致性", "时效性", "可访问性")
SCHEMA = {
    "scored_at": pl.Datetime("us", "UTC"),
    "level": pl.String,
    "subject": pl.String,
    "department": pl.String,
    "rows": pl.Int64,
    **{d: pl.Float64 for d in DIMENSIONS},
    "overall": pl.Float64,
}


def dataset_scores(
    rules: RuleSet,
    rule_failures: dict[str, int],
    rows_evaluated: int,
    rows_in: int,
    exact_duplicates: int,
    files_delivered: int,
    files_landed: int,
    repaired: dict[str, int] | None = None,
) -> dict[str, float]:
    checks: dict[str, list[int]] = {d: [0, 0] for d in DIMENSIONS}  # failures, checks
    for r in rules.rules:
        dim = GBT36344[r.dimension]
        checks[dim][0] += rule_failures.get(r.id, 0)
        checks[dim][1] += rows_evaluated
    for n in (repaired or {}).values():  # values not delivered in the standard form count against 规范性
        checks["规范性"][0] += n
        checks["规范性"][1] += rows_evaluated
    checks["一致性"][0] += exact_duplicates
    checks["一致性"][1] += rows_in
    checks["可访问性"] = [files_delivered - files_landed, files_delivered]
    return {d: round(100 * (1 - f / n), 2) for d, (f, n) in checks.items() if n}


def overall(scores: dict[str, float]) -> float | None:
    return round(sum(scores.values()) / len(scores), 2) if scores else None


def row(level: str, subject: str, department: str, rows: int, scores: dict[str, float], at: dt.datetime) -> dict:
    return {
        "scored_at": at,
        "level": level,
        "subject": subject,
        "department": department,
        "rows": rows,
        **{d: scores.get(d) for d in DIMENSIONS},
        "overall": overall(scores),
    }


def department_scores(latest: pl.DataFrame, at: dt.datetime) -> pl.DataFrame:
    """Row-weighted mean of the latest dataset scores of each department: over the datasets scored on the
    dimension; a plain mean when they hold no rows; null — never NaN — when none is scored on it."""

    def weighted(d: str) -> pl.Expr:
        rows = pl.col("rows").filter(pl.col(d).is_not_null()).sum()
        return pl.when(rows > 0).then((pl.col(d) * pl.col("rows")).sum() / rows).otherwise(pl.col(d).mean())

    weighted = [weighted(d) for d in DIMENSIONS]
    agg = latest.group_by("department").agg(
        *(w.round(2).alias(d) for w, d in zip(weighted, DIMENSIONS, strict=True)), pl.col("rows").sum()
    )
    return (
        agg.with_columns(
            pl.lit(at).alias("scored_at"),
            pl.lit("department").alias("level"),
            pl.col("department").alias("subject"),
            pl.mean_horizontal(*DIMENSIONS).round(2).alias("overall"),
        )
        .select(list(SCHEMA))
        .cast(SCHEMA)
        .with_columns(pl.col(pl.Float64).fill_nan(None))
    )
