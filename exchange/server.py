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
import hashlib
import hmac
import json
import os
import re
import secrets
import time
import uuid

from deltalake import DeltaTable
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from exchange.ledger import CachedLedger, RequestState
from exchange.requests import NAME, RequestError, parse, policy
from exchange.service import Exchange, token_digest
from exchange.shares import add_actions, share_table_name

SCHEMA = "shucang"
PREFIX = "/delta-sharing"
FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*\.parquet")  # full match
NAMESPACE = uuid.UUID("6f1c9a52-5d0e-4c7b-9a43-2b8f0f3f6a11")


class Problem(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errorCode": code, "message": message}, status_code=status)


def _ndjson(lines: list[dict], version: int) -> Response:
    body = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    return Response(
        body,
        media_type="application/x-ndjson; charset=utf-8",
        headers={"Delta-Table-Version": str(version), "delta-sharing-capabilities": "responseformat=parquet"},
    )


class SharingService:
    def __init__(self, exchange: Exchange, secret: bytes | None = None, url_seconds: int | None = None):
        self.exchange = exchange
        self.ledger = CachedLedger(exchange.ledger.path)
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
        if not state.active():
            why = state.why_not()
            self.ledger.record(
                "share.denied", state.request["consumer"]["name"], state.id, path=request.url.path, reason=why
            )
            raise Problem(403, "PERMISSION_DENIED", why)
        return state

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

    def delta(self, state: RequestState, dataset: str, version: int | None = None) -> DeltaTable:
        table = self.exchange.lake.table("share", share_table_name(state.id, dataset))
        if table is None:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"table {dataset} of share {state.id} has no data")
        if version is not None:
            if not 0 <= version <= table.version():
                raise Problem(400, "INVALID_PARAMETER_VALUE", f"version {version}: the table has 0..{table.version()}")
            table.load_as_version(version)
        return table

    # --- listing ----------------------------------------------------------------------------------------------
    @staticmethod
    def _page(request: Request, items: list[dict]) -> dict:
        try:
            size = int(request.query_params.get("maxResults", 500))
            start = int(base64.urlsafe_b64decode(request.query_params.get("pageToken", "") + "==").decode() or 0)
        except (ValueError, UnicodeDecodeError):
            raise Problem(400, "INVALID_PARAMETER_VALUE", "maxResults and pageToken must be as returned") from None
        if size <= 0 or start < 0:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "maxResults must be positive")
        page = {"items": items[start : start + size]}
        if start + size < len(items):
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
        table = self.delta(state, entry["dataset"])
        return Response(status_code=200, headers={"Delta-Table-Version": str(table.version())})

    def _metadata_lines(self, state: RequestState, entry: dict, table: DeltaTable, files: list[dict]) -> list[dict]:
        meta = table.metadata()
        return [
            {"protocol": {"minReaderVersion": 1}},
            {
                "metaData": {
                    "id": meta.id,
                    "name": entry["dataset"],
                    "description": f"shucang share {state.id}: {entry['dataset']} (publish version {entry['source_version']})",
                    "format": {"provider": "parquet", "options": {}},
                    "schemaString": table.schema().to_json(),
                    "partitionColumns": list(meta.partition_columns),
                    "configuration": {},
                    "version": table.version(),
                    "size": sum(int(f["size_bytes"]) for f in files),
                    "numFiles": len(files),
                }
            },
        ]

    async def metadata(self, request: Request):
        state, entry = self.table_of(request)
        table = self.delta(state, entry["dataset"])
        return _ndjson(self._metadata_lines(state, entry, table, add_actions(table)), table.version())

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
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise Problem(400, "MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from None
        if not isinstance(body, dict):
            raise Problem(400, "MALFORMED_REQUEST", "the request body must be a JSON object")
        return body

    def _signed(self, request: Request, state: RequestState, dataset: str, path: str) -> tuple[str, int]:
        expires = int(time.time()) + self.url_seconds
        message = f"{state.id}/{dataset}/{path}/{expires}".encode()
        sig = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        base = str(request.base_url).rstrip("/")
        return f"{base}{PREFIX}/files/{state.id}/{dataset}/{path}?expires={expires}&sig={sig}", expires

    async def query(self, request: Request):
        state, entry = self.table_of(request)
        body = await self._body(request)
        version = body.get("version")
        if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"version must be an integer, not {version!r}")
        limit = body.get("limitHint")
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise Problem(400, "INVALID_PARAMETER_VALUE", f"limitHint must be a non-negative integer, not {limit!r}")
        if body.get("timestamp") is not None or body.get("startingVersion") is not None:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "timestamp and startingVersion queries are not supported")
        table = self.delta(state, entry["dataset"], version)
        files = add_actions(table)
        lines = self._metadata_lines(state, entry, table, files)
        digests = {f["path"]: f["sha256"] for f in entry.get("files", [])}
        rows = 0
        for add in files:
            if not FILE_NAME.fullmatch(add["path"]):
                raise Problem(500, "INTERNAL_ERROR", f"unexpected file {add['path']!r} in the share")
            url, expires = self._signed(request, state, entry["dataset"], add["path"])
            rows += int(add["num_records"])
            lines.append(
                {
                    "file": {
                        "url": url,
                        # the id is the SHA-256 of the file's bytes (as in the share's manifest): a consumer
                        # checks what it received against it
                        "id": digests.get(add["path"])
                        or hashlib.sha256(f"{state.id}/{add['path']}".encode()).hexdigest(),
                        "partitionValues": {},
                        "size": int(add["size_bytes"]),
                        "stats": json.dumps({"numRecords": int(add["num_records"])}),
                        "expirationTimestamp": expires * 1000,
                    }
                }
            )
        self.ledger.record(
            "share.read",
            state.request["consumer"]["name"],
            state.id,
            department=state.request["consumer"]["department"],
            dataset=entry["dataset"],
            table_version=table.version(),
            source_version=entry["source_version"],
            rows=rows,
            files=len(lines) - 2,
        )
        return _ndjson(lines, table.version())

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
        message = f"{share}/{dataset}/{name}/{expires}".encode()
        expected = hmac.new(self.secret, message, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.query_params.get("sig", "")):
            raise Problem(403, "PERMISSION_DENIED", "the file URL's signature is not valid")
        if time.time() > expires:
            raise Problem(403, "PERMISSION_DENIED", "the file URL has expired: query the table again")
        state = self.ledger.states().get(share)
        if state is None or not state.active():
            raise Problem(403, "PERMISSION_DENIED", state.why_not() if state else f"no share {share}")
        lake, where = self.exchange.lake, f"{share_table_name(share, dataset)}/{name}"  # FILE_NAME: no separator
        local = lake.local_path("share", where)
        if local is not None:
            # resolved, so a link planted in the share's folder cannot point the service at another file
            if local.resolve().parent != local.parent.resolve() or not local.is_file():
                raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"no file {name} in {share}/{dataset}")
            return FileResponse(local, media_type="application/octet-stream")
        data = lake.read_bytes("share", where)
        if data is None:
            raise Problem(404, "RESOURCE_DOES_NOT_EXIST", f"no file {name} in {share}/{dataset}")
        return Response(data, media_type="application/octet-stream")

    # --- the data-request API ----------------------------------------------------------------------------------
    async def file_request(self, request: Request):
        body = await self._body(request)
        rid = str(body.get("id") or "").lower()
        if not rid:
            raise Problem(400, "INVALID_PARAMETER_VALUE", "a request filed through the API carries its 'id'")
        try:
            state = self.exchange.file(
                parse(body, rid, source=f"api:{rid}"), actor=f"api:{request.client.host if request.client else '?'}"
            )
        except RequestError as exc:
            raise Problem(400, "INVALID_PARAMETER_VALUE", str(exc)) from None
        return JSONResponse(
            {"id": state.id, "status": state.status, "level": state.level, "reasons": state.reasons},
            status_code=201,
        )


