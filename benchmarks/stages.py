"""Benchmark stages, each run in its own process so that its peak memory is its own."""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from sourcegen.generate import generate


def generate_stage(data: Path, scale: float, history_years: int = 0) -> dict:
    """Fresh sources in an empty folder: a lake left by an earlier bench would make collection skip every
    file as already landed, and measure nothing."""
    shutil.rmtree(data, ignore_errors=True)
    manifest = generate(data, scale=scale, history_years=history_years)
    return {"rows": sum(f["rows"] or 0 for f in manifest["files"]), "files": len(manifest["files"])}


def _home(data: Path) -> str:
    """One Dagster instance for all stages of a bench, as the product keeps one: later stages read what
    earlier ones recorded (e.g. the grades the std runs reported)."""
    home = data / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    return str(home)


@contextmanager
def _job(data: Path, name: str):
    """Run a job of the code location on a throw-away instance over the lake in ``data``; yields
    (instance, result, seconds, definitions)."""
    os.environ.update({"SHUCANG_ENV": "bench", "SHUCANG_DATA_DIR": str(data)})
    import dagster as dg

    from orchestration import runs
    from orchestration.definitions import defs
    from orchestration.jobs import SELECTIONS

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    with dg.DagsterInstance.local_temp(_home(data)) as instance:
        started = time.perf_counter()
        if name in SELECTIONS:  # a selection spanning partitionings: one run per partitioning (orchestration.runs)
            result = runs.materialize(defs, SELECTIONS[name], instance, run_config=quiet)
        else:  # in process, or with its steps on Celery workers (bench-scale --executor celery)
            result = runs.execute(defs.resolve_job_def(name), instance, run_config=quiet)
        seconds = time.perf_counter() - started
        if not result.success:
            raise SystemExit(f"the {name} job failed")
        yield instance, result, seconds, defs


def _run_ids(result) -> list[str]:
    return list(getattr(result, "run_ids", None) or [result.run_id])


def _steps(instance, run_ids: str | list[str], rows_key: str) -> dict[str, dict]:
    """Rows (from the materialization's ``rows_key``) and seconds of every step of runs, by dataset."""
    datasets, open_steps = {}, {}
    run_ids = [run_ids] if isinstance(run_ids, str) else run_ids
    for entry in (e for run_id in run_ids for e in instance.all_logs(run_id)):
        ev = entry.dagster_event
        if ev is None or not ev.step_key:
            continue
        name = ev.step_key.split("__", 1)[-1]
        if ev.event_type_value == "STEP_START":
            open_steps[name] = entry.timestamp
        elif ev.event_type_value == "ASSET_MATERIALIZATION":
            mat = ev.event_specific_data.materialization
            if rows_key in mat.metadata:  # the step's own dataset, not an own table it also wrote (logs, scores)
                datasets[name] = {"rows": mat.metadata[rows_key].value}
        elif ev.event_type_value == "STEP_SUCCESS":  # a std step with nothing new materialises nothing
            step = datasets.setdefault(name, {"rows": 0})
            step["seconds"] = step.get("seconds", 0.0) + entry.timestamp - open_steps[name]
    return datasets


def clean_stage(data: Path) -> dict:
    """raw → std for every dataset, as the std_all Dagster job runs it (checks, gate, quarantine, scores)."""
    with _job(data, "std_all") as (instance, result, seconds, _):
        datasets = _steps(instance, _run_ids(result), "rows_in")
    return {"rows": sum(d["rows"] for d in datasets.values()), "seconds": seconds, "datasets": datasets}


def pipeline_stage(data: Path) -> dict:
    """Collection as the product runs it: the Dagster job with its checks and metadata, then lineage."""
    from orchestration.lineage.emit import emit_run
    from orchestration.settings import settings

    with _job(data, "collect_all") as (instance, result, job_seconds, defs):
        started = time.perf_counter()
        reports = [emit_run(instance, r, defs.resolve_asset_graph(), settings()) for r in _run_ids(result)]
        lineage_seconds = time.perf_counter() - started
        datasets = _steps(instance, _run_ids(result), "rows_landed")
    return {
        "rows": sum(d["rows"] for d in datasets.values()),
        "seconds": job_seconds,
        "lineage_seconds": lineage_seconds,
        "lineage_events": sum(r.events for r in reports),
        "datasets": datasets,
    }


