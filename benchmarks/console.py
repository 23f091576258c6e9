"""The steward console's page times under a bounded local load: the console served as it runs (uvicorn, one
process) on a data folder the pipeline built, two clients each asking for every page ``rounds`` times over
HTTP; p50 and p95 per page, and the preview of the largest lake table (at scale 100, the 10M-row telemetry).

    python -m benchmarks.console DATA_DIR [--rounds 10]

The exchange folder is copied to a temporary one first (a benchmark steward signs in there), so the data's
own registry and ledger are left as they were. Prints one JSON line last.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

from lakehouse.lake import Lake

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "benchmark-steward-password"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Client:
    def __init__(self, base: str):
        self.base = base
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))

    def get(self, path: str) -> tuple[int, str, float]:
        started = time.perf_counter()
        try:
            with self.opener.open(self.base + path, timeout=60) as r:
                body = r.read().decode("utf-8")
                return r.status, body, time.perf_counter() - started
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace"), time.perf_counter() - started

    def post(self, path: str, form: dict) -> tuple[int, str, float]:
        started = time.perf_counter()
        data = urllib.parse.urlencode(form).encode()
        try:
            with self.opener.open(urllib.request.Request(self.base + path, data=data), timeout=60) as r:
                return r.status, r.read().decode("utf-8"), time.perf_counter() - started
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode("utf-8", "replace"), time.perf_counter() - started

    def sign_in(self, who: str) -> str:
        _, page, _ = self.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        status, page, _ = self.post("/login", {"id": who, "password": PASSWORD, "csrf": token, "next": "/catalogue"})
        if status != 200 or "数据目录" not in page:
            raise SystemExit(f"could not sign in to the console ({status})")
        return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def _catalogue(lake: Lake) -> list[dict]:
    body = lake.read_bytes("catalogue", "catalogue.json")
    if body is None:
        raise SystemExit(f"no catalogue in {lake.root}: run the pipeline (with its catalogue) first")
    return json.loads(body)["datasets"]


def _pages(lake: Lake) -> list[str]:
    catalogue = _catalogue(lake)
    pages = ["/catalogue", "/catalogue?q=" + urllib.parse.quote("登记"), "/catalogue?zone=std&grade=L4"]
    pages += [f"/datasets/{e['zone']}/{e['dataset_id']}" for e in catalogue if e["zone"] in ("std", "publish")]
    pages += ["/quarantine", "/requests", "/mujun?q=" + urllib.parse.quote("模具")]
    ev = lake.read("publish", "topic_mujun_evaluation", columns=["uscc", "year", "band"])
    if ev is not None and ev.height:
        firm = ev.drop_nulls("band").row(0, named=True)
        pages.append(f"/mujun/{firm['uscc']}/{firm['year']}")
    pages.append("/lineage?dataset=publish/topic_mujun_evaluation&column=total_score")
    return pages


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks.console")
    parser.add_argument("data", type=Path)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    data = args.data.resolve()
    lake = Lake(str(data / "lake"))
    tmp = Path(tempfile.mkdtemp(prefix="shucang-console-bench-"))
    try:
        exchange = tmp / "exchange"
        if (data / "exchange").exists():
            shutil.copytree(data / "exchange", exchange)
        from exchange.identity import IdentityError, Principals

        reg = Principals(exchange / "principals.json")
        try:
            reg.add_steward("bench-steward", "基准测试管理员", "区大数据中心", tmp / "bench-steward.key")
        except IdentityError:
            pass
        reg.set_password("bench-steward", PASSWORD)
        port = _free_port()
        env = {
            **os.environ,
            "SHUCANG_DATA_DIR": str(data),
            "SHUCANG_EXCHANGE_DIR": str(exchange),
            "SHUCANG_AUDIT_LOG": str(tmp / "audit.jsonl"),
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "console", "serve", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.time() + 60
            while True:
                try:
                    urllib.request.urlopen(base + "/healthz", timeout=2).close()
                    break
                except OSError:
                    if time.time() > deadline:
                        raise SystemExit("the console did not start") from None
                    time.sleep(0.2)
            pages = _pages(lake)
            clients = [Client(base) for _ in range(2)]
            tokens = [c.sign_in("bench-steward") for c in clients]
            for p in pages:  # warm: the first read of each table, the catalogue and lineage caches
                status, _, _ = clients[0].get(p)
                # a lake whose runs emitted no column lineage answers the lineage page with 404: a page all the same
                if status != 200 and not (status == 404 and p.startswith("/lineage")):
                    raise SystemExit(f"{p}: HTTP {status}")
            times: dict[str, list[float]] = {p: [] for p in pages}
            lock = threading.Lock()

            def load(client: Client) -> None:
                for _ in range(args.rounds):
                    for p in pages:
                        _, _, seconds = client.get(p)
                        with lock:
                            times[p].append(seconds)

            threads = [threading.Thread(target=load, args=(c,)) for c in clients]
            started = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.perf_counter() - started
            every = sorted(s for v in times.values() for s in v)
            per_page = {p: {"p50_ms": statistics.median(v) * 1000, "p95_ms": _p95(v) * 1000} for p, v in times.items()}
            # the preview of the largest table in the lake (raw, read by a steward with a reason: audited)
            biggest = max((e for e in _catalogue(lake) if e["zone"] == "raw"), key=lambda e: e.get("row_count") or 0)
            largest = (biggest["zone"], biggest["dataset_id"])
            rows = lake.row_count(*largest)
            preview = []
            for _ in range(5):
                status, page, seconds = clients[0].post(
                    f"/datasets/{largest[0]}/{largest[1]}/preview", {"csrf": tokens[0], "reason": "基准测试 benchmark"}
                )
                if status != 200 or "数据预览" not in page:
                    raise SystemExit(f"preview of {largest}: HTTP {status}")
                preview.append(seconds)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = {
        "pages": len(pages),
        "requests": len(every),
        "wall_seconds": wall,
        "p50_ms": statistics.median(every) * 1000,
        "p95_ms": _p95(every) * 1000,
        "slowest_page": max(per_page.items(), key=lambda kv: kv[1]["p95_ms"]),
        "preview_table": "/".join(largest),
        "preview_rows": rows,
        "preview_p50_ms": statistics.median(preview) * 1000,
        "preview_max_ms": max(preview) * 1000,
    }
    print(
        f"console: {result['requests']} requests over {result['pages']} pages, 2 clients: p50 "
        f"{result['p50_ms']:.0f} ms, p95 {result['p95_ms']:.0f} ms (target ≤ 300 ms: "
        f"{'met' if result['p95_ms'] <= 300 else 'NOT met'}); slowest {result['slowest_page'][0]} p95 "
        f"{result['slowest_page'][1]['p95_ms']:.0f} ms; preview of {result['preview_table']} ({rows:,} rows) "
        f"p50 {result['preview_p50_ms']:.0f} ms, max {result['preview_max_ms']:.0f} ms (target ≤ 1 s: "
        f"{'met' if result['preview_max_ms'] <= 1000 else 'NOT met'})",
        file=sys.stderr,
    )
    print(json.dumps(result, ensure_ascii=False))
    return 0


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


if __name__ == "__main__":
    sys.exit(main())
