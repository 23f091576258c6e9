"""An append-only, keyed hash chain of privileged operations: key creation, use and rotation,
re-identification, grade overrides, policy changes (and, as ``exchange.ledger.Ledger``, the exchange).

Each line is a JSON object with the previous entry's hash in ``prev`` and its own in ``hash``: an
HMAC-SHA256, under the chain key, of the canonical JSON of the entry without ``hash``. ``verify``
recomputes the chain: an edited, inserted, reordered or deleted line breaks it, and says where. The key is
a secret held outside the data folder (``SHUCANG_CHAIN_KEY_FILE``, by default beside the pseudonym keys,
created owner-only on first use): whoever can write the log but not read the key cannot recompute the chain
after changing it, nor append a line that verifies. Deleting the tail is caught with the entry count and
head hash kept beside the log (``<log>.head``, itself keyed), which each append rewrites, and a second copy
kept beside the chain key (outside the data folder), so that cutting the tail and restoring an older head
file is caught too; a log can also anchor its head in another log (``anchor``: the exchange ledger's
checkpoints in the privileged audit log).
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import hmac
import json
import os
import pwd
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

GENESIS = "0" * 64
MAX_ENTRY_BYTES = 1 << 20  # no single entry may grow the log by more than this
ENV_CHAIN_KEY = "SHUCANG_CHAIN_KEY_FILE"


class EntryTooLarge(ValueError):
    """An entry larger than ``MAX_ENTRY_BYTES``: refused, nothing appended."""


def default_actor() -> str:
    """Who acts when a caller names no one: ``SHUCANG_ACTOR`` (set by a service for its callers), else the
    operating-system account and host — from the account database, not from ``$USER``, which a Dagster
    code server or a cron job may not have."""
    if os.environ.get("SHUCANG_ACTOR"):
        return os.environ["SHUCANG_ACTOR"]
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid {os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def owner_only(folder: Path) -> Path:
    """``folder``, created if needed, readable by its owner only (0700), whatever it was before."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        folder.chmod(0o700)
    return folder


def chain_key_file() -> Path:
    if os.environ.get(ENV_CHAIN_KEY):
        return Path(os.environ[ENV_CHAIN_KEY])
    if os.environ.get("SHUCANG_KEY_FILE"):  # beside the pseudonym keys (kept outside the data folder)
        return Path(os.environ["SHUCANG_KEY_FILE"]).with_name("chain.key")
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "shucang" / "chain.key"


def load_chain_key(path: Path | None = None) -> bytes:
    """The chain key (32 random bytes, hex in an owner-only file), created on first use."""
    path = Path(path or chain_key_file())
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            return load_chain_key(path)
        with os.fdopen(fd, "w", encoding="ascii") as fh:
            fh.write(secrets.token_hex(32) + "\n")
        return load_chain_key(path)
    if len(text) < 64 or any(ch not in "0123456789abcdef" for ch in text):
        raise ValueError(f"{path}: not a chain key (64 lower-case hex characters)")
    return bytes.fromhex(text)


def _digest(entry: dict, key: bytes) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hmac.new(key, json.dumps(body, sort_keys=True, ensure_ascii=False).encode(), hashlib.sha256).hexdigest()