def model_stage(data: Path) -> dict:
    """The dbt stage as the product runs it: the model_all job (dbt build with pinned std versions, column
    lineage and grades, then the publish gates and writes); reports the dbt step and the publish steps apart,
    the dbt artifacts folder of the run (for the DuckDB baseline), and a no-op dbt invocation's time."""
    import subprocess

    from orchestration.dbt.project import project

    with _job(data, "model_all") as (instance, result, seconds, _):
        steps, opened = {}, {}
        for entry in instance.all_logs(result.run_id):
            ev = entry.dagster_event
            if ev is None or not ev.step_key:
                continue
            if ev.event_type_value == "STEP_START":
                opened[ev.step_key] = entry.timestamp
            elif ev.event_type_value == "STEP_SUCCESS":
                steps[ev.step_key] = entry.timestamp - opened[ev.step_key]
    root = project().project_dir
    target = max((p for p in (root / "target").glob("dbt_models-*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    results = json.loads((target / "run_results.json").read_text(encoding="utf-8"))
    # the no-op starts as a product run does: from the project's partial parse, with the same profile (the
    # warehouse path is part of it), in a target folder of its own, leaving the product's parse state alone
    # (another profile there would make the next product run parse the whole project again)
    noop_target = data / "dbt-noop-target"
    shutil.rmtree(noop_target, ignore_errors=True)
    noop_target.mkdir(parents=True)
    shutil.copyfile(root / "target" / "partial_parse.msgpack", noop_target / "partial_parse.msgpack")
    started = time.perf_counter()
    subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--select",
            "nothing_is_called_this",
            "--quiet",
            "--project-dir",
            str(root),
            "--profiles-dir",
            str(root),
            "--target-path",
            str(noop_target),
        ],
        cwd=root,
        check=True,
        capture_output=True,
        env={**os.environ, "WAREHOUSE_PATH": str(data / "warehouse.duckdb")},
    )
    noop = time.perf_counter() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "rows": 0,
        "seconds": seconds,
        "dbt_seconds": steps["dbt_models"],
        "dbt_nodes_seconds": sum(r["execution_time"] for r in results["results"]),
        "publish_seconds": sum(v for k, v in steps.items() if k.startswith("publish__")),
        "dbt_noop_seconds": noop,
        "target": str(target),
        "dbt_peak_rss_mib": children,
    }


def _rewrite_csv(source: Path, target: Path, encoding: str, change) -> int:
    """A delivered CSV changed by ``change`` (a polars frame of text → frame), written in its encoding."""
    import io

    import polars as pl

    frame = pl.read_csv(io.StringIO(source.read_bytes().decode(encoding)), infer_schema=False)
    frame = change(frame)
    target.write_bytes(
        frame.write_csv(line_terminator="\n").encode("utf-8-sig" if encoding == "utf-8-sig" else encoding)
    )
    return frame.height


def _new_month(landing: Path) -> tuple[int, list[str]]:
    """The month after the latest delivered, from December's tax and power filings (same firms, amounts)."""
    import polars as pl

    tax, power = landing / "tax" / "monthly", landing / "power" / "monthly"
    delivered = sorted(p.stem.split("_")[2][:7] for p in tax.glob("税务_月度申报_*.csv"))
    y, m = int(delivered[-1][:4]), int(delivered[-1][5:7])
    month = f"{y + m // 12}-{m % 12 + 1:02d}"
    rows = _rewrite_csv(
        tax / "税务_月度申报_2023-12.csv",
        tax / f"税务_月度申报_{month}.csv",
        "utf-8-sig",
        lambda f: f.with_columns(pl.lit(month).alias("所属期"), pl.lit(f"{month}-10").alias("申报日期")),
    )
    rows += _rewrite_csv(
        power / "电力_月度用电_2023-12.csv",
        power / f"电力_月度用电_{month}.csv",
        "gb18030",
        lambda f: f.with_columns(pl.lit(month).alias("用电月份")),
    )
    return rows, ["tax_monthly", "power_monthly"]


def _correction(landing: Path) -> tuple[int, list[str]]:
    """更正 filings of March for one firm in twenty, delivered in a later month's file."""
    import polars as pl

    tax = landing / "tax" / "monthly"
    n = len(list(tax.glob("*_更正*.csv")))
    rows = _rewrite_csv(
        tax / "税务_月度申报_2023-03.csv",
        tax / f"税务_月度申报_2024-02_更正{n + 1}.csv",
        "utf-8-sig",
        lambda f: (
            f.filter(pl.col("所属期") == "2023-03")
            .gather_every(20, offset=n % 20)  # other firms each time: a correction is never a re-send
            .with_columns(
                pl.lit("更正").alias("申报类型"),
                (pl.col("营业收入").cast(pl.Float64, strict=False) * 1.05).round(2).cast(pl.String).alias("营业收入"),
            )
        ),
    )
    return rows, ["tax_monthly"]


