"""Lineage delivery over HTTP: an endpoint that refuses, then accepts, gets every event exactly once."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

import assets.defs
from orchestration import runs
from orchestration.definitions import defs
from orchestration.lineage.emit import RUN_TAG, emit_run
from orchestration.lineage.transport import SpoolingHttpTransport
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast


class Stub:
    """A local OpenLineage endpoint: answers 503 until told to accept, then records what it receives."""

    def __init__(self):
        self.accepting = False
        self.received: list[dict] = []
        self.refused = 0
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not stub.accepting:
                    stub.refused += 1
                    self.send_response(503)
                    self.end_headers()
                    return
                assert self.path == "/api/v1/lineage"
                stub.received.append(json.loads(body))
                self.send_response(201)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def stub():
    s = Stub()
    yield s
    s.server.shutdown()


def _run(workdir, instance):
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    selection = [
        a
        for a in assets.defs.defs.assets
        if isinstance(a, dg.AssetsDefinition)
        and any(k.path[-1] in ("amr_registration", "eco_emissions") and k.path[0] in ("raw", "std") for k in a.keys)
    ]
    result = runs.materialize(selection, resources=resources(s), instance=instance)
    return s, result.run_id


def _key(e):
    return (e["run"]["runId"], e["eventType"], e["job"]["name"])


def test_refused_events_are_spooled_then_delivered_once_in_order(workdir, stub, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    graph = defs.resolve_asset_graph()
    s, first = _run(workdir, instance)
    http = SpoolingHttpTransport(stub.url, tmp_path / "spool")

    down = emit_run(instance, first, graph, s, http=http)  # the endpoint refuses
    assert down.http.spooled == down.events and down.http.sent == 0 and stub.refused >= 1
    assert http.pending == down.events
    assert "SPOOLED" in instance.get_run_by_id(first).tags[RUN_TAG]  # the run says so
    lake_events = [json.loads(x) for x in open(down.file, encoding="utf-8")]
    assert len(lake_events) == down.events  # the lake copy is complete regardless

    http.flush()  # still refusing: nothing lost, nothing sent, order kept
    assert http.pending == down.events and stub.received == []

    stub.accepting = True
    s2, second = _run(workdir, instance)
    up = emit_run(instance, second, graph, s2, http=http)  # the spool goes first, then the new run
    assert up.http.resent == down.events and up.http.sent == up.events and http.pending == 0
    keys = [_key(e) for e in stub.received]
    assert len(keys) == len(set(keys)) == down.events + up.events  # nothing lost, nothing duplicated
    assert stub.received[: down.events] == lake_events  # the spooled events, as written, first
    assert {
        e["run"]["facets"]["parent"]["run"]["runId"]
        for e in stub.received[down.events :]
        if "parent" in e["run"]["facets"]
    } == {second}
    assert "SPOOLED" not in instance.get_run_by_id(second).tags[RUN_TAG]


def test_an_endpoint_that_is_not_there_at_all_is_spooled_too(workdir, tmp_path):
    instance = dg.DagsterInstance.ephemeral()
    s, run_id = _run(workdir, instance)
    http = SpoolingHttpTransport("http://127.0.0.1:9", tmp_path / "spool", timeout=1)  # nothing listens
    report = emit_run(instance, run_id, defs.resolve_asset_graph(), s, http=http)
    assert report.http.spooled == report.events and "ConnectionError" in report.http.error
