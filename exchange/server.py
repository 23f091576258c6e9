"""The sharing service: the open Delta Sharing protocol over the share zone, so standard clients (the
official ``delta-sharing`` connector, Spark, pandas, Power BI …) read a consumer's share with nothing of ours.

One share per approved request (its id), one schema (``shucang``), one table per dataset granted. Each
request's bearer token opens its own share only, only while the ledger says it is active: a revocation or
the end of the period takes effect on the next call. Query answers hand out short-lived signed URLs to the
data files, served here with Range support; every query is written to the ledger (who, table version, rows).
Requests can also be filed through ``POST /api/requests``. Bound to 127.0.0.1 unless told otherwise.

    python -m exchange.server [--host 127.0.0.1] [--port 8765]
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import time
import uuid
from logging.handlers import RotatingFileHandler
from pathlib import Path

from deltalake import DeltaTable
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from exchange import protocol
from exchange.identity import IdentityError, Principals
from exchange.ledger import CachedLedger, LedgerBroken, RequestState
from exchange.requests import NAME, RequestError, parse, policy
from exchange.service import Exchange, token_digest
from exchange.shares import add_actions, share_table_name

SCHEMA = "shucang"
PREFIX = "/delta-sharing"
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\.parquet")  # full match
log = logging.getLogger("shucang.sharing")
PERMISSION = "r"  # signed file URLs grant reading, nothing else
NAMESPACE = uuid.UUID("6f1c9a52-5d0e-4c7b-9a43-2b8f0f3f6a11")


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"errorCode": code, "message": message}, status_code=status, headers=headers)


def _ndjson(lines: list[dict], version: int, fmt: str = "parquet") -> Response:
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return Response(
        body,
        media_type="application/x-ndjson; charset=utf-8",
        headers={"Delta-Table-Version": str(version), protocol.CAPABILITIES: f"responseformat={fmt}"},
    )


_RANGE = re.compile(r"(\d*)-(\d*)")


def _check_range(header: str | None, size: int) -> None:
    """A Range header the file can answer (RFC 9110 byte ranges), or a protocol error (416) saying why."""
    if header is None:
        return
    unit, _, ranges = header.partition("=")
    problem = None
    if unit.strip().lower() != "bytes" or not ranges.strip():
        problem = f"Range {header[:60]!r}: only byte ranges (bytes=START-END) are served"
    else:
        for part in ranges.split(","):
            m = _RANGE.fullmatch(part.strip())
            if m is None or (not m[1] and not m[2]):
                problem = f"Range {part.strip()[:40]!r} is not START-END, START- or -SUFFIX"
                break
            start, end = m[1], m[2]
            if start and (int(start) >= size or (end and int(end) < int(start))):
                problem = f"Range {part.strip()} is outside the file's {size} bytes"
                break
            if not start and int(end) == 0:
                problem = "Range -0 asks for no bytes"
                break
    if problem:
        raise Problem(416, "RANGE_NOT_SATISFIABLE", problem, {"Content-Range": f"bytes */{size}"})


class RateLimiter:
    """A token bucket per key: ``per_minute`` calls a minute on average, bursts up to the same number."""

    def __init__(self, per_minute: int, clock=time.monotonic):
        self.rate, self.capacity, self.clock = per_minute / 60.0, float(per_minute), clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, key: str) -> float:
        """0 when the call may go ahead (and counts it), else the seconds until it may."""
        now = self.clock()
        tokens, then = self.buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - then) * self.rate)
        if tokens < 1:
            self.buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate
        self.buckets[key] = (tokens - 1, now)
        if len(self.buckets) > 100_000:  # bounded: forget the fullest buckets' keys
            self.buckets = {k: v for k, v in self.buckets.items() if v[0] < self.capacity - 1}
        return 0.0


class SharingService:
    def __init__(self, exchange: Exchange, secret: bytes | None = None, url_seconds: int | None = None):
        # one cached ledger and registry for the service's life: a call costs what was appended since the
        # last one, never a replay of the whole ledger
        self.exchange = dataclasses.replace(
            exchange,
            shared_ledger=CachedLedger(exchange.ledger.path, anchor=exchange.anchor),
            shared_principals=Principals(exchange.principals.path),
        )
        self.ledger = self.exchange.ledger
        limits = policy()["rate_limits"]
        self.filings = RateLimiter(int(limits["filings_per_minute"]))
        self.calls = RateLimiter(int(limits["calls_per_minute"]))
        self._denied: dict[tuple[str, str], float] = {}  # (request, reason) → when last written to the ledger
        verdict = self.ledger.verify()
        if not verdict.ok:  # what the service allows is what the ledger says: a broken ledger serves nothing
            raise RuntimeError(f"the exchange ledger {self.ledger.path} does not verify: {verdict.problem}")
        self.secret = secret or os.environ.get("SHUCANG_SHARING_SECRET", "").encode() or secrets.token_bytes(32)
        self.url_seconds = url_seconds or int(policy()["signed_url_seconds"])
        self.max_body = int(policy()["max_body_bytes"])

    # --- who is asking ----------------------------------------------------------------------------------------
    def principal(self, request: Request) -> RequestState:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Problem(401, "UNAUTHENTICATED", "a bearer token is required (Authorization: Bearer <token>)")
        state = self.ledger.holder(token_digest(token.strip()))
        if state is None:
            raise Problem(401, "UNAUTHENTICATED", "the bearer token is not valid")
        request.state.principal = f"share:{state.id}"
        self._limit(self.calls, f"share:{state.id}")
        consumer = state.request["consumer"]
        why = None
        try:
            self.exchange.principals.get(consumer.get("id", ""), "consumer")
        except IdentityError as exc:
            why = f"the consumer of request {state.id} is not an active registered consumer ({exc})"
        if why is None and not state.active():
            why = state.why_not()
        if why is not None:
            self._deny(state, why, request.url.path)
            raise Problem(403, "PERMISSION_DENIED", why)
        return state

    def _limit(self, limiter: RateLimiter, key: str) -> None:
        wait = limiter.take(key)
        if wait:
            raise Problem(
                429,
                "TOO_MANY_REQUESTS",
                f"rate limit reached; retry in {wait:.1f} s",
                {"Retry-After": str(int(wait) + 1)},
            )

    def _deny(self, state: RequestState, why: str, path: str) -> None:
        """A refused call goes to the ledger once per request and reason every ten minutes (the access log
        has every call): a revoked token used in a loop cannot grow the ledger without bound."""
        key, now = (state.id, why), time.monotonic()
        if now - self._denied.get(key, -1e9) < 600:
            return
        self._denied[key] = now
        if len(self._denied) > 10_000:
            self._denied.clear()
        consumer = state.request["consumer"]
        self.ledger.record(
            "share.denied", f"consumer:{consumer.get('id', consumer['name'])}", state.id, path=path, reason=why
        )

    def share_of(self, request: Request) -> tuple[RequestState, str]:
        state = self.principal(request)
        share = request.path_params["share"]
        if not NAME.fullmatch(share):
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"share name {share!r} is not a valid name")
        if share != state.id:
            raise Problem(403, "PERMISSION_DENIED", f"this token does not open share {share!r}")
        return state, share

    def table_of(self, request: Request) -> tuple[RequestState, dict]:
        state, share = self.share_of(request)
        schema, table = request.path_params["schema"], request.path_params["table"]
        if schema != SCHEMA:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"share {share} has no schema {schema!r}")
        entry = next((t for t in state.manifest["tables"] if t["dataset"] == table), None)
        if entry is None:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"share {share} has no table {schema}.{table}")
        return state, entry

    def delta(self, state: RequestState, entry: dict) -> DeltaTable:
        """The share table of the current build. Versions written by earlier builds (under another policy,
        another pin) are never served: a share serves only what its current grant allows."""
        dataset = entry["dataset"]
        table = self.exchange.lake.table("share", share_table_name(state.id, dataset))
        if table is None:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"table {dataset} of share {state.id} has no data")
        if table.version() != int(entry.get("share_version", table.version())):
            raise Problem(503, "SERVICE_UNAVAILABLE", f"table {dataset} of share {state.id} is being rebuilt")
        return table

    @staticmethod
    def _build_versions(table: DeltaTable, entry: dict) -> tuple[int, int]:
        """(first, last) version of the current build: the versions a query may name."""
        return int(entry.get("build_version", table.version())), table.version()

    def _check_version(self, state: RequestState, table: DeltaTable, entry: dict, version, what: str) -> int:
        first, last = self._build_versions(table, entry)
        if not isinstance(version, int) or isinstance(version, bool):
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"{what} must be an integer, not {version!r}")
        if not first <= version <= last:
            raise Problem(
                400,
                "INVALID_PARAMETER_VALUE",
                f"{what} {version}: share {state.id} serves its current build only (versions {first}..{last})",
            )
        return version

    def _version_at(self, state, table: DeltaTable, entry: dict, text, what: str, latest_before: bool) -> int:
        """The version a timestamp names: the last committed at or before it (``latest_before``), else the
        first committed at or after it; within the current build."""
        try:
            when = protocol.parse_timestamp(text)
        except ValueError as exc:
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"{what}: {exc}") from None
        ms = when.timestamp() * 1000
        first, last = self._build_versions(table, entry)
        commits = sorted((c["version"], c["timestamp"]) for c in table.history() if first <= c["version"] <= last)
        if latest_before:
            found = [v for v, t in commits if t <= ms]
            if not found:
                raise Problem(
                    400, "INVALID_PARAMETER_VALUE", f"{what} {text} is before the current build of {state.id}"
                )
            return found[-1]
        found = [v for v, t in commits if t >= ms]
        if not found:
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"{what} {text} is after the last version of {state.id}")
        return found[0]

    # --- listing ----------------------------------------------------------------------------------------------
    @staticmethod
    def _page(request: Request, items: list[dict]) -> dict:
        try:
            size = int(request.query_params.get("maxResults", 500))
            start = int(base64.urlsafe_b64decode(request.query_params.get("pageToken", "") + "==").decode() or 0)
        except (ValueError, UnicodeDecodeError):
            raise Problem(400, "INVALID_PARAMETER_VALUE", "maxResults and pageToken must be as returned") from None
        if size < 0 or start < 0:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "maxResults must not be negative")
        page = {"items": items[start : start + size]}
        if start + size < len(items):  # maxResults=0: no items, and the token to start from
            page["nextPageToken"] = base64.urlsafe_b64encode(str(start + size).encode()).decode().rstrip("=")
        return page

    @staticmethod
    def _share(state: RequestState) -> dict:
        return {"name": state.id, "id": str(uuid.uuid5(NAMESPACE, state.id))}

    def _tables(self, state: RequestState) -> list[dict]:
        share = self._share(state)
        return [
            {
                "name": t["dataset"],
                "schema": SCHEMA,
                "share": state.id,
                "shareId": share["id"],
                "id": str(uuid.uuid5(NAMESPACE, f"{state.id}/{t['dataset']}")),
            }
            for t in state.manifest["tables"]
        ]

    async def list_shares(self, request: Request):
        state = self.principal(request)
        return JSONResponse(self._page(request, [self._share(state)]))

    async def get_share(self, request: Request):
        state, _ = self.share_of(request)
        return JSONResponse({"share": self._share(state)})

    async def list_schemas(self, request: Request):
        state, share = self.share_of(request)
        return JSONResponse(self._page(request, [{"name": SCHEMA, "share": share}]))

    async def list_tables(self, request: Request):
        state, share = self.share_of(request)
        if request.path_params["schema"] != SCHEMA:
            raise Problem(
                404, "RESOURCE_DOES_NOT_EXIST", f"share {share} has no schema {request.path_params['schema']!r}"
            )
        return JSONResponse(self._page(request, self._tables(state)))

    async def all_tables(self, request: Request):
        state, _ = self.share_of(request)
        return JSONResponse(self._page(request, self._tables(state)))

    # --- one table --------------------------------------------------------------------------------------------
    async def version(self, request: Request):
        state, entry = self.table_of(request)
        table = self.delta(state, entry)
        version = table.version()
        if "startingTimestamp" in request.query_params:  # the first version at or after it
            stamp = request.query_params["startingTimestamp"]
            version = self._version_at(state, table, entry, stamp, "startingTimestamp", latest_before=False)
        return Response(status_code=200, headers={"Delta-Table-Version": str(version)})

    def _metadata_lines(self, fmt: str, state: RequestState, entry: dict, table: DeltaTable, version=None) -> list:
        meta, files = table.metadata(), add_actions(table)
        described = {
            "id": meta.id,
            "name": entry["dataset"],
            "description": f"shucang share {state.id}: {entry['dataset']} (publish version {entry['source_version']})",
            "schemaString": table.schema().to_json(),
            "partitionColumns": list(meta.partition_columns),
            "configuration": dict(meta.configuration),
            "createdTime": meta.created_time,
        }
        size = sum(int(f["size_bytes"]) for f in files)
        pv = table.protocol()
        head = protocol.protocol_line(
            fmt, pv.min_reader_version, pv.min_writer_version, pv.reader_features, pv.writer_features
        )
        return [head, protocol.metadata_line(fmt, described, version, size, len(files))]

    async def metadata(self, request: Request):
        state, entry = self.table_of(request)
        fmt = protocol.response_format(request.headers.get(protocol.CAPABILITIES))
        table = self.delta(state, entry)
        return _ndjson(self._metadata_lines(fmt, state, entry, table), table.version(), fmt)

    def _file_lines(self, fmt, state, entry, table, chosen, stats, commit=None, action="file") -> list[dict]:
        digests = {f["path"]: f["sha256"] for f in entry.get("files", [])}
        lines = []
        for add, st in zip(chosen, stats, strict=True):
            if not FILE_NAME.fullmatch(add["path"]):
                raise Problem(500, "INTERNAL_ERROR", f"unexpected file {add['path']!r} in the share")
            url, expires = self._signed(state, entry["dataset"], add["path"])
            modified = add.get("modification_time")
            lines.append(
                protocol.file_line(
                    fmt,
                    url=url,
                    # the id is the SHA-256 of the file's bytes (as in the share's manifest): a consumer checks
                    # what it received against it
                    file_id=digests.get(add["path"])
                    or hashlib.sha256(f"{state.id}/{add['path']}".encode()).hexdigest(),
                    size=int(add["size_bytes"]),
                    stats=st,
                    expires_ms=expires * 1000,
                    partition_values={},
                    modified_ms=int(modified.timestamp() * 1000)
                    if hasattr(modified, "timestamp")
                    else int(modified or 0),
                    version=commit[0] if commit else None,
                    timestamp_ms=commit[1] if commit else None,
                    action=action,
                )
            )
        return lines

    def _record_read(self, state, entry, table, version, rows, files, limit, kind="snapshot") -> None:
        consumer = state.request["consumer"]
        self.ledger.record(
            "share.read",
            f"consumer:{consumer.get('id', consumer['name'])}",
            state.id,
            department=consumer["department"],
            dataset=entry["dataset"],
            table_version=version,
            source_version=entry["source_version"],
            rows=rows,  # rows in the files handed out (a limit is a hint: the client may read fewer)
            limit_hint=limit,
            files=files,
            kind=kind,
        )

    def _build_commit(self, table: DeltaTable, entry: dict) -> tuple[int, int]:
        """(version, timestamp in ms) of the commit that wrote the current build's first files."""
        first, _ = self._build_versions(table, entry)
        stamp = next((c["timestamp"] for c in table.history() if c["version"] == first), 0)
        return first, int(stamp)

    async def query(self, request: Request):
        state, entry = self.table_of(request)
        fmt = protocol.response_format(request.headers.get(protocol.CAPABILITIES))
        body = await self._body(request)
        limit = body.get("limitHint")
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"limitHint must be a non-negative integer, not {limit!r}")
        given = [k for k in ("version", "timestamp", "startingVersion") if body.get(k) is not None]
        if len(given) > 1:
            raise Problem(
                400, "INVALID_PARAMETER_VALUE", f"give at most one of version, timestamp, startingVersion: {given}"
            )
        table = self.delta(state, entry)
        version, since = table.version(), None
        if body.get("version") is not None:
            version = self._check_version(state, table, entry, body["version"], "version")
        elif body.get("timestamp") is not None:
            version = self._version_at(state, table, entry, body["timestamp"], "timestamp", latest_before=True)
        elif body.get("startingVersion") is not None:
            since = self._check_version(state, table, entry, body["startingVersion"], "startingVersion")
            if body.get("endingVersion") is not None:
                self._check_version(state, table, entry, body["endingVersion"], "endingVersion")
        columns = [f.name for f in table.schema().fields]
        files = add_actions(table)  # every version of the current build holds its files (vacuum adds none)
        stats = [protocol.file_stats(a, columns) for a in files]
        hint = body.get("jsonPredicateHints")
        keep = protocol.prune(files, stats, hint if isinstance(hint, str) else None, limit)
        first, stamp = self._build_commit(table, entry)
        with_version = since is not None or body.get("version") is not None or body.get("timestamp") is not None
        if since is not None and since > first:
            keep = []  # nothing was added after the build's first commit
        commit = (first, stamp) if with_version else None
        lines = self._metadata_lines(fmt, state, entry, table, version if with_version else None)
        lines += self._file_lines(fmt, state, entry, table, [files[i] for i in keep], [stats[i] for i in keep], commit)
        self._record_read(state, entry, table, version, sum(stats[i]["numRecords"] for i in keep), len(keep), limit)
        return _ndjson(lines, version, fmt)

    async def changes(self, request: Request):
        """The change data feed of a share table, within its current build: the rows the build inserted."""
        state, entry = self.table_of(request)
        fmt = protocol.response_format(request.headers.get(protocol.CAPABILITIES))
        table = self.delta(state, entry)
        q = request.query_params

        def number(key):
            try:
                return int(q[key])
            except ValueError:
                raise Problem(400, "INVALID_PARAMETER_VALUE", f"{key} must be an integer, not {q[key]!r}") from None

        if "startingVersion" in q:
            start = self._check_version(state, table, entry, number("startingVersion"), "startingVersion")
        elif "startingTimestamp" in q:
            start = self._version_at(
                state, table, entry, q["startingTimestamp"], "startingTimestamp", latest_before=False
            )
        else:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "give startingVersion or startingTimestamp")
        end = table.version()
        if "endingVersion" in q:
            end = self._check_version(state, table, entry, number("endingVersion"), "endingVersion")
        elif "endingTimestamp" in q:
            end = self._version_at(state, table, entry, q["endingTimestamp"], "endingTimestamp", latest_before=True)
        if end < start:
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"the range ends ({end}) before it starts ({start})")
        columns = [f.name for f in table.schema().fields]
        first, stamp = self._build_commit(table, entry)
        files = add_actions(table) if start <= first <= end else []
        stats = [protocol.file_stats(a, columns) for a in files]
        lines = self._metadata_lines(fmt, state, entry, table, first if fmt == "delta" else None)
        lines += self._file_lines(fmt, state, entry, table, files, stats, (first, stamp), action="add")
        self._record_read(state, entry, table, end, sum(x["numRecords"] for x in stats), len(files), None, "changes")
        return _ndjson(lines, end, fmt)

    async def _body(self, request: Request) -> dict:
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body):
            raise Problem(413, "INVALID_PARAMETER_VALUE", f"the request body is over {self.max_body} bytes")
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > self.max_body:
                raise Problem(413, "INVALID_PARAMETER_VALUE", f"the request body is over {self.max_body} bytes")
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:  # ValueError: JSONDecodeError, huge ints
            raise Problem(
                400, "MALFORMED_REQUEST", f"the request body is not acceptable JSON: {str(exc)[:200]}"
            ) from None
        if not isinstance(body, dict):
            raise Problem(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        return body

    def _signed(self, state: RequestState, dataset: str, path: str) -> tuple[str, int]:
        """Where a consumer fetches one file of its share until ``expires``: on an object-store lake, the store
        itself under a pre-signed URL (the service hands out the address, not the bytes); in a local lake,
        this service's ``/files`` under its own signature, checked again — share, consumer, build — at download."""
        expires = int(time.time()) + self.url_seconds
        stored = self.exchange.lake.presign("share", f"{share_table_name(state.id, dataset)}/{path}", self.url_seconds)
        if stored is not None:
            return stored, expires
        message = f"{state.id}/{dataset}/{path}/{expires}/{PERMISSION}".encode()
        sig = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        base = self.exchange.endpoint.rstrip("/")  # the configured public address, never the Host header
        # ``sp`` (signed permissions, read) is also how delta-kernel recognises a pre-signed URL and fetches it
        # over HTTP (the official client's use_delta_format=True reads through delta-kernel)
        return f"{base}/files/{state.id}/{dataset}/{path}?expires={expires}&sp={PERMISSION}&sig={sig}", expires

    async def manifest(self, request: Request):
        """The share's manifest (not part of the protocol): per table its source version, rows, columns,
        transforms and the SHA-256 of every file, so a consumer can check what it received."""
        state, _ = self.share_of(request)
        return JSONResponse(state.manifest)

    # --- data files -------------------------------------------------------------------------------------------
    async def file(self, request: Request):
        share, dataset, name = (request.path_params[k] for k in ("share", "table", "name"))
        if not (NAME.fullmatch(share) and NAME.fullmatch(dataset) and FILE_NAME.fullmatch(name)):
            raise Problem(400, "INVALID_PARAMETER_VALUE", "not a file of a share")
        try:
            expires = int(request.query_params.get("expires", ""))
        except ValueError:
            raise Problem(403, "PERMISSION_DENIED", "the file URL is not signed") from None
        message = f"{share}/{dataset}/{name}/{expires}/{request.query_params.get('sp', '')}".encode()
        expected = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.query_params.get("sig", "")):
            raise Problem(403, "PERMISSION_DENIED", "the file URL's signature is not valid")
        if time.time() > expires:
            raise Problem(403, "PERMISSION_DENIED", "the file URL has expired: query the table again")
        state = self.ledger.states().get(share)
        if state is None or not state.active():
            raise Problem(403, "PERMISSION_DENIED", state.why_not() if state else f"no share {share}")
        try:  # a consumer disabled since the URL was signed gets nothing more
            self.exchange.principals.get(state.request["consumer"].get("id", ""), "consumer")
        except IdentityError as exc:
            raise Problem(403, "PERMISSION_DENIED", f"the consumer of {share} is not active ({exc})") from None
        entry = next((t for t in state.manifest["tables"] if t["dataset"] == dataset), None)
        if entry is None or name not in {f["path"] for f in entry.get("files", [])}:
            raise Problem(403, "PERMISSION_DENIED", f"{name} is not a file of the current build of {share}/{dataset}")
        lake, where = self.exchange.lake, f"{share_table_name(share, dataset)}/{name}"  # FILE_NAME: no separator
        local = lake.local_path("share", where)
        if local is not None:
            # resolved, so a link planted in the share's folder cannot point the service at another file
            if local.resolve().parent != local.parent.resolve() or not local.is_file():
                raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"no file {name} in {share}/{dataset}")
            _check_range(request.headers.get("range"), local.stat().st_size)
            return FileResponse(local, media_type="application/octet-stream")
        data = lake.read_bytes("share", where)
        if data is None:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"no file {name} in {share}/{dataset}")
        _check_range(request.headers.get("range"), len(data))
        return Response(data, media_type="application/octet-stream")

    # --- the data-request API ----------------------------------------------------------------------------------
    async def file_request(self, request: Request):
        """File a data request as the consumer whose API key authenticates the call. JSON only: a browser
        page cannot post it cross-origin without a CORS preflight, which this service never grants."""
        header = request.headers.get("authorization", "")
        scheme, _, key = header.partition(" ")
        consumer = self.exchange.principals.by_key(key.strip()) if scheme.lower() == "bearer" else None
        if consumer is None:
            raise Problem(
                401, "UNAUTHENTICATED", "a registered consumer's API key is required (Authorization: Bearer shc_…)"
            )
        request.state.principal = consumer.label
        media = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if media != "application/json":
            raise Problem(415, "UNSUPPORTED_MEDIA_TYPE", "data requests are filed as application/json")
        self._limit(self.filings, consumer.label)
        body = await self._body(request)
        rid = body.get("id")
        if not isinstance(rid, str) or not rid:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "a request filed through the API carries its 'id'")
        try:
            requester = self.exchange.consumer(consumer.id)
            state = self.exchange.file(parse(body, rid, requester, source=f"api:{rid}"), actor=consumer.label)
        except (RequestError, IdentityError) as exc:
            raise Problem(400, "INVALID_PARAMETER_VALUE", str(exc)) from None
        return JSONResponse(
            {"id": state.id, "status": state.status, "level": state.level, "reasons": state.reasons},
            status_code=201,
        )


