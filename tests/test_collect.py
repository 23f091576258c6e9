"""Collection end to end on generated sources, checked against the truth manifest."""

import json
from pathlib import Path

import polars as pl
import pytest

from assets.ingest.collector import Collector
from lakehouse.lake import Lake
from lakehouse.registry import registry


def collect_all(workdir: Path, batch: str = "b1") -> dict:
    lake = Lake(str(workdir / "lake"))
    results = {
        ds.id: Collector(ds, lake, workdir / "landing", workdir / "rejected", batch).run() for ds in registry().datasets
    }
    return {"lake": lake, "results": results}


@pytest.fixture
def collected(workdir):
    return {**collect_all(workdir), "workdir": workdir}


def test_every_file_lands_or_is_rejected_as_the_truth_says(collected, manifest):
    log = collected["lake"].read("ops", "collect_log")
    for f in manifest["files"]:
        row = log.filter(pl.col("file") == f["path"]).row(0, named=True)
        assert (row["status"], row["rows_read"]) == (f["expected_status"], f["rows"]), f["path"]
    assert log.height == len(manifest["files"])


def test_rows_read_equal_rows_landed_plus_rows_in_rejected_files(collected, manifest):
    readable = [f for f in manifest["files"] if f["rows"] is not None]
    delivered = sum(f["rows"] for f in readable)
    landed = sum(collected["lake"].row_count("raw", ds.id) for ds in registry().datasets)
    in_rejected = sum(r.rows_in_rejected_files for r in collected["results"].values())
    assert delivered == landed + in_rejected
    assert in_rejected > 0  # the truncated and drifted files hold rows


def test_no_mojibake_from_gb18030_and_bom_files(collected, generated):
    ent = pl.read_parquet(generated / "truth" / "enterprises.parquet")
    reg = collected["lake"].read("raw", "amr_registration")
    names = set(ent["name"])
    clean = reg.filter(pl.col("name").is_in(names))
    assert clean.height >= 0.95 * ent.height  # GB18030 decoded: Chinese names come through intact
    tax = collected["lake"].read("raw", "tax_monthly")
    assert not tax["uscc"].str.starts_with("\ufeff").any()  # the BOM is not part of the first value
    assert set(tax["taxpayer_name"]) <= names


def test_provenance_leads_back_to_the_delivered_line(collected, manifest):
    lake, workdir = collected["lake"], collected["workdir"]
    power = lake.read("raw", "power_monthly")
    row = power.filter(pl.col("_row_number") == 777).row(0, named=True)
    f = next(x for x in manifest["files"] if x["path"] == row["_source_file"])
    assert row["_file_sha256"] == f["sha256"] and row["_period"] == row["_source_file"][-11:-4]
    line = (workdir / "landing" / f["path"]).read_bytes().decode("gb18030").splitlines()[777]
    assert line.split(",")[0] == row["account_no"] and line.split(",")[4] == row["consumption"]
    telemetry = lake.read("raw", "ent_telemetry")
    r = telemetry.filter(pl.col("_row_number") == 1234).row(0, named=True)
    record = json.loads((workdir / "landing" / r["_source_file"]).read_text().splitlines()[1233])
    assert (record["device_id"], str(record["output_count"])) == (r["device_id"], r["output_count"])


def test_recollecting_adds_nothing(collected):
    lake = collected["lake"]
    versions = {ds.id: lake.table("raw", ds.id).version() for ds in registry().datasets}
    again = collect_all(collected["workdir"], "b2")
    assert all(not r.landed and not r.rejected for r in again["results"].values())
    assert versions == {ds.id: lake.table("raw", ds.id).version() for ds in registry().datasets}


def test_a_file_dropped_again_under_another_name_is_recognised_by_content(collected):
    landing = collected["workdir"] / "landing"
    src = landing / "tax/monthly/税务_月度申报_2023-03.csv"
    (landing / "tax/monthly/税务_月度申报_2023-03_resend.csv").write_bytes(src.read_bytes())
    lake = collected["lake"]
    before = lake.row_count("raw", "tax_monthly")
    result = Collector(registry().dataset("tax_monthly"), lake, landing, collected["workdir"] / "rejected", "b3").run()
    assert [o.status for o in result.outcomes if o.file.endswith("_resend.csv")] == ["skipped"]
    assert lake.row_count("raw", "tax_monthly") == before


def test_rejected_files_move_out_of_landing_with_a_reason_record(collected, manifest):
    workdir = collected["workdir"]
    for f in (x for x in manifest["files"] if x["expected_status"] == "rejected"):
        assert not (workdir / "landing" / f["path"]).exists()
        name = Path(f["path"]).name
        moved = list((workdir / "rejected" / f["dataset"]).rglob(name))
        assert len(moved) == 1 and moved[0].read_bytes() != b"" or f["damage"] == "empty"
        reason = json.loads(moved[0].with_name(name + ".reason.json").read_text(encoding="utf-8"))
        assert reason["file"] == f["path"] and reason["reason_zh"] and reason["reason_en"] and reason["position"]
        assert (
            reason["code"]
            == {
                "truncated": "truncated",
                "schema_drift": "unexpected_columns",
                "unreadable": "unreadable",
                "empty": "empty",
            }[f["damage"]]
        )
