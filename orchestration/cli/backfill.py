"""``backfill``: rebuild a range of months — the std partitions of every periodic dataset overlapping it (a
yearly dataset: its years; a daily one: its days), then the dbt models (the incremental ones for exactly
those months) and their publication — as runs on the instance, visible in the UI like any other. In the UI
the same is a partition backfill: select the std assets, "Materialize", choose the partitions; then the
``model_all`` job with ``backfill_from`` / ``backfill_to`` in the ``dbt_models`` step's config."""

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


def targets(defs, start: str, end: str) -> dict:
    """The std partitions a backfill of months ``start``..``end`` rebuilds: asset key → period keys."""
    import dagster as dg

    from lakehouse.registry import registry
    from orchestration.partitions import for_dataset, valid
    from quality.standardise import periods_between

    out = {}
    for ds in registry().datasets:
        pdef = for_dataset(ds)
        if pdef is None:
            continue
        inside, _ = valid(pdef, periods_between(ds, start, end))
        if inside:
            out[dg.AssetKey(["std", ds.id])] = inside
    return out


def backfill(s: Settings, start: str, end: str) -> int:
    for value in (start, end):
        if not MONTH.match(value):
            raise SystemExit(f"backfill: {value!r} is not a month (YYYY-MM)")
    if end < start:
        raise SystemExit(f"backfill: {start} is after {end}")
    from dagster import DagsterInstance

    from orchestration import runs
    from orchestration.definitions import defs

    tags = {"shucang/backfill": f"{start}..{end}"}
    with DagsterInstance.get() as instance:
        std = runs.materialize(defs, targets(defs, start, end), instance, tags=tags, raise_on_error=False)
        for run_id, result in zip(std.run_ids, std.results, strict=True):
            print(f"std partitions: run {run_id} {'SUCCESS' if result.success else 'FAILURE'}")
        if not std.success:
            return 1
        job = defs.resolve_job_def("model_all")
        result = runs.execute(job, instance, run_config=run_config(job, start, end), tags=tags)
        print(f"model_all: run {result.run_id} {'SUCCESS' if result.success else 'FAILURE'}")
        return 0 if result.success else 1