def _head_mac(key: bytes, entries: int, head_hash: str) -> str:
    return hmac.new(key, f"head:{entries}:{head_hash}".encode(), hashlib.sha256).hexdigest()


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
    def __init__(self, path: Path, key: bytes | None = None, anchor: AuditLog | None = None):
        self.path = Path(path)
        self.head = self.path.with_name(self.path.name + ".head")
        self._key = key
        self.anchor = anchor  # another log that receives this one's checkpoints

    @property
    def head_copy(self) -> Path:
        """A second copy of the head, beside the chain key (outside the data folder): whoever can rewrite the
        log and its head file cannot silently roll this one back too."""
        digest = hashlib.sha256(str(self.path.resolve()).encode()).hexdigest()[:24]
        return chain_key_file().parent / "heads" / f"{digest}.head"

    @property
    def key(self) -> bytes:
        if self._key is None:
            self._key = load_chain_key()
        return self._key

    def digest(self, entry: dict) -> str:
        return _digest(entry, self.key)

    def append(self, action: str, actor: str | None = None, **detail) -> dict:
        """Append one entry (under an exclusive lock, so concurrent writers still form one chain)."""
        owner_only(self.path.parent)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "a+", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            last = _last_entry(fh)
            prev = last["hash"] if last else GENESIS
            entry = {
                "seq": last["seq"] + 1 if last else 1,
                "at": dt.datetime.now(dt.UTC).isoformat(),
                "actor": actor or default_actor(),
                "action": action,
                "detail": detail,
                "prev": prev,
            }
            entry["hash"] = self.digest(entry)
            line = json.dumps(entry, ensure_ascii=False, sort_keys=True) + "\n"
            if len(line.encode("utf-8")) > MAX_ENTRY_BYTES:
                raise EntryTooLarge(
                    f"{self.path.name}: a {action} entry of {len(line.encode('utf-8'))} bytes; at most {MAX_ENTRY_BYTES}"
                )
            fh.write(line)
            fh.flush()
            os.fsync(fh.fileno())
            head = {
                "entries": entry["seq"],
                "hash": entry["hash"],
                "mac": _head_mac(self.key, entry["seq"], entry["hash"]),
            }
            copy = self.head_copy
            owner_only(copy.parent)
            for target in (self.head, copy):
                tmp = target.with_name(target.name + ".tmp")
                tmp.write_text(json.dumps(head))
                os.chmod(tmp, 0o600)
                os.replace(tmp, target)
        return entry

    def checkpoint(self) -> None:
        """Anchor this log's head in ``anchor`` (entry count and hash, as of now)."""
        if self.anchor is None or not self.head.exists():
            return
        head = json.loads(self.head.read_text())
        self.anchor.append("log.checkpoint", log=str(self.path), entries=head["entries"], hash=head["hash"])

    def entries(self) -> list[dict]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def check_line(self, n: int, line: str, prev: str) -> tuple[dict | None, str | None]:
        """Line ``n`` parsed and verified against the previous entry's hash; (entry, None) or (None, problem)."""
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            return None, f"line {n}: not JSON"
        if not isinstance(entry, dict) or entry.get("seq") != n:
            return (
                None,
                f"line {n}: sequence {entry.get('seq') if isinstance(entry, dict) else '?'} where {n} was expected",
            )
        if entry.get("prev") != prev:
            return None, f"line {n}: does not follow line {n - 1} (an entry was removed or moved)"
        if not hmac.compare_digest(self.digest(entry), str(entry.get("hash"))):
            return None, f"line {n}: content does not match its keyed hash (edited, or not written with the chain key)"
        return entry, None

    def verify(self) -> Verdict:
        return self.checked()[0]

    def checked(self) -> tuple[Verdict, list[dict]]:
        """The verdict on the whole log and its entries, from one read of it (the entries read up to the
        first that does not verify)."""
        prev, n, entries = GENESIS, 0, []
        if not self.path.exists():
            return Verdict(not self.head.exists(), 0, None if not self.head.exists() else "log missing"), entries
        hashes = {}
        for n, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            entry, problem = self.check_line(n, line, prev)
            if problem:
                return Verdict(False, n - 1, problem), entries
            prev = hashes[n] = entry["hash"]
            entries.append(entry)
        if not self.head.exists():
            return Verdict(False, n, f"the head file {self.head.name} is missing"), entries
        try:
            head = json.loads(self.head.read_text())
            head_ok = hmac.compare_digest(_head_mac(self.key, head["entries"], head["hash"]), head.get("mac", ""))
        except (ValueError, KeyError, TypeError):
            head_ok = False
        if not head_ok:
            return Verdict(
                False, n, f"the head file {self.head.name} is not one this log wrote (edited or forged)"
            ), entries
        if head["entries"] != n or head["hash"] != prev:
            return Verdict(
                False, n, f"the log ends at entry {n} but {head['entries']} were written (truncated)"
            ), entries
        if self.head_copy.exists():
            try:
                copy = json.loads(self.head_copy.read_text())
            except ValueError:
                copy = {}
            if (copy.get("entries"), copy.get("hash")) != (head["entries"], head["hash"]):
                return Verdict(
                    False,
                    n,
                    f"the head beside the log (entry {head['entries']}) is not the one kept with the chain key "
                    f"(entry {copy.get('entries')}): the log was cut back and an older head restored",
                ), entries
        if self.anchor is not None:
            marks = [
                e["detail"]
                for e in self.anchor.entries()
                if e.get("action") == "log.checkpoint" and e.get("detail", {}).get("log") == str(self.path)
            ]
            if marks and hashes.get(marks[-1]["entries"]) != marks[-1]["hash"]:
                return Verdict(
                    False,
                    n,
                    f"the log does not hold entry {marks[-1]['entries']} as checkpointed in {self.anchor.path.name} "
                    "(cut back and its head file restored)",
                ), entries
        return Verdict(True, n), entries
