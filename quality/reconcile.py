"""Cross-source reconciliation (对账): the same fact from two departments, compared within a tolerance."""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl
from pydantic import Field

from lakehouse import config as configfile
from lakehouse.config import Strict
from lakehouse.lake import Lake

CONFIG = Path(__file__).with_name("reconcile.yaml")
SCHEMA = {
    "check_id": pl.String,
    "uscc": pl.String,
    "period": pl.String,
    "left_value": pl.Float64,
    "right_value": pl.Float64,
    "diff_ratio": pl.Float64,
    "tolerance": pl.Float64,
    "status": pl.String,
    "departments": pl.String,
}


class Check(Strict):
    name_zh: str
    departments: list[str] = Field(min_length=1)
    tolerance: float = Field(gt=0, lt=1)


class Reconciliation(Strict):
    checks: dict[str, Check]


@functools.cache
def config() -> dict:
    return configfile.load(CONFIG, Reconciliation, "reconciliation checks").model_dump()["checks"]


def _compare(check_id: str, joined: pl.DataFrame, complete: pl.Expr) -> pl.DataFrame:
    spec = config()[check_id]
    tol = float(spec["tolerance"])
    ratio = (pl.col("left_value") - pl.col("right_value")).abs() / pl.col("right_value").abs()
    return (
        joined.with_columns(
            pl.lit(check_id).alias("check_id"),
            ratio.alias("diff_ratio"),
            pl.lit(tol).alias("tolerance"),
            pl.when(~complete)
            .then(pl.lit("incomplete"))
            .when(ratio > tol)
            .then(pl.lit("mismatch"))
            .otherwise(pl.lit("ok"))
            .alias("status"),
            pl.lit(",".join(spec["departments"])).alias("departments"),
        )
        .select(list(SCHEMA))
        .cast(SCHEMA)
    )


def tax_vs_stats_revenue(tax: pl.DataFrame, stats: pl.DataFrame) -> pl.DataFrame:
    """Annual 税务 revenue (sum of the 12 monthly filings, in 元) against 统计 revenue (元)."""
    left = tax.group_by("uscc", pl.col("period").str.slice(0, 4).alias("period")).agg(
        pl.col("revenue").sum().alias("left_value"), pl.col("period").n_unique().alias("months")
    )
    right = stats.select("uscc", pl.col("year").cast(pl.String).alias("period"), pl.col("revenue").alias("right_value"))
    return _compare("tax_vs_stats_revenue", left.join(right, on=["uscc", "period"]), pl.col("months") == 12)


def power_vs_production_electricity(power: pl.DataFrame, production: pl.DataFrame) -> pl.DataFrame:
    """Metered kWh (all of a firm's supply accounts) against the kWh the firm reported, per month."""
    accounts = power.group_by("uscc").agg(pl.col("account_no").n_unique().alias("accounts"))
    left = (
        power.group_by("uscc", "period")
        .agg(pl.col("consumption").sum().alias("left_value"), pl.col("account_no").n_unique().alias("metered"))
        .join(accounts, on="uscc")
    )
    right = production.select("uscc", "period", pl.col("electricity_kwh").alias("right_value"))
    return _compare(
        "power_vs_production_electricity",
        left.join(right, on=["uscc", "period"]),
        pl.col("metered") == pl.col("accounts"),
    )


def reconcile_lake(lake: Lake) -> tuple[pl.DataFrame, int]:
    """Every configured check over the current std tables, written to ``quality/reconciliation``; returns
    the comparisons and the table's version."""
    read = lambda name: lake.read("std", name)  # noqa: E731
    result = pl.concat(
        [
            tax_vs_stats_revenue(read("tax_monthly"), read("stats_annual")),
            power_vs_production_electricity(read("power_monthly"), read("ent_production")),
        ]
    )
    return result, lake.overwrite("quality", "reconciliation", result.to_arrow())
