"""The code location loads, declares what stewards need to see, and passes `dg check defs`."""

import collections
import os
import re
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from lakehouse.registry import registry
from lakehouse.tables import RESOLVED_DATASETS
from orchestration import keys
from orchestration.definitions import defs
from orchestration.jobs import SELECTIONS
from orchestration.settings import settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_registered_source_has_a_collection_asset_with_its_catalogue_facts():
    graph = defs.resolve_asset_graph()
    for ds in registry().datasets:
        node = graph.get(keys.key("raw", ds.id))
        assert node.tags["zone"] == "raw" and node.tags["department"] == ds.department
        assert ds.name_zh in node.description and node.owners
        schema = node.metadata["dagster/column_schema"]
        names = [c.name for c in schema.columns]
        assert names[: len(ds.columns)] == [c.name for c in ds.columns] and "_file_sha256" in names
        assert {"delta"} <= set(node.kinds)
        assert keys.key("landing", ds.id) in node.parent_keys
        assert {c.name for c in graph.get_check_keys_for_assets({node.key})} >= {"rows_reconcile", "files_accepted"}
        # the owner the UI shows (and its search finds) is the department by its Chinese name, not a code
        owner = registry().owner_of(ds)
        assert owner in node.owners and re.search(r"[\u4e00-\u9fff]", owner), (ds.id, owner)
        # raw and std say, in Chinese, who delivers the data, how often, and whether and how it is shared
        dept = registry().departments[ds.department].name_zh
        for zone in ("raw", "std"):
            text = graph.get(keys.key(zone, ds.id)).description
            assert f"数源单位 {dept}" in text and f"更新周期 {ds.update_cycle}" in text, (zone, ds.id)
            assert ds.share_type in text and ds.open_type in text, (zone, ds.id)


def test_the_asset_graph_shows_every_asset_under_a_name_of_its_own():
    """The graph labels a node with the last component of its key alone: no two assets may share it (a
    dataset's landing, raw and std; a model and its publication), and the key still names its lake table."""
    all_keys = list(defs.resolve_asset_graph().get_all_asset_keys())
    shown = collections.Counter(k.path[-1] for k in all_keys)
    assert [n for n, c in shown.items() if c > 1] == []
    assert keys.table(keys.key("raw", "tax_monthly")) == ("raw", "tax_monthly")
    assert keys.key("publish", "topic_mujun_evaluation").to_user_string() == "publish/publish_topic_mujun_evaluation"
    assert keys.key("std", "tax_monthly") == dg.AssetKey(["std", "tax_monthly"])
    for k in all_keys:
        zone, name = keys.table(k)
        assert keys.key(zone, name) == k
    with pytest.raises(ValueError, match="starts with 'raw_'"):
        keys.table(dg.AssetKey(["raw", "tax_monthly"]))


def test_jobs_sensors_and_resources_are_wired():
    graph = defs.resolve_asset_graph()
    selected = {name: sel.resolve(graph) for name, sel in SELECTIONS.items()}
    std_keys = {k for k in graph.materializable_asset_keys if k.path[0] == "std"}
    assert len(std_keys) == len(registry().datasets)
    # the std stage: every dataset's std build, then entity resolution of what they quarantined for identity
    resolution = {dg.AssetKey(["ops", "entity_matches"])} | {
        dg.AssetKey(["ops", f"resolved_{d}"]) for d in RESOLVED_DATASETS
    }
    assert selected["std_all"] == std_keys | resolution
    assert defs.resolve_job_def("model_all").asset_layer.selected_asset_keys
    landing = {f"landing_{ds.id}" for ds in registry().datasets}
    lineage = {"lineage_on_success", "lineage_on_failure", "lineage_on_canceled", "lineage_spool"}
    exchange = {"data_request_inbox", "share_builds", "share_expiry"}
    assert {s.name for s in defs.sensors} == landing | {"automation", "alerts"} | lineage | exchange
    assert set(defs.resources) >= {"lake", "landing", "warehouse", "exchange"}
    assert {s.name for s in defs.schedules} >= {"purge_ended_shares_daily"}
    for name in ("file_data_requests", "decide_data_request", "revoke_share", "purge_ended_shares"):
        assert defs.resolve_job_def(name).tags["shucang/area"] == "exchange"
    # the per-request shares are built when a request is approved, never by the full refresh
    assert not any(k.path[0] == "share" for k in selected["shucang_all"])


def test_one_environment_switch_moves_everything(tmp_path):
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(tmp_path)})
    assert s.lake_root == str(tmp_path / "lake") and s.landing_root == tmp_path / "landing"
    assert settings({"SHUCANG_ENV": "bench"}).data_dir.name == "data-bench"
    assert settings({"LAKE_ROOT": "s3://bucket/lake"}).lake_root == "s3://bucket/lake"


