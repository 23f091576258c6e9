"""raw → std against the truth manifest: every injected defect class caught exactly, every row accounted for."""

import polars as pl
import pytest

from assets.ingest.collector import Collector
from lakehouse.lake import Lake
from lakehouse.registry import registry
from quality.conform import conform
from quality.gate import audit, share_failures
from quality.rulebook import rules_for


@pytest.fixture(scope="module")
def cleaned(generated, tmp_path_factory):
    import shutil

    work = tmp_path_factory.mktemp("clean")
    shutil.copytree(generated / "landing", work / "landing")
    lake = Lake(str(work / "lake"))
    out, refs = {}, {}
    for ds in registry().datasets:  # registration first: the others reference it
        Collector(ds, lake, work / "landing", work / "rejected", "b1").run()
        out[ds.id] = conform(ds, rules_for(ds.id), lake.read("raw", ds.id), refs)
        if ds.id == "amr_registration":
            refs["amr_registration.uscc"] = out[ds.id].std["uscc"]
    out["_lake"] = lake
    return out


def _truth(manifest, key) -> set[tuple[str, int]]:
    landed = {f["path"] for f in manifest["files"] if f["expected_status"] == "landed"}
    rec = manifest["defects"].get(key, {"rows": []})
    return {(p, r) for p, r in rec["rows"] if p in landed}


def _quarantined(result, rule_ids) -> set[tuple[str, int]]:
    f = result.findings.filter(pl.col("rule_id").is_in(rule_ids))
    return set(f.select("source_file", "row_number").iter_rows())


def test_every_batch_conserves_rows(cleaned):
    for ds_id, r in cleaned.items():
        if ds_id == "_lake":
            continue
        assert r.conserved, ds_id
        assert r.rows_in == r.rows_out + r.quarantined + r.exact_duplicates + r.key_duplicates
        assert r.duplicates.height == r.exact_duplicates + r.key_duplicates


def test_invalid_check_characters_are_caught_exactly(cleaned, manifest):
    truth = _truth(manifest, "amr_registration.invalid_uscc_check")
    assert truth and _quarantined(cleaned["amr_registration"], ["uscc_valid"]) == truth


@pytest.mark.parametrize(
    "dataset,rule",
    [
        ("amr_registration", "name_required"),
        ("tax_monthly", "uscc_required"),
        ("power_monthly", "uscc_required"),
        ("stats_annual", "uscc_required"),
        ("eco_emissions", "uscc_required"),
        ("ent_production", "uscc_required"),
    ],
)
def test_missing_mandatory_fields_are_caught_exactly(cleaned, manifest, dataset, rule):
    truth = _truth(manifest, f"{dataset}.missing_mandatory")
    assert truth and _quarantined(cleaned[dataset], [rule]) == truth


def test_nothing_else_is_quarantined(cleaned, manifest):
    for ds_id, r in cleaned.items():
        if ds_id == "_lake":
            continue
        injected = set().union(*(_truth(manifest, f"{ds_id}.{d}") for d in ("invalid_uscc_check", "missing_mandatory")))
        got = set(r.findings.filter(pl.col("action") == "quarantined").select("source_file", "row_number").iter_rows())
        assert got == injected, ds_id


@pytest.mark.parametrize(
    "dataset,defect",
    [
        ("tax_monthly", "exact_duplicate"),
        ("power_monthly", "exact_duplicate"),
        ("ent_supply_orders", "exact_duplicate"),
        ("ent_telemetry", "telemetry_duplicate"),
    ],
)
def test_exact_duplicates_are_merged_exactly(cleaned, manifest, dataset, defect):
    merged = cleaned[dataset].duplicates.filter(pl.col("kind") == "exact")
    assert set(merged.select("_source_file", "_row_number").iter_rows()) == _truth(manifest, f"{dataset}.{defect}")


def test_near_duplicates_merge_into_one_record(cleaned, manifest):
    reg = cleaned["amr_registration"]
    truth = _truth(manifest, "amr_registration.near_duplicate")
    assert reg.key_duplicates == len(truth) > 0
    assert reg.std["uscc"].is_unique().all()


def test_late_corrections_win(cleaned, manifest):
    tax = cleaned["tax_monthly"]
    truth = _truth(manifest, "tax_monthly.late_correction")
    kept = set(tax.std.filter(pl.col("filing_type") == "更正").select("_source_file", "_row_number").iter_rows())
    # every correction delivered (and not itself defective) is the row std keeps for its taxpayer and month
    assert kept == truth - _quarantined(tax, ["uscc_required"])
    # and what it superseded are originals (正常) of those same taxpayer-months, never anything else
    raw = cleaned["_lake"].read("raw", "tax_monthly").with_columns(pl.col("uscc").str.strip_chars())
    superseded = tax.duplicates.filter(pl.col("kind") == "superseded").join(
        raw, on=["_source_file", "_row_number"], how="left"
    )
    assert superseded.height > 0 and set(superseded["filing_type"]) == {"正常"}
    corrected = set(tax.std.filter(pl.col("filing_type") == "更正").select("uscc", "period").iter_rows())
    assert superseded.height <= len(corrected)


def test_full_width_and_blank_variants_are_repaired_not_rejected(cleaned, manifest, generated):
    truth = _truth(manifest, "amr_registration.fullwidth_or_spaces")
    reg = cleaned["amr_registration"].std
    fixed = reg.filter(
        pl.struct("_source_file", "_row_number").is_in([{"_source_file": p, "_row_number": r} for p, r in truth])
    )
    codes = set(pl.read_parquet(generated / "truth" / "enterprises.parquet")["uscc"])
    assert fixed.height == len(truth) and set(fixed["uscc"]) <= codes


