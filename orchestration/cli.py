"""``python -m orchestration.cli``: the demo, a summary of what the lake holds, instance preparation."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import polars as pl

from orchestration import instance
from orchestration.settings import PROJECT_ROOT, Settings, settings
from privacy import access, keys, overrides
from privacy.audit import AuditLog


def summary(s: Settings) -> str:

    lake = s.lake()
    catalogue = lake.read("catalogue", "datasets")
    log = lake.read("ops", "collect_log")
    out = ["", "shucang — what the warehouse holds now", ""]
    if catalogue is None:
        return "\n".join([*out, "  nothing yet: run `make demo`"])
    files = (
        log.group_by("dataset").agg(
            (pl.col("status") == "landed").sum().alias("landed"),
            (pl.col("status") == "rejected").sum().alias("rejected"),
        )
        if log is not None
        else pl.DataFrame(schema={"dataset": pl.String, "landed": pl.UInt32, "rejected": pl.UInt32})
    )
    raw = (
        catalogue.filter(pl.col("zone") == "raw")
        .join(files, left_on="dataset_id", right_on="dataset", how="left")
        .sort("asset_key")
    )
    out.append(f"  {'dataset':<24}{_pad('名称', 22)}{'rows':>10}{'version':>9}{'files':>7}{'rejected':>10}")
    for r in raw.iter_rows(named=True):
        out.append(
            f"  {r['asset_key']:<24}{_pad(r['name_zh'], 22)}{r['row_count'] or 0:>10,}"
            f"{_version(r)}{r['landed'] or 0:>7}{r['rejected'] or 0:>10}"
        )
    out.append(f"  {'total raw':<46}{int(raw['row_count'].fill_null(0).sum()):>10,}")
    out += ["", _std_section(lake, catalogue), "", _privacy_section(s, lake, catalogue)]
    out += ["", _publish_section(lake, catalogue), "", _exchange_section(s)]
    if log is not None and (rej := log.filter(pl.col("status") == "rejected")).height:
        out += ["", f"  rejected files ({rej.height}) — moved to {s.rejected_root}, each with a .reason.json:"]
        for r in rej.sort("file").iter_rows(named=True):
            out.append(
                f"    ✗ {r['file']}\n        {r['reason_zh']} / {r['reason_en']}: {r['detail']} "
                f"(at {r['position']}; rows {r['rows_read'] if r['rows_read'] is not None else 'unknown'})"
            )
    out += [
        "",
        f"  lake:       {s.lake_root}",
        f"  catalogue:  {s.lake_root}/catalogue/catalogue.json",
        f"  landing:    {s.landing_root}",
        "  Dagster UI: make ui  →  http://127.0.0.1:3000",
        "",
    ]
    return "\n".join(out)


def _version(r: dict) -> str:
    return f"{r['delta_version'] if r['delta_version'] is not None else '-':>9}"


def _std_section(lake, catalogue: pl.DataFrame) -> str:
    """std: rows kept, rows quarantined (with a reason in quarantine/findings), duplicates merged."""
    findings = lake.read("quarantine", "findings")
    dups = lake.read("quarantine", "duplicates")
    quarantined = (
        findings.filter(pl.col("action") == "quarantined")
        .unique(["dataset", "source_file", "row_number"])
        .group_by("dataset")
        .len("quarantined")
        if findings is not None
        else None
    )
    merged = dups.group_by("dataset").len("merged") if dups is not None else None
    std = catalogue.filter(pl.col("zone") == "std").sort("asset_key")
    for extra in (quarantined, merged):
        if extra is not None:
            std = std.join(extra, left_on="dataset_id", right_on="dataset", how="left")
    lines = [f"  {'dataset':<24}{_pad('名称', 22)}{'rows':>10}{'version':>9}{'quarantined':>13}{'merged':>8}"]
    for r in std.iter_rows(named=True):
        lines.append(
            f"  {r['asset_key']:<24}{_pad(r['name_zh'], 22)}{r['row_count'] or 0:>10,}{_version(r)}"
            f"{r.get('quarantined') or 0:>13,}{r.get('merged') or 0:>8,}"
        )
    return "\n".join(lines)


def _privacy_section(s: Settings, lake, catalogue: pl.DataFrame) -> str:
    """What the privacy stage did: the grade of each zone's dataset, what std transformed, the audit log."""
    columns = lake.read("catalogue", "columns")
    out = ["  privacy (分类分级, std zone policy)"]
    if columns is not None and "privacy_transform" in columns.columns:
        done = columns.filter((pl.col("zone") == "std") & pl.col("privacy_transform").is_not_null())
        for (ds,), group in done.sort("dataset_id", "position").group_by("dataset_id", maintain_order=True):
            grades = catalogue.filter(pl.col("dataset_id") == ds).select("zone", "grade").rows()
            what = ", ".join(f"{r['column']} ({r['privacy_transform']})" for r in group.iter_rows(named=True))
            out.append(f"    {ds:<20} {' → '.join(f'{z} {g}' for z, g in sorted(grades))}: {what}")
    verdict = AuditLog(s.audit_log).verify()
    out.append(
        f"    audit log {s.audit_log}: {verdict.entries} entries, "
        + ("chain intact" if verdict.ok else f"TAMPERED — {verdict.problem}")
    )
    out.append(f"    keys      {s.key_file} (outside the repository and the lake)")
    return "\n".join(out)


