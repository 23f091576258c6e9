"""The dbt models as Dagster assets: one ``dbt build`` per run, in the warehouse pool (one DuckDB writer).

Each run pins the std Delta versions it reads (recorded on every materialisation, so a rerun with the same
pins rebuilds the same tables), and adds to each model's materialisation what dbt alone does not give:
column lineage (sqlglot over the compiled SQL, with the schemas DuckDB reports after the build), the
propagated grade and identifier role of every column (就高从严: privacy.model_grades), and the dbt
tests that failed on it — which the publish gates read.
"""

import contextlib
import hashlib
import json
import os
import shutil
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import duckdb
from dagster_dbt import DbtCliResource, dbt_assets
from pydantic import Field
from sqlglot import exp, to_table
from sqlglot.expressions import normalize_table_name

from assets.own_tables import own_table_reports
from lakehouse.cycles import months_between
from lakehouse.tables import MODEL_SCHEMAS
from orchestration.dbt import delta_source, sail
from orchestration.dbt.column_lineage import column_lineage
from orchestration.dbt.dagster_dbt_private import keep_parse
from orchestration.dbt.project import Translator, column_meta, manifest, project
from orchestration.metadata import grades_of, grades_table, tests_table, versions_of, versions_table
from orchestration.resources import WAREHOUSE_POOL, LakeResource, WarehouseResource
from privacy.model_grades import ModelGrades, highest_level

GRADES = "shucang/column_grades"
FAILED_TESTS = "shucang/failed_tests"
SOURCE_VERSIONS = "source_versions"
LINEAGE_BASIS = "shucang/lineage_basis"  # compiled SQL and schemas the recorded column lineage was derived from


class DbtRunConfig(dg.Config):
    """建模选项 / Modelling options. By default the models read the current std tables and the incremental
    models rebuild only the periods their inputs changed."""

    pins: dict[str, int] = Field(
        default={},
        description="复现 reproduce a run: 'std.<dataset>' → the Delta version to read (every period is rebuilt)",
    )
    full_refresh: bool = Field(default=False, description="全量重建 rebuild the incremental models from scratch")
    backfill_from: str | None = Field(
        default=None, description="回填起始月 first month 'YYYY-MM' the incremental models rebuild"
    )
    backfill_to: str | None = Field(default=None, description="回填截止月 last month 'YYYY-MM' (default: the first)")


CHANGED_ENV = "SHUCANG_CHANGED"  # read by the changed_periods macro (a --vars would cost a full re-parse)
DEFINITION = "shucang/definition"  # an incremental model's SQL checksum with the project's vars and macros


def definitions(the_manifest: Mapping[str, Any], translator, project_dir) -> dict[dg.AssetKey, str]:
    """A fingerprint of each incremental model's definition: its SQL (dbt's checksum), the project file
    (the vars its thresholds come from) and the macros. When it changes, every period must be rebuilt."""
    root = Path(project_dir)
    shared = (root / "dbt_project.yml").read_bytes() + b"".join(
        p.read_bytes() for p in sorted((root / "macros").glob("*.sql"))
    )
    out = {}
    for props in the_manifest["nodes"].values():
        if props["resource_type"] == "model" and props.get("config", {}).get("materialized") == "incremental":
            digest = hashlib.sha256(props["checksum"]["checksum"].encode() + shared).hexdigest()[:16]
            out[translator.get_asset_key(props)] = digest
    return out


def _redefined(context: dg.AssetExecutionContext, current: Mapping[dg.AssetKey, str]) -> list[str]:
    """Selected incremental models whose definition differs from the one their last build recorded."""
    stale = []
    for key in context.selected_asset_keys:
        if key not in current:
            continue
        event = context.instance.get_latest_materialization_event(key)
        recorded = event.asset_materialization.metadata.get(DEFINITION) if event else None
        if recorded is None or recorded.value != current[key]:
            stale.append(key.to_user_string())
    return stale