def test_every_date_format_standardises_to_the_true_date(cleaned, generated):
    truth = pl.read_parquet(generated / "truth" / "enterprises.parquet").select("uscc", "established_on")
    reg = cleaned["amr_registration"].std.join(truth, on="uscc", suffix="_truth")
    assert reg.height == cleaned["amr_registration"].std.height
    assert (reg["established_on"] == reg["established_on_truth"]).all()
    power = cleaned["power_monthly"].std
    assert (power["period"] == power["_period"]).all()  # every spelling of the month read as the delivery month


def test_mixed_units_become_canonical(cleaned, generated):
    truth = pl.read_parquet(generated / "truth" / "enterprises.parquet").select("uscc", "land_mu")
    land = cleaned["land_parcels"].std.group_by("uscc").agg(pl.col("area").sum()).join(truth, on="uscc")
    # 亩 delivered to 4 decimals, m² to 2: equal to within delivery rounding
    assert ((land["area"] - land["land_mu"] * 666.6666667).abs() <= 1e-4 * land["area"] + 0.05).all()
    tax = cleaned["tax_monthly"].std
    assert tax.filter(pl.col("amount_unit") == "万元").height > 0  # delivered in 万元, stored in 元
    assert tax["revenue"].min() >= 0 and tax["revenue"].median() > 10_000


def test_references_to_unregistered_firms_are_flagged_not_dropped(cleaned):
    tax = cleaned["tax_monthly"]
    flagged = tax.findings.filter(pl.col("rule_id") == "uscc_registered")
    assert flagged.height > 0 and set(flagged["action"]) == {"flagged"}
    assert set(flagged["value"]) & set(tax.std["uscc"])  # flagged rows are still in std


def test_the_gate_refuses_a_batch_breaking_an_error_batch_rule():
    ds = registry().dataset("land_parcels")
    frame = pl.DataFrame({c.name: ["x", "x"] for c in ds.columns}).with_columns(
        pl.lit(1.0).alias("area"), pl.lit(None, pl.Date).alias("acquired_on")
    )
    rules = rules_for(ds.id)
    assert [f.rule_id for f in audit(frame, ds, rules)] == ["key_unique"]
    assert [f.rule_id for f in share_failures(rules, rows_in=10, quarantined=5)] == ["quarantine_share"]
    assert audit(frame.head(1), ds, rules) == [] and share_failures(rules, rows_in=10, quarantined=0) == []


@pytest.mark.parametrize("dataset", ["tax_monthly", "ent_telemetry"])
def test_conforming_in_key_buckets_gives_the_same_std_findings_and_duplicates(cleaned, dataset, monkeypatch):
    """Large raw tables are conformed bucket by bucket (by business key); the outcome must not change."""
    import quality.standardise as clean

    lake, whole = cleaned["_lake"], cleaned[dataset]
    ds, rules = registry().dataset(dataset), rules_for(dataset)
    refs = {"amr_registration.uscc": cleaned["amr_registration"].std["uscc"]} if rules.references else {}
    monkeypatch.setattr(clean, "PART_ROWS", max(1, lake.row_count("raw", dataset) // 7))
    with clean._buckets(lake, ds, rules, has_raw=True) as buckets:
        assert len(buckets) == 8
    total, version = clean.conform_and_write(lake, ds, rules, refs, True, "test")
    assert version is not None and total.conserved and not total.blocked
    for attr in ("rows_in", "rows_out", "quarantined", "exact_duplicates", "key_duplicates"):
        assert getattr(total, attr) == getattr(whole, attr), attr
    assert total.rule_failures == whole.rule_failures and total.repaired == whole.repaired
    order = ["_source_file", "_row_number"]
    assert lake.read("std", dataset).sort(order).equals(whole.std.sort(order))
    by = ["source_file", "row_number", "rule_id"]
    assert total.findings.sort(by).equals(whole.findings.sort(by))
    assert total.duplicates.sort(order).equals(whole.duplicates.sort(order))


def test_the_duckdb_baseline_of_the_bench_does_the_same_checks(cleaned, tmp_path):
    """make bench compares the clean stage with benchmarks/duckdb_clean.py; the comparison is fair only if
    that SQL finds exactly the same rows breaking exactly the same rules, and keeps the same rows."""
    from pathlib import Path

    from benchmarks import duckdb_clean

    lake = cleaned["_lake"]
    report = duckdb_clean.run(Path(lake.root), tmp_path)
    for ds in registry().datasets:
        mine, theirs = cleaned[ds.id], report["datasets"][ds.id]
        assert (theirs["rows_in"], theirs["rows_out"], theirs["quarantined"], theirs["exact"]) == (
            mine.rows_in,
            mine.rows_out,
            mine.quarantined,
            mine.exact_duplicates,
        ), ds.id
        found = pl.read_parquet(tmp_path / f"findings_{ds.id}.parquet").select("source_file", "row_number", "rule_id")
        assert found.sort(found.columns).equals(mine.findings.select(found.columns).sort(found.columns)), ds.id
        kept = pl.read_parquet(tmp_path / f"std_{ds.id}.parquet").select("_source_file", "_row_number")
        assert kept.sort(kept.columns).equals(mine.std.select(kept.columns).sort(kept.columns)), ds.id
