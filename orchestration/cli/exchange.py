"""``exchange``: file a request, decide it, revoke a share, verify the ledger, or show the exchange."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from orchestration.cli.report import exchange_section
from orchestration.settings import Settings
from privacy.audit import chain_key_file


def steward_key_file(steward_id: str, given: str | None = None) -> Path:
    """A steward's private key: ``--key-file``, else ``stewards/<id>.key`` beside the chain key (outside the
    data folder)."""
    return Path(given) if given else chain_key_file().with_name("stewards") / f"{steward_id}.key"


def exchange_command(s: Settings, args) -> int:
    from exchange.identity import IdentityError, sign
    from exchange.ledger import LedgerBroken
    from exchange.requests import RequestError, read_file
    from exchange.service import Exchange

    ex = Exchange(s.lake(), s.exchange_dir, s.sharing_endpoint, audit_log=s.audit_log)
    reg = ex.principals
    try:
        if args.action == "file":
            state = ex.file(read_file(args.target, ex.consumer), actor=f"cli:{os.environ.get('USER', 'unknown')}")
            print(f"request {state.id}: {state.level} {state.status} — {state.reasons[-1]}")
        elif args.action in ("sign", "decide", "revoke"):
            what = "revoke" if args.action == "revoke" or args.decision == "revoke" else "decide"
            extra = {"decision": args.decision} if what == "decide" else {}
            signed = sign(
                steward_key_file(args.who, args.key_file), args.who, what, args.target, args.reason or "", **extra
            )
            if args.action == "sign":
                print(signed)
            elif what == "decide":
                state = ex.decide(signed)
                print(f"request {state.id}: {state.status} by {state.decided_by}; pinned {state.pins}")
            else:
                state = ex.revoke(signed)
                print(f"request {state.id}: revoked")
        elif args.action == "consumer-add":
            p, key = reg.add_consumer(
                args.target, args.name or "", args.department or "", args.kind, named_firms=args.named_firms
            )
            print(f"{p.label} registered ({p.name}, {p.department}, {p.kind}). Its API key — shown only now:")
            print(key)
        elif args.action == "steward-add":
            key_file = steward_key_file(args.target, args.key_file)
            p = reg.add_steward(args.target, args.name or "", args.department or "", key_file)
            print(f"{p.label} registered ({p.name}, {p.department}); private key in {key_file} (keep it to yourself)")
        elif args.action == "key-rotate":
            print(reg.rotate_key(args.target))
        elif args.action in ("disable", "enable"):
            p = reg.set_active(args.target, args.action == "enable")
            print(f"{p.label}: {'active' if p.active else 'disabled'}")
        elif args.action == "principals":
            for p in reg.all():
                print(
                    f"{p.label:<32} {p.name} · {p.department}{' · ' + p.kind if p.kind else ''}"
                    f"{'' if p.active else ' · DISABLED'}"
                )
        elif args.action == "verify":
            verdict = ex.ledger.verify()
            print(
                f"ledger {ex.ledger.path}: {verdict.entries} entries, "
                + ("verifies" if verdict.ok else verdict.problem)
            )
            return 0 if verdict.ok else 2
        else:
            print(exchange_section(s))
        return 0
    except (RequestError, IdentityError, LedgerBroken, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
