"""An interface (接口) source against a local data-platform server the test starts on 127.0.0.1, serving the
generator's tax filings page by page behind a token, with faults injected: timeouts, 429 with Retry-After,
5xx, dropped connections, and the data changing between calls (items added, items already read updated, items
not yet read updated). Every item lands, once per version; the latest versions equal the server's data; a
crash resumes from the last committed cursor; a refused token is a clear error that lands nothing."""

from __future__ import annotations

import base64
import datetime as dt
import http.server
import json
import threading
import time
import urllib.parse

import polars as pl
import pytest

from assets.ingest.api import ApiCollector, InterfaceError
from assets.ingest.collector import collect_history
from lakehouse.lake import Lake
from lakehouse.registry import Dataset, registry

pytestmark = pytest.mark.integration  # a server on a port
TOKEN = "t0ken-for-tests"


class Platform:
    """The data platform: items sorted by (updated, id), a keyset cursor, faults on demand."""

    def __init__(self, items: list[dict]):
        self.items = {i["id"]: i for i in items}
        self.clock = 0
        for i in items:
            self.clock += 1
            i["updated"] = self.clock
        self.faults: list[str] = []  # consumed one per request: 429, 503, timeout, drop
        self.between: list = []  # callables run between successful pages (the data changing)
        self.requests = 0
        self.lock = threading.Lock()

    def touch(self, item: dict) -> None:
        self.clock += 1
        item["updated"] = self.clock
        self.items[item["id"]] = item

    def page(self, cursor: str | None, limit: int) -> dict:
        after = tuple(json.loads(base64.urlsafe_b64decode(cursor))) if cursor else (0, "")
        ordered = sorted(self.items.values(), key=lambda i: (i["updated"], i["id"]))
        rest = [i for i in ordered if (i["updated"], i["id"]) > after]
        page = rest[:limit]
        last = (page[-1]["updated"], page[-1]["id"]) if page else after
        token = base64.urlsafe_b64encode(json.dumps(list(last)).encode()).decode()
        shown = [
            {k: v for k, v in i.items() if k not in ("updated", "hide_id") and not (k == "id" and i.get("hide_id"))}
            for i in page
        ]
        return {"data": shown, "next_cursor": token, "has_more": len(rest) > limit}


def serve(platform: Platform):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):  # noqa: N802
            with platform.lock:
                platform.requests += 1
                fault = platform.faults.pop(0) if platform.faults else None
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                self.send_response(401)
                self.end_headers()
                return
            if fault == "timeout":
                time.sleep(3.0)  # past the client's timeout by far: a loaded machine answers slowly, never this slowly
            elif fault == "drop":
                self.connection.close()
                return
            elif fault in ("429", "503"):
                self.send_response(int(fault))
                if fault == "429":
                    self.send_header("Retry-After", "1")
                self.end_headers()
                return
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            with platform.lock:
                body = platform.page(query.get("cursor", [None])[0], int(query["limit"][0]))
                if platform.between:
                    platform.between.pop(0)()
            data = json.dumps(body, ensure_ascii=False).encode()
            try:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def filings(n: int, start: int = 1) -> list[dict]:
    return [
        {
            "id": f"F{i:06d}",
            "uscc": f"91331003MA{i:07d}",
            "taxpayer_name": f"测试{i}模具有限公司",
            "period": f"2023-{i % 12 + 1:02d}",
            "filing_type": "正常",
            "revenue": round(1000 + i * 1.5, 2),
            "tax_paid": 30 + i % 7,
            "amount_unit": "元",
            "filed_on": "2024-01-10",
        }
        for i in range(start, start + n)
    ]


@pytest.fixture
def platform():
    p = Platform(filings(95))
    server = serve(p)
    p.url = f"http://127.0.0.1:{server.server_address[1]}/api"
    yield p
    server.shutdown()


def dataset(**options) -> Dataset:
    base = registry().dataset("tax_monthly").model_dump()
    api = {
        "connection": "platform",
        "path": "/tax/filings",
        "key": ["id"],
        "page_size": 10,
        "pages_per_commit": 3,
        "timeout_seconds": 1.5,
        **options,
    }
    return Dataset.model_validate({**base, "kind": "api", "api": api})


def collector(ds: Dataset, lake: Lake, platform: Platform, n: int, slept: list | None = None, token: str = TOKEN):
    environ = {"SHUCANG_SOURCE_PLATFORM": platform.url, "SHUCANG_SOURCE_PLATFORM_TOKEN": token}
    return ApiCollector(
        ds,
        lake,
        f"batch-{n}",
        f"run-{n}",
        dt.datetime.now(dt.UTC),
        environ,
        sleep=(slept.append if slept is not None else lambda s: None),
    )


