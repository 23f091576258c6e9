"""The dbt project on Sail — a second engine beside DuckDB (``SHUCANG_DBT_TARGET=sail``).

Sail (pysail) is a Spark Connect server written in Rust: embedded in the dbt process by default, or a cluster's
endpoint (``SAIL_REMOTE=host:port``). On it the models read and write the lake itself: each source is a view
over its lake Delta table at the version the run pins, each model and seed a Delta table in its zone's folder
(``base/``, ``theme/``, ``topic/``; seeds under ``base/parameters/``). Sail's catalogue lives in its session,
so every run registers the lake anew (the project's on-run-start macro ``lake_catalog``), from what this
module computes and hands over in ``SHUCANG_SAIL_CATALOG``.

Readers of the models — the publish assets, the dbt asset's schemas for column lineage — see the same
relations (``"main"."<model>"``) as on DuckDB, through an in-memory DuckDB whose views read the lake's Delta
tables (``connect``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import duckdb

from lakehouse.tables import MODEL_SCHEMAS

CATALOG_ENV = "SHUCANG_SAIL_CATALOG"
MODEL_ZONES = ("base", "theme", "topic")
PARAMETERS = "parameters"  # the seeds' folder in the base zone
SCHEMAS = (MODEL_SCHEMAS.zone, MODEL_SCHEMAS.name)  # the columns of every model after a run (macro record_schemas)


def location(props: Mapping[str, Any]) -> tuple[str, str] | None:
    """(zone, name) of the lake table a model or seed is on Sail (the macro sail__location_clause says the same);
    None for a view or an ephemeral model, which the lake does not hold."""
    if props["resource_type"] == "seed":
        return "base", f"{PARAMETERS}/{props['alias']}"
    materialized = props.get("config", {}).get("materialized")
    if props["resource_type"] != "model" or materialized not in ("table", "incremental"):
        return None
    zone = props["fqn"][1]
    if zone not in MODEL_ZONES:
        raise ValueError(f"{props['unique_id']}: a table model lives in one of {MODEL_ZONES}, not {zone!r}")
    return zone, props["alias"]


def source_table(props: Mapping[str, Any]) -> tuple[str, str]:
    """(zone, dataset) of the lake table a dbt source names (the DuckDB plugin reads the same config)."""
    config = props.get("config", {})
    return config.get("zone") or "std", config.get("dataset") or props["name"]


_PRIMITIVE = {"long": "bigint", "integer": "int", "short": "smallint", "byte": "tinyint"}


def spark_type(delta_type: Any) -> str:
    """A Delta schema type (its JSON form) in Spark SQL's DDL."""
    if isinstance(delta_type, str):
        return _PRIMITIVE.get(delta_type, delta_type)  # string, double, boolean, date, timestamp, decimal(p,s) …
    kind = delta_type["type"]
    if kind == "array":
        return f"array<{spark_type(delta_type['elementType'])}>"
    if kind == "map":
        return f"map<{spark_type(delta_type['keyType'])}, {spark_type(delta_type['valueType'])}>"
    if kind == "struct":
        return "struct<" + ", ".join(f"`{f['name']}`: {spark_type(f['type'])}" for f in delta_type["fields"]) + ">"
    raise ValueError(f"a Delta type Spark SQL has no name for: {delta_type!r}")


def columns(table) -> str:
    """The columns of a Delta table in Spark SQL's DDL, with its format. Sail keeps a table's columns in its
    catalogue only as given when it is registered, and dbt reads them from there (incremental schema checks)."""
    if table.metadata().partition_columns:
        # Sail 0.7 reads a partition column as a dictionary and refuses any declared type for it: a partitioned
        # table is registered without columns (the sources are, behind their views; no model is partitioned)
        return "using delta"
    fields = json.loads(table.schema().to_json())["fields"]
    return (
        "("
        + ", ".join(f"`{f['name']}` {spark_type(f['type'])}{'' if f['nullable'] else ' not null'}" for f in fields)
        + ") using delta"
    )


