"""Who is who at the exchange: the registry of consumers and stewards, and their credentials.

- A **consumer** (a department's application, an enterprise, a scenario app) files data requests through
  the API with its API key; the requester is whoever the key belongs to, never what a request body says.
  Its name, department and kind (which privacy policy its shares get) come from the registry. A consumer
  that is disabled loses every share at once.
- A **steward** decides requests and revokes shares by *signing* the decision with an Ed25519 private key
  only the steward holds; the registry keeps the public key. A decision pasted into a Dagster launchpad,
  a CLI call or a later console is verified against it, and the ledger records the steward the key
  belongs to — typing a name proves nothing.

At rest the registry (``<exchange>/principals.json``, owner-only) holds no secret: API keys are stored as
SHA-256 digests (they are 256-bit random strings, so a fast digest is the right one), stewards by public
key. The key itself is shown once, when created.

- A **modeler** (a dbt modeler) reads std and the models in the steward console; it files and decides nothing.
- Every principal may be given a **console password** for the steward console's sign-in (``console/``). The
  registry keeps its scrypt hash only (RFC 7914, N=2^14, r=8, p=1, a 16-byte salt per password).
"""

from __future__ import annotations

import base64
import datetime as dt
import fcntl
import hashlib
import json
import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from exchange.requests import NAME, policy

ROLES = ("consumer", "steward", "modeler")
KEY_PREFIX = "shc_"  # API keys: shc_<43 url-safe characters>
DECISION_PREFIX = "shd1."  # signed steward actions: shd1.<payload>.<signature>, both base64url
DECISION_TTL = dt.timedelta(days=7)  # a signed action is valid this long after it was signed


