"""``backfill``: rebuild a range of months — std of every periodic dataset for the periods overlapping it
(a yearly dataset: its years), then the dbt models (the incremental ones for exactly those months) and
their publication — as runs on the instance, visible in the UI like any other. The same is available in
the UI's launchpad: the `std_all` and `model_all` jobs take `backfill_from` / `backfill_to` in each std
step's and the `dbt_models` step's config."""

from __future__ import annotations

import re

from orchestration.settings import Settings

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def run_config(job, start: str, end: str) -> dict:
    """The config of every step of ``job`` that takes a backfill range."""
    ops = {}
    for node in job.graph.node_defs:
        fields = getattr(node.config_schema, "config_type", None)
        names = set(getattr(fields, "fields", {}) or {})
        if {"backfill_from", "backfill_to"} <= names:
            ops[node.name] = {"config": {"backfill_from": start, "backfill_to": end}}
    return {"ops": ops}


def backfill(s: Settings, start: str, end: str) -> int:
    for value in (start, end):
        if not MONTH.match(value):
            raise SystemExit(f"backfill: {value!r} is not a month (YYYY-MM)")
    if end < start:
        raise SystemExit(f"backfill: {start} is after {end}")
    from dagster import DagsterInstance

    from orchestration.definitions import defs

    with DagsterInstance.get() as instance:
        for name in ("std_all", "model_all"):
            job = defs.resolve_job_def(name)
            result = job.execute_in_process(
                instance=instance, run_config=run_config(job, start, end), tags={"shucang/backfill": f"{start}..{end}"}
            )
            print(f"{name}: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}")
            if not result.success:
                return 1
    return 0
