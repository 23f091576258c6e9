"""An append-only, hash-chained log of privileged operations: key creation, use and rotation,
re-identification, grade overrides, policy changes.

Each line is a JSON object with the previous entry's hash in ``prev`` and its own in ``hash`` (SHA-256 over
the canonical JSON of the entry without ``hash``). ``verify`` recomputes the chain: an edited, inserted,
reordered or deleted line breaks it, and says where. Deleting the tail is caught with the entry count
and head hash kept beside the log (``<log>.head``), which each append rewrites.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
MAX_ENTRY_BYTES = 1 << 20  # no single entry may grow the log by more than this


class EntryTooLarge(ValueError):
    """An entry larger than ``MAX_ENTRY_BYTES``: refused, nothing appended."""


def _digest(entry: dict) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _last_entry(fh, chunk: int = 65536) -> dict | None:
    """The last entry of an open log, read from its end (appends stay cheap however long the log grows)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return None
    raw = fh.buffer if hasattr(fh, "buffer") else fh
    start, tail = end, b""
    while start > 0:
        start = max(0, start - chunk)
        raw.seek(start)
        tail = raw.read(end - start)
        lines = [line for line in tail.splitlines() if line.strip()]
        if len(lines) >= 2 or start == 0:
            return json.loads(lines[-1]) if lines else None
    return None


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    problem: str | None = None


class AuditLog:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.head = self.path.with_name(self.path.name + ".head")

    def append(self, action: str, actor: str | None = None, **detail) -> dict:
        """Append one entry (under an exclusive lock, so concurrent writers still form one chain)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            last = _last_entry(fh)
            prev = last["hash"] if last else GENESIS
            entry = {
                "seq": last["seq"] + 1 if last else 1,
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "actor": actor or os.environ.get("SHUCANG_ACTOR") or os.environ.get("USER", "unknown"),
                "action": action,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = _digest(entry)
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
            if len(line.encode("utf-8")) > MAX_ENTRY_BYTES:
                raise EntryTooLarge(
                    f"{self.path.name}: a {action} entry of {len(line.encode('utf-8'))} bytes; at most {MAX_ENTRY_BYTES}"
                )
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            self.head.write_text(json.dumps({"entries": entry["seq"], "hash": entry["hash"]}))
        return entry

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def verify(self) -> Verdict:
        prev, n = GENESIS, 0
        if not self.path.exists():
            return Verdict(not self.head.exists(), 0, None if not self.head.exists() else "log missing")
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            try:
                entry = json.loads(line)
            except json.JSONDecodeError:
                return Verdict(False, n - 1, f"line {n}: not JSON")
            if entry.get("seq") != n:
                return Verdict(False, n - 1, f"line {n}: sequence {entry.get('seq')} where {n} was expected")
            if entry.get("prev") != prev:
                return Verdict(False, n - 1, f"line {n}: does not follow line {n - 1} (an entry was removed or moved)")
            if _digest(entry) != entry.get("hash"):
                return Verdict(False, n - 1, f"line {n}: content does not match its hash (edited)")
            prev = entry["hash"]
        if self.head.exists():
            head = json.loads(self.head.read_text())
            if head["entries"] != n or head["hash"] != prev:
                return Verdict(False, n, f"the log ends at entry {n} but {head['entries']} were written (truncated)")
        return Verdict(True, n)
