"""``make bench``: generate at scale, time each stage in its own process, compare with plain DuckDB.

Prints rows/s and peak memory per stage and the ratio of collection time to the DuckDB baseline,
and writes the figures to benchmarks/results/<timestamp>.json (ignored by git).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from lakehouse.registry import OVERLAY_ENV

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 1.5
TARGET_CLEAN_RATIO = 2.0
TARGET_PEAK_MIB = 4096


def _stage(*args: str) -> dict:
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"benchmark stage {args} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def history_overlay(data: Path, years: int) -> Path:
    """A registry overlay (``SHUCANG_SOURCES_OVERLAY``) whose agreements start ``years`` before the
    generator's year for the datasets it delivers a history of: their earlier periods are partitions,
    expected and monitored like the rest."""
    from lakehouse.registry import registry
    from sourcegen.generate import HISTORY_DATASETS, YEAR

    first = {"month": f"{YEAR - years}-01", "year": str(YEAR - years)}
    since = {ds.id: first[ds.period.granularity] for ds in registry().datasets if ds.id in HISTORY_DATASETS}
    path = data / "sources.history.yaml"
    path.write_text("datasets:\n" + "".join(f"  {d}: {{since: '{s}'}}\n" for d, s in since.items()), encoding="utf-8")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench")
    parser.add_argument("--scale", type=float, default=100.0, help="100 = 100k enterprises, 10M telemetry rows")
    parser.add_argument("--data", type=Path, default=ROOT / "data-bench")
    parser.add_argument(
        "--history-years",
        type=int,
        default=1,
        help="earlier years of monthly filings besides the generator's year (1: the 24 months the incremental "
        "targets assume)",
    )
    args = parser.parse_args(argv)
    shutil.rmtree(args.data, ignore_errors=True)

    months = 12 * (1 + args.history_years)
    print(f"bench: scale {args.scale:g} in {args.data}, {months} months of monthly filings")
    gen = _stage("-m", "benchmarks.stages", "generate", str(args.data), str(args.scale), str(args.history_years))
    print(f"  generate   {gen['rows']:>12,} rows  {gen['seconds']:7.1f} s  peak {gen['peak_rss_mib']:6.0f} MiB")
    if args.history_years:  # every later stage (a process of its own) reads the registry with it
        os.environ[OVERLAY_ENV] = str(history_overlay(args.data, args.history_years))
    # the baseline reads the landing files before collection moves the rejected ones away
    base = _stage("-m", "benchmarks.duckdb_baseline", str(args.data / "landing"), str(args.data / "baseline"))
    col = _stage("-m", "benchmarks.stages", "pipeline", str(args.data))
    ratio = col["seconds"] / base["seconds"]
    rows = [("collect (Dagster job)", col), ("plain DuckDB", base)]
    print(f"  {'stage':<20}{'rows':>12}{'seconds':>10}{'rows/s':>12}{'peak MiB':>10}")
    for name, r in rows:
        print(
            f"  {name:<20}{r['rows']:>12,}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>12,.0f}"
            f"{r['peak_rss_mib']:>10.0f}"
        )
    for ds, d in col["datasets"].items():
        b = base["datasets"].get(ds)
        print(
            f"    {ds:<22}{d['rows']:>12,}{d['seconds']:>10.2f}{d['rows'] / max(d['seconds'], 1e-9):>12,.0f}"
            + (f"  DuckDB {b['seconds']:6.2f} s" if b else "")
        )
    lineage_share = col["lineage_seconds"] / col["seconds"]
    print(
        f"  lineage: {col['lineage_events']} events in {col['lineage_seconds']:.2f} s = {lineage_share:.1%} of the "
        f"collection wall time (target ≤ 5%: {'met' if lineage_share <= 0.05 else 'NOT met'})"
    )
    clean = _stage("-m", "benchmarks.stages", "clean", str(args.data))
    clean_base = _stage("-m", "benchmarks.duckdb_clean", str(args.data / "lake"), str(args.data / "baseline-clean"))
    clean_ratio = clean["seconds"] / clean_base["seconds"]
    for name, r in [("clean (std_all job)", clean), ("plain DuckDB", clean_base)]:
        print(
            f"  {name:<20}{r['rows']:>12,}{r['seconds']:>10.1f}{r['rows'] / r['seconds']:>12,.0f}"
            f"{r['peak_rss_mib']:>10.0f}"
        )
    for ds, d in clean["datasets"].items():
        b = clean_base["datasets"].get(ds)
        baseline = (
            f"DuckDB {b['seconds']:6.2f} s" if b else "(no DuckDB counterpart: counted in the ratio all the same)"
        )
        print(f"    {ds:<22}{d['rows']:>12,}{d['seconds']:>10.2f}  {baseline}")
    ok_clean = clean_ratio <= TARGET_CLEAN_RATIO and clean["peak_rss_mib"] <= TARGET_PEAK_MIB
    print(
        f"  clean / DuckDB = {clean_ratio:.2f}× (target ≤ {TARGET_CLEAN_RATIO}×), peak {clean['peak_rss_mib']:.0f} MiB "
        f"(target < {TARGET_PEAK_MIB}): {'met' if ok_clean else 'NOT met'}"
    )
    model = _stage("-m", "benchmarks.stages", "model", str(args.data))
    model_base = _stage("-m", "benchmarks.duckdb_models", str(args.data / "lake"), model["target"])
    fixed = model["dbt_noop_seconds"]
    model_ratio = model["dbt_seconds"] / (model_base["seconds"] + fixed)
    print(
        f"  dbt stage (model_all job): dbt step {model['dbt_seconds']:.1f} s (dbt's own node timings "
        f"{model['dbt_nodes_seconds']:.1f} s; dbt peak {model['dbt_peak_rss_mib']:.0f} MiB), publish gates and "
        f"writes {model['publish_seconds']:.1f} s, job {model['seconds']:.1f} s"
    )
    print(
        f"  same SQL in plain DuckDB: {model_base['seconds']:.1f} s ({model_base['nodes']} nodes, "
        f"{model_base['rows']:,} rows in tables, peak {model_base['peak_rss_mib']:.0f} MiB); dbt's fixed start-up "
        f"(a no-op dbt build) {fixed:.1f} s"
    )
    print(
        f"  dbt step / (DuckDB + dbt start-up) = {model_ratio:.2f}× (target ≤ 1.5×: "
        f"{'met' if model_ratio <= 1.5 else 'NOT met'})"
    )
    imports = _stage("-m", "benchmarks.stages", "import", str(args.data))
    print(
        f"  definitions import: {imports['seconds']:.1f} s (best of {imports['runs']}; target < 5 s: "
        f"{'met' if imports['seconds'] < 5 else 'NOT met'})"
    )
    n = 10_000_000
    priv = _stage("-m", "benchmarks.privacy", "product", str(n))
    priv_base = _stage("-m", "benchmarks.privacy", "duckdb", str(n))
    if priv["sample"] != priv_base["sample"]:
        raise SystemExit(f"the pseudonyms differ: {priv['sample']} vs DuckDB {priv_base['sample']}")
    priv_ratio = priv["seconds"] / priv_base["seconds"]
    print(
        f"  pseudonymise {n:,} ids: {priv['seconds']:.1f} s ({n / priv['seconds']:,.0f}/s, peak "
        f"{priv['peak_rss_mib']:.0f} MiB) vs DuckDB HMAC in SQL {priv_base['seconds']:.1f} s = {priv_ratio:.2f}× "
        f"(target ≤ 2×: {'met' if priv_ratio <= 2 else 'NOT met'}); identical pseudonyms"
    )
    sharing = _stage("-m", "benchmarks.sharing", str(args.data), str(n))
    sharing_ratio = sharing["served_seconds"] / sharing["local_seconds"]
    print(
        f"  share {n:,} rows ({sharing['files']} file(s), {sharing['bytes'] / 2**20:.0f} MiB; built in "
        f"{sharing['build_seconds']:.1f} s): official delta-sharing client over HTTP {sharing['served_seconds']:.1f} s "
        f"vs deltalake locally {sharing['local_seconds']:.1f} s = {sharing_ratio:.2f}× (target ≤ 2×: "
        f"{'met' if sharing_ratio <= 2 else 'NOT met'})"
    )
    # the whole pipeline against the plain DuckDB scripts of every stage added up
    whole = col["seconds"] + clean["seconds"] + model["seconds"]
    whole_base = base["seconds"] + clean_base["seconds"] + model_base["seconds"]
    print(
        f"  whole pipeline (collect + std + dbt + publish jobs) {whole:.1f} s vs plain DuckDB scripts of the "
        f"stages added up {whole_base:.1f} s = {whole / whole_base:.2f}×"
    )
    inc = _stage("-m", "benchmarks.stages", "incremental", str(args.data))
    for name, target in (("new_month", 0.10), ("correction", 0.15)):
        r = inc[name]
        std_seconds = sum(d["seconds"] for d in r["std_steps"].values())
        pipe = r["collect"] + r["automation"]
        to_publish = r.get("to_publish") or pipe
        print(
            f"  {name.replace('_', ' ')} ({r['rows_delivered']:,} rows): collection {r['collect']:.1f} s, then the "
            f"automation {r['automation']:.1f} s in {len(r['ticks'])} run(s), {r['assets']} assets; std "
            f"{std_seconds:.1f} s = {std_seconds / clean['seconds']:.1%} of the full std build (target ≤ {target:.0%}: "
            f"{'met' if std_seconds / clean['seconds'] <= target else 'NOT met'}); delivery to the last published "
            f"table {to_publish:.1f} s = {to_publish / whole:.1%} of the full pipeline (target ≤ {target:.0%}: "
            f"{'met' if to_publish / whole <= target else 'NOT met'}); until the automation settles (governance, "
            f"catalogue too) {pipe:.1f} s = {pipe / whole:.1%}"
        )
        for ds, d in r["std_steps"].items():
            print(f"    std/{ds:<18}{d['rows']:>12,} rows rebuilt{d['seconds']:>10.2f} s")
    print(f"  incremental stage peak {inc['peak_rss_mib']:.0f} MiB")
    src = _stage("-m", "benchmarks.sources", "1000000", "200000")
    rel, tel = src["relational"], src["telemetry"]
    copy = rel["copy_to_delta_seconds"]
    for name, key in (
        ("by watermark", "watermark_seconds"),
        ("by change log, its first copy (the table's snapshot)", "change_log_snapshot_seconds"),
        ("by change log, 20 transactions of inserts decoded", "change_log_seconds"),
    ):
        r = rel[key] / copy
        print(
            f"  {rel['rows']:,} rows from PostgreSQL {name}: {rel[key]:.1f} s vs COPY … TO STDOUT into a Delta write "
            f"{copy:.1f} s = {r:.2f}× (target ≤ 1.5×: {'met' if r <= 1.5 else 'NOT met'})"
        )
    decode = rel["change_log_server_decode_seconds"]
    print(
        f"    of which PostgreSQL alone, decoding the slot's {rel['rows']:,} changes (counted, nothing sent): "
        f"{decode:.1f} s = {decode / copy:.2f}× the baseline"
    )
    rate = tel["steady_landed"] / tel["steady_seconds"]
    exact = tel["landed"] == tel["readings"] == tel["distinct"]
    print(
        f"  telemetry: {tel['steady_landed']:,} readings consumed into raw in {tel['steady_seconds']:.1f} s = "
        f"{rate:,.0f}/s (target ≥ 10,000/s: {'met' if rate >= 10_000 else 'NOT met'}); across a broker SIGKILL and "
        f"restart at {tel.get('broker_restart_at_rows', 0):,} rows: {tel['readings']:,} in {tel['consume_seconds']:.1f} s "
        f"({tel['runs']} runs, the restart and redelivery waits included), landed {tel['landed']:,}, distinct "
        f"{tel['distinct']:,}: {'nothing lost or doubled' if exact else 'NOT exact'}; sources stage peak "
        f"{src['peak_rss_mib']:.0f} MiB"
    )
    con = _stage("-m", "benchmarks.console", str(args.data))
    slow_page, slow = con["slowest_page"]
    print(
        f"  steward console: {con['requests']} requests over {con['pages']} pages from 2 clients, p50 "
        f"{con['p50_ms']:.0f} ms, p95 {con['p95_ms']:.0f} ms (target ≤ 300 ms: {'met' if con['p95_ms'] <= 300 else 'NOT met'}); "
        f"slowest {slow_page} p95 {slow['p95_ms']:.0f} ms; preview of {con['preview_table']} ({con['preview_rows']:,} "
        f"rows) max {con['preview_max_ms']:.0f} ms (target ≤ 1 s: {'met' if con['preview_max_ms'] <= 1000 else 'NOT met'})"
    )
    ok_ratio, ok_mem = ratio <= TARGET_RATIO, col["peak_rss_mib"] <= TARGET_PEAK_MIB
    print(
        f"  collection / DuckDB = {ratio:.2f}× (target ≤ {TARGET_RATIO}×: {'met' if ok_ratio else 'NOT met'}); "
        f"peak {col['peak_rss_mib']:.0f} MiB (target < {TARGET_PEAK_MIB}: {'met' if ok_mem else 'NOT met'})"
    )
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    (results / f"{stamp}.json").write_text(
        json.dumps(
            {
                "scale": args.scale,
                "months": months,
                "generate": gen,
                "collect": col,
                "baseline": base,
                "ratio": ratio,
                "clean": clean,
                "clean_baseline": clean_base,
                "clean_ratio": clean_ratio,
                "privacy": priv,
                "privacy_baseline": priv_base,
                "privacy_ratio": priv_ratio,
                "model": model,
                "model_baseline": model_base,
                "model_ratio": model_ratio,
                "definitions_import": imports,
                "sharing": sharing,
                "sharing_ratio": sharing_ratio,
                "whole_pipeline_seconds": whole,
                "whole_baseline_seconds": whole_base,
                "incremental": inc,
                "console": con,
                "sources": src,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
