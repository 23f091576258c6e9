"""Alerts reach a webhook and an SMTP server the test starts on 127.0.0.1: one alert per incident (a failed
run, a failed check), nothing more while it stays failed, a recovery notice when it recovers."""

from __future__ import annotations

import email
import json
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import dagster as dg
import pytest

from orchestration.alerts import Channels, tick


class _Webhook(BaseHTTPRequestHandler):
    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP to receive a message (HELO/EHLO, MAIL, RCPT, DATA, QUIT)."""

    mails: list[email.message.Message] = []

    def handle(self):
        self.wfile.write(b"220 localhost test SMTP\r\n")
        while line := self.rfile.readline():
            command = line.strip().upper()
            if command == b"DATA":
                self.wfile.write(b"354 go ahead\r\n")
                data = b""
                while (chunk := self.rfile.readline()) not in (b".\r\n", b""):
                    data += chunk
                type(self).mails.append(email.message_from_bytes(data))
                self.wfile.write(b"250 queued\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 ok\r\n")


@pytest.fixture
def receivers():
    _Webhook.received, _Smtp.mails = [], []
    web = HTTPServer(("127.0.0.1", 0), _Webhook)
    smtp = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    for server in (web, smtp):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Channels(
        webhook=f"http://127.0.0.1:{web.server_address[1]}/hook",
        smtp_host="127.0.0.1",
        smtp_port=smtp.server_address[1],
        mail_to=["steward@example.org"],
    )
    for server in (web, smtp):
        server.shutdown()
        server.server_close()


def _defs(fail_run: bool, check_passes: bool) -> dg.Definitions:
    @dg.op
    def load():
        if fail_run:
            raise RuntimeError("the source database is down")

    @dg.job(name="collect_power")
    def collect_power():
        load()

    @dg.asset(
        key=["raw", "tax_monthly"], check_specs=[dg.AssetCheckSpec("files_accepted", asset=["raw", "tax_monthly"])]
    )
    def tax():
        yield dg.MaterializeResult()
        yield dg.AssetCheckResult(
            check_name="files_accepted", passed=check_passes, description="1 file rejected: truncated"
        )

    return dg.Definitions(jobs=[collect_power], assets=[tax])


def _run(instance, fail_run: bool, check_passes: bool) -> dg.Definitions:
    defs = _defs(fail_run, check_passes)
    defs.resolve_job_def("collect_power").execute_in_process(instance=instance, raise_on_error=False)
    dg.materialize(
        [defs.resolve_assets_def(dg.AssetKey(["raw", "tax_monthly"]))], instance=instance, raise_on_error=False
    )
    return defs


def test_one_alert_per_incident_and_a_recovery_notice_on_both_channels(receivers):
    with dg.DagsterInstance.ephemeral() as instance:
        defs = _run(instance, fail_run=True, check_passes=False)
        checks = defs.resolve_asset_graph().asset_check_keys
        cursor, sent, errors = tick(instance, checks, None, receivers)
        assert errors == []
        assert sorted(s["key"] for s in sent) == ["check:raw/tax_monthly/files_accepted", "run:collect_power"]
        assert {a["status"] for a in _Webhook.received} == {"open"} and len(_Webhook.received) == 2
        assert len(_Smtp.mails) == 2 and all(m["To"] == "steward@example.org" for m in _Smtp.mails)
        assert any("collect_power" in m["Subject"] for m in _Smtp.mails)

        _run(instance, fail_run=True, check_passes=False)  # failing again: the same incidents
        cursor, sent, errors = tick(instance, checks, cursor, receivers)
        assert sent == [] and len(_Webhook.received) == 2  # no flood

        _run(instance, fail_run=False, check_passes=True)  # both recover
        cursor, sent, errors = tick(instance, checks, cursor, receivers)
        assert sorted((s["status"], s["key"]) for s in sent) == [
            ("recovered", "check:raw/tax_monthly/files_accepted"),
            ("recovered", "run:collect_power"),
        ]
        assert len(_Webhook.received) == 4 and len(_Smtp.mails) == 4
        assert json.loads(cursor) == {}


def test_an_alert_that_could_not_be_delivered_is_tried_again(receivers):
    with dg.DagsterInstance.ephemeral() as instance:
        defs = _run(instance, fail_run=True, check_passes=True)
        checks = defs.resolve_asset_graph().asset_check_keys
        down = Channels(webhook="http://127.0.0.1:9/nothing-listens")
        cursor, sent, errors = tick(instance, checks, None, down)
        assert sent == [] and errors and json.loads(cursor) == {}
        cursor, sent, errors = tick(instance, checks, cursor, receivers)  # the channel is back
        assert [s["key"] for s in sent] == ["run:collect_power"] and errors == []


def test_the_sensor_is_in_the_code_location_and_skips_without_channels(monkeypatch):
    from orchestration.definitions import defs
    from sensors.alerts import alerts

    assert "alerts" in {s.name for s in defs.sensors}
    for var in ("SHUCANG_ALERT_WEBHOOK", "SHUCANG_ALERT_SMTP", "SHUCANG_ALERT_MAIL_TO"):
        monkeypatch.delenv(var, raising=False)
    with dg.DagsterInstance.ephemeral() as instance:
        result = alerts(dg.build_sensor_context(instance=instance, repository_def=defs.get_repository_def()))
    assert isinstance(result, dg.SkipReason) and "no alert channel configured" in result.skip_message