def changed_periods(lake, since: Mapping[str, int] | None, pins: Mapping[str, int]) -> dict[str, list[str] | str]:
    """Per std dataset, the periods its std builds rebuilt between the versions ``since`` (what the models
    last read) and ``pins`` (what this run reads): a list, [] for no change, or 'all' — a whole rebuild, a
    commit that does not say, or no earlier version known."""
    out: dict[str, list[str] | str] = {}
    for ref, new in pins.items():
        zone, name = ref.split(".", 1)
        old = (since or {}).get(ref)
        periods = None if old is None or old > new else delta_source.rebuilt_periods(lake, zone, name, old, new)
        out[name] = "all" if periods is None else periods
    # a dataset's resolved rows (ops/resolved_<dataset>) are its rows too: their changes are the dataset's
    for name in [n for n in out if n.startswith(RESOLVED_PREFIX)]:
        dataset, extra = name[len(RESOLVED_PREFIX) :], out[name]
        have = out.get(dataset, [])
        out[dataset] = "all" if "all" in (have, extra) else sorted(set(have) | set(extra))
    return out


RESOLVED_PREFIX = "resolved_"
KEPT_TARGETS = 5


def prune_targets(latest: Path, keep: int = KEPT_TARGETS) -> list[Path]:
    """dagster-dbt gives every invocation its own target folder (~4 MB here: compiled SQL, artifacts, logs);
    a warehouse that runs itself would fill its disk with them. Keeps the ``keep`` newest folders of the
    step beside ``latest`` (``latest`` always); returns the ones removed."""
    prefix = latest.name.split("-", 1)[0] + "-"
    folders = sorted(
        (p for p in latest.parent.glob(prefix + "*") if p.is_dir() and p != latest),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    removed = folders[max(keep - 1, 0) :]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    return removed


def _months(start: str, end: str) -> list[str]:
    try:
        return months_between(start, end)
    except ValueError as exc:
        raise dg.Failure(f"backfill: {exc}") from None


def _last_read(context: dg.AssetExecutionContext) -> dict[str, int] | None:
    """The std versions the selected models last read: per table the oldest among them (so no change is
    missed); None when a selected model has no recorded build."""
    oldest: dict[str, int] = {}
    for key in context.selected_asset_keys:
        event = context.instance.get_latest_materialization_event(key)
        value = event.asset_materialization.metadata.get(SOURCE_VERSIONS) if event else None
        if value is None:
            if key.path[0] in ("staging", "parameters"):  # views and seeds: read in full on every build
                continue
            return None
        for ref, version in versions_of(value).items():
            oldest[ref] = min(version, oldest.get(ref, version))
    return oldest


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def current_pins(lake, sources: list[tuple[str, str]], requested: Mapping[str, int]) -> dict[str, int]:
    """The version of every source table this run reads: the requested pin, else the current version."""
    pins = {}
    for zone, name in sources:
        ref = f"{zone}.{name}"
        if ref in requested:
            pins[ref] = int(requested[ref])
        elif (table := lake.table(zone, name)) is not None:
            pins[ref] = table.version()
    unknown = sorted(set(requested) - set(pins))
    if unknown:
        raise dg.Failure(f"pins for tables that are not dbt sources: {unknown}")
    return pins


def _schemas(warehouse: WarehouseResource, lake, the_manifest) -> dict[str, dict[str, dict[str, str]]]:
    """normalised relation name → column → {data_type}, from the warehouse after the build (on Sail: what the
    run recorded in the lake, and the sources' lake tables)."""
    if warehouse.target == "sail":
        return {
            normalize_table_name(to_table(name, dialect="spark"), dialect="spark"): columns
            for name, columns in sail.schemas(lake, the_manifest).items()
        }
    con = duckdb.connect(warehouse.path, read_only=True, config={"autoload_known_extensions": False})
    try:
        rows = con.execute(
            "select table_catalog, table_schema, table_name, column_name, data_type "
            "from information_schema.columns order by ordinal_position"
        ).fetchall()
    finally:
        con.close()
    out: dict[str, dict[str, dict[str, str]]] = {}
    for db, schema, table, column, dtype in rows:
        name = normalize_table_name(exp.table_(table, db=schema, catalog=db), dialect="duckdb")
        out.setdefault(name, {})[column] = {"data_type": dtype}
    return out


# the sqlglot dialect column lineage parses a target's compiled SQL in (Sail speaks Spark SQL)
DIALECTS = {"local": "duckdb", "sail": "spark"}


def _relation(props: Mapping[str, Any], dialect: str = "duckdb") -> str:
    return normalize_table_name(to_table(props["relation_name"], dialect=dialect), dialect=dialect)


def build() -> list[dg.AssetsDefinition]:
    dbt_project = project()
    translator = Translator()

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        # no project=: dagster-dbt would attach the DbtProject object to every model, shown in the UI as
        # "[DbtProject] (unserializable)"; the resource names the project folder (partial parse included)
        dagster_dbt_translator=translator,
        pool=WAREHOUSE_POOL,
        name="dbt_models",
    )
    def dbt_models(
        context: dg.AssetExecutionContext,
        config: DbtRunConfig,
        dbt: DbtCliResource,
        lake: LakeResource,
        warehouse: WarehouseResource,
    ):
        the_manifest = manifest(dbt_project)
        sources = [(p.get("config", {}).get("zone") or "std", p["name"]) for p in the_manifest["sources"].values()]
        pins = current_pins(lake.lake(), sources, config.pins)
        current = definitions(the_manifest, translator, dbt_project.project_dir)
        env = {
            delta_source.PINS_ENV: json.dumps(pins),
            "WAREHOUSE_PATH": warehouse.path,
            "LAKE_ROOT": lake.root,
            "LAKE_STORAGE_OPTIONS": json.dumps(dict(lake.storage_options)),
            CHANGED_ENV: "",  # every period, unless set below
        }
        args = ["build"]
        if warehouse.target != "local":
            # the models run on another engine (orchestration/dbt/sail.py), which registers the lake anew
            args += ["--target", warehouse.target]
            env.update(sail.environment(lake.lake(), the_manifest, pins))
        if config.full_refresh:
            args.append("--full-refresh")
        elif config.backfill_from:
            months = _months(config.backfill_from, config.backfill_to or config.backfill_from)
            context.log.info(f"backfill: every incremental model rebuilds {months[0]}…{months[-1]}")
            env[CHANGED_ENV] = json.dumps({name: months for _, name in sources})
        elif not config.pins and not (stale := _redefined(context, current)):
            # incremental models replace only the periods their inputs changed
            changed = changed_periods(lake.lake(), _last_read(context), pins)
            context.log.info(f"periods changed since the models' last build: {changed}")
            env[CHANGED_ENV] = json.dumps(changed, ensure_ascii=False)
        elif not config.pins:
            context.log.info(f"every period rebuilt: the definition of {', '.join(stale)} changed since its last build")
        started = time.perf_counter()
        with _environment(env):
            invocation = dbt.cli(args, context=context, raise_on_error=False)
        events = list(invocation.stream())  # dbt holds the DuckDB file until it exits
        built = time.perf_counter()
        keep_parse(invocation.target_path, dbt_project.project_dir)  # the next run re-parses only what changed
        yield from _enriched(context, events, invocation, translator, warehouse, lake.lake(), pins, current)
        if warehouse.target == "sail" and (recorded := lake.lake().table(*sail.SCHEMAS)) is not None:
            # the run's record of the models' columns, written by dbt on Sail (macro record_schemas)
            rows = recorded.to_pyarrow_dataset().count_rows()
            yield from own_table_reports({MODEL_SCHEMAS.label: recorded.version()}, {MODEL_SCHEMAS.label: rows})
        context.log.info(
            f"dbt build {built - started:.1f} s; column lineage and grades {time.perf_counter() - built:.1f} s"
        )
        prune_targets(Path(invocation.target_path))
        if not invocation.is_successful():
            results = invocation.get_artifact("run_results.json")["results"]
            errors = [r["unique_id"] for r in results if r["status"] == "error"]
            if errors:
                raise dg.Failure(
                    description=f"dbt build: {len(errors)} node(s) failed: {', '.join(errors)}",
                    metadata={"failed": ", ".join(errors)},
                )
            context.log.warning("dbt build finished with failing tests; their models stay unpublished")

    return [dbt_models]