class IdentityError(ValueError):
    """An unknown, disabled or wrongly presented identity or credential."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Principal:
    id: str
    role: str  # consumer | steward
    name: str
    department: str
    kind: str | None = None  # consumers: a consumer_policies key of exchange/policy.yaml
    key_sha256: str | None = None  # consumers: their API key's digest
    public_key: str | None = None  # stewards: raw Ed25519 public key, base64url
    active: bool = True
    created_at: str = ""
    named_firms: bool = False  # consumers: entitled to firm-level (identified) data by their legal basis
    password_scrypt: str | None = None  # the steward console's sign-in: scrypt$N$r$p$salt$hash

    @property
    def label(self) -> str:
        """How the ledger names it: ``consumer:<id>`` / ``steward:<id>``."""
        return f"{self.role}:{self.id}"


class Principals:
    """The registry file. Reads follow the file (a change made by the CLI is seen by the running service)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._seen: tuple[int, int] | None = None
        self._all: dict[str, Principal] = {}
        self._by_key: dict[str, Principal] = {}

    def _load(self) -> dict[str, Principal]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._seen, self._all, self._by_key = None, {}, {}
            return self._all
        if self._seen != (st.st_mtime_ns, st.st_size):
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            self._all = {p["id"]: Principal(**p) for p in doc.get("principals", [])}
            self._by_key = {p.key_sha256: p for p in self._all.values() if p.key_sha256}
            self._seen = (st.st_mtime_ns, st.st_size)
        return self._all

    def all(self) -> list[Principal]:
        return sorted(self._load().values(), key=lambda p: (p.role, p.id))

    def get(self, principal_id: str, role: str | None = None) -> Principal:
        p = self._load().get(principal_id)
        if p is None or (role is not None and p.role != role):
            raise IdentityError(f"no {role or 'principal'} {principal_id!r} in the registry")
        if not p.active:
            raise IdentityError(f"{p.label} is disabled")
        return p

    def by_key(self, key: str) -> Principal | None:
        """The active consumer an API key belongs to (a lookup by digest), or None."""
        p = self._load() and self._by_key.get(_digest(key))
        return p if p and p.active else None

    # --- changes (the CLI; each rewrites the file under a lock) -----------------------------------------
    def _save(self, principals: dict[str, Principal]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"principals": [asdict(p) for p in sorted(principals.values(), key=lambda p: p.id)]},
            ensure_ascii=False,
            indent=1,
        )
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        self._seen = None

    def _change(self, update) -> Principal:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            self._seen = None
            current = dict(self._load())
            changed = update(current)
            current[changed.id] = changed
            self._save(current)
            return changed

    def add_consumer(
        self, principal_id: str, name: str, department: str, kind: str, named_firms: bool = False
    ) -> tuple[Principal, str]:
        """Register a consumer; returns it and its API key (shown once, stored only as a digest).
        ``named_firms``: its legal basis covers firm-level data about named firms (a department by its
        duties, an app by the firms' own authorisation); without it, only de-identified datasets."""
        _check_new(principal_id, name, department)
        kinds = sorted(policy()["consumer_policies"])
        if kind not in kinds:
            raise IdentityError(f"consumer kind {kind!r} is not one of {kinds}")
        key = KEY_PREFIX + secrets.token_urlsafe(32)

        def add(current):
            if principal_id in current:
                raise IdentityError(f"{principal_id!r} is registered already")
            return Principal(
                principal_id, "consumer", name, department, kind, _digest(key), None, True, _now(), named_firms
            )

        return self._change(add), key

    def rotate_key(self, principal_id: str) -> str:
        """A new API key for a consumer; the old one stops working at once."""
        key = KEY_PREFIX + secrets.token_urlsafe(32)

        def rotate(current):
            p = current.get(principal_id)
            if p is None or p.role != "consumer":
                raise IdentityError(f"no consumer {principal_id!r} in the registry")
            return Principal(**{**asdict(p), "key_sha256": _digest(key)})

        self._change(rotate)
        return key

    def add_steward(self, principal_id: str, name: str, department: str, key_file: Path) -> Principal:
        """Register a steward by an Ed25519 key pair: the one in ``key_file`` when it exists (a steward who
        brings a key), else a new one written there (owner-only, outside the data folder: the steward's own).
        The registry keeps the public key only."""
        _check_new(principal_id, name, department)
        key_file = Path(key_file)
        private = _private_key(key_file) if key_file.exists() else Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)

        def add(current):
            if principal_id in current:
                raise IdentityError(f"{principal_id!r} is registered already")
            return Principal(principal_id, "steward", name, department, None, None, _b64(public), True, _now())

        steward = self._change(add)
        if key_file.exists():
            return steward
        key_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
        return steward

    def add_modeler(self, principal_id: str, name: str, department: str) -> Principal:
        """Register a dbt modeler (the console shows it std and the models, never raw or quarantine)."""
        _check_new(principal_id, name, department)

        def add(current):
            if principal_id in current:
                raise IdentityError(f"{principal_id!r} is registered already")
            return Principal(principal_id, "modeler", name, department, created_at=_now())

        return self._change(add)

    def set_password(self, principal_id: str, password: str) -> Principal:
        """Set (or replace) a principal's console password; only its scrypt hash is kept."""
        if not isinstance(password, str) or len(password) < PASSWORD_MIN or password.strip() != password:
            raise IdentityError(f"a console password has at least {PASSWORD_MIN} characters, no leading/trailing space")
        stored = _scrypt_hash(password)

        def update(current):
            p = current.get(principal_id)
            if p is None:
                raise IdentityError(f"no principal {principal_id!r} in the registry")
            return Principal(**{**asdict(p), "password_scrypt": stored})

        return self._change(update)

    def sign_in(self, principal_id: str, password: str) -> Principal:
        """The active principal whose console password this is; IdentityError (one message for every cause,
        so a caller learns nothing about which ids exist) otherwise."""
        p = self._load().get(principal_id) if isinstance(principal_id, str) else None
        stored = p.password_scrypt if p is not None else None
        ok = _scrypt_check(password if isinstance(password, str) else "", stored or _DUMMY_HASH)
        if p is None or not stored or not ok or not p.active:
            raise IdentityError("unknown id or wrong password")
        return p

    def set_active(self, principal_id: str, active: bool) -> Principal:
        def flip(current):
            p = current.get(principal_id)
            if p is None:
                raise IdentityError(f"no principal {principal_id!r} in the registry")
            return Principal(**{**asdict(p), "active": active})

        return self._change(flip)

    # --- signed steward actions -------------------------------------------------------------------------
    def verify_signed(self, token: str, now: dt.datetime | None = None) -> tuple[Principal, dict]:
        """The steward and the action of a signed decision; IdentityError when it does not verify."""
        now = now or dt.datetime.now(dt.UTC)
        if not isinstance(token, str) or not token.startswith(DECISION_PREFIX) or token.count(".") != 2:
            raise IdentityError("not a signed steward decision (shd1.<payload>.<signature>)")
        _, payload_b64, sig_b64 = token.split(".")
        try:
            payload_bytes, signature = _unb64(payload_b64), _unb64(sig_b64)
            payload = json.loads(payload_bytes)
        except (ValueError, UnicodeDecodeError):
            raise IdentityError("the signed decision is damaged") from None
        if not isinstance(payload, dict) or not isinstance(payload.get("steward"), str):
            raise IdentityError("the signed decision names no steward")
        steward = self.get(payload["steward"], "steward")
        try:
            Ed25519PublicKey.from_public_bytes(_unb64(steward.public_key or "")).verify(signature, payload_bytes)
        except (InvalidSignature, ValueError):
            raise IdentityError(f"the decision's signature is not {steward.label}'s") from None
        try:
            signed_at = dt.datetime.fromisoformat(payload["signed_at"])
        except (KeyError, TypeError, ValueError):
            raise IdentityError("the signed decision has no signing time") from None
        if not signed_at.tzinfo or not (signed_at - dt.timedelta(minutes=5) <= now <= signed_at + DECISION_TTL):
            raise IdentityError(f"the signed decision of {signed_at.isoformat()} is outside its validity")
        return steward, payload