class AccessLog:
    """Every call — downloads, metadata reads, refusals (401, 403, 429) included — one JSON line in
    ``<exchange>/access.log``: time, method, path without its query (a signed URL's signature is never
    written), status, who (a share or consumer, once known), duration. Bounded: rotated at 5 MB, 5 kept. The
    ledger records what changes or hands out data; this log records every call."""

    def __init__(self, asgi, folder: Path):
        self.asgi = asgi
        self.log = logging.getLogger(f"shucang.sharing.access.{folder}")
        if not self.log.handlers:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            handler = RotatingFileHandler(folder / "access.log", maxBytes=5 << 20, backupCount=5, encoding="utf-8")
            handler.setFormatter(logging.Formatter("%(message)s"))
            self.log.addHandler(handler)
            self.log.setLevel(logging.INFO)
            self.log.propagate = False

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.asgi(scope, receive, send)
        started, status = time.perf_counter(), [0]
        scope.setdefault("state", {})

        async def sending(message):
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.asgi(scope, receive, sending)
        finally:
            client = scope.get("client") or ("?", 0)
            self.log.info(
                json.dumps(
                    {
                        "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                        "method": scope.get("method"),
                        "path": scope.get("path", "")[:300],
                        "status": status[0],
                        "who": scope["state"].get("principal"),
                        "ms": round((time.perf_counter() - started) * 1000, 1),
                        "client": client[0],
                    },
                    ensure_ascii=False,
                )
            )


