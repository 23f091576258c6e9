"""``demo``: generate the demo sources, run the whole pipeline, then the exchange as a steward would — the
example requests filed, the 经信局's 亩均 request approved, its share built — and print what was built."""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import time

import yaml

from orchestration import instance
from orchestration.cli.report import summary
from orchestration.settings import PROJECT_ROOT, Settings

LIVE_OVERLAY = PROJECT_ROOT / "lakehouse" / "sources.live.yaml"


def live_environment(environ) -> None:
    """``demo --sources live``: the overlay that moves datasets to databases, an interface and the broker, and
    its own data folder and Dagster home (the file demo's stay as they are, to compare with)."""
    from lakehouse.registry import OVERLAY_ENV, registry

    environ.setdefault(OVERLAY_ENV, str(LIVE_OVERLAY))
    environ.setdefault("SHUCANG_DATA_DIR", str(PROJECT_ROOT / "data-live"))
    environ.setdefault("DAGSTER_HOME", str(PROJECT_ROOT / ".dagster_home_live"))
    registry.cache_clear()


def demo(s: Settings, scale: float, fresh: bool, sources: str = "files") -> int:
    from sourcegen.generate import generate

    started = time.perf_counter()
    if fresh:
        for path in (s.data_dir, s.dagster_home / "storage", s.dagster_home / "history", s.dagster_home / "schedules"):
            shutil.rmtree(path, ignore_errors=True)
    instance.prepare(s.dagster_home)
    live = None
    if sources == "live":
        from lakehouse.registry import registry
        from sourcegen.live import LiveSources, default_connections

        live = LiveSources(registry(), s.data_dir / "live")
        default_connections(registry(), os.environ)
    manifest = generate(s.data_dir, scale=scale, on_delivery=live.collect if live else None)
    print(
        f"generated {manifest['enterprises']:,} enterprises, {len(manifest['files'])} files → {s.landing_root} "
        f"({time.perf_counter() - started:.1f} s)"
    )
    if live is not None:
        from sourcegen.live import LiveSourceUnavailable

        try:
            lines = live.load(os.environ)
        except LiveSourceUnavailable as exc:
            print(f"make demo SOURCES=live: {exc}")
            return 1
        print("loaded the live sources (the other datasets stay files):")
        for line in lines:
            print(line)
    with live.platform(os.environ) if live is not None else contextlib.nullcontext():
        ok = _run(s, started)
    if live is not None:
        ok = _compare_with_files(s) and ok
    return 0 if ok else 1


def _run(s: Settings, started: float) -> bool:
    if s.settle_seconds:  # collection takes a file only once it has stood still that long (landing.py)
        print(f"waiting {s.settle_seconds:g} s for the delivered files to settle")
        time.sleep(s.settle_seconds)

    from dagster import DagsterInstance

    from orchestration import runs
    from orchestration.definitions import defs
    from orchestration.jobs import SELECTIONS

    with DagsterInstance.get() as dagster_instance:
        graph = defs.resolve_asset_graph()
        result = runs.materialize(
            defs,
            SELECTIONS["shucang_all"].resolve(graph),
            dagster_instance,
            # the UI has every event; the terminal shows what landed and what was refused
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
            tags={"shucang/trigger": "demo"},
            raise_on_error=False,
        )
        # the same emission the lineage sensors do for runs the daemon sees
        from orchestration.lineage.emit import emit_run

        reports = [emit_run(dagster_instance, run_id, graph, s) for run_id in result.run_ids]
        exchanged = _exchange_demo(s, dagster_instance, defs) if result.success else True
    print(summary(s))
    print(f"lineage: {sum(r.events for r in reports)} events from {len(reports)} runs; last: {reports[-1].summary()}")
    print(
        f"pipeline: {len(result.run_ids)} of {result.planned} runs (raw and std by period: one run per partitioning), "
        f"{'SUCCESS' if result.success else 'FAILURE'} in {time.perf_counter() - started:.1f} s (generation included)"
    )
    return bool(result.success and exchanged)


FILE_DEMO_LAKE = PROJECT_ROOT / "data" / "lake"


