"""The exchange ledger: every request, decision, share build, token issue, read, revocation and expiry,
appended to a hash-chained log (the same chain as the privileged-operations audit log: an edited, moved or
deleted entry, or a cut-off tail, fails ``verify`` and says where).

The ledger is the system of record of the exchange: the state of every request is a replay of its entries,
so what the sharing service allows is exactly what the ledger says.
"""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from pathlib import Path

from privacy.audit import GENESIS, AuditLog

ACTIONS = (
    "request.filed",
    "request.decided",
    "share.repinned",
    "share.built",
    "token.issued",
    "share.read",
    "share.denied",
    "share.revoked",
    "share.expired",
    "share.purged",
)


# What changes who may read what: each is anchored in the privileged audit log when the ledger has one.
STATE_CHANGES = ("request.filed", "request.decided", "token.issued", "share.revoked", "share.expired")


class LedgerBroken(RuntimeError):
    """The ledger does not verify: nothing may be decided or served from it."""


class Ledger(AuditLog):
    def record(self, action: str, actor: str, request_id: str, **detail) -> dict:
        if action not in ACTIONS:
            raise ValueError(f"unknown ledger action {action!r}; actions are {ACTIONS}")
        entry = self.append(action, actor=actor, request_id=request_id, **detail)
        if action in STATE_CHANGES:
            self.checkpoint()
        return entry

    def states(self) -> dict[str, RequestState]:
        verdict, entries = self.checked()  # one read: verified, then replayed
        if not verdict.ok:
            raise LedgerBroken(f"{self.path}: {verdict.problem}")
        return replay(entries)


class CachedLedger(Ledger):
    """A ledger whose replayed state follows the file by reading only what was appended since the last call
    (the sharing service asks on every call, and appends a read to it on every query). A file that shrank
    or was replaced is replayed from the start."""

    def __init__(self, path: Path, key: bytes | None = None, anchor: AuditLog | None = None):
        super().__init__(path, key, anchor)
        self._reset(None)

    def _reset(self, inode: int | None) -> None:
        self._offset, self._inode, self._seq, self._prev = 0, inode, 0, GENESIS
        self._states: dict[str, RequestState] = {}
        self._tokens: dict[str, str] = {}  # token SHA-256 → request id

    def states(self) -> dict[str, RequestState]:
        """Every line is verified (keyed chain) before it is acted on; a line that does not verify stops
        everything (LedgerBroken) until the ledger is repaired."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            if self._offset:  # it had entries: a deleted ledger is not an empty one
                raise LedgerBroken(f"{self.path} disappeared") from None
            return self._states
        if st.st_ino != self._inode or st.st_size < self._offset:
            if self._offset:
                raise LedgerBroken(f"{self.path} was replaced or cut back (now {st.st_size} bytes)")
            self._reset(st.st_ino)
        if st.st_size > self._offset:
            with self.path.open("rb") as fh:
                fh.seek(self._offset)
                tail = fh.read(st.st_size - self._offset)
            complete = tail[: tail.rfind(b"\n") + 1]  # a line being written is read next time
            entries = []
            for line in complete.decode("utf-8", "replace").splitlines():
                if not line.strip():
                    continue
                entry, problem = self.check_line(self._seq + 1, line, self._prev)
                if problem:
                    raise LedgerBroken(f"{self.path}: {problem}")
                entries.append(entry)
                self._seq, self._prev = entry["seq"], entry["hash"]
            replay(entries, self._states)
            self._tokens.update(
                (e["detail"]["token_sha256"], e["detail"]["request_id"])
                for e in entries
                if e["action"] == "token.issued"
            )
            self._offset += len(complete)
        return self._states

    def holder(self, token_sha256: str) -> RequestState | None:
        """The request a bearer token was issued for (a lookup, not a scan: the service asks on every call)."""
        states = self.states()
        rid = self._tokens.get(token_sha256)
        return states.get(rid) if rid else None


@dataclass
class RequestState:
    id: str
    request: dict
    level: str | None
    status: str  # pending | approved | rejected | revoked | expired
    filed_at: str
    reasons: list[str] = field(default_factory=list)
    decided_by: str | None = None
    decided_at: str | None = None
    pins: dict[str, int] = field(default_factory=dict)  # dataset → publish version the share is built from
    manifest: dict | None = None  # the last share build
    tokens: set[str] = field(default_factory=set)  # sha256 of the bearer tokens issued
    reads: int = 0
    rows_read: int = 0
    purged: bool = False  # the share's files were deleted after it ended

    @property
    def expires_at(self) -> dt.datetime:
        end = dt.date.fromisoformat(self.request["period"]["end"])
        tz = dt.timezone(dt.timedelta(hours=8))
        return dt.datetime.combine(end + dt.timedelta(days=1), dt.time(), tz).astimezone(dt.UTC)

    @property
    def starts_at(self) -> dt.datetime:
        start = dt.date.fromisoformat(self.request["period"]["start"])
        return dt.datetime.combine(start, dt.time(), dt.timezone(dt.timedelta(hours=8))).astimezone(dt.UTC)

    def active(self, now: dt.datetime | None = None) -> bool:
        """Shared right now: approved, built, within its period, neither revoked nor expired."""
        now = now or dt.datetime.now(dt.UTC)
        return self.status == "approved" and self.manifest is not None and self.starts_at <= now < self.expires_at

    def why_not(self, now: dt.datetime | None = None) -> str:
        now = now or dt.datetime.now(dt.UTC)
        if self.status in ("revoked", "rejected", "pending", "expired"):
            return f"request {self.id} is {self.status}" + (f": {self.reasons[-1]}" if self.reasons else "")
        if self.manifest is None:
            return f"request {self.id} is approved but its share has not been built yet"
        if now >= self.expires_at:
            return f"request {self.id} expired at {self.expires_at.isoformat()}"
        if now < self.starts_at:
            return f"request {self.id} starts at {self.starts_at.isoformat()}"
        return "active"


def replay(entries: list[dict], states: dict[str, RequestState] | None = None) -> dict[str, RequestState]:
    """Request states from ledger entries (continuing ``states`` when given: entries appended since)."""
    states = {} if states is None else states
    for e in entries:
        d = e.get("detail", {})
        rid = d.get("request_id")
        if rid is None:
            continue
        action = e["action"]
        if action == "request.filed":
            states[rid] = RequestState(
                rid, d["request"], d.get("level"), "pending", e["at"], list(d.get("reasons", []))
            )
            continue
        s = states.get(rid)
        if s is None:
            continue
        if action == "request.decided":
            s.status = d["decision"]
            s.decided_by, s.decided_at = e["actor"], e["at"]
            reason = d.get("reason") or d["decision"]
            if not s.reasons or s.reasons[-1] != reason:
                s.reasons.append(reason)
            s.pins = {k: int(v) for k, v in (d.get("pins") or {}).items()}
        elif action == "share.built":
            s.manifest = d["manifest"]
        elif action == "share.repinned":  # the share follows new publish versions within its approved scope
            s.pins = {k: int(v) for k, v in (d.get("pins") or {}).items()}
        elif action == "token.issued":
            s.tokens.add(d["token_sha256"])
        elif action == "share.read":
            s.reads += 1
            s.rows_read += int(d.get("rows", 0))
        elif action == "share.purged":
            s.purged = True
        elif action in ("share.revoked", "share.expired"):
            s.status = action.split(".")[1]
            s.reasons.append(d.get("reason") or s.status)
    return states