def app(exchange: Exchange, secret: bytes | None = None, url_seconds: int | None = None):
    svc = SharingService(exchange, secret, url_seconds)

    def route(path, endpoint, methods=("GET",)):
        return Route(PREFIX + path, _wrap(endpoint), methods=list(methods))

    table = "/shares/{share}/schemas/{schema}/tables/{table}"
    routes = [
        route("/shares", svc.list_shares),
        route("/shares/{share}", svc.get_share),
        route("/shares/{share}/schemas", svc.list_schemas),
        route("/shares/{share}/schemas/{schema}/tables", svc.list_tables),
        route("/shares/{share}/all-tables", svc.all_tables),
        route("/shares/{share}/manifest", svc.manifest),
        route(table + "/version", svc.version, ("GET", "HEAD")),
        route(table + "/metadata", svc.metadata),
        route(table + "/query", svc.query, ("POST",)),
        route(table + "/changes", svc.changes),
        route("/files/{share}/{table}/{name}", svc.file, ("GET", "HEAD")),
        Route("/api/requests", _wrap(svc.file_request), methods=["POST"]),
    ]

    async def not_found(request: Request, exc):
        return _error(404, "RESOURCE_DOES_NOT_EXIST", f"no such endpoint: {request.method} {request.url.path}")

    async def method(request: Request, exc):
        return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}")

    return AccessLog(Starlette(routes=routes, exception_handlers={404: not_found, 405: method}), exchange.folder)


