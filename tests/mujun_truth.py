"""The 亩均 evaluation recomputed from the generator's truth — independent of the dbt models.

From ``truth/enterprises.parquet`` (each firm's latent economics plus what its departments state: registration
status, tax as filed with corrections, 统计's revenue, whether an emission report exists) and the county's
policy seeds, the band every firm would get on complete, correct inputs. Tests compare the published
evaluation with it: a firm either has the truth's band or is marked 待核实 with a reason.
"""

from __future__ import annotations

import csv
from pathlib import Path

import polars as pl

SEEDS = Path(__file__).resolve().parents[1] / "dbt_project" / "seeds"
YEAR = 2023
COUNTY = "331003"


def _seed(name: str) -> list[dict]:
    with (SEEDS / f"{name}.csv").open(encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _values(t: pl.DataFrame) -> dict[str, pl.Expr]:
    """Indicator → value in the published units (万元, 亩, 吨标准煤, 吨, 人, 万千瓦时)."""
    tax_wan = pl.col("tax_paid_yuan") / 10_000
    return {
        "tax_per_mu": tax_wan / pl.col("land_mu"),
        "value_added_per_mu": pl.col("value_added_wan") / pl.col("land_mu"),
        "value_added_per_energy": pl.col("value_added_wan") / pl.col("energy_tce"),
        "value_added_per_emission": pl.when(pl.col("emission_reported")).then(
            pl.col("value_added_wan") / pl.col("emission_eq_t")
        ),
        "labour_productivity": pl.col("value_added_wan") / pl.col("employees"),
        "rd_share": pl.col("rd_wan") / pl.col("stats_revenue_wan"),
        "tax_per_kwh": tax_wan / (pl.col("electricity_kwh_metered") / 10_000),
    }


def evaluate(truth: pl.DataFrame, population: set[str] | None = None) -> pl.DataFrame:
    """uscc → exempt (bool), total_score, rank_in_group, group_size, band — for the county's default
    parameters, every firm ranked within its own county and scale group. ``population`` (optional) ranks only
    those firms, as the warehouse does when it withholds a firm's band (待核实)."""
    params = next(p for p in _seed("mujun_parameters") if p["county_code"] == COUNTY and int(p["year"]) == YEAR)
    missing_emission = params["missing_emission_rule"]
    new_years = int(params["new_enterprise_years"])
    exempt_industries = {r["industry_code"] for r in _seed("mujun_exempt_industries") if r["county_code"] == COUNTY}
    t = truth.with_columns(
        pl.when(pl.col("above_scale")).then(pl.lit("规上")).otherwise(pl.lit("规下")).alias("scale_group"),
        (
            (pl.col("status") != "存续")
            | (pl.col("established_on").dt.year() > YEAR - new_years)
            | pl.col("industry_code").is_in(sorted(exempt_industries))
            | (pl.col("land_mu") <= 0)
        ).alias("exempt"),
    )
    values = _values(t)
    score = pl.lit(0.0)
    for ind in _seed("mujun_indicators"):
        if ind["county_code"] != COUNTY or int(ind["year"]) != YEAR:
            continue
        ratio = values[ind["indicator"]] / float(ind["benchmark"])
        if ind["cap_ratio"]:
            ratio = pl.min_horizontal(ratio, pl.lit(float(ind["cap_ratio"])))
        if ind["floor_ratio"]:
            ratio = pl.max_horizontal(ratio, pl.lit(float(ind["floor_ratio"])))
        if ind["indicator"] == "value_added_per_emission":
            ratio = ratio.fill_null(1.0 if missing_emission == "benchmark" else 0.0)
        score = score + pl.when(pl.col("scale_group") == ind["scale_group"]).then(
            ratio * float(ind["weight"])
        ).otherwise(0.0)
    t = t.with_columns(score.alias("total_score"))
    ranked = t.filter(~pl.col("exempt"))
    if population is not None:
        ranked = ranked.filter(pl.col("uscc").is_in(sorted(population)))
    ranked = ranked.sort(["total_score", "uscc"], descending=[True, False]).with_columns(
        pl.int_range(1, pl.len() + 1).over("region_code", "scale_group").alias("rank_in_group"),
        pl.len().over("region_code", "scale_group").alias("group_size"),
    )
    bands = [b for b in _seed("mujun_bands") if b["county_code"] == COUNTY and int(b["year"]) == YEAR]
    pct = 100.0 * pl.col("rank_in_group") / pl.col("group_size")
    band = pl.lit(None, pl.String)
    for b in bands:
        band = (
            pl.when((pct > float(b["rank_from_pct"])) & (pct <= float(b["rank_to_pct"])))
            .then(pl.lit(b["band"]))
            .otherwise(band)
        )
    ranked = ranked.with_columns(band.alias("band"))
    return t.select("uscc", "exempt").join(
        ranked.select("uscc", "total_score", "rank_in_group", "group_size", "band"), on="uscc", how="left"
    )
