"""Benchmark stages, each run in its own process so that its peak memory is its own."""

from __future__ import annotations

import json
import os
import resource
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from sourcegen.generate import generate


def generate_stage(data: Path, scale: float) -> dict:
    manifest = generate(data, scale=scale)
    return {"rows": sum(f["rows"] or 0 for f in manifest["files"]), "files": len(manifest["files"])}


@contextmanager
def _job(data: Path, name: str):
    """Run a job of the code location on a throw-away instance over the lake in ``data``; yields
    (instance, result, seconds, definitions)."""
    os.environ.update({"SHUCANG_ENV": "bench", "SHUCANG_DATA_DIR": str(data)})
    import dagster as dg

    from orchestration.definitions import defs

    with tempfile.TemporaryDirectory() as home, dg.DagsterInstance.local_temp(home) as instance:
        started = time.perf_counter()
        result = defs.resolve_job_def(name).execute_in_process(
            instance=instance, run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
        )
        seconds = time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"the {name} job failed")
        yield instance, result, seconds, defs


def clean_stage(data: Path) -> dict:
    """raw → std for every dataset, as the std_all Dagster job runs it (checks, gate, quarantine, scores)."""
    with _job(data, "std_all") as (_, result, seconds, _):
        rows = sum(e.materialization.metadata["rows_in"].value for e in result.get_asset_materialization_events())
    return {"rows": rows, "seconds": seconds}


def pipeline_stage(data: Path) -> dict:
    """Collection as the product runs it: the Dagster job with its checks and metadata, then lineage."""
    from orchestration.lineage.emit import emit_run
    from orchestration.settings import settings

    with _job(data, "collect_all") as (instance, result, job_seconds, defs):
        started = time.perf_counter()
        report = emit_run(instance, result.run_id, defs.resolve_asset_graph(), settings())
        lineage_seconds = time.perf_counter() - started
        datasets, open_steps = {}, {}
        for entry in instance.all_logs(result.run_id):
            ev = entry.dagster_event
            if ev is None or not ev.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                open_steps[ev.step_key] = entry.timestamp
            elif ev.event_type_value == "ASSET_MATERIALIZATION":
                meta = ev.event_specific_data.materialization.metadata
                datasets[ev.step_key] = {"rows": meta["rows_landed"].value}
            elif ev.event_type_value == "STEP_SUCCESS":
                datasets[ev.step_key]["seconds"] = entry.timestamp - open_steps[ev.step_key]
    return {
        "rows": sum(d["rows"] for d in datasets.values()),
        "seconds": job_seconds,
        "lineage_seconds": lineage_seconds,
        "lineage_events": report.events,
        "datasets": {k.removeprefix("raw__"): v for k, v in datasets.items()},
    }


if __name__ == "__main__":
    stage, data = sys.argv[1], Path(sys.argv[2])
    started = time.perf_counter()
    stages = {
        "generate": lambda: generate_stage(data, float(sys.argv[3])),
        "pipeline": lambda: pipeline_stage(data),
        "clean": lambda: clean_stage(data),
    }
    out = stages[stage]()
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
