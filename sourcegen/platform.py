"""A data platform's interface (接口) for the live demo: ``python -m sourcegen.platform FOLDER --port P
--token-file F``.

Serves every ``FOLDER/<name>.jsonl`` at ``GET /<name with __ as />`` (``api__land_parcels.jsonl`` →
``/api/land_parcels``) as the collector expects an interface (``assets/ingest/api.py``): a bearer token,
pages of ``limit`` items under ``data``, and a keyset cursor (``next_cursor``, opaque) continuing after the last
item, with ``has_more``. Items are in their change order, so a cursor stays valid when items are appended.
Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import base64
import hmac
import http.server
import json
import urllib.parse
from pathlib import Path

MAX_LIMIT = 5000


def load(folder: Path) -> dict[str, list[dict]]:
    feeds = {}
    for path in sorted(folder.glob("*.jsonl")):
        route = "/" + path.stem.replace("__", "/")
        with path.open(encoding="utf-8") as f:
            feeds[route] = [json.loads(line) for line in f if line.strip()]
    return feeds


def _cursor(n: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": n}).encode()).decode()


def _after(cursor: str | None) -> int:
    if not cursor:
        return 0
    value = json.loads(base64.urlsafe_b64decode(cursor.encode()))["after"]
    if not isinstance(value, int) or value < 0:
        raise ValueError("bad cursor")
    return value


def server(feeds: dict[str, list[dict]], token: str, port: int = 0) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, status: int, body: dict) -> None:
            data = json.dumps(body, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):  # noqa: N802
            given = self.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return self._send(401, {"error": "unauthorised"})
            url = urllib.parse.urlsplit(self.path)
            items = feeds.get(url.path)
            if items is None:
                return self._send(404, {"error": "no such interface"})
            query = urllib.parse.parse_qs(url.query)
            try:
                after = _after(query.get("cursor", [None])[0])
                limit = int(query.get("limit", ["500"])[0])
            except (ValueError, KeyError, json.JSONDecodeError, UnicodeDecodeError):
                return self._send(400, {"error": "bad cursor or limit"})
            if not 1 <= limit <= MAX_LIMIT:
                return self._send(400, {"error": f"limit must be 1…{MAX_LIMIT}"})
            page = items[after : after + limit]
            end = after + len(page)
            return self._send(200, {"data": page, "next_cursor": _cursor(end), "has_more": end < len(items)})

    return http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sourcegen.platform", description=__doc__.split("\n\n")[0])
    parser.add_argument("folder", type=Path)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token-file", type=Path, required=True)
    args = parser.parse_args(argv)
    token = args.token_file.read_text(encoding="utf-8").strip()
    srv = server(load(args.folder), token, args.port)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
