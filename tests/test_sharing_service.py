"""The Delta Sharing service over HTTP: the official client end to end (from its own environment), and what
the service refuses — missing, wrong, revoked or expired tokens, another consumer's share, path traversal,
malformed and oversized requests, forged or stale file URLs."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import threading
import time
from pathlib import Path

import httpx
import polars as pl
import pytest
import uvicorn
from exchange_support import decide, file, firms, published_lake, request, revoke

from benchmarks.sharing import client_env, free_port, run_client
from exchange.server import app, server_config

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast


@pytest.fixture(scope="module")
def client_python() -> Path:
    """The official delta-sharing client in its own environment, created with uv on first use."""
    return client_env()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A publish zone, three requests (a department's, an enterprise's, one to be revoked), their shares,
    and the service on a free port of 127.0.0.1."""
    port = free_port()
    ex = published_lake(tmp_path_factory.mktemp("sharing"))
    ex = dataclasses.replace(ex, endpoint=f"http://127.0.0.1:{port}/delta-sharing")
    _, api_key = ex.principals.add_consumer("api-app", "接口测试应用", "区经信局", "department", named_firms=True)
    docs = {
        "dept": request(
            "dept", ["uscc", "name", "region_code", "revenue_yuan"], rows={"region_code": ["331003", "331004"]}
        ),
        "bank": request("bank", ["uscc", "revenue_yuan", "established_on"], kind="enterprise"),
        "gone": request("gone", ["uscc", "name"]),
        "old": request("old", ["uscc"], start=dt.date.today() - dt.timedelta(days=30), days=5),
    }
    profiles = {}
    for rid, doc in docs.items():
        state = file(ex, doc)
        if state.status == "pending":
            decide(ex, rid)
        profiles[rid] = Path(ex.build(rid, "tester")[1])
    server = uvicorn.Server(server_config(app(ex, url_seconds=60), "127.0.0.1", port, "warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    yield {"ex": ex, "profiles": profiles, "base": f"http://127.0.0.1:{port}/delta-sharing", "api_key": api_key}
    server.should_exit = True
    thread.join(timeout=10)


def _token(served, rid) -> str:
    return json.loads(served["profiles"][rid].read_text())["bearerToken"]


# --- the official client -------------------------------------------------------------------------------------------


def test_the_official_client_reads_exactly_its_granted_columns_and_rows(served, client_python, tmp_path):
    code, tables = run_client(client_python, served["profiles"]["dept"], "tables")
    assert code == 0 and tables == ["dept.shucang.firms"]  # its own share, nothing else
    code, summary = run_client(
        client_python, served["profiles"]["dept"], "read", "dept.shucang.firms", tmp_path / "d.parquet"
    )
    assert code == 0 and summary == {"rows": 200, "columns": ["uscc", "name", "region_code", "revenue_yuan"]}
    got = pl.read_parquet(tmp_path / "d.parquet")
    expected = (
        firms()
        .filter(pl.col("region_code").is_in(["331003", "331004"]))
        .select("uscc", "name", "region_code", "revenue_yuan")
    )
    assert got.sort("uscc").equals(expected.sort("uscc"))

    code, summary = run_client(
        client_python, served["profiles"]["bank"], "read", "bank.shucang.firms", tmp_path / "b.parquet"
    )
    bank = pl.read_parquet(tmp_path / "b.parquet").sort("uscc")
    assert code == 0 and bank.columns == ["uscc", "revenue_yuan", "established_on"] and bank.height == 600
    # the enterprise policy: revenue to two significant digits, establishment date to its year
    assert bank["revenue_yuan"][0] == 1_200_000.0
    assert {d.month for d in pl.Series(bank["established_on"]).cast(pl.Date)} == {1}
    code, version = run_client(client_python, served["profiles"]["bank"], "version", "bank.shucang.firms")
    assert code == 0 and version == served["ex"].state("bank").manifest["tables"][0]["share_version"]

    reads = [e for e in served["ex"].ledger.entries() if e["action"] == "share.read"]
    dept_read = next(e for e in reads if e["detail"]["request_id"] == "dept")
    assert dept_read["actor"] == "consumer:dept-app" and dept_read["detail"]["rows"] == 200
    assert dept_read["detail"]["table_version"] == 0 and dept_read["detail"]["source_version"] == 0


def test_the_client_with_a_revoked_or_expired_token_gets_403_and_no_data(served, client_python, tmp_path):
    code, _ = run_client(client_python, served["profiles"]["gone"], "tables")
    assert code == 0
    revoke(served["ex"], "gone")
    code, error = run_client(
        client_python, served["profiles"]["gone"], "read", "gone.shucang.firms", tmp_path / "g.parquet"
    )
    assert code == 2 and error["status"] == 403 and "revoked" in error["message"]
    assert not (tmp_path / "g.parquet").exists()
    code, error = run_client(
        client_python, served["profiles"]["old"], "read", "old.shucang.firms", tmp_path / "o.parquet"
    )
    assert code == 2 and error["status"] == 403 and "expired" in error["message"]
    denied = [e for e in served["ex"].ledger.entries() if e["action"] == "share.denied"]
    assert {e["detail"]["request_id"] for e in denied} >= {"gone", "old"}
    assert served["ex"].ledger.verify().ok


# --- what the service refuses, over plain HTTP --------------------------------------------------------------------


def _get(served, path, token=None, **kw):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(served["base"] + path, headers=headers, **kw)


def _post(served, path, token, content: bytes):
    return httpx.post(served["base"] + path, headers={"Authorization": f"Bearer {token}"}, content=content)


def test_no_token_or_a_wrong_token_gets_401(served):
    for token in (None, "not-a-token"):
        r = _get(served, "/shares", token)
        assert r.status_code == 401 and r.json()["errorCode"] == "UNAUTHENTICATED" and "items" not in r.text
    r = httpx.get(served["base"] + "/shares", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401


def test_a_token_opens_its_own_share_only(served):
    token = _token(served, "dept")
    assert [s["name"] for s in _get(served, "/shares", token).json()["items"]] == ["dept"]
    for path in ("/shares/bank", "/shares/bank/schemas", "/shares/bank/schemas/shucang/tables/firms/metadata"):
        r = _get(served, path, token)
        assert r.status_code == 403 and "does not open share 'bank'" in r.json()["message"]
    assert _get(served, "/shares/dept/schemas/shucang/tables/nope/metadata", token).status_code == 404
    assert _get(served, "/shares/dept/schemas/other/tables", token).status_code == 404


def test_path_traversal_gets_a_clear_error_and_no_data(served):
    token = _token(served, "dept")
    for path in (
        "/shares/dept/schemas/shucang/tables/..%2F..%2Fpublish%2Ffirms/metadata",
        "/shares/..%2Fbank/schemas",
        "/files/dept/firms/..%2F..%2F..%2Fpublish%2Ffirms%2F_delta_log%2F00000000000000000000.json",
        "/files/dept/firms/%2Fetc%2Fpasswd",
    ):
        r = _get(served, path, token)
        assert r.status_code in (400, 403, 404) and r.json()["message"], path
        assert "uscc" not in r.text


def test_malformed_and_oversized_requests_get_clear_errors(served):
    token = _token(served, "dept")
    query = "/shares/dept/schemas/shucang/tables/firms/query"
    r = _post(served, query, token, b"{not json")
    assert r.status_code == 400 and "not acceptable JSON" in r.json()["message"]
    r = _post(served, query, token, b"[1, 2]")
    assert r.status_code == 400 and "JSON object" in r.json()["message"]
    r = _post(served, query, token, json.dumps({"limitHint": -1}).encode())
    assert r.status_code == 400 and "limitHint" in r.json()["message"]
    r = _post(served, query, token, json.dumps({"version": "latest"}).encode())
    assert r.status_code == 400 and "version" in r.json()["message"]
    r = _post(served, query, token, json.dumps({"predicateHints": ["x" * 100_000]}).encode())
    assert r.status_code == 413 and "65536" in r.json()["message"]
    r = _get(served, "/shares?maxResults=0", token)  # the protocol: no items, and where to start
    assert r.status_code == 200 and r.json()["items"] == [] and r.json()["nextPageToken"]
    r = _get(served, "/shares?maxResults=-1", token)
    assert r.status_code == 400 and r.json()["errorCode"] == "INVALID_PARAMETER_VALUE"
    r = httpx.request("DELETE", served["base"] + "/shares", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 405


def test_query_answers_signed_urls_with_range_support_and_forged_or_stale_urls_are_refused(served):
    token = _token(served, "dept")
    r = _post(served, "/shares/dept/schemas/shucang/tables/firms/query", token, b"{}")
    assert r.status_code == 200 and r.headers["delta-table-version"] == "0"
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert lines[0] == {"protocol": {"minReaderVersion": 1}}
    fields = [f["name"] for f in json.loads(lines[1]["metaData"]["schemaString"])["fields"]]
    assert fields == ["uscc", "name", "region_code", "revenue_yuan"]
    file = lines[2]["file"]
    assert json.loads(file["stats"])["numRecords"] == 200
    whole = httpx.get(file["url"])  # no bearer token: the signature is the authorisation
    assert whole.status_code == 200 and len(whole.content) == file["size"]
    # the file's id is the SHA-256 of its bytes, as in the share's manifest: the consumer can check them
    assert hashlib.sha256(whole.content).hexdigest() == file["id"]
    manifest = _get(served, "/shares/dept/manifest", token).json()
    assert [f["sha256"] for f in manifest["tables"][0]["files"]] == [file["id"]]
    assert _get(served, "/shares/bank/manifest", token).status_code == 403
    part = httpx.get(file["url"], headers={"Range": "bytes=4-99"})
    assert part.status_code == 206 and part.content == whole.content[4:100]
    assert httpx.head(file["url"]).headers["content-length"] == str(file["size"])

    forged = file["url"].replace("sig=", "sig=0")
    assert httpx.get(forged).status_code == 403
    moved = file["url"].replace("/files/dept/", "/files/bank/")  # a valid signature for another share's path
    assert httpx.get(moved).status_code == 403
    stale = file["url"].split("expires=")[0] + "expires=1000&sig=" + file["url"].split("sig=")[1]
    assert httpx.get(stale).status_code == 403


def test_version_and_paged_listing(served):
    token = _token(served, "dept")
    r = httpx.head(
        served["base"] + "/shares/dept/schemas/shucang/tables/firms/version",
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200 and r.headers["delta-table-version"] == "0"
    assert _get(served, "/shares/dept/all-tables", token).json()["items"][0]["name"] == "firms"
    page = _get(served, "/shares?maxResults=1", token).json()
    assert len(page["items"]) == 1 and "nextPageToken" not in page


def _api(served) -> str:
    return served["base"].replace("/delta-sharing", "") + "/api/requests"


def test_requests_are_filed_through_the_api_as_the_consumer_the_key_belongs_to(served):
    key = {"Authorization": f"Bearer {served['api_key']}"}
    doc = {**request("api-one", ["uscc", "name"]), "consumer": "api-app"}
    r = httpx.post(_api(served), json=doc, headers=key)
    assert r.status_code == 201 and r.json()["status"] == "approved" and r.json()["level"] == "L1"
    filed = next(e for e in served["ex"].ledger.entries() if e["detail"].get("request_id") == "api-one")
    assert filed["action"] == "request.filed" and filed["actor"] == "consumer:api-app"
    state = served["ex"].state("api-one")
    assert state.request["consumer"] == {
        "id": "api-app",
        "name": "接口测试应用",
        "department": "区经信局",
        "kind": "department",
        "named_firms": True,
    }
    assert state.request["source"] == "api:api-one"
    bad = {k: v for k, v in request("api-two", ["uscc"]).items() if k != "consumer"} | {"purpose": ""}
    r = httpx.post(_api(served), json=bad, headers=key)
    assert r.status_code == 400 and "'purpose' is required" in r.json()["message"]


def test_filing_without_a_key_as_someone_else_or_not_as_json_is_refused(served):
    doc = {k: v for k, v in request("nobody", ["uscc"]).items() if k != "consumer"}
    for headers in ({}, {"Authorization": "Bearer shc_guess"}, {"Authorization": f"Bearer {_token(served, 'dept')}"}):
        r = httpx.post(_api(served), json=doc, headers=headers)  # no key, a guess, a share token
        assert r.status_code == 401 and r.json()["errorCode"] == "UNAUTHENTICATED"
    key = {"Authorization": f"Bearer {served['api_key']}"}
    # the body cannot make the requester someone else
    r = httpx.post(_api(served), json={**doc, "consumer": "dept-app"}, headers=key)
    assert r.status_code == 400 and "filed by its own consumer (api-app)" in r.json()["message"]
    r = httpx.post(_api(served), json={**doc, "consumer": {"name": "黄岩区经信局亩均办"}}, headers=key)
    assert r.status_code == 400
    # a browser page's cross-origin "simple" post (text/plain) is refused; no CORS preflight is ever granted
    r = httpx.post(_api(served), content=json.dumps(doc), headers={**key, "Content-Type": "text/plain"})
    assert r.status_code == 415
    pre = httpx.options(
        _api(served), headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert pre.status_code == 405 and not any(h.lower().startswith("access-control-") for h in pre.headers)
    assert "nobody" not in served["ex"].ledger.states()


def test_filings_are_rate_limited_per_consumer(served):
    _, key = served["ex"].principals.add_consumer(
        "busy-app", "频繁申请应用", "区经信局", "department", named_firms=True
    )
    headers = {"Authorization": f"Bearer {key}"}
    codes = []
    for i in range(10):
        doc = {k: v for k, v in request(f"busy-{i}", ["uscc"]).items() if k != "consumer"}
        codes.append(httpx.post(_api(served), json=doc, headers=headers).status_code)
    assert codes[:6] == [201] * 6 and set(codes[6:]) == {429}
    r = httpx.post(_api(served), json=doc, headers=headers)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["errorCode"] == "TOO_MANY_REQUESTS"
    # another consumer is not slowed by it
    other = {k: v for k, v in request("calm-1", ["uscc"]).items() if k != "consumer"}
    r = httpx.post(_api(served), json=other, headers={"Authorization": f"Bearer {served['api_key']}"})
    assert r.status_code == 201


def test_hostile_bodies_and_headers_get_protocol_errors_not_500s(served):
    token = _token(served, "dept")
    query = "/shares/dept/schemas/shucang/tables/firms/query"
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"limitHint": ' + b"9" * 5000 + b"}"):
        r = _post(served, query, token, body[:60_000])
        assert r.status_code in (400, 413) and r.json()["errorCode"] in ("MALFORMED_REQUEST", "INVALID_PARAMETER_VALUE")
    # a huge header is cut off at the service's head limit, and the service keeps answering others
    import socket

    host, port = served["base"].split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /delta-sharing/shares HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 1_000_000)
        sock.settimeout(5)
        try:
            answer = sock.recv(200)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            answer = b""
        assert answer == b"" or answer.startswith(b"HTTP/1.1 4")
    assert _get(served, "/shares", token).status_code == 200


def test_signed_urls_use_the_configured_address_not_the_host_header(served):
    token = _token(served, "dept")
    r = httpx.post(
        served["base"] + "/shares/dept/schemas/shucang/tables/firms/query",
        headers={"Authorization": f"Bearer {token}", "Host": "evil.example"},
        content=b"{}",
    )
    url = json.loads(r.text.splitlines()[2])["file"]["url"]
    assert url.startswith(served["base"] + "/files/dept/firms/")
    assert httpx.get(url).status_code == 200 and "sig=" in url  # a download through a signed URL …
    assert _get(served, "/shares", "not-a-token").status_code == 401  # … and a refusal, both logged
    # a call is logged once its response has gone out (with its duration): the client may be a moment ahead
    for _ in range(100):
        log = (served["ex"].folder / "access.log").read_text(encoding="utf-8")
        calls = [json.loads(line) for line in log.splitlines()]
        if any(c["status"] == 401 for c in calls) and any(c["path"].startswith("/delta-sharing/files/") for c in calls):
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the download and the refusal are not both in the access log: {calls[-5:]}")
    assert "sig=" not in log and "expires=" not in log  # the access log never holds a usable URL


def test_the_service_refuses_to_start_on_a_broken_ledger(tmp_path):
    ex = published_lake(tmp_path)
    file(ex, request("one", ["uscc"]))
    file(ex, request("two", ["uscc"]))
    lines = ex.ledger.path.read_text(encoding="utf-8").splitlines()
    ex.ledger.path.write_text(lines[0] + "\n" + lines[2] + "\n" + lines[3] + "\n", encoding="utf-8")
    with pytest.raises(RuntimeError, match="does not verify: line 2"):
        app(ex)


def test_under_load_every_answer_is_right_and_the_ledger_verifies(served):
    """500 calls, 50 at a time: reads of two shares, wrong tokens, another share's table."""
    import asyncio

    dept, bank = _token(served, "dept"), _token(served, "bank")
    reads_before = sum(1 for e in served["ex"].ledger.entries() if e["action"] == "share.read")
    calls = (
        [("dept", dept, 200, 200)] * 300
        + [("bank", bank, 200, 600)] * 100
        + [("dept", "wrong-token", 401, None)] * 50
        + [("bank", dept, 403, None)] * 50
    )

    async def one(client, limit, share, token, status, rows):
        async with limit:
            r = await client.post(
                f"{served['base']}/shares/{share}/schemas/shucang/tables/firms/query",
                headers={"Authorization": f"Bearer {token}"},
                content=b"{}",
            )
        if r.status_code != status:
            return f"{share}: {r.status_code} where {status} was expected: {r.text[:200]}"
        if rows is not None:
            lines = [json.loads(line) for line in r.text.splitlines()]
            got = sum(json.loads(x["file"]["stats"])["numRecords"] for x in lines if "file" in x)
            if got != rows:
                return f"{share}: {got} rows where {rows} were expected"
        elif r.json()["errorCode"] not in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return f"{share}: {r.json()}"
        return None

    async def run():
        limit = asyncio.Semaphore(50)
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=50)) as client:
            return await asyncio.gather(*(one(client, limit, *c) for c in calls))

    problems = [p for p in asyncio.run(run()) if p]
    assert problems == []
    assert served["ex"].ledger.verify().ok
    reads = sum(1 for e in served["ex"].ledger.entries() if e["action"] == "share.read")
    assert reads - reads_before == 400  # every read recorded, once


def test_filing_never_rereads_the_whole_ledger(tmp_path, monkeypatch):
    """A filing through the service costs what was appended since the last call, however long the ledger:
    the full replay and the full verification are not on its path."""
    from starlette.testclient import TestClient

    from exchange.ledger import Ledger
    from privacy.audit import AuditLog

    ex = published_lake(tmp_path)
    _, key = ex.principals.add_consumer("api-app", "接口测试应用", "区经信局", "department", named_firms=True)
    for i in range(30):
        file(ex, request(f"old-{i}", ["uscc"]))
    client = TestClient(app(ex), base_url="http://127.0.0.1:1")

    def whole_file(*_):
        raise AssertionError("the whole ledger was read again")

    monkeypatch.setattr(Ledger, "entries", whole_file)
    monkeypatch.setattr(AuditLog, "verify", whole_file)
    doc = {k: v for k, v in request("new-one", ["uscc"]).items() if k != "consumer"}
    r = client.post("/api/requests", json=doc, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 201 and r.json()["status"] == "approved"


# --- protocol completeness, with the official client ------------------------------------------------------------


def _read(client_python, served, rid, tmp_path, command="read", **options):
    out = tmp_path / f"{rid}-{command}-{len(options)}.parquet"
    code, summary = run_client(
        client_python, served["profiles"][rid], command, f"{rid}.shucang.firms", out, json.dumps(options)
    )
    return code, summary, (pl.read_parquet(out) if code == 0 else None)


def test_the_official_client_reads_in_delta_format_too(served, client_python, tmp_path):
    code, _, parquet = _read(client_python, served, "dept", tmp_path)
    code_d, summary, delta = _read(client_python, served, "dept", tmp_path, use_delta_format=True)
    assert code == code_d == 0 and summary["rows"] == 200
    assert delta.sort("uscc").equals(parquet.sort("uscc"))


def test_the_official_client_reads_a_version_or_timestamp_of_the_current_build_and_no_other(
    served, client_python, tmp_path
):
    state = served["ex"].state("bank")
    entry = state.manifest["tables"][0]
    first, last = entry["build_version"], entry["share_version"]
    code, summary, frame = _read(client_python, served, "bank", tmp_path, version=first)
    assert code == 0 and summary["rows"] == 600
    code, summary, _ = _read(client_python, served, "bank", tmp_path, timestamp="2999-01-01T00:00:00Z")
    assert code == 0 and summary["rows"] == 600  # the latest version at that time
    code, error = run_client(
        client_python,
        served["profiles"]["bank"],
        "read",
        "bank.shucang.firms",
        tmp_path / "x.parquet",
        json.dumps({"timestamp": "2000-01-01T00:00:00Z"}),
    )
    assert code == 2 and error["status"] == 400
    assert first <= last


def test_the_official_client_reads_the_change_feed_in_both_formats(served, client_python, tmp_path):
    entry = served["ex"].state("dept").manifest["tables"][0]
    for delta in (False, True):
        code, summary, frame = _read(
            client_python,
            served,
            "dept",
            tmp_path,
            "changes",
            starting_version=entry["build_version"],
            use_delta_format=delta,
        )
        assert code == 0 and summary["rows"] == 200, (delta, summary)
        assert set(frame["_change_type"]) == {"insert"} and set(frame["_commit_version"]) == {entry["build_version"]}


def test_hints_prune_files_by_their_statistics(tmp_path, monkeypatch):
    """A share written in files of 100 sorted rows: a predicate on the credit code, or a limit, hands out
    only the files that may hold the rows; the client still gets what it asked for."""
    from starlette.testclient import TestClient

    from exchange.requests import policy

    monkeypatch.setitem(policy(), "share_file_rows", 100)
    ex = published_lake(tmp_path)
    file(ex, request("small", ["uscc", "name"]))
    _, profile = ex.build("small", "tester")
    assert len(ex.state("small").manifest["tables"][0]["files"]) == 6
    client = TestClient(app(ex), base_url="http://127.0.0.1:1")
    token = {"Authorization": f"Bearer {json.loads(Path(profile).read_text())['bearerToken']}"}
    query = "/delta-sharing/shares/small/schemas/shucang/tables/firms/query"

    def files(body):
        r = client.post(query, headers=token, json=body)
        assert r.status_code == 200, r.text
        return [json.loads(line)["file"] for line in r.text.splitlines()[2:]]

    assert len(files({})) == 6
    wanted = "91331000MA0000250X"
    predicate = {
        "op": "equal",
        "children": [
            {"op": "column", "name": "uscc", "valueType": "string"},
            {"op": "literal", "value": wanted, "valueType": "string"},
        ],
    }
    [only] = files({"jsonPredicateHints": json.dumps(predicate)})
    stats = json.loads(only["stats"])
    assert stats["minValues"]["uscc"] <= wanted <= stats["maxValues"]["uscc"] and stats["numRecords"] == 100
    assert len(files({"limitHint": 150})) == 2
    broken = {"op": "between", "children": []}  # not understood: best effort keeps every file
    assert len(files({"jsonPredicateHints": json.dumps(broken)})) == 6
    deep = '{"op":"and","children":[' * 1500 + "{}" + "]}" * 1500  # nested past any recursion limit
    assert len(files({"jsonPredicateHints": deep})) == 6
    range_url = files({})[0]["url"].replace("http://127.0.0.1:1", "")
    r = client.get(range_url, headers={"Range": "bytes=999999-"})
    assert r.status_code == 416 and r.json()["errorCode"] == "RANGE_NOT_SATISFIABLE"
    r = client.get(range_url, headers={"Range": "lines=1-2"})
    assert r.status_code == 416 and "byte ranges" in r.json()["message"]
