"""``make bench-scale``: the pipeline's stages at several scales, on the local default or on the distributed
profile (steps on Celery workers): time, rows/s, peak memory, and the growth exponent of each stage's time
between consecutive scales — log(t₂/t₁) / log(s₂/s₁): 1 is linear, below 1 the fixed costs still dominate,
above 1 the stage grows faster than its data.

Each stage runs in a process of its own (``benchmarks.stages``): generate, collect (the collect_all job),
std (std_all), dbt and publish (model_all). The figures feed docs/scaling.md. On the distributed profile the
peak memory is the run's own process; the steps' memory is the workers' (reported apart, from their
processes' peak resident size).

    python -m benchmarks.scale --scales 1 10 100 [--executor celery] [--workers 2] [--dbt-target sail]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import shutil
from pathlib import Path

from benchmarks.run import ROOT, _stage

STAGES = ("collect", "std", "dbt", "publish")


def _measure(data: Path, scale: float) -> dict:
    gen = _stage("-m", "benchmarks.stages", "generate", str(data), str(scale), "0")
    col = _stage("-m", "benchmarks.stages", "pipeline", str(data))
    std = _stage("-m", "benchmarks.stages", "clean", str(data))
    model = _stage("-m", "benchmarks.stages", "model", str(data))
    rows = gen["rows"]
    return {
        "scale": scale,
        "rows_delivered": rows,
        "generate": {"seconds": gen["seconds"], "peak_mib": gen["peak_rss_mib"]},
        "collect": {"seconds": col["seconds"], "rows": col["rows"], "peak_mib": col["peak_rss_mib"]},
        "std": {"seconds": std["seconds"], "rows": std["rows"], "peak_mib": std["peak_rss_mib"]},
        "dbt": {"seconds": model["dbt_seconds"], "rows": std["rows"], "peak_mib": model["dbt_peak_rss_mib"]},
        "publish": {"seconds": model["publish_seconds"], "rows": std["rows"], "peak_mib": model["peak_rss_mib"]},
    }


def _peak_of(pids: list[int]) -> float:
    """The largest peak resident size (VmHWM) among processes and their children, MiB."""
    peak = 0.0
    for pid in pids:
        for task in [pid, *_children(pid)]:
            try:
                status = Path(f"/proc/{task}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
    return peak


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def exponents(results: list[dict]) -> list[dict]:
    """The growth exponent of every stage between consecutive scales."""
    out = []
    for a, b in zip(results, results[1:], strict=False):
        ratio = math.log(b["scale"] / a["scale"])
        out.append(
            {
                "from": a["scale"],
                "to": b["scale"],
                **{s: math.log(b[s]["seconds"] / a[s]["seconds"]) / ratio for s in STAGES},
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-scale")
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--executor", choices=["in_process", "celery"], default="in_process")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--data", type=Path, default=ROOT / "data-scale")
    parser.add_argument(
        "--dbt-target", choices=["local", "sail"], default="local", help="the engine the dbt stage runs on"
    )
    args = parser.parse_args(argv)
    scales = sorted(args.scales)
    results = []
    # the stages' processes inherit the target (orchestration.settings: SHUCANG_DBT_TARGET)
    os.environ["SHUCANG_DBT_TARGET"] = args.dbt_target
    profile = args.executor + ("" if args.dbt_target == "local" else f"-dbt-{args.dbt_target}")
    for scale in scales:
        data = args.data / f"{profile}-{scale:g}"
        shutil.rmtree(data, ignore_errors=True)
        if args.executor == "celery":
            from orchestration.instance.celery_workers import LocalWorkers

            env = {"SHUCANG_EXECUTOR": "celery", "SHUCANG_ENV": "bench", "SHUCANG_DATA_DIR": str(data)}
            with LocalWorkers(args.data / "workers", args.workers, env) as pool:
                saved = dict(os.environ)
                os.environ.update({k: pool.env[k] for k in (*env, "SHUCANG_CELERY_QUEUE")})
                try:
                    r = _measure(data, scale)
                    r["workers_peak_mib"] = _peak_of([p.pid for p in pool.procs])
                finally:
                    os.environ.clear()
                    os.environ.update(saved)
        else:
            r = _measure(data, scale)
        results.append(r)
        where = " in the run's process" if args.executor == "celery" else ""
        print(
            f"scale {scale:g} ({profile}): {r['rows_delivered']:,} rows delivered; "
            + "; ".join(f"{s} {r[s]['seconds']:.1f} s (peak {r[s]['peak_mib']:.0f} MiB{where})" for s in STAGES)
            + (f"; workers' peak {r['workers_peak_mib']:.0f} MiB" if "workers_peak_mib" in r else "")
        )
    growth = exponents(results)
    for g in growth:
        print(
            f"growth {g['from']:g} → {g['to']:g}: "
            + ", ".join(f"{s} {g[s]:.2f}" for s in STAGES)
            + " (1 = linear in the data)"
        )
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    path = out / f"scale-{profile}-{stamp}.json"
    path.write_text(json.dumps({"results": results, "growth": growth}, indent=2), encoding="utf-8")
    print(f"figures in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