def _publish_section(lake, catalogue: pl.DataFrame) -> str:
    """The publish zone (共享库): what dbt modelled and the gates let through, and the 亩均 bands."""
    published = catalogue.filter(pl.col("zone") == "publish").sort("asset_key")
    if published.height == 0:
        return "  publish zone: nothing published yet"
    out = [
        "  publish zone (共享库) — public dbt models through their quality and privacy gates, and the sharing statistics",
        "",
    ]
    out.append(f"  {'dataset':<46}{_pad('名称', 24)}{'rows':>9}{'version':>9}{'grade':>7}")
    for r in published.iter_rows(named=True):
        out.append(
            f"  {r['asset_key']:<46}{_pad(r['name_zh'], 24)}{r['row_count'] or 0:>9,}{_version(r)}"
            f"{r['grade'] or '-':>7}"
        )
    evaluation = lake.read("publish", "topic_mujun_evaluation")
    if evaluation is not None:
        bands = evaluation.group_by("scale_group", "band").len().sort("scale_group", "band", nulls_last=True)
        parts = {
            g: ", ".join(f"{b or '不参评'} {n}" for b, n in zip(grp["band"], grp["len"], strict=True))
            for (g,), grp in bands.group_by("scale_group", maintain_order=True)
        }
        out += ["", "  亩均效益综合评价 (topic_mujun_evaluation): " + "; ".join(f"{g}: {v}" for g, v in parts.items())]
    return "\n".join(out)


def _pad(text: str, width: int) -> str:
    """Left-align text whose CJK characters take two terminal columns."""
    shown = sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)
    return text + " " * max(1, width - shown)


def demo(s: Settings, scale: float, fresh: bool) -> int:
    from sourcegen.generate import generate

    started = time.perf_counter()
    if fresh:
        for path in (s.data_dir, s.dagster_home / "storage", s.dagster_home / "history", s.dagster_home / "schedules"):
            shutil.rmtree(path, ignore_errors=True)
    instance.prepare(s.dagster_home)
    manifest = generate(s.data_dir, scale=scale)
    print(
        f"generated {manifest['enterprises']:,} enterprises, {len(manifest['files'])} files → {s.landing_root} "
        f"({time.perf_counter() - started:.1f} s)"
    )

    from dagster import DagsterInstance

    from orchestration.definitions import defs

    with DagsterInstance.get() as dagster_instance:
        result = defs.resolve_job_def("shucang_all").execute_in_process(
            instance=dagster_instance,
            raise_on_error=False,
            # the UI has every event; the terminal shows what landed and what was refused
            run_config={"loggers": {"console": {"config": {"log_level": "INFO"}}}},
        )
        # the same emission the lineage sensors do for runs the daemon sees
        from orchestration.lineage.emit import emit_run

        lineage = emit_run(dagster_instance, result.run_id, defs.resolve_asset_graph(), s)
        exchanged = _exchange_demo(s, dagster_instance, defs) if result.success else True
    print(summary(s))
    print(f"lineage: {lineage.summary()}")
    print(
        f"pipeline run {result.run_id}: {'SUCCESS' if result.success else 'FAILURE'} "
        f"in {time.perf_counter() - started:.1f} s (generation included)"
    )
    return 0 if result.success and exchanged else 1


