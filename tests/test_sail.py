"""dbt on a distributed SQL engine (#20): the same project on Sail (SHUCANG_DBT_TARGET=sail) reads the lake's
std Delta tables, writes its models as Delta tables in the lake's base/theme/topic zones, and the tables it
publishes equal, row for row, the ones the DuckDB target published from the same lake (the shared demo)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lakehouse.lake import Lake
from orchestration.compare import compare_published
from orchestration.dbt import sail
from orchestration.settings import settings

ROOT = Path(__file__).resolve().parent.parent


def test_delta_types_in_spark_ddl():
    assert sail.spark_type("long") == "bigint"
    assert sail.spark_type("integer") == "int"
    assert sail.spark_type("decimal(38,6)") == "decimal(38,6)"
    assert sail.spark_type({"type": "array", "elementType": "string", "containsNull": True}) == "array<string>"
    nested = {"type": "struct", "fields": [{"name": "a b", "type": "long", "nullable": True, "metadata": {}}]}
    assert sail.spark_type(nested) == "struct<`a b`: bigint>"
    with pytest.raises(ValueError, match="no name"):
        sail.spark_type({"type": "variant"})


def _model(name: str, folder: str, materialized: str) -> dict:
    return {
        "resource_type": "model",
        "unique_id": f"model.shucang.{name}",
        "name": name,
        "alias": name,
        "schema": "main",
        "fqn": ["shucang", folder, name],
        "config": {"materialized": materialized},
    }


def test_where_sail_keeps_each_node():
    assert sail.location(_model("theme_x", "theme", "table")) == ("theme", "theme_x")
    assert sail.location(_model("topic_y", "topic", "incremental")) == ("topic", "topic_y")
    assert sail.location(_model("stg_z", "staging", "view")) is None  # a view: nothing in the lake
    seed = {"resource_type": "seed", "alias": "counties", "name": "counties"}
    assert sail.location(seed) == ("base", "parameters/counties")
    with pytest.raises(ValueError, match="lives in one of"):
        sail.location(_model("odd", "staging", "table"))


def test_the_catalogue_registers_sources_at_their_pins_and_only_incremental_models(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    import pyarrow as pa

    lake.overwrite("std", "tax_monthly", pa.table({"uscc": ["A"], "period": ["2023-01"]}))
    lake.append("std", "tax_monthly", pa.table({"uscc": ["B"], "period": ["2023-02"]}))
    lake.overwrite("theme", "theme_ops", pa.table({"n": pa.array([1], pa.int64())}))
    lake.overwrite("theme", "theme_full", pa.table({"n": pa.array([1], pa.int64())}))
    manifest = {
        "sources": {
            "source.shucang.std.tax_monthly": {"name": "tax_monthly", "schema": "std", "config": {"zone": "std"}},
            "source.shucang.std.power_monthly": {"name": "power_monthly", "schema": "std", "config": {"zone": "std"}},
        },
        "nodes": {
            "model.shucang.theme_ops": _model("theme_ops", "theme", "incremental"),
            "model.shucang.theme_full": _model("theme_full", "theme", "table"),
        },
    }
    got = sail.catalog(lake, manifest, {"std.tax_monthly": 0})
    assert got["schemas"] == ["main", "std"]
    # a source missing from the lake is not registered: the model reading it fails naming the relation
    assert got["sources"] == {"std.tax_monthly": [lake.uri("std", "tax_monthly"), 0]}
    # a table model is written anew each run (registered, Sail would cast new rows to its old column types)
    assert got["tables"] == {"main.theme_ops": [lake.uri("theme", "theme_ops"), "(`n` bigint) using delta"]}


def test_the_sail_target_is_chosen_by_setting_and_given_the_lake_store_it_can_reach(tmp_path):
    assert settings({"SHUCANG_DATA_DIR": str(tmp_path)}).dbt_target == "local"
    assert settings({"SHUCANG_DATA_DIR": str(tmp_path), "SHUCANG_DBT_TARGET": "sail"}).dbt_target == "sail"
    with pytest.raises(ValueError, match="local, sail"):
        settings({"SHUCANG_DATA_DIR": str(tmp_path), "SHUCANG_DBT_TARGET": "spark"})
    # an embedded Sail reads an S3 lake's settings from its environment, under their AWS_* names
    assert sail.store_environment(Lake(str(tmp_path / "lake"))) == {}
    s3 = Lake("s3://bucket/lake", {"endpoint": "http://127.0.0.1:1", "AWS_ACCESS_KEY_ID": "k", "allow_http": "true"})
    assert sail.store_environment(s3) == {
        "AWS_ENDPOINT_URL": "http://127.0.0.1:1",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_ALLOW_HTTP": "true",
    }
    with pytest.raises(ValueError, match="no AWS_"):
        sail.store_environment(Lake("s3://bucket/lake", {"proxy_url": "http://127.0.0.1:2"}))
    with pytest.raises(ValueError, match="only S3"):
        sail.store_environment(Lake("gs://bucket/lake", {}))


def _models(data: Path, home: Path, env: dict, target: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "models"],
        cwd=ROOT,
        env={**env, "SHUCANG_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "SHUCANG_DBT_TARGET": target},
        capture_output=True,
        text=True,
        timeout=600,
    )


def _demo_lake_up_to_std(demo_site) -> Path:
    """The demo's lake up to std (and the warehouse's own records), without what the models and publication
    made, in a folder of its own."""
    lake = demo_site.data.parent / "lake-up-to-std"
    if not lake.exists():
        staged = lake.with_name(lake.name + ".tmp")
        shutil.rmtree(staged, ignore_errors=True)
        shutil.copytree(demo_site.lake, staged)
        for gone in ("publish", "share", "base", "theme", "topic"):
            shutil.rmtree(staged / gone, ignore_errors=True)
        shutil.rmtree(staged / "ops" / "publish_fingerprints", ignore_errors=True)
        staged.rename(lake)
    return lake


def _models_and_a_backfill_on_sail(demo_site, lake: Lake, data: Path, home: Path, env: dict) -> None:
    """The models and their publication on Sail over ``lake`` (the demo's lake up to std): every table model
    is a Delta table in its zone, every published table equals DuckDB's, lineage and grades derived from
    Sail's schemas; then a one-month backfill replaces only that month in the incremental models."""
    import dagster as dg

    done = _models(data, home, env, "sail")
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert "model_all on sail" in done.stdout
    assert not (data / "warehouse.duckdb").exists()  # DuckDB computed nothing: the models ran on Sail
    # every table model is a Delta table in its zone, written by Sail
    for zone, name in (
        ("base", "base_enterprise"),
        ("theme", "theme_operations_monthly"),
        ("topic", "topic_mujun_evaluation"),
    ):
        table = lake.table(zone, name)
        assert table is not None, f"{zone}/{name} not in the lake"
        assert table.to_pyarrow_dataset().count_rows() > 0
    comparison = compare_published(Lake(str(demo_site.lake)), lake)
    assert len(comparison.tables) >= 10
    assert comparison.equal, "\n".join(comparison.lines())

    # the models' column lineage and grades were derived from Sail's schemas (no model graded blind)
    with dg.DagsterInstance.local_temp(str(home)) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(["topic", "topic_mujun_evaluation"]))
        metadata = event.asset_materialization.metadata
        assert "shucang/lineage_unknown" not in metadata
        lineage = metadata["dagster/column_lineage"].value
        assert any(d.asset_key == dg.AssetKey(["topic", "topic_mujun_inputs"]) for d in lineage.deps_by_column["uscc"])
        # the record of the models' columns it was derived from is reported as the own table it is
        schemas = instance.get_latest_materialization_event(dg.AssetKey(["ops", "model_schemas"]))
        assert schemas is not None and schemas.asset_materialization.metadata["rows_written"].value > 100

    # a backfill of one month rebuilds March's std partitions and, on Sail, replaces only March in the
    # incremental models — found in the lake and registered anew in Sail's session, the month deleted and
    # inserted, not the table recreated; the same data gives the same tables, and nothing is published anew
    versions = {n: lake.table("publish", n).version() for n in lake.table_names("publish")}
    monthly = lake.read("theme", "theme_operations_monthly").sort("uscc", "period")
    built = lake.table("theme", "theme_operations_monthly").version()
    again = subprocess.run(
        [sys.executable, "-m", "orchestration.cli", "backfill", "2023-03", "2023-03"],
        cwd=ROOT,
        env={**env, "SHUCANG_DATA_DIR": str(data), "DAGSTER_HOME": str(home), "SHUCANG_DBT_TARGET": "sail"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stdout[-4000:] + again.stderr[-4000:]
    table = lake.table("theme", "theme_operations_monthly")
    commits = [
        (c["operation"], c.get("operationParameters", {}).get("mode")) for c in table.history() if c["version"] > built
    ]
    assert ("DELETE", None) in commits and ("WRITE", "Append") in commits, commits
    assert ("WRITE", "Overwrite") not in commits, commits  # not recreated whole
    assert lake.read("theme", "theme_operations_monthly").sort("uscc", "period").equals(monthly)
    assert {n: lake.table("publish", n).version() for n in versions} == versions


@pytest.mark.integration
def test_the_models_on_sail_over_a_lake_in_an_object_store(demo_site, tmp_path):
    """The lake on a SeaweedFS the test starts (#20 item 1): Sail reads std from the bucket and writes the models
    there, publication reads them from it, what is published equals what DuckDB published locally, and a
    backfill of one month replaces only that month there."""
    import pyarrow.fs as pafs
    from objectstore import SeaweedFS

    with SeaweedFS(tmp_path / "seaweedfs") as store:
        root = store.root("lake")
        opts = store.storage_options
        s3 = pafs.S3FileSystem(
            access_key=opts["AWS_ACCESS_KEY_ID"],
            secret_key=opts["AWS_SECRET_ACCESS_KEY"],
            endpoint_override=opts["AWS_ENDPOINT_URL"],
            region=opts["AWS_REGION"],
        )
        pafs.copy_files(
            str(_demo_lake_up_to_std(demo_site)),
            root.removeprefix("s3://"),
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=s3,
        )
        env = {**demo_site.env, "LAKE_ROOT": root, "LAKE_STORAGE_OPTIONS": json.dumps(opts)}
        _models_and_a_backfill_on_sail(demo_site, Lake(root, opts), tmp_path / "data", tmp_path / "home", env)


@pytest.mark.integration
@pytest.mark.long  # make test-sail: the same on a local folder, beside the object store's run in make test
def test_the_models_on_sail_publish_what_duckdb_published(demo_site, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(_demo_lake_up_to_std(demo_site), data / "lake")
    _models_and_a_backfill_on_sail(demo_site, Lake(str(data / "lake")), data, tmp_path / "home", demo_site.env)


def test_lineage_names_the_staging_views_where_they_live(tmp_path, monkeypatch):
    """OpenLineage datasets: models in the lake's zones are lake tables on either engine; the staging views live
    in DuckDB's file, or on Sail in its session."""
    from orchestration.lineage.emit import naming

    base = {"SHUCANG_DATA_DIR": str(tmp_path)}
    local, on_sail = naming(settings(base)), naming(settings({**base, "SHUCANG_DBT_TARGET": "sail"}))
    assert local.dataset(["theme", "theme_x"]) == on_sail.dataset(["theme", "theme_x"])
    assert local.dataset(["staging", "stg_x"]).namespace.startswith("duckdb://")
    assert on_sail.dataset(["staging", "stg_x"]).namespace == "sail://embedded"
    assert on_sail.short("sail://embedded", "staging.stg_x") == "warehouse:staging.stg_x"
    monkeypatch.setenv("SAIL_REMOTE", "10.0.0.5:50051")
    assert naming(settings({**base, "SHUCANG_DBT_TARGET": "sail"})).dataset(["staging", "stg_x"]).namespace == (
        "sail://10.0.0.5:50051"
    )
