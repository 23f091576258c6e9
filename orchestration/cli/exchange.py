"""``exchange``: file a request, decide it, revoke a share, verify the ledger, or show the exchange."""

from __future__ import annotations

import sys

from orchestration.cli.report import exchange_section
from orchestration.settings import Settings


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
            print(exchange_section(s))
        return 0
    except (RequestError, ValueError, KeyError, FileNotFoundError) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return 3