DEMO_STEWARD = "demo-steward"


def _exchange_demo(s: Settings, dagster_instance, defs) -> bool:
    """The exchange as a steward sees it: the example requests dropped in the inbox and filed, the 经信局's
    亩均 request approved, the approved shares built, the sharing statistics published."""
    import datetime as dt

    import yaml
    from dagster import AssetKey

    from assets.share import SHARE_KEY
    from exchange.service import Exchange
    from exchange.statistics import NAME as STATISTICS

    ex = Exchange(s.lake(), s.exchange_dir, s.sharing_endpoint)
    ex.inbox.mkdir(parents=True, exist_ok=True)
    today = dt.date.today()
    known = ex.ledger.states()
    for example in sorted((PROJECT_ROOT / "exchange" / "examples").glob("*.yaml")):
        if example.stem in known:
            continue
        doc = yaml.safe_load(example.read_text(encoding="utf-8"))
        doc["period"] = {"start": today.isoformat(), "end": (today + dt.timedelta(days=180)).isoformat()}
        (ex.inbox / example.name).write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), "utf-8")
    decision = {
        "request_id": "mujun-jingxinju",
        "decision": "approved",
        "approver": DEMO_STEWARD,
        "reason": "区经信局依《亩均效益综合评价办法》履职所需，准予共享（演示）",
    }
    runs = [defs.resolve_job_def("file_data_requests").execute_in_process(instance=dagster_instance)]
    if ex.ledger.states().get("mujun-jingxinju") and ex.state("mujun-jingxinju").status == "pending":
        runs.append(
            defs.resolve_job_def("decide_data_request").execute_in_process(
                instance=dagster_instance, run_config={"ops": {"decide": {"config": decision}}}
            )
        )
    due = sorted(r.id for r in ex.ledger.states().values() if r.status == "approved" and r.manifest is None)
    job = defs.resolve_implicit_global_asset_job_def()
    if due:
        dagster_instance.add_dynamic_partitions("data_requests", due)
    for rid in due:
        runs.append(
            job.execute_in_process(
                instance=dagster_instance, partition_key=rid, asset_selection=[SHARE_KEY], raise_on_error=False
            )
        )
    runs.append(
        job.execute_in_process(
            instance=dagster_instance,
            asset_selection=[AssetKey(["publish", STATISTICS]), AssetKey(["catalogue", "datasets"])],
            raise_on_error=False,
        )
    )
    from orchestration.lineage.emit import emit_run

    for run in runs:  # lineage for the exchange's runs too, as the lineage sensors do for the daemon's runs
        emit_run(dagster_instance, run.run_id, defs.resolve_asset_graph(), s)
    return all(run.success for run in runs)


def _exchange_section(s: Settings) -> str:
    from exchange.ledger import Ledger

    ledger = Ledger(s.exchange_dir / "ledger.jsonl")
    states = ledger.states()
    if not states:
        return "  exchange: no data request yet (drop a YAML request in " + str(s.exchange_dir / "inbox") + ")"
    verdict = ledger.verify()
    out = ["  exchange (交换区) — data requests, their shares and the ledger", ""]
    out.append(f"  {'request':<22}{_pad('申请方', 26)}{'grade':>6}  {'status':<10}{'rows':>8}  reason")
    for r in sorted(states.values(), key=lambda r: r.id):
        rows = sum(t["rows"] for t in r.manifest["tables"]) if r.manifest else 0
        out.append(
            f"  {r.id:<22}{_pad(r.request['consumer']['name'], 26)}{r.level or '-':>6}  {r.status:<10}{rows:>8,}  "
            f"{(r.reasons[-1] if r.reasons else '')[:60]}"
        )
    profiles = sorted((s.exchange_dir / "profiles").glob("*.share"))
    out += [
        "",
        f"  ledger:     {ledger.path} — {verdict.entries} entries, "
        + ("chain verifies" if verdict.ok else f"BROKEN: {verdict.problem}"),
        f"  profiles:   {', '.join(p.name for p in profiles) or 'none'} in {s.exchange_dir / 'profiles'} (hand each to its consumer)",
        f"  sharing:    make share-server  →  {s.sharing_endpoint}",
    ]
    return "\n".join(out)


