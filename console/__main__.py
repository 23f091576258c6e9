"""``python -m console``: serve the steward console, or manage who signs in to it.

serve [--host 127.0.0.1] [--port 3100]     the console (Dagster UI linked at SHUCANG_DAGSTER_URL)
passwd ID                                  set a principal's console password (asked twice, or
                                           SHUCANG_CONSOLE_PASSWORD for scripts)
modeler-add ID --name N --department D     register a dbt modeler
demo-users                                 the demo's steward, modeler and consumers get random
                                           passwords, printed once (after `make demo`)
assessment [--year Y] [--out DIR]          自评: the data section of the annual self-assessment, HTML and
                                           PDF with charts (console/assessment.py)
"""

from __future__ import annotations

import argparse
import getpass
import os
import secrets
import sys
from pathlib import Path


def _assessment(year: int, out: Path | None) -> int:
    from console import assessment
    from orchestration.settings import settings

    s = settings()
    try:
        report = assessment.gather(s.lake(), year)
        page, document = assessment.write(report, out or s.data_dir / "reports")
    except assessment.AssessmentError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
    print(f"自评 {year}: {len(report.sections)} sections\n  HTML {page}\n  PDF  {document}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the console")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=int(os.environ.get("SHUCANG_CONSOLE_PORT", "3100")))
    pw = sub.add_parser("passwd", help="set a principal's console password")
    pw.add_argument("id")
    mod = sub.add_parser("modeler-add", help="register a dbt modeler")
    mod.add_argument("id")
    mod.add_argument("--name", required=True)
    mod.add_argument("--department", required=True)
    sub.add_parser("demo-users", help="random console passwords for the demo's principals, printed once")
    report = sub.add_parser("assessment", help="自评: the data section of the annual self-assessment (HTML, PDF)")
    report.add_argument("--year", type=int, default=2023)
    report.add_argument("--out", type=Path, default=None, help="default: <data dir>/reports")
    args = parser.parse_args(argv)
    if args.command == "assessment":
        return _assessment(args.year, args.out)

    from console.data import from_settings
    from exchange.identity import IdentityError

    console = from_settings()
    registry = console.exchange.principals
    try:
        if args.command == "serve":
            import uvicorn

            from console.app import app

            if not any(p.password_scrypt for p in registry.all()):
                print(
                    "nobody can sign in yet: `python -m console demo-users` (after make demo) or `python -m console passwd ID`"
                )
            dagster = os.environ.get("SHUCANG_DAGSTER_URL", "http://127.0.0.1:3000")
            print(f"steward console on http://{args.host}:{args.port} (Dagster UI linked at {dagster})")
            uvicorn.run(app(console, dagster), host=args.host, port=args.port, log_level="warning", server_header=False)
        elif args.command == "passwd":
            password = os.environ.get("SHUCANG_CONSOLE_PASSWORD") or getpass.getpass(
                f"console password for {args.id}: "
            )
            if "SHUCANG_CONSOLE_PASSWORD" not in os.environ and getpass.getpass("again: ") != password:
                print("refused: the two passwords differ", file=sys.stderr)
                return 3
            p = registry.set_password(args.id, password)
            print(f"{p.label}: console password set")
        elif args.command == "modeler-add":
            p = registry.add_modeler(args.id, args.name, args.department)
            print(
                f"{p.label} registered ({p.name}, {p.department}); set its password with: python -m console passwd {p.id}"
            )
        elif args.command == "demo-users":
            known = {p.id for p in registry.all()}
            if not known:
                print("refused: no principals yet — run `make demo` first", file=sys.stderr)
                return 3
            if "demo-modeler" not in known:
                registry.add_modeler("demo-modeler", "演示模型开发者", "区大数据中心")
            print("console passwords (shown only now; `python -m console passwd ID` sets another):")
            for p in registry.all():
                if p.password_scrypt or not p.active:
                    continue
                password = secrets.token_urlsafe(12)
                registry.set_password(p.id, password)
                print(f"  {p.role:<9} {p.id:<20} {password}   {p.name}")
        return 0
    except IdentityError as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
