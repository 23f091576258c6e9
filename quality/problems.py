"""Problem lists (问题清单): what goes back to each department for rectification, and whether it was fixed.

A problem is a quarantined or flagged row (dataset, file, row, rule) or a reconciliation mismatch (check,
firm, period). The ledger keeps every problem ever raised: open until a later delivery fixes it — a
valid row with the same business key from another file, or the figures now agreeing.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import polars as pl

LIST_COLUMNS = {  # export header (Chinese, for the department) ← problem column
    "数据集": "dataset",
    "来源文件": "source_file",
    "行号": "row_number",
    "规则": "rule_id",
    "级别": "severity",
    "处理": "handling",
    "字段": "column",
    "原值": "value",
    "问题说明": "reason_zh",
    "Problem": "reason_en",
    "业务主键": "record_key",
}
SCHEMA = {
    "problem_id": pl.String,
    "department": pl.String,
    "dataset": pl.String,
    "source_file": pl.String,
    "row_number": pl.Int64,
    "rule_id": pl.String,
    "severity": pl.String,
    "handling": pl.String,
    "column": pl.String,
    "value": pl.String,
    "reason_zh": pl.String,
    "reason_en": pl.String,
    "record_key": pl.String,
}
LEDGER = {
    **SCHEMA,
    "first_seen_at": pl.Datetime("us", "UTC"),
    "last_seen_at": pl.Datetime("us", "UTC"),
    "status": pl.String,
    "fixed_at": pl.Datetime("us", "UTC"),
    "fixed_by": pl.String,
}


def _id(*parts) -> str:
    return hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:16]


def current(findings: pl.DataFrame, mismatches: pl.DataFrame) -> pl.DataFrame:
    rows = findings.select(
        pl.col("department"),
        pl.col("dataset"),
        pl.col("source_file"),
        pl.col("row_number"),
        pl.col("rule_id"),
        pl.col("severity"),
        pl.when(pl.col("action") == "quarantined")
        .then(pl.lit("退回整改 rejected"))
        .otherwise(pl.lit("请核实 verify"))
        .alias("handling"),
        pl.col("column"),
        pl.col("value"),
        pl.col("reason_zh"),
        pl.col("reason_en"),
        pl.col("record_key"),
    )
    recon = (
        mismatches.with_columns(pl.col("departments").str.split(","))
        .explode("departments")
        .select(
            pl.col("departments").alias("department"),
            pl.col("check_id").alias("dataset"),
            pl.lit(None, pl.String).alias("source_file"),
            pl.lit(None, pl.Int64).alias("row_number"),
            pl.col("check_id").alias("rule_id"),
            pl.lit("WARN").alias("severity"),
            pl.lit("对账核实 reconcile").alias("handling"),
            pl.lit(None, pl.String).alias("column"),
            pl.format("{} vs {}", pl.col("left_value").round(2), pl.col("right_value").round(2)).alias("value"),
            pl.format("两部门数据差异{}%超出容差", (pl.col("diff_ratio") * 100).round(1)).alias("reason_zh"),
            pl.format("sources differ by {}%, beyond tolerance", (pl.col("diff_ratio") * 100).round(1)).alias(
                "reason_en"
            ),
            pl.format("uscc={}|period={}", pl.col("uscc"), pl.col("period")).alias("record_key"),
        )
    )
    out = pl.concat(
        [
            rows.cast({k: v for k, v in SCHEMA.items() if k != "problem_id"}),
            recon.cast({k: v for k, v in SCHEMA.items() if k != "problem_id"}),
        ]
    )
    ids = [
        _id(*r)
        for r in out.select("department", "dataset", "source_file", "row_number", "rule_id", "record_key").iter_rows()
    ]
    return out.with_columns(pl.Series("problem_id", ids, pl.String)).select(list(SCHEMA))


def update_ledger(
    ledger: pl.DataFrame | None, now_problems: pl.DataFrame, std_keys: pl.DataFrame, at: dt.datetime
) -> pl.DataFrame:
    """``std_keys``: (dataset, record_key, source_file) of every row now in std, to recognise fixes."""
    ledger = ledger if ledger is not None else pl.DataFrame(schema=LEDGER)
    seen = set(now_problems["problem_id"])
    known = ledger.filter(~pl.col("problem_id").is_in(now_problems["problem_id"].implode()))
    carried = ledger.filter(pl.col("problem_id").is_in(now_problems["problem_id"].implode())).select(
        "problem_id", "first_seen_at", "status", "fixed_at", "fixed_by"
    )
    fresh = now_problems.join(carried, on="problem_id", how="left").with_columns(
        pl.col("first_seen_at").fill_null(at), pl.lit(at).alias("last_seen_at"), pl.col("status").fill_null("open")
    )
    merged = pl.concat([known, fresh.select(list(LEDGER)).cast(LEDGER)], how="vertical")
    # a rejected row is fixed by a valid row with the same business key delivered in another file
    fixes = std_keys.rename({"source_file": "fixed_by_file"})
    rejected = merged.filter(
        (pl.col("status") == "open")
        & pl.col("handling").str.starts_with("退回")
        & ~pl.col("record_key").str.contains("∅")
    )
    by_delivery = (
        rejected.join(fixes, on=["dataset", "record_key"])
        .filter(pl.col("fixed_by_file") != pl.col("source_file"))
        .group_by("problem_id")
        .agg(pl.col("fixed_by_file").first())
    )
    # any open problem no longer found (the figures now agree, the referenced record arrived) is fixed too
    gone = merged.filter((pl.col("status") == "open") & ~pl.col("problem_id").is_in(list(seen))).select(
        "problem_id", pl.lit("no longer found").alias("fixed_by_file")
    )
    fixed = pl.concat([by_delivery, gone.filter(~pl.col("problem_id").is_in(by_delivery["problem_id"].implode()))])
    return (
        merged.join(fixed, on="problem_id", how="left")
        .with_columns(
            pl.when(pl.col("fixed_by_file").is_not_null())
            .then(pl.lit("fixed"))
            .otherwise(pl.col("status"))
            .alias("status"),
            pl.when(pl.col("fixed_by_file").is_not_null())
            .then(pl.lit(at))
            .otherwise(pl.col("fixed_at"))
            .alias("fixed_at"),
            pl.coalesce("fixed_by_file", "fixed_by").alias("fixed_by"),
        )
        .select(list(LEDGER))
        .cast(LEDGER)
    )


def export_frame(problems: pl.DataFrame) -> pl.DataFrame:
    """The sheet a department receives: Chinese headers, sorted by dataset, file and row."""
    return problems.sort("dataset", "source_file", "row_number", "rule_id", nulls_last=True).select(
        *(pl.col(src).alias(header) for header, src in LIST_COLUMNS.items())
    )