def sign(key_file: Path, steward_id: str, action: str, request_id: str, reason: str, **extra) -> str:
    """A steward's signed action (``decide`` with ``decision``, or ``revoke``) on a request."""
    private = _private_key(Path(key_file))
    payload = {
        "steward": steward_id,
        "action": action,
        "request_id": request_id,
        "reason": reason,
        "signed_at": _now(),
        "nonce": secrets.token_hex(8),
        **extra,
    }
    body = json.dumps(payload, ensure_ascii=False, sort_keys=True).encode()
    return f"{DECISION_PREFIX}{_b64(body)}.{_b64(private.sign(body))}"


def _private_key(key_file: Path) -> Ed25519PrivateKey:
    try:
        private = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
    except FileNotFoundError:
        raise IdentityError(f"no steward key at {key_file} (exchange steward-add, or --key-file)") from None
    except ValueError:
        private = None
    if not isinstance(private, Ed25519PrivateKey):
        raise IdentityError(f"{key_file}: not an Ed25519 private key")
    if key_file.stat().st_mode & 0o077:
        raise IdentityError(f"{key_file}: readable by others; a steward's key is owner-only (chmod 600)")
    return private


PASSWORD_MIN = 12
_SCRYPT = (2**14, 8, 1)


def _scrypt_hash(password: str, salt: bytes | None = None, params: tuple[int, int, int] = _SCRYPT) -> str:
    salt = salt if salt is not None else secrets.token_bytes(16)
    n, r, p = params
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def _scrypt_check(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, _ = stored.split("$")
        if scheme != "scrypt":
            return False
        candidate = _scrypt_hash(password, _unb64(salt), (int(n), int(r), int(p)))
    except ValueError:
        return False
    return secrets.compare_digest(candidate, stored)


# checked against when the id is unknown, so a wrong id costs the same time as a wrong password
_DUMMY_HASH = _scrypt_hash(secrets.token_urlsafe(16))


def _check_new(principal_id: str, name: str, department: str) -> None:
    if not NAME.fullmatch(principal_id or ""):
        raise IdentityError(f"id {principal_id!r}: lower-case letters, digits, '_' or '-' (at most 63)")
    for what, value in (("name", name), ("department", department)):
        if not value or not value.strip() or len(value) > 100 or any(ord(ch) < 32 for ch in value):
            raise IdentityError(f"{what} {value!r}: 1–100 printable characters")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