def _recorded_grades(context):
    def recorded(key: str) -> dict:
        event = context.instance.get_latest_materialization_event(dg.AssetKey(key.split("/")))
        return grades_of(event.asset_materialization.metadata.get(GRADES)) if event else {}

    return recorded


def _recorded_lineage(context, key: dg.AssetKey, basis: str) -> dg.TableColumnLineage | None:
    """The column lineage the model's last build derived, if it was derived from the same ``basis``."""
    event = context.instance.get_latest_materialization_event(key)
    metadata = event.asset_materialization.metadata if event else {}
    recorded = metadata.get(LINEAGE_BASIS)
    if recorded is None or recorded.value != basis or "dagster/column_lineage" not in metadata:
        return None
    return metadata["dagster/column_lineage"].value


def _enriched(context, events, invocation, translator, warehouse, lake, pins: dict[str, int], defined=None):
    run_manifest = invocation.get_artifact("manifest.json")
    dialect = DIALECTS[warehouse.target]
    # dagster-dbt parses the compiled SQL in the dialect the manifest names (its adapter: 'sail' is Spark SQL)
    run_manifest = {**run_manifest, "metadata": {**run_manifest["metadata"], "adapter_type": dialect}}
    nodes = {**run_manifest["nodes"], **run_manifest["sources"]}
    failed: dict[dg.AssetKey, list[str]] = {}
    for ev in events:
        if isinstance(ev, dg.AssetCheckResult) and not ev.passed:
            failed.setdefault(ev.asset_key, []).append(ev.check_name)
    schemas = _schemas(warehouse, lake, run_manifest)
    grades_of = ModelGrades(_recorded_grades(context))

    for ev in events:
        if not isinstance(ev, dg.Output):
            yield ev
            continue
        uid = ev.metadata["unique_id"].value
        props = nodes[uid]
        key = translator.get_asset_key(props)
        extra: dict[str, Any] = {SOURCE_VERSIONS: versions_table(pins)}
        if key in (defined or {}):
            extra[DEFINITION] = defined[key]
        if props["resource_type"] == "model":
            columns = schemas.get(_relation(props, dialect), {})
            parents = {
                nodes[p]["relation_name"]: schemas.get(_relation(nodes[p], dialect), {})
                for p in props["depends_on"]["nodes"]
                if p in nodes
            }
            # the lineage of the same SQL over the same schemas is the one derived last time; the SQL is the model's
            # own code and the macros it calls — not the compiled code, which for an incremental model names the
            # periods of this run (the columns do not depend on them)
            macros = [run_manifest["macros"].get(m, {}).get("macro_sql") for m in props["depends_on"].get("macros", [])]
            basis = hashlib.sha256(
                json.dumps([props.get("raw_code"), macros, columns, parents], sort_keys=True, default=str).encode()
            ).hexdigest()[:16]
            lineage = _recorded_lineage(context, key, basis) if props.get("compiled_code") else None
            if lineage is None:
                try:
                    lineage = column_lineage(props, run_manifest, translator, invocation.target_path, columns, parents)
                except Exception as exc:  # noqa: BLE001 — lineage must not stop the build; say so
                    context.log.warning(f"{key.to_user_string()}: column lineage not derived ({exc})")
            if lineage is not None:
                extra[LINEAGE_BASIS] = basis
            deps = None  # without lineage nothing can be proven: every column is graded as strictly as possible
            if lineage is not None:
                extra["dagster/column_lineage"] = lineage
                deps = {
                    c: [(d.asset_key.to_user_string(), d.column_name) for d in ds]
                    for c, ds in lineage.deps_by_column.items()
                }
            else:
                extra["shucang/lineage_unknown"] = True
            declared = {c: column_meta(props, c) for c in columns}
            grades = grades_of.grade(key.to_user_string(), deps, columns, declared)
            extra[GRADES] = grades_table(grades)
            extra["grade"] = highest_level(grades)
            extra[FAILED_TESTS] = tests_table(failed.get(key, []))
        yield dg.Output(value=None, output_name=ev.output_name, metadata={**ev.metadata, **extra})