@pytest.mark.integration
def test_dg_check_defs_passes(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    dg_bin = Path(sys.executable).with_name("dg")
    proc = subprocess.run(
        [str(dg_bin), "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "All definitions loaded successfully" in proc.stdout + proc.stderr


def test_everything_that_opens_the_duckdb_file_shares_one_pool_of_one():
    """One writer per DuckDB file, in the demo and in any backfill: every step that opens the warehouse (the
    dbt build, the publish gates) claims the warehouse pool, and the instance admits one step per pool."""
    import yaml

    from orchestration.resources import WAREHOUSE_POOL

    opening = [
        a
        for a in defs.assets
        if isinstance(a, dg.AssetsDefinition) and {"warehouse", "dbt"} & set(a.required_resource_keys)
    ]
    assert any("dbt" in a.required_resource_keys for a in opening) and len(opening) > 10
    assert {a.op.pool for a in opening} == {WAREHOUSE_POOL}
    config = yaml.safe_load((ROOT / "orchestration" / "instance" / "dagster.yaml").read_text(encoding="utf-8"))
    assert config["concurrency"]["pools"]["default_limit"] == 1


def test_a_dead_run_cannot_hold_a_collection_slot(tmp_path):
    """The instance the project prepares monitors runs (a run whose worker was killed is marked failed),
    frees the pool slots of ended runs, retries crashed runs, and collection steps retry with backoff."""
    from orchestration.instance import prepare

    home = prepare(tmp_path / "home")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_settings["free_slots_after_run_end_seconds"] > 0
        assert instance.run_retries_enabled and instance.run_retries_max_retries >= 1
        assert not instance.run_retries_retry_on_asset_or_op_failure
    collect = [a for a in defs.assets if isinstance(a, dg.AssetsDefinition) and all(k.path[0] == "raw" for k in a.keys)]
    assert collect and all(a.op.retry_policy and a.op.retry_policy.max_retries >= 1 for a in collect)


def test_assets_carry_the_computed_grade_and_columns_the_grade_they_hold_in_their_zone():
    """The grade a steward filters by is the dataset's computed one (its highest column, 就高从严) — not the
    registry default — and a std column shows what it holds after its privacy transform."""
    from assets.catalogue_entries import dataset_grade

    graph = defs.resolve_asset_graph()
    reg = registry()
    for ds in reg.datasets:
        for zone in ("raw", "std"):
            node = graph.get(keys.key(zone, ds.id))
            assert node.tags["grade"] == dataset_grade(reg, ds, zone)["grade"] != "unclassified", (zone, ds.id)
    raw, std = (graph.get(keys.key(z, "amr_registration")) for z in ("raw", "std"))
    assert raw.tags["grade"] == "L4" and std.tags["grade"] < "L4"
    ids = {
        z: next(c for c in n.metadata["dagster/column_schema"].columns if c.name == "legal_rep_id_no")
        for z, n in (("raw", raw), ("std", std))
    }
    assert ids["raw"].tags["grade"] == ids["raw"].tags["grade_declared"] == "L4"
    assert ids["std"].tags["grade_declared"] == "L4" and ids["std"].tags["grade"] < "L4"  # pseudonymised


def test_no_model_carries_an_object_the_ui_can_only_show_as_unserializable():
    """dagster-dbt attaches the DbtProject object to every model given ``project=``; the UI shows it as
    "[DbtProject] (unserializable)". The project is named by the dbt resource instead."""
    from dagster_dbt.asset_utils import DAGSTER_DBT_PROJECT_METADATA_KEY

    graph = defs.resolve_asset_graph()
    models = [k for k in graph.get_all_asset_keys() if k.path[0] in ("staging", "base", "theme", "topic")]
    assert models
    for key in models:
        assert DAGSTER_DBT_PROJECT_METADATA_KEY not in (graph.get(key).metadata or {}), key


def test_what_the_launchpad_shows_is_described_for_a_steward():
    """Every run option a steward can set says what it does, in Chinese first; no developer markup."""
    from assets.clean import StdConfig
    from orchestration.dbt.assets import DbtRunConfig
    from sensors.exchange import DecisionConfig, RevocationConfig

    for config in (StdConfig, DbtRunConfig, DecisionConfig, RevocationConfig):
        assert "``" not in (config.__doc__ or ""), config
        for name, field in config.to_config_schema().as_field().config_type.fields.items():
            assert field.description and re.search(r"[\u4e00-\u9fff]", field.description), (config.__name__, name)