def _wrap(endpoint):
    async def handler(request: Request):
        try:
            return await endpoint(request)
        except Problem as p:
            return _error(p.status, p.code, p.message, p.headers)
        except LedgerBroken as exc:  # the system of record does not verify: serve nothing
            log.error("ledger: %s", exc)
            return _error(503, "SERVICE_UNAVAILABLE", "the exchange ledger does not verify; nothing is served")
        except Exception:  # never a stack trace or a plain-text 500
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            return _error(500, "INTERNAL_ERROR", "internal error")

    return handler


MAX_HEAD_BYTES = 16 * 1024


def server_config(asgi, host: str, port: int, log_level: str = "info"):
    """How the service is served: h11 with a bound on a request's head (a 60 MB header is cut off at 16 KB
    and stalls no one); uvicorn's access log off — it would write signed URLs in full; the service keeps its
    own (``AccessLog``)."""
    import uvicorn

    return uvicorn.Config(
        asgi,
        host=host,
        port=port,
        log_level=log_level,
        http="h11",
        h11_max_incomplete_event_size=MAX_HEAD_BYTES,
        access_log=False,
        server_header=False,
        timeout_keep_alive=5,
    )


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from orchestration.settings import settings

    parser = argparse.ArgumentParser(prog="python -m exchange.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    s = settings()

    # the public address written into signed file URLs: configured (SHUCANG_SHARING_ENDPOINT), else where it binds
    endpoint = os.environ.get("SHUCANG_SHARING_ENDPOINT") or f"http://{args.host}:{args.port}{PREFIX}"
    exchange = Exchange(s.lake(), s.exchange_dir, endpoint=endpoint, audit_log=s.audit_log)
    print(
        f"Delta Sharing service on http://{args.host}:{args.port}{PREFIX} — lake {s.lake_root}, ledger {exchange.ledger.path}"
    )
    uvicorn.Server(server_config(app(exchange), args.host, args.port, "info")).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
