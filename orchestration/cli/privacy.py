"""Privileged operations, each audited: the audit log, pseudonymisation keys, re-identification, exports
by role, and stewards' grade overrides."""

from __future__ import annotations

import json
import sys

from assets.own_tables import report_write
from lakehouse.tables import GRADE_OVERRIDES
from orchestration.settings import Settings
from privacy import access, keys, overrides
from privacy.audit import AuditLog


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
            done = overrides.override(
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
            reported = report_write(
                s,
                GRADE_OVERRIDES,
                done["delta_version"],
                dataset=f"{zone}/{name}",
                column=args.column,
                level=args.level,
            )
            if reported:
                print(f"reported to Dagster as a materialisation of {GRADE_OVERRIDES.label}")
            return 0
        frame = access.read(lake, who, zone, name)
        frame.write_parquet(args.out)
        print(f"{args.out}: {frame.height} rows of {zone}/{name} for {who.name} ({who.role})")
        return 0
    except (access.AccessDenied, ValueError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
