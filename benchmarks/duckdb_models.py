"""The dbt stage's baseline: the same SQL, run directly in DuckDB, no dbt.

Given the lake and the artifacts folder of a product run (its manifest and run_results), it loads the same
std Delta tables (through Arrow, as the dbt plugin does) and the seeds into a fresh DuckDB file, then runs
each node that run executed, in the same order: the compiled SQL of every model as CREATE TABLE/VIEW, and
the compiled query of every data test. (dbt's unit tests, which build fixtures, have no plain-SQL twin and
are left out; they take well under a second.)

``python -m benchmarks.duckdb_models LAKE TARGET`` prints rows, seconds and peak memory as one JSON line.
"""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
from deltalake import DeltaTable

from benchmarks.duckdb_baseline import timed_main


def run(lake: Path, target: Path) -> dict:
    manifest = json.loads((target / "manifest.json").read_text(encoding="utf-8"))
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))["results"]
    database = next(iter(manifest["sources"].values()))["database"]
    db = target / "baseline" / f"{database}.duckdb"  # same catalog name: the compiled SQL runs unchanged
    db.parent.mkdir(exist_ok=True)
    db.unlink(missing_ok=True)
    con = duckdb.connect(str(db), config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    for source in manifest["sources"].values():  # std tables, and the warehouse's own (objections, resolved rows)
        zone = source.get("config", {}).get("zone") or "std"
        arrow = DeltaTable(str(lake / zone / source["name"])).to_pyarrow_dataset()  # noqa: F841 — scanned by name
        con.execute(f'create schema if not exists "{source["schema"]}"')
        con.execute(f'create or replace table "{source["schema"]}"."{source["name"]}" as select * from arrow')
    executed = 0
    for r in results:
        node = manifest["nodes"].get(r["unique_id"])
        if node is None:
            continue
        relation = node.get("relation_name", "")
        kind = node["resource_type"]
        if kind == "seed":
            path = Path(node["root_path"]) / node["original_file_path"]
            types = node["config"].get("column_types") or {}
            columns = ", ".join(f"'{c}': '{t}'" for c, t in types.items())
            con.execute(
                f"create or replace table {relation} as select * from read_csv('{path}', columns={{{columns}}}, header=true)"
            )
        elif kind == "model":
            how = "view" if node["config"]["materialized"] == "view" else "table"
            con.execute(f"create or replace {how} {relation} as {r['compiled_code']}")
        elif kind == "test":
            con.execute(f"select count(*) from ({r['compiled_code']}) as t").fetchall()
        else:
            continue
        executed += 1
    rows = sum(
        con.execute(f"select count(*) from {n['relation_name']}").fetchall()[0][0]
        for n in manifest["nodes"].values()
        if n["resource_type"] == "model"
        and n["config"]["materialized"] == "table"
        and any(x["unique_id"] == n["unique_id"] for x in results)
    )
    con.close()
    return {"rows": rows, "nodes": executed}


if __name__ == "__main__":
    timed_main(run)
