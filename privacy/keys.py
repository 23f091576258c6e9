"""Pseudonymisation keys: versioned, kept outside the repository and the lake.

Where they come from, in order: ``SHUCANG_PSEUDONYM_KEYS`` (JSON ``{"current": 2, "keys": {"1": "<hex>",
…}}``, for deployments whose secret store injects it), else the key file ``SHUCANG_KEY_FILE`` (default
``~/.config/shucang/pseudonym_keys.json``), created with a fresh random key on first use, mode 0600.
Rotation adds a version and makes it current; earlier versions stay so that earlier pseudonyms can still be
matched. Every creation, rotation and use is written to the audit log.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from privacy.audit import AuditLog

ENV_KEYS = "SHUCANG_PSEUDONYM_KEYS"
ENV_FILE = "SHUCANG_KEY_FILE"


def default_key_file() -> Path:
    if os.environ.get(ENV_FILE):
        return Path(os.environ[ENV_FILE])
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "shucang" / "pseudonym_keys.json"


@dataclass(frozen=True)
class KeyRing:
    current: int
    keys: dict[int, str]  # version → key (64 hex characters: 256 bits)
    source: str

    def key(self, version: int | None = None) -> tuple[int, str]:
        v = self.current if version is None else version
        if v not in self.keys:
            raise KeyError(f"pseudonymisation key version {v} is not in {self.source} (versions {sorted(self.keys)})")
        return v, self.keys[v]


def _parse(text: str, source: str) -> KeyRing:
    try:
        data = json.loads(text)
        keys = {int(v): k for v, k in data["keys"].items()}
        ring = KeyRing(int(data["current"]), keys, source)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"{source}: not a key ring ({exc}); expected {{'current': n, 'keys': {{n: hex}}}}") from None
    for v, k in keys.items():
        if len(k) < 64 or any(ch not in "0123456789abcdef" for ch in k):
            raise ValueError(f"{source}: key version {v} is not at least 64 lower-case hex characters")
    ring.key()  # the current version exists
    return ring


def _write(path: Path, ring: KeyRing) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"current": ring.current, "keys": {str(v): k for v, k in ring.keys.items()}}, fh)
    os.replace(tmp, path)


def load(audit: AuditLog | None = None, path: Path | None = None) -> KeyRing:
    """The key ring from the environment or the key file, creating the file on first use."""
    if os.environ.get(ENV_KEYS):
        return _parse(os.environ[ENV_KEYS], f"${ENV_KEYS}")
    path = path or default_key_file()
    if not path.exists():
        ring = KeyRing(1, {1: secrets.token_hex(32)}, str(path))
        _write(path, ring)
        if audit:
            audit.append("key.create", version=1, key_file=str(path))
    return _parse(path.read_text(), str(path))


def rotate(audit: AuditLog | None = None, path: Path | None = None) -> KeyRing:
    """Adds a new key version to the key file and makes it current."""
    if os.environ.get(ENV_KEYS):
        raise RuntimeError(f"keys come from ${ENV_KEYS}: rotate them in the secret store that sets it")
    path = path or default_key_file()
    ring = load(audit, path)
    new = KeyRing(max(ring.keys) + 1, {**ring.keys, max(ring.keys) + 1: secrets.token_hex(32)}, str(path))
    _write(path, new)
    if audit:
        audit.append("key.rotate", previous=ring.current, current=new.current, key_file=str(path))
    return new