def catalog(lake, the_manifest: Mapping[str, Any], pins: Mapping[str, int]) -> dict[str, Any]:
    """What a run on Sail registers (macro lake_catalog): the schemas; each source as [uri, pinned version (None:
    the current)]; each incremental model already in the lake as [uri, its columns' DDL], so it finds its table.
    Table models and seeds are written whole by every run and need no registration."""
    schemas, sources, tables = {"main"}, {}, {}
    for props in the_manifest["sources"].values():
        zone, dataset = source_table(props)
        schemas.add(props["schema"])
        if lake.table(zone, dataset) is None:
            continue  # a model reading it fails naming the missing relation
        sources[f"{props['schema']}.{props['name']}"] = [lake.uri(zone, dataset), pins.get(f"{zone}.{props['name']}")]
    for props in the_manifest["nodes"].values():
        # only incremental models: a table model is created anew (`create or replace`), and Sail would write a new
        # definition's rows into the columns of a registered table, cast to their old types
        incremental = props["resource_type"] == "model" and props["config"].get("materialized") == "incremental"
        where = location(props) if incremental else None
        table = lake.table(*where) if where is not None else None
        if table is not None:
            schemas.add(props["schema"])
            tables[f"{props['schema']}.{props['alias']}"] = [lake.uri(*where), columns(table)]
    return {"schemas": sorted(schemas), "sources": sources, "tables": tables}


def environment(lake, the_manifest: Mapping[str, Any], pins: Mapping[str, int]) -> dict[str, str]:
    """The environment a dbt process on Sail needs beside the usual (``LAKE_ROOT``): the catalogue to register.
    The warehouse's own tables the models read are made first, empty, as the DuckDB plugin makes them."""
    from lakehouse import objections
    from quality import collection, resolution

    objections.ensure(lake)
    resolution.ensure(lake)
    collection.ensure(lake)
    return {**store_environment(lake), CATALOG_ENV: json.dumps(catalog(lake, the_manifest, pins), ensure_ascii=False)}


def store_environment(lake) -> dict[str, str]:
    """An embedded Sail reaches an S3 lake with the lake's own storage options, which it reads from the
    environment under their AWS_* names (endpoint, keys, region, plain HTTP); a Sail cluster (SAIL_REMOTE) is
    given them in its own deployment. A store Sail has no settings for is refused, naming it."""
    if not lake.root.startswith("s3://"):
        if "://" in lake.root and not lake.root.startswith("file://"):
            raise ValueError(f"dbt on Sail: the lake {lake.root} is on a store this project reaches Sail with only S3")
        return {}
    out = {}
    for key, value in lake.storage_options.items():
        name = _AWS_NAMES.get(key.lower(), key.upper())
        if not name.startswith("AWS_"):
            raise ValueError(f"dbt on Sail: storage option {key!r} has no AWS_* name Sail reads")
        out[name] = str(value)
    return out


# deltalake's short names of S3 options, as the environment spells them
_AWS_NAMES = {
    "endpoint": "AWS_ENDPOINT_URL",
    "endpoint_url": "AWS_ENDPOINT_URL",
    "access_key_id": "AWS_ACCESS_KEY_ID",
    "secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "session_token": "AWS_SESSION_TOKEN",
    "region": "AWS_REGION",
    "allow_http": "AWS_ALLOW_HTTP",
}


def schemas(lake, the_manifest: Mapping[str, Any]) -> dict[str, dict[str, dict[str, str]]]:
    """Relation ``schema.name`` → column → {data_type}, what column lineage needs: each model and seed as Sail
    reported it after the last run (the staging views included, which the lake does not hold; macro
    record_schemas), and each source as its lake table is."""
    out: dict[str, dict[str, dict[str, str]]] = {}
    for props in the_manifest["sources"].values():
        table = lake.table(*source_table(props))
        if table is not None:
            fields = json.loads(table.schema().to_json())["fields"]
            out[f"{props['schema']}.{props['name']}"] = {
                f["name"]: {"data_type": spark_type(f["type"])} for f in fields
            }
    recorded = lake.read(*SCHEMAS)
    if recorded is not None:
        for row in recorded.sort("schema", "name", "position").iter_rows(named=True):
            out.setdefault(f"{row['schema']}.{row['name']}", {})[row["column"]] = {"data_type": row["data_type"]}
    return out


def connect(lake, the_manifest: Mapping[str, Any]) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with a view ``"<schema>"."<alias>"`` over each model and seed Sail wrote to the lake:
    the relations the DuckDB warehouse would hold, read from Delta (deltalake's Arrow dataset, no extension)."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for props in the_manifest["nodes"].values():
        where = location(props) if props["resource_type"] in ("model", "seed") else None
        dt = lake.table(*where) if where else None
        if dt is None:
            continue
        con.execute(f'create schema if not exists "{props["schema"]}"')
        arrow = f"_lake_{props['alias']}"
        con.register(arrow, dt.to_pyarrow_dataset())
        con.execute(f'create or replace view "{props["schema"]}"."{props["alias"]}" as select * from {arrow}')
    return con
