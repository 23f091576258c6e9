"""The write-audit gate: a pandera schema (polars backend) built from the registry and the rule book,
run on the standardised batch before it is written. An ERROR failure means nothing is committed."""

from __future__ import annotations

from dataclasses import dataclass

import pandera.polars as pa
import polars as pl

from lakehouse.registry import Dataset
from quality.rulebook import RuleSet

STD_TYPES = {
    "string": pl.String,
    "code": pl.String,
    "date": pl.Date,
    "month": pl.String,
    "timestamp": pl.Datetime("us", "UTC"),
    "decimal": pl.Float64,
    "integer": pl.Int64,
}


@dataclass(frozen=True)
class GateFailure:
    rule_id: str
    severity: str
    count: int
    sample: list[str]


def schema(ds: Dataset, rules: RuleSet) -> pa.DataFrameSchema:
    """Types, required columns and the business-key uniqueness of one batch (or one key bucket of it)."""
    required = {r.column for r in rules.rules if r.check == "required" and r.severity == "ERROR"}
    unique = next((b.columns for b in rules.batch if b.check == "unique"), None)
    return pa.DataFrameSchema(
        {c.name: pa.Column(STD_TYPES[c.type], nullable=c.name not in required) for c in ds.columns},
        unique=unique,
        strict=False,
        name=f"std.{ds.id}",
    )


def share_failures(rules: RuleSet, rows_in: int, quarantined: int) -> list[GateFailure]:
    """The batch rules on the whole batch's counts: the share of rows quarantined."""
    share = quarantined / rows_in if rows_in else 0.0
    return [
        GateFailure(
            b.id, b.severity, quarantined, [f"{quarantined} of {rows_in} rows quarantined ({share:.1%} > {b.max:.1%})"]
        )
        for b in rules.batch
        if b.check == "max_quarantine_share" and share > b.max
    ]


def audit(std: pl.DataFrame, ds: Dataset, rules: RuleSet) -> list[GateFailure]:
    """Failures of the std schema and the key rule on these rows; empty when they may be written."""
    try:
        schema(ds, rules).validate(std, lazy=True)
    except pa.errors.SchemaErrors as exc:
        cases = exc.failure_cases
        unique_rule = next((b.id for b in rules.batch if b.check == "unique"), "key_unique")
        severity = {b.id: b.severity for b in rules.batch}
        named = cases.with_columns(
            pl.when(pl.col("check") == "multiple_fields_uniqueness")
            .then(pl.lit(unique_rule))
            .otherwise(pl.lit("std_schema"))
            .alias("rule_id")
        )
        return [
            GateFailure(r["rule_id"], severity.get(r["rule_id"], "ERROR"), r["n"], r["sample"][:5])
            for r in named.group_by("rule_id", maintain_order=True)
            .agg(pl.len().alias("n"), pl.col("failure_case").cast(pl.String).alias("sample"))
            .iter_rows(named=True)
        ]
    return []
