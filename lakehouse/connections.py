"""Where a source database is: its connection URL, from the environment or an owner-only file — never the
repository.

A relational source in the registry names a connection (``database.connection: tax_db``). Its URL
(``postgresql://user:password@host:5432/db``, ``mysql://user:password@host:3306/db``) is looked up in

1. the environment: ``SHUCANG_SOURCE_TAX_DB``;
2. the connections file: ``SHUCANG_CONNECTIONS_FILE``, else ``~/.config/shucang/connections.json`` — a JSON
   object ``{"tax_db": "postgresql://…", "platform": {"url": "https://…", "token": "…"}}`` that only its owner
   may read (a file others can read is refused:
   it holds passwords).

What is logged or recorded of a connection is its name and :func:`redacted` URL, never the password.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


class SourceNotConfigured(LookupError):
    """A connection that is not configured, or configured unsafely; the message says where to set it."""


def connections_file(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    if env.get("SHUCANG_CONNECTIONS_FILE"):
        return Path(env["SHUCANG_CONNECTIONS_FILE"])
    return Path(env.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "shucang" / "connections.json"


def env_name(connection: str) -> str:
    return f"SHUCANG_SOURCE_{connection.upper()}"


def url_of(connection: str, environ: dict[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    if env.get(env_name(connection)):
        return env[env_name(connection)]
    value = _from_file(connection, env)
    if isinstance(value, dict) and isinstance(value.get("url"), str):
        return value["url"]
    if isinstance(value, str):
        return value
    path = connections_file(env)
    raise SourceNotConfigured(
        f"source connection {connection!r} is not configured: set {env_name(connection)} to its URL, or add "
        f'"{connection}": "<url>" to {path} (owner-only)'
    )


def token_of(connection: str, environ: dict[str, str] | None = None) -> str:
    """An interface's access token: ``SHUCANG_SOURCE_<CONNECTION>_TOKEN``, or ``"token"`` beside ``"url"`` in
    the connections file."""
    env = os.environ if environ is None else environ
    if env.get(env_name(connection) + "_TOKEN"):
        return env[env_name(connection) + "_TOKEN"]
    value = _from_file(connection, env)
    if isinstance(value, dict) and isinstance(value.get("token"), str):
        return value["token"]
    raise SourceNotConfigured(
        f"source connection {connection!r} has no token: set {env_name(connection)}_TOKEN, or add "
        f'"{connection}": {{"url": "…", "token": "…"}} to {connections_file(env)} (owner-only)'
    )


def _from_file(connection: str, env) -> object:
    path = connections_file(env)
    if path.exists():
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise SourceNotConfigured(
                f"{path} may be read by other accounts (mode {stat.filemode(mode)}); it holds passwords: "
                f"chmod 600 {path}"
            )
        try:
            known = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise SourceNotConfigured(f"{path} is not valid JSON: {exc}") from exc
        if isinstance(known, dict):
            return known.get(connection)
    return None


def redacted(url: str) -> str:
    """The URL without its password (for logs, metadata and lineage)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
