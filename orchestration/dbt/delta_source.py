"""A dbt-duckdb plugin that loads a lake Delta table as a dbt source, at a pinned version when asked.

Sources name a lake table in ``meta`` (``zone``, ``dataset``); the plugin resolves it under the lake root
the settings give (``LAKE_ROOT``/``LAKE_STORAGE_OPTIONS`` or ``SHUCANG_DATA_DIR``), so the same project runs
against a local folder or an object store. ``SHUCANG_DELTA_PINS`` (JSON ``{"std.amr_registration": 3}``)
pins versions: the Dagster asset sets it to the versions it read, which makes a run reproducible. No
DuckDB extension is involved: ``deltalake`` hands DuckDB an Arrow dataset (ARCHITECTURE.md §6).

dbt-duckdb's own ``delta`` plugin is close, but ignores a pin to version 0 (``if as_of_version:``) and
needs the full table path in every source.

The warehouse keeps a copy of each source table (DuckDB scans its own tables faster than an Arrow dataset,
and a view over a Python object would not outlive the dbt process). That copy follows the lake
incrementally: when a dbt process opens the warehouse, ``sync`` brings every source to the version the run
reads — replacing only the periods the std commits since the copied version say they rebuilt, or the
whole table when a commit does not say (a full rebuild), the copy's version is unknown or older than
asked, or the columns differ. The copied version is recorded beside the copy (``main._lake_sources``), in
the same transaction as the rows. The std sources are declared ``save_mode: ignore``: dbt-duckdb then
uses the copy instead of reloading the table for every model that reads it.
"""

from __future__ import annotations

import json
import os
from typing import Any

from dbt.adapters.duckdb.plugins import BasePlugin
from dbt.adapters.duckdb.utils import SourceConfig

from lakehouse import objections
from lakehouse.tables import COLLECTION_STATUS, FINDINGS, OBJECTIONS, RESOLVED
from quality import collection, resolution

PINS_ENV = "SHUCANG_DELTA_PINS"


def pins(environ: dict[str, str] | None = None) -> dict[str, int]:
    raw = (os.environ if environ is None else environ).get(PINS_ENV, "").strip()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{PINS_ENV} is not valid JSON: {exc}") from exc
    if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
        raise ValueError(f"{PINS_ENV} must map 'zone.dataset' to an integer Delta version, got {raw!r}")
    return value


SYNCED = "main._lake_sources"


def rebuilt_periods(lake, zone: str, name: str, copied: int, wanted: int) -> list[str] | None:
    """The periods a std table's commits in (copied, wanted] rebuilt (each std build records them); None
    when one of them rebuilt everything or does not say."""
    periods: set[str] = set()
    for commit in lake.commits(zone, name):
        if copied < commit["version"] <= wanted:
            rebuilt = commit.get("partitions")
            if rebuilt is None or rebuilt == "all":
                return None
            periods.update(json.loads(rebuilt))
    return sorted(periods)


def sync(con, lake, sources: list[tuple[str, str, str]], pinned: dict[str, int]) -> dict[str, str]:
    """Bring the warehouse's copy of each (schema, zone, dataset) to the pinned (else current) version;
    returns what was done per table ('current', 'periods …', 'whole')."""
    from lakehouse.registry import registry
    from quality.standardise import std_predicate

    con.execute(f"create table if not exists {SYNCED} (source varchar primary key, table_id varchar, version bigint)")
    if [r[0] for r in con.execute(f"select * from {SYNCED} limit 0").description] != ["source", "table_id", "version"]:
        con.execute(f"create or replace table {SYNCED} (source varchar primary key, table_id varchar, version bigint)")
    # a version means something only for the table it was read from: a table deleted and created again
    # (a new id) starts its versions anew
    copied = {s: (t, v) for s, t, v in con.execute(f"select source, table_id, version from {SYNCED}").fetchall()}
    done = {}
    for schema, zone, dataset in sources:
        ref, table = f"{zone}.{dataset}", f'"{schema}"."{dataset}"'
        dt = lake.table(zone, dataset)
        if dt is None:
            continue  # the source's load says so when a model reads it
        if ref in pinned:
            dt.load_as_version(pinned[ref])
        wanted, table_id = dt.version(), dt.metadata().id
        have = copied[ref][1] if ref in copied and copied[ref][0] == table_id else None
        exists = con.execute(
            "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
            [schema, dataset],
        ).fetchall()[0][0]
        if exists and have == wanted:
            done[ref] = "current"
            continue
        view = f"_lake_{dataset}"
        con.register(view, dt.to_pyarrow_dataset())
        try:
            periods = None
            if exists and have is not None and have < wanted and zone == "std":
                ds = registry().dataset(dataset)
                same = con.execute(f"describe {table}").fetchall() == con.execute(f"describe {view}").fetchall()
                if ds.period is not None and same:
                    periods = rebuilt_periods(lake, zone, dataset, have, wanted)
            con.execute("begin transaction")
            try:
                con.execute(f'create schema if not exists "{schema}"')
                if periods is None:
                    con.execute(f"create or replace table {table} as select * from {view}")
                    done[ref] = "whole"
                elif periods:
                    where = std_predicate(ds, periods)
                    con.execute(f"delete from {table} where {where}")
                    con.execute(f"insert into {table} by name select * from {view} where {where}")
                    done[ref] = "periods " + ", ".join(periods)
                else:
                    done[ref] = "no period rebuilt"
                con.execute(f"insert or replace into {SYNCED} values (?, ?, ?)", [ref, table_id, wanted])
                con.execute("commit")
            except BaseException:
                con.execute("rollback")
                raise
        finally:
            con.unregister(view)
    return done


class Plugin(BasePlugin):
    def initialize(self, config: dict[str, Any]) -> None:
        from orchestration.settings import settings

        self.lake = settings().lake()
        self.synced = False

    def configure_connection(self, conn) -> None:
        """Once per dbt process, when it first opens the warehouse: the copies of the std tables (schema
        ``std``, every dataset of the registry), of the 亩均 objections and of the resolved rows (schema ``ops``)
        follow the versions
        the run reads (``sync``) — in a run by hand as in Dagster."""
        if self.synced:
            return
        from lakehouse.registry import registry

        # read by the models before anything is written to them: empty, not missing
        objections.ensure(self.lake)
        resolution.ensure(self.lake)
        collection.ensure(self.lake)
        own = [(t.zone, t.zone, t.name) for t in (OBJECTIONS, *RESOLVED, FINDINGS, COLLECTION_STATUS)]
        sync(conn, self.lake, [("std", "std", ds.id) for ds in registry().datasets] + own, pins())
        self.synced = True

    def load(self, source_config: SourceConfig):
        zone = source_config.get("zone", "std")
        dataset = source_config.get("dataset", source_config.identifier)
        dt = self.lake.table(zone, dataset)
        if dt is None:
            raise FileNotFoundError(
                f"dbt source {source_config.name}.{source_config.identifier}: no Delta table at "
                f"{self.lake.uri(zone, dataset)} — materialise {zone}/{dataset} first"
            )
        pinned = pins().get(f"{zone}.{dataset}")
        if pinned is not None:
            dt.load_as_version(pinned)
        return dt.to_pyarrow_dataset()

    def default_materialization(self) -> str:
        return "table"