def _settle(defs, instance, cursor, run_config=None):
    """Play the automation daemon with a queue of one run at a time: evaluate the conditions, add what
    they request to the queue, run the queued run that most of the graph waits for (``runs.stages`` puts
    it first: std before the privacy scan of the same delivery), evaluate again — until nothing is
    queued or requested. Returns the cursor and the runs' (keys, seconds, run ids); the evaluations are
    timed with the run that follows them."""
    import dagster as dg

    from orchestration import runs

    graph = defs.resolve_asset_graph()
    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    ticks, queued = [], {}
    for _ in range(40):
        started = time.perf_counter()
        result = dg.evaluate_automation_conditions(defs=defs, instance=instance, cursor=cursor)
        cursor = result.cursor
        for key, partitions in runs.requested(result).items():
            if not graph.get(key).is_executable:
                continue
            if key in queued and queued[key] is not None and partitions is not None:
                partitions = sorted(set(queued[key]) | set(partitions))
            queued[key] = partitions
        if not queued:
            return cursor, ticks
        first = runs.stages(graph, queued)[0].keys
        wanted = {k: queued.pop(k) for k in first}
        done = runs.materialize(defs, wanted, instance, run_config=run_config or quiet)
        ticks.append((set(wanted), time.perf_counter() - started, done.run_ids))
        if not done.success:
            raise SystemExit(f"an automation run failed: {sorted(k.to_user_string() for k in wanted)}")
    raise SystemExit("the automation did not settle in 40 runs")


def incremental_stage(data: Path) -> dict:
    """After the full pipeline: a new month delivered, then a correction of an old month. Each is followed
    by what runs in production: the collection of the datasets that received files (what the landing
    sensors start), then whatever the automation requests until it settles — std of those datasets, the
    models and publications that read them, governance, the catalogue — all timed. The ticks before the
    deliveries (assets the bench's jobs did not build) settle first, untimed."""
    import dagster as dg

    os.environ.update({"SHUCANG_ENV": "bench", "SHUCANG_DATA_DIR": str(data)})
    from exchange.statistics import NAME as STATISTICS
    from orchestration import keys, runs
    from orchestration.definitions import defs

    out = {}
    with dg.DagsterInstance.local_temp(_home(data)) as instance:
        # what the bench's jobs did not build (the privacy scan, the 归集 status) is built first, untimed:
        # the timed cycles are the steady state of a running warehouse, not a first build
        graph = defs.resolve_asset_graph()
        never = [
            k
            for k in graph.materializable_asset_keys
            if graph.get(k).partitions_def is None and instance.get_latest_materialization_event(k) is None
        ]
        if never and not runs.materialize(defs, never, instance).success:
            raise SystemExit(f"building {sorted(k.to_user_string() for k in never)} failed")
        cursor, _ = _settle(defs, instance, None)
        for name, deliver in (("new_month", _new_month), ("correction", _correction)):
            rows, datasets = deliver(data / "landing")
            raw = [keys.key("raw", d) for d in datasets]
            started, wall = time.perf_counter(), time.time()
            if not runs.materialize(defs, raw, instance).success:  # what the landing sensors start
                raise SystemExit("collection failed")
            collect = time.perf_counter() - started
            cursor, ticks = _settle(defs, instance, cursor)
            std = {}
            for _, _, run_ids in ticks:
                std.update({k: v for k, v in _steps(instance, run_ids, "rows_rebuilt").items() if v["rows"]})
            # when the last published table the delivery changed was written (the problem lists, the
            # catalogue and freshness may still run after it in the same tick)
            published = [
                e.timestamp
                for _, _, run_ids in ticks
                for run_id in run_ids
                for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
                if e.dagster_event.asset_key.path[0] == "publish"
                and e.dagster_event.asset_key != keys.key("publish", STATISTICS)
            ]
            out[name] = {
                "rows_delivered": rows,
                "to_publish": max(published) - wall if published else None,
                "collect": collect,
                "automation": sum(t[1] for t in ticks),
                "ticks": [sorted(k.to_user_string() for k in t[0]) for t in ticks],
                "assets": sum(len(t[0]) for t in ticks),
                "std_steps": std,
            }
    return {"rows": sum(v["rows_delivered"] for v in out.values()), **out}


def import_stage(data: Path, runs: int = 3) -> dict:
    """Wall time of loading the code location's definitions in a fresh interpreter (what ``dagster dev`` and
    every run worker pay), best of ``runs``."""
    import subprocess

    env = {**os.environ, "SHUCANG_ENV": "bench", "SHUCANG_DATA_DIR": str(data)}
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import orchestration.definitions"], env=env, check=True)
        times.append(time.perf_counter() - started)
    return {"rows": 0, "seconds": min(times), "runs": runs, "all": times}


if __name__ == "__main__":
    stage, data = sys.argv[1], Path(sys.argv[2])
    started = time.perf_counter()
    stages = {
        "generate": lambda: generate_stage(data, float(sys.argv[3]), int(sys.argv[4]) if len(sys.argv) > 4 else 0),
        "pipeline": lambda: pipeline_stage(data),
        "clean": lambda: clean_stage(data),
        "model": lambda: model_stage(data),
        "import": lambda: import_stage(data),
        "incremental": lambda: incremental_stage(data),
    }
    out = stages[stage]()
    out.setdefault("seconds", time.perf_counter() - started)
    out["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(out))
