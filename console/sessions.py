"""Console sessions: a random token in an HttpOnly, SameSite=Strict cookie; the server keeps only its digest,
the viewer, a CSRF token, and when the session started and was last used. A session ends after
``idle`` seconds without a request or ``absolute`` seconds after sign-in, whichever comes first; sign-in
is throttled per id and per client after repeated failures."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass, field

from console.data import Viewer

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 8 * 3600
FAILURES_ALLOWED = 5  # failed sign-ins per id (and per client) in FAILURE_WINDOW before sign-in is refused
FAILURE_WINDOW = 300.0


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Session:
    viewer: Viewer
    csrf: str
    started: float
    last_seen: float


@dataclass
class Sessions:
    idle: float = IDLE_SECONDS
    absolute: float = ABSOLUTE_SECONDS
    clock: object = time.time
    _open: dict[str, Session] = field(default_factory=dict)
    _failures: dict[str, list[float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self, viewer: Viewer) -> str:
        token = secrets.token_urlsafe(32)
        now = self.clock()
        with self._lock:
            self._open[digest(token)] = Session(viewer, secrets.token_urlsafe(24), now, now)
        return token

    def get(self, token: str | None) -> Session | None:
        """The live session of a token (its last use moved to now), or None: unknown or expired."""
        if not token:
            return None
        key, now = digest(token), self.clock()
        with self._lock:
            s = self._open.get(key)
            if s is None:
                return None
            if now - s.last_seen > self.idle or now - s.started > self.absolute:
                del self._open[key]
                return None
            s.last_seen = now
            return s

    def close(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._open.pop(digest(token), None)

    def close_all(self, viewer_id: str) -> None:
        with self._lock:
            for key in [k for k, s in self._open.items() if s.viewer.id == viewer_id]:
                del self._open[key]

    # --- sign-in throttling ---------------------------------------------------------------------------------
    def throttled(self, *keys: str) -> float:
        """Seconds until sign-in may be tried again for any of ``keys`` (0: now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for k in keys:
                recent = [t for t in self._failures.get(k, []) if now - t < FAILURE_WINDOW]
                self._failures[k] = recent
                if len(recent) >= FAILURES_ALLOWED:
                    wait = max(wait, FAILURE_WINDOW - (now - recent[0]))
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for k in keys:
                self._failures.setdefault(k, []).append(now)

    def succeeded(self, *keys: str) -> None:
        with self._lock:
            for k in keys:
                self._failures.pop(k, None)
