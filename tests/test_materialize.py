"""The whole Dagster graph on generated sources: collection, checks, catalogue readable without Dagster."""

import json

import dagster as dg
import polars as pl
import pytest
from conftest import is_published

import assets.defs
from lakehouse.registry import registry
from lakehouse.tables import OWN_TABLES
from orchestration import runs
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast


@pytest.fixture(scope="module")
def run(module_workdir):
    """One full materialisation of the Python stages; the tests only read what it built."""
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(module_workdir)})
    selection = [a for a in assets.defs.defs.assets if isinstance(a, dg.AssetsDefinition) and not is_published(a)]
    instance = dg.DagsterInstance.ephemeral()
    result = runs.materialize(selection, resources=resources(s), instance=instance)
    return result, s, instance


def test_full_graph_materialises_with_checks_and_catalogue(run, manifest):
    result, s, instance = run
    assert result.success
    checks = {(*e.asset_key.path, e.check_name): e for e in result.get_asset_check_evaluations()}
    datasets = [ds.id for ds in registry().datasets]
    assert all(checks[("raw", f"raw_{d}", "rows_reconcile")].passed for d in datasets)
    damaged = {f["dataset"] for f in manifest["files"] if f["expected_status"] == "rejected"}
    assert {d for d in datasets if not checks[("raw", f"raw_{d}", "files_accepted")].passed} == damaged
    # a refused delivery is an ERROR check (not blocking: the rest flows on) and a tag on the run
    assert all(checks[("raw", f"raw_{d}", "files_accepted")].severity == dg.AssetCheckSeverity.ERROR for d in damaged)
    tags = {}  # added during the runs (one per partitioning of raw), so read from the stored runs
    for run_id in result.run_ids:
        tags |= instance.get_run_by_id(run_id).tags
    assert tags.get("shucang/rejected") == "yes"
    assert {k.rsplit("/", 1)[-1] for k in tags if k.startswith("shucang/rejected/")} == damaged
    # std: every batch conserves its rows and passes its gate; rules that caught rows say how many
    assert all(checks[("std", d, "conservation")].passed for d in datasets)
    assert all(checks[("std", d, "key_unique")].passed for d in datasets)
    caught = checks[("std", "amr_registration", "uscc_valid")]
    assert not caught.passed and caught.metadata["failures"].value > 0 and "row" in caught.metadata["sample"].value

    mats = {tuple(e.asset_key.path): e.materialization.metadata for e in result.get_asset_materialization_events()}
    std_tax = mats[("std", "tax_monthly")]
    assert std_tax["rows_in"].value == (
        std_tax["dagster/row_count"].value
        + std_tax["rows_quarantined"].value
        + std_tax["exact_duplicates_merged"].value
        + std_tax["key_duplicates_merged"].value
    )
    tax = mats[("raw", "raw_tax_monthly")]
    assert tax["files_rejected"].value == 1 and tax["dagster/row_count"].value == tax["rows_landed"].value
    assert "税务_月度申报_2023-09.csv" in tax["rejected_files"].value


def test_catalogue_is_readable_without_dagster(run):
    _, s, _ = run
    doc = json.loads((s.data_dir / "lake" / "catalogue" / "catalogue.json").read_text(encoding="utf-8"))
    by_id = {(d["dataset_id"], d["zone"]): d for d in doc["datasets"]}
    own = {(t.name, t.zone) for t in OWN_TABLES}  # the warehouse's own tables are catalogued too
    assert {i for i, z in by_id if z in ("raw", "std")} == {ds.id for ds in registry().datasets}
    assert own <= set(by_id) and by_id[("findings", "quarantine")]["grade"] == "L4"  # it keeps raw values
    assert by_id[("findings", "quarantine")]["row_count"] > 0 and by_id[("findings", "quarantine")]["columns"]
    public = {i for i, z in by_id if z == "publish"} - {
        t.name for t in OWN_TABLES
    }  # declared by the public dbt models, published or not yet
    assert "topic_mujun_evaluation" in public and by_id[("topic_mujun_evaluation", "publish")]["grade"] is None
    reg = by_id[("amr_registration", "raw")]
    assert reg["name_zh"] == "企业登记信息" and reg["source_department_zh"] == "台州市黄岩区市场监督管理局"
    assert reg["share_type"] == "有条件共享" and reg["update_cycle"] == "每日" and reg["grade"] == "L4"
    assert (reg["grade_national"], reg["miit_level"]) == ("core", 3)  # 就高从严: its resident-ID column
    assert [c["column"] for c in reg["columns"]].count("legal_rep_id_no") == 1  # each zone its own columns
    col = next(c for c in reg["columns"] if c["column"] == "legal_rep_id_no")
    assert col["source_header"] == "法定代表人证件号码" and col["role"] == "direct"
    assert (col["grade"], col["grade_national"], col["miit_level"]) == ("L4", "core", 3)
    # in std the resident ID is a pseudonym: graded by propagation through the approved transform
    std = by_id[("amr_registration", "std")]
    assert std["grade"] == "L2"
    std_col = next(c for c in std["columns"] if c["column"] == "legal_rep_id_no")
    assert (std_col["privacy_transform"], std_col["effective_grade"], std_col["grade"]) == ("pseudonymise", "L2", "L4")
    table = pl.read_delta(str(s.data_dir / "lake" / "catalogue" / "datasets"))
    assert (
        table.filter((pl.col("dataset_id") == "ent_telemetry") & (pl.col("zone") == "raw"))["row_count"].item() > 90_000
    )


