"""The command line's parser and dispatch; each command group lives in its own module."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from orchestration import instance
from orchestration.cli import backfill, demo, exchange, lineage, models, privacy, report
from orchestration.settings import PROJECT_ROOT, settings
from privacy import access


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="shucang")
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="generate the demo sources and run the whole pipeline")
    d.add_argument("--scale", type=float, default=1.0)
    d.add_argument("--keep", action="store_true", help="keep the existing lake and instance (re-collect)")
    d.add_argument(
        "--sources",
        choices=["files", "live"],
        default="files",
        help="live: load the databases, interface and broker on this machine and collect from them (data-live/)",
    )
    sub.add_parser("summary", help="print what the lake holds")
    bf = sub.add_parser("backfill", help="rebuild std and the models for a range of months (YYYY-MM)")
    bf.add_argument("start", help="first month, e.g. 2023-01")
    bf.add_argument("end", help="last month, e.g. 2023-03")
    mo = sub.add_parser(
        "models", help="rebuild the dbt models and publish them (model_all) on SHUCANG_DBT_TARGET (local | sail)"
    )
    mo.add_argument("--full-refresh", action="store_true", help="every period of the incremental models")
    sub.add_parser("prepare-instance", help="create the project-local DAGSTER_HOME")
    upp = sub.add_parser("up", help="the deployment: webserver and daemon on a PostgreSQL instance (make up)")
    upp.add_argument("--port", type=int, default=int(os.environ.get("DAGSTER_UI_PORT", 3000)))
    upp.add_argument(
        "--executor",
        choices=["in_process", "celery"],
        default=os.environ.get("SHUCANG_EXECUTOR") or "in_process",
        help="celery: the steps run on Celery workers (RabbitMQ broker, Redis results), started here",
    )
    upp.add_argument("--workers", type=int, default=2, help="Celery workers to start (--executor celery)")
    sub.add_parser("down", help="stop what `up` started (make down)")
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
    ex = sub.add_parser(
        "exchange",
        help="data requests, shares, the exchange ledger and who is who (consumers, stewards)",
        description="file REQUEST.yaml · sign ID approved|rejected|revoke --reason R --as STEWARD (prints a "
        "signed decision for the launchpad) · decide ID approved|rejected --reason R --as STEWARD · "
        "revoke ID --reason R --as STEWARD · verify · status · consumer-add ID --name N --department D "
        "--kind K (prints its API key once) · steward-add ID --name N --department D · key-rotate ID · "
        "disable ID · enable ID · principals",
    )
    ex.add_argument(
        "action",
        choices=[
            "status", "file", "sign", "decide", "revoke", "verify",
            "consumer-add", "steward-add", "key-rotate", "disable", "enable", "principals",
        ],
    )  # fmt: skip
    ex.add_argument("target", nargs="?", help="a request file (file), a request id, or a principal id")
    ex.add_argument("decision", nargs="?", choices=["approved", "rejected", "revoke"])
    ex.add_argument("--reason")
    ex.add_argument("--as", dest="who", help="the steward who signs (sign, decide, revoke)")
    ex.add_argument("--key-file", help="the steward's private key (default: stewards/<id>.key beside the chain key)")
    ex.add_argument("--name")
    ex.add_argument("--department")
    ex.add_argument("--kind", default="department", help="a consumer's kind: department | enterprise")
    ex.add_argument(
        "--named-firms", action="store_true", help="consumer-add: its legal basis covers data about named firms"
    )
    args = parser.parse_args(argv)
    if args.command == "demo" and args.sources == "live":
        demo.live_environment(os.environ)
    s = settings()
    if args.command == "exchange":
        if args.action not in ("status", "verify", "principals") and not args.target:
            parser.error(f"exchange {args.action} needs a target")
        if args.action in ("sign", "decide") and not args.decision:
            parser.error(f"exchange {args.action} ID approved|rejected --reason … --as STEWARD")
        if args.action in ("sign", "decide", "revoke") and not args.who:
            parser.error(f"exchange {args.action}: --as STEWARD (the steward whose key signs)")
        return exchange.exchange_command(s, args)
    if args.command in ("reidentify", "export", "grade-override"):
        return privacy.served(s, args)
    if args.command == "audit":
        return privacy.audit(s, args.action)
    if args.command == "keys":
        return privacy.keys_command(s, args.action)
    if args.command in ("up", "down"):
        from orchestration.instance import deployment

        home = Path(os.environ.get("SHUCANG_DEPLOY_HOME", PROJECT_ROOT / ".dagster_home_pg"))
        if args.command == "down":
            print(f"stopped: {', '.join(deployment.down(home)) or 'nothing was running'}")
            return 0
        pids = deployment.up(home, args.port, executor=args.executor, workers=args.workers)
        pg = deployment.pg_settings()
        workers = [f"{name} (pid {pid})" for name, pid in pids.items() if name.startswith("worker")]
        print(
            f"Dagster on PostgreSQL {pg['DAGSTER_PG_HOST']}:{pg['DAGSTER_PG_PORT']}/{pg['DAGSTER_PG_DB']} "
            f"(DAGSTER_HOME {home}): webserver http://127.0.0.1:{args.port} (pid {pids['webserver']}), "
            f"daemon (pid {pids['daemon']})"
            + (f", Celery workers {', '.join(workers)}" if workers else "")
            + f"; logs in {home / 'run'}; `make down` stops them"
        )
        return 0
    if args.command == "demo":
        return demo.demo(s, args.scale, fresh=not args.keep, sources=args.sources)
    if args.command == "lineage":
        if args.action != "flush" and not (args.dataset and args.column):
            parser.error("lineage upstream|downstream needs DATASET and COLUMN")
        return lineage.lineage(s, args)
    if args.command == "summary":
        print(report.summary(s))
        return 0
    if args.command == "backfill":
        return backfill.backfill(s, args.start, args.end)
    if args.command == "models":
        return models.models(s, args.full_refresh)
    instance.prepare(s.dagster_home)
    print(s.dagster_home)
    return 0
