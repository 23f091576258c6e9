"""The continuous deployment: the Dagster instance on the machine's PostgreSQL, and `up`/`down` starting and
stopping the webserver and the daemon against it (a database of its own, dropped afterwards)."""

from __future__ import annotations

import secrets
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from orchestration.instance import deployment

pytestmark = pytest.mark.integration


@pytest.fixture
def pg(monkeypatch):
    import psycopg2

    settings = {**deployment.pg_settings(), "DAGSTER_PG_DB": f"shucang_test_{secrets.token_hex(4)}"}
    for k, v in settings.items():
        monkeypatch.setenv(k, v)
    yield settings
    connection = psycopg2.connect(
        host=settings["DAGSTER_PG_HOST"],
        port=int(settings["DAGSTER_PG_PORT"]),
        user=settings["DAGSTER_PG_USER"],
        dbname="postgres",
    )
    connection.autocommit = True
    with connection.cursor() as cur:
        cur.execute(f'drop database if exists "{settings["DAGSTER_PG_DB"]}" with (force)')
    connection.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_runs_are_kept_in_postgres(pg, tmp_path, monkeypatch):
    import dagster as dg
    import psycopg2

    deployment.ensure_database(pg)
    deployment.ensure_database(pg)  # idempotent
    home = deployment.prepare(tmp_path / "home", pg)
    assert (
        "password" not in (home / "dagster.yaml").read_text()
        or "env: DAGSTER_PG_PASSWORD" in (home / "dagster.yaml").read_text()
    )
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    @dg.op
    def hello():
        return 1

    @dg.job
    def ping():
        hello()

    with dg.DagsterInstance.get() as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        run_id = ping.execute_in_process(instance=instance).run_id
    with (
        psycopg2.connect(
            host=pg["DAGSTER_PG_HOST"],
            port=int(pg["DAGSTER_PG_PORT"]),
            user=pg["DAGSTER_PG_USER"],
            dbname=pg["DAGSTER_PG_DB"],
        ) as c,
        c.cursor() as cur,
    ):
        cur.execute("select status from runs where run_id = %s", (run_id,))
        assert cur.fetchone() == ("SUCCESS",)


def test_up_starts_the_webserver_and_daemon_and_down_stops_them(pg, tmp_path):
    home, port = tmp_path / "home", _free_port()
    pids = deployment.up(home, port)
    try:
        assert deployment.up(home, port) == pids  # already running: nothing started twice
        deadline, answer = time.time() + 90, None
        while time.time() < deadline and answer is None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=2) as r:
                    answer = r.status
            except OSError:
                time.sleep(0.5)
        assert answer == 200
        assert all(Path(f"/proc/{pid}").exists() for pid in pids.values()) and (home / "run" / "daemon.log").exists()
    finally:
        stopped = deployment.down(home)
    assert sorted(stopped) == ["daemon", "webserver"]
    time.sleep(0.5)
    assert not any(deployment._alive(pid) for pid in pids.values())
    assert deployment.down(home) == []


def test_up_with_celery_starts_two_workers_on_the_queue_and_down_stops_everything(pg, tmp_path, monkeypatch):
    queue = "shucang-test-" + secrets.token_hex(4)
    monkeypatch.setenv("SHUCANG_CELERY_QUEUE", queue)
    home, port = tmp_path / "home", _free_port()
    with pytest.raises(ValueError, match="SHUCANG_EXECUTOR"):
        deployment.up(home, port, executor="dask")
    assert not list((home / "run").glob("*.pid"))  # refused before anything started
    pids = deployment.up(home, port, executor="celery", workers=2)
    try:
        assert sorted(pids) == ["daemon", "webserver", "worker1", "worker2"]
        logs = [home / "run" / f"worker{i}.log" for i in (1, 2)]
        deadline = time.time() + 90
        while time.time() < deadline and not all(" ready." in p.read_text(errors="replace") for p in logs):
            time.sleep(0.5)
        for log in logs:
            text = log.read_text(errors="replace")
            assert " ready." in text and f"{queue}" in text, text[-2000:]
    finally:
        stopped = deployment.down(home)
        from kombu import Connection

        from orchestration.instance.celery_workers import settings

        with Connection(settings()["broker"], connect_timeout=5) as conn:
            conn.default_channel.queue_delete(queue)
    assert sorted(stopped) == ["daemon", "webserver", "worker1", "worker2"]
    time.sleep(0.5)
    assert not any(deployment._alive(pid) for pid in pids.values())
