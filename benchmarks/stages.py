"""Benchmark stages, each run in its own process so that its peak memory is its own."""

from __future__ import annotations

import datetime as dt
import json
import resource
import sys
import time
from pathlib import Path

from assets.ingest.collector import Collector
from assets.lake import Lake
from assets.registry import registry
from sourcegen.generate import generate


def generate_stage(data: Path, scale: float) -> dict:
    manifest = generate(data, scale=scale)
    return {"rows": sum(f["rows"] or 0 for f in manifest["files"]), "files": len(manifest["files"])}


def collect_stage(data: Path) -> dict:
    lake = Lake(str(data / "lake"))
    per_dataset = {}
    batch = dt.datetime.now(dt.UTC).strftime("bench-%Y%m%dT%H%M%S")
    for ds in registry().datasets:
        started = time.perf_counter()
        result = Collector(ds, lake, data / "landing", data / "rejected", batch).run()
        per_dataset[ds.id] = {
            "rows": result.rows_landed,
            "seconds": time.perf_counter() - started,
            "rejected_files": len(result.rejected),
        }
    return {"rows": sum(d["rows"] for d in per_dataset.values()), "datasets": per_dataset}


if __name__ == "__main__":
    stage, data = sys.argv[1], Path(sys.argv[2])
    started = time.perf_counter()
    out = generate_stage(data, float(sys.argv[3])) if stage == "generate" else collect_stage(data)
    out["seconds"] = time.perf_counter() - started
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