def test_outside_raw_no_table_holds_a_valid_resident_id_or_a_mobile(run):
    """The zone policy after a full run: std holds pseudonyms, free text is redacted, and a scan of every
    Delta table outside raw finds zero valid resident IDs and zero mobile numbers."""
    from deltalake import DeltaTable

    from privacy.audit import AuditLog
    from privacy.scan import valid_identifiers

    result, s, instance = run
    assert result.success
    lake = s.data_dir / "lake"
    scanned = 0
    for zone in sorted(p for p in lake.iterdir() if p.is_dir()):
        for table in sorted(p for p in zone.iterdir() if (p / "_delta_log").is_dir()):
            frame = pl.from_arrow(DeltaTable(str(table)).to_pyarrow_table())
            found = valid_identifiers(frame)
            if zone.name == "raw" and table.name == "amr_registration":
                assert found["ric"] > 900 and found["mobile"] > 900  # the scan does find them where they are
            elif zone.name != "raw":
                assert found == {"ric": 0, "mobile": 0}, f"{zone.name}/{table.name}"
                scanned += 1
    assert scanned >= 15
    std = pl.read_delta(str(lake / "std" / "amr_registration"))
    for column in ("legal_rep_id_no", "legal_rep_name", "contact_mobile"):
        assert std[column].drop_nulls().str.contains(r"^k\d+:[0-9a-f]{32}$").all(), column
    production = pl.read_delta(str(lake / "std" / "ent_production"))
    assert production["remarks"].str.contains(r"\[姓名\]").sum() > 10
    log = AuditLog(s.audit_log)
    uses = [e for e in log.entries() if e["action"] == "key.use"]
    # std and the rows entity resolution recovered for those datasets (conformed with the same policy)
    assert {e["detail"]["dataset"] for e in uses} == {
        "std.amr_registration",
        "std.ent_production",
        "ops.resolved_amr_registration",
        "ops.resolved_ent_production",
    }
    assert log.verify().ok


def test_collection_status_reports_each_expected_delivery_as_the_generator_timed_it(run, manifest):
    """Every periodic file of the truth manifest: its period's state follows its delivery time against
    its deadline, and a period whose only file was refused is reported refused, not received."""
    result, s, instance = run
    status = pl.read_delta(f"{s.lake_root}/ops/collection_status")
    rates = pl.read_delta(f"{s.lake_root}/ops/collection_rate")
    reg = registry()
    by_period: dict[tuple[str, str], list[dict]] = {}
    for f in manifest["files"]:
        ds = reg.dataset(f["dataset"])
        if ds.period is not None:
            by_period.setdefault((ds.id, ds.period_of(f["path"].rsplit("/", 1)[-1])), []).append(f)
    got = {(r["dataset"], r["period"]): r for r in status.iter_rows(named=True)}
    assert set(got) == set(by_period)  # the demo delivers every expected period, nothing outside its window
    for key, files in by_period.items():
        landed = [f for f in files if f["expected_status"] == "landed"]
        row = got[key]
        if not landed:
            assert row["state"] == "rejected" and row["reasons"], key
            continue
        first = min(landed, key=lambda f: f["delivered_at"])
        assert row["state"] == ("late" if first["late"] else "on_time"), (key, first)
        assert row["files_rejected"] == len(files) - len(landed)
    late = {k for k, r in got.items() if r["state"] == "late"}
    assert late and all(r["days_late"] > 0 for k, r in got.items() if k in late)
    # 归集率 per department and month: on time over due, the counts adding up
    assert (rates["on_time"] + rates["late"] + rates["rejected"] + rates["missing"] == rates["expected"]).all()
    assert ((rates["rate"] - rates["on_time"] / rates["expected"]).abs() < 1e-12).all()
    assert set(rates["department"]) == {reg.dataset(d).department for d, _ in by_period}
    check = result.get_asset_check_evaluations()
    received = next(e for e in check if e.check_name == "deliveries_received")
    assert received.passed is (not any(r["state"] in ("missing", "rejected") for r in got.values()))