def current(lake: Lake, ds: Dataset) -> pl.DataFrame:
    raw = lake.read("raw", ds.id)
    return raw.sort("_ingested_at", "_row_number").unique("_source_key", keep="last")


def test_faults_are_retried_and_a_changing_feed_loses_and_repeats_nothing(platform, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset()
    platform.faults = ["429", "503", "timeout", None, "drop", None, "503"]
    read_first = platform.items["F000003"]
    unread = platform.items["F000090"]
    platform.between = [
        lambda: [platform.touch(i) for i in filings(5, start=200)],  # new filings, after everything
        lambda: platform.touch({**read_first, "revenue": 9999.99}),  # a corrected item already read
        lambda: platform.touch({**unread, "revenue": 7777.77}),  # an item not yet read, corrected
    ]
    slept: list[float] = []
    c = collector(ds, lake, platform, 1, slept)
    result = c.run()
    assert not result.rejected and c.retries == {"429": 1, "503": 2, "timeout": 1, "connection": 1}
    assert 1.0 in slept  # the Retry-After the server asked for
    raw = lake.read("raw", ds.id)
    assert raw.height == 101  # 95 + 5 new + F000003 again as its corrected version (F000090 read once, late)
    latest = current(lake, ds)
    assert latest.height == 100
    assert latest.filter(pl.col("_source_key") == '["F000003"]')["revenue"].item() == "9999.99"
    assert latest.filter(pl.col("_source_key") == '["F000090"]')["revenue"].item() == "7777.77"
    server = {i["id"]: str(i["revenue"]) for i in platform.items.values()}
    assert dict(zip(latest["_source_key"].str.slice(2, 7), latest["revenue"], strict=True)) == server
    # commits every three pages, each carrying the cursor after its last page
    assert all(json.loads(c["source_position"])["cursor"] for c in lake.commits("raw", ds.id) if "source_position" in c)
    # nothing new: a run asks once and lands nothing
    before, asked = lake.table("raw", ds.id).version(), platform.requests
    assert collector(ds, lake, platform, 2).run().landed == [] and platform.requests == asked + 1
    assert lake.table("raw", ds.id).version() == before


def test_a_crash_resumes_from_the_last_committed_cursor(platform, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset()
    real_append, calls = Lake.append, []

    def killed_after_the_second_commit(*args, **kwargs):
        version = real_append(*args, **kwargs)
        calls.append(version)
        if len(calls) == 2:
            raise SystemExit("killed after the Delta commit, before the log")
        return version

    monkeypatch.setattr(Lake, "append", killed_after_the_second_commit)
    with pytest.raises(SystemExit):
        collector(ds, lake, platform, 1).run()
    monkeypatch.undo()
    assert lake.read("raw", ds.id).height == 60  # two commits of three pages
    asked = platform.requests
    result = collector(ds, lake, platform, 2).run()
    assert platform.requests - asked == 4  # pages 7–10 only: the landed ones are not requested again
    raw = lake.read("raw", ds.id)
    assert raw.height == 95 and raw["_source_key"].n_unique() == 95
    assert sum(1 for o in result.landed if "before a crash" in (o.note or "")) == 2


def test_faults_that_outlast_the_retries_fail_clearly_and_keep_what_landed(platform, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    ds = dataset(max_attempts=3)
    platform.faults = [None] * 4 + ["503"] * 3  # pages 1–4 come, page 5 never does
    with pytest.raises(InterfaceError, match=r"/api/tax/filings\?.*503 on all 3 attempts"):
        collector(ds, lake, platform, 1).run()
    assert lake.read("raw", ds.id).height == 40  # three pages committed, the fourth with them before the error
    log = collect_history(lake, ds.id)
    assert log.filter(pl.col("status") == "landed").height == 2
    assert collector(ds, lake, platform, 2).run().rows_landed == 55  # resumes after page 4
    # a refused token is not retried, and says so
    platform.requests = 0
    with pytest.raises(InterfaceError, match="HTTP 401.*token was refused"):
        collector(ds, lake, platform, 3, token="wrong").run()
    assert platform.requests == 1


def test_a_page_that_is_not_the_agreed_shape_is_refused_with_the_reason(platform, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    platform.items["F000005"]["hide_id"] = True  # served without its key
    result = collector(dataset(), lake, platform, 1).run()
    (refused,) = result.rejected
    assert refused.rejection.code == "missing_columns" and "without its key 'id'" in refused.rejection.detail
    assert lake.table("raw", "tax_monthly").version() == 0  # nothing landed (the table only created)