def _compare_with_files(s: Settings) -> bool:
    """The live path's published tables against the file path's (``make demo`` before it, same scale)."""
    from lakehouse.lake import Lake
    from orchestration.compare import compare_published

    if not (FILE_DEMO_LAKE / "publish").is_dir():
        print(f"published tables not compared: no file demo at {FILE_DEMO_LAKE} (run `make demo` first)")
        return True
    report = compare_published(Lake(str(FILE_DEMO_LAKE)), s.lake())
    for line in report.lines():
        print(line)
    return report.equal


DEMO_STEWARD = "demo-steward"
# the consumers the example requests (exchange/examples) come from: id → (name, department, kind)
DEMO_CONSUMERS = {
    "chain-map-app": ("模具产业链图谱应用", "区产业链链长办", "enterprise"),
    "huangyan-mujun": ("黄岩区经信局亩均办", "区经信局", "department"),
    "bank-credit-app": ("政银合作信用贷款应用", "区金融办", "enterprise"),
    "external-org": ("某外部机构", "外部", "enterprise"),
}


def _register_demo_identities(ex) -> None:
    """The demo's consumers and its steward in the identity registry (once). Consumers' API keys are not
    printed: the demo files their requests through the inbox, as an operator would."""
    from orchestration.cli.exchange import steward_key_file

    known = {p.id for p in ex.principals.all()}
    for cid, (name, department, kind) in DEMO_CONSUMERS.items():
        if cid not in known:
            # entitled to named firms by their legal basis (duties, firms' authorisation, the open directory)
            ex.principals.add_consumer(cid, name, department, kind, named_firms=cid != "external-org")
    if DEMO_STEWARD not in known:
        ex.principals.add_steward(DEMO_STEWARD, "演示数据管理员", "区大数据中心", steward_key_file(DEMO_STEWARD))


def _exchange_demo(s: Settings, dagster_instance, defs) -> bool:
    """The exchange as a steward sees it: the example requests dropped in the inbox and filed, the 经信局's
    亩均 request approved, the approved shares built, the sharing statistics published."""
    from dagster import AssetKey

    from assets.share import SHARE_KEY
    from exchange.service import Exchange
    from exchange.statistics import NAME as STATISTICS
    from orchestration import keys

    ex = Exchange(s.lake(), s.exchange_dir, s.sharing_endpoint, audit_log=s.audit_log)
    _register_demo_identities(ex)
    ex.inbox.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()
    known = ex.ledger.states()
    for example in sorted((PROJECT_ROOT / "exchange" / "examples").glob("*.yaml")):
        if example.stem in known:
            continue
        doc = yaml.safe_load(example.read_text(encoding="utf-8"))
        doc["period"] = {"start": today.isoformat(), "end": (today + dt.timedelta(days=180)).isoformat()}
        (ex.inbox / example.name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    from exchange.identity import sign
    from orchestration.cli.exchange import steward_key_file

    reason = "区经信局依《亩均效益综合评价办法》履职所需，准予共享（演示）"
    decision = {
        "request_id": "mujun-jingxinju",
        # what a steward pastes into the launchpad: the decision signed with their own key
        "signed_decision": sign(
            steward_key_file(DEMO_STEWARD), DEMO_STEWARD, "decide", "mujun-jingxinju", reason, decision="approved"
        ),
    }
    from orchestration.runs import execute

    runs = [execute(defs.resolve_job_def("file_data_requests"), dagster_instance)]
    if ex.ledger.states().get("mujun-jingxinju") and ex.state("mujun-jingxinju").status == "pending":
        runs.append(
            execute(
                defs.resolve_job_def("decide_data_request"),
                dagster_instance,
                run_config={"ops": {"decide": {"config": decision}}},
            )
        )
    due = sorted(r.id for r in ex.ledger.states().values() if r.status == "approved" and r.manifest is None)
    job = defs.resolve_implicit_global_asset_job_def()
    if due:
        dagster_instance.add_dynamic_partitions("data_requests", due)
    for rid in due:
        runs.append(
            execute(job, dagster_instance, partition_key=rid, asset_selection=[SHARE_KEY], raise_on_error=False)
        )
    runs.append(
        execute(
            job,
            dagster_instance,
            asset_selection=[keys.key("publish", STATISTICS), AssetKey(["catalogue", "datasets"])],
            raise_on_error=False,
        )
    )
    from orchestration.lineage.emit import emit_run

    for run in runs:  # lineage for the exchange's runs too, as the lineage sensors do for the daemon's runs
        emit_run(dagster_instance, run.run_id, defs.resolve_asset_graph(), s)
    return all(run.success for run in runs)