def exchange_command(s: Settings, args) -> int:
    from exchange.requests import RequestError, read_file
    from exchange.service import Exchange

    ex = Exchange(s.lake(), s.exchange_dir, s.sharing_endpoint)
    try:
        if args.action == "file":
            state = ex.file(read_file(args.target), actor=args.who)
            print(f"request {state.id}: {state.level} {state.status} — {state.reasons[-1]}")
        elif args.action == "decide":
            state = ex.decide(args.target, args.decision, args.who, args.reason or "")
            print(f"request {state.id}: {state.status} by {state.decided_by}; pinned {state.pins}")
        elif args.action == "revoke":
            state = ex.revoke(args.target, args.who, args.reason or "")
            print(f"request {state.id}: revoked")
        elif args.action == "verify":
            verdict = ex.ledger.verify()
            print(
                f"ledger {ex.ledger.path}: {verdict.entries} entries, "
                + ("verifies" if verdict.ok else verdict.problem)
            )
            return 0 if verdict.ok else 2
        else:
            print(_exchange_section(s))
        return 0
    except (RequestError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3


def lineage(s: Settings, args) -> int:
    from orchestration.lineage.emit import http_transport, naming
    from orchestration.lineage.impact import LineageGraph
    from orchestration.lineage.transport import LakeFileTransport

    if args.action == "flush":
        http = http_transport(s)
        if http is None:
            print("OPENLINEAGE_URL is not set: nothing to flush")
            return 1
        report = http.flush()
        print(f"re-sent {report.resent}; {http.pending} still spooled" + (f" ({report.error})" if report.error else ""))
        return 0 if not http.pending else 1
    n = naming(s)

    def label(c) -> str:
        return f"{n.short(c[0], c[1])}.{c[2]}"

    ref = n.dataset(args.dataset.split("/"))
    graph = LineageGraph.from_events(LakeFileTransport(s.lake()).read_all())
    column = (ref.namespace, ref.name, args.column)
    if args.action == "upstream":
        print(f"where {label(column)} comes from:")
        for depth, c, how in graph.upstream(column):
            print(f"  {'  ' * depth}{'← ' if depth else ''}{label(c)}{f'  [{how}]' if how else ''}")
        return 0
    columns, tables = graph.downstream(column)
    print(f"what depends on {label(column)}:")
    for c, how in columns:
        print(f"  → {label(c)}  [{how}]")
    for t in tables:
        print(f"  → {n.short(*t)}  [whole table: no column lineage declared]")
    if not columns and not tables:
        print("  nothing downstream in the emitted lineage")
    return 0


def audit(s: Settings, action: str) -> int:
    log = AuditLog(s.audit_log)
    if action == "show":
        for e in log.entries():
            print(
                f"{e['seq']:>5} {e['at']} {e['actor']:<16} {e['action']:<12} {json.dumps(e['detail'], ensure_ascii=False)}"
            )
    verdict = log.verify()
    print(
        f"{s.audit_log}: {verdict.entries} entries, chain intact"
        if verdict.ok
        else f"{s.audit_log}: TAMPERED — {verdict.problem}"
    )
    return 0 if verdict.ok else 1


def keys_command(s: Settings, action: str) -> int:
    log = AuditLog(s.audit_log)
    ring = keys.rotate(log, s.key_file) if action == "rotate" else keys.load(log, s.key_file)
    print(f"{ring.source}: versions {sorted(ring.keys)}, current {ring.current}")
    if action == "rotate":
        print("re-run the std jobs to re-pseudonymise with the new version (older pseudonyms stay matchable)")
    return 0


def served(s: Settings, args) -> int:
    """Commands that hand data out: every one goes through the access rules."""
    lake = s.lake()
    try:
        who = access.Principal(args.who, args.role, args.department)
        if args.command == "reidentify":
            log = AuditLog(s.audit_log)
            found = access.reidentify(
                lake, who, keys.load(log, s.key_file), log, args.dataset, args.column, args.pseudonym, args.reason
            )
            print("\n".join(found) if found else "no match")
            return 0 if found else 1
        zone, name = args.table.split("/", 1)
        if args.command == "grade-override":
            from assets.catalogue_entries import column_entries
            from lakehouse.registry import registry

            reg = registry()
            entry = next((c for c in column_entries(reg, reg.dataset(name), zone) if c["column"] == args.column), None)
            if entry is None:
                raise ValueError(f"{name} has no column {args.column!r}")
            overrides.override(
                lake,
                AuditLog(s.audit_log),
                who,
                name,
                zone,
                args.column,
                args.level,
                entry["effective_grade"],
                args.reason,
            )
            print(
                f"{zone}/{name}.{args.column}: {entry['effective_grade']} → {args.level} (the catalogue applies it on its next run)"
            )
            return 0
        frame = access.read(lake, who, zone, name)
        frame.write_parquet(args.out)
        print(f"{args.out}: {frame.height} rows of {zone}/{name} for {who.name} ({who.role})")
        return 0
    except (access.AccessDenied, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shucang")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate the demo sources and run the whole pipeline")
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--keep", action="store_true", help="keep the existing lake and instance (re-collect)")
    sub.add_parser("summary", help="print what the lake holds")
    sub.add_parser("prepare-instance", help="create the project-local DAGSTER_HOME")
    lin = sub.add_parser("lineage", help="impact questions over the emitted OpenLineage events")
    lin.add_argument("action", choices=["upstream", "downstream", "flush"])
    lin.add_argument("dataset", nargs="?", help="asset key, e.g. raw/amr_registration or landing/amr_registration")
    lin.add_argument("column", nargs="?", help="column name as in that dataset, e.g. legal_rep_id_no")
    aud = sub.add_parser("audit", help="the hash-chained log of privileged operations")
    aud.add_argument("action", choices=["verify", "show"])
    key = sub.add_parser("keys", help="pseudonymisation keys (kept outside the repository and the lake)")
    key.add_argument("action", choices=["status", "rotate"])
    rid = sub.add_parser("reidentify", help="stewards only: the original values behind a pseudonym (audited)")
    rid.add_argument("dataset")
    rid.add_argument("column")
    rid.add_argument("pseudonym")
    rid.add_argument("--reason", required=True)
    gro = sub.add_parser("grade-override", help="stewards only: set a column's effective grade in a zone (audited)")
    gro.add_argument("table", help="zone/dataset, e.g. std/amr_registration")
    gro.add_argument("column")
    gro.add_argument("level", choices=["L1", "L2", "L3", "L4"])
    gro.add_argument("--reason", required=True)
    exp = sub.add_parser("export", help="write a table as Parquet, as the given role may read it")
    exp.add_argument("table", help="zone/name, e.g. std/tax_monthly")
    exp.add_argument("out")
    for p in (rid, exp, gro):
        p.add_argument("--as", dest="who", default=os.environ.get("USER", "unknown"), help="who is asking")
        p.add_argument("--role", default=os.environ.get("SHUCANG_ROLE", "consumer"), choices=access.ROLES)
        p.add_argument("--department", default=os.environ.get("SHUCANG_DEPARTMENT"))
    ex = sub.add_parser("exchange", help="data requests, shares and the exchange ledger")
    ex.add_argument("action", choices=["status", "file", "decide", "revoke", "verify"])
    ex.add_argument("target", nargs="?", help="a request file (file) or a request id (decide, revoke)")
    ex.add_argument("decision", nargs="?", choices=["approved", "rejected"])
    ex.add_argument("--reason")
    ex.add_argument("--as", dest="who", default=os.environ.get("USER", "unknown"), help="who acts")
    args = parser.parse_args(argv)
    s = settings()
    if args.command == "exchange":
        if args.action in ("file", "decide", "revoke") and not args.target:
            parser.error(f"exchange {args.action} needs a target")
        if args.action == "decide" and not args.decision:
            parser.error("exchange decide ID approved|rejected --reason …")
        return exchange_command(s, args)
    if args.command in ("reidentify", "export", "grade-override"):
        return served(s, args)
    if args.command == "audit":
        return audit(s, args.action)
    if args.command == "keys":
        return keys_command(s, args.action)
    if args.command == "demo":
        return demo(s, args.scale, fresh=not args.keep)
    if args.command == "lineage":
        if args.action != "flush" and not (args.dataset and args.column):
            parser.error("lineage upstream|downstream needs DATASET and COLUMN")
        return lineage(s, args)
    if args.command == "summary":
        print(summary(s))
        return 0
    instance.prepare(s.dagster_home)
    print(s.dagster_home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