def app(exchange: Exchange, secret: bytes | None = None, url_seconds: int | None = None) -> Starlette:
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
        route("/files/{share}/{table}/{name}", svc.file, ("GET", "HEAD")),
        Route("/api/requests", _wrap(svc.file_request), methods=["POST"]),
    ]

    async def not_found(request: Request, exc):
        return _error(404, "RESOURCE_DOES_NOT_EXIST", f"no such endpoint: {request.method} {request.url.path}")

    async def method(request: Request, exc):
        return _error(405, "METHOD_NOT_ALLOWED", f"{request.method} is not allowed on {request.url.path}")

    return Starlette(routes=routes, exception_handlers={404: not_found, 405: method})


def _wrap(endpoint):
    async def handler(request: Request):
        try:
            return await endpoint(request)
        except Problem as p:
            return _error(p.status, p.code, p.message)

    return handler


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    from orchestration.settings import settings

    parser = argparse.ArgumentParser(prog="python -m exchange.server", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="bind address (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8765)
    args = parser.parse_args(argv)
    s = settings()

    exchange = Exchange(s.lake(), s.exchange_dir, endpoint=f"http://{args.host}:{args.port}{PREFIX}")
    print(
        f"Delta Sharing service on http://{args.host}:{args.port}{PREFIX} — lake {s.lake_root}, ledger {exchange.ledger.path}"
    )
    uvicorn.run(app(exchange), host=args.host, port=args.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
