"""The continuously running deployment (``make up`` / ``make down``): the Dagster instance on PostgreSQL,
with the webserver and the daemon (sensors, schedules, automation, run monitoring, retries) running in the
background against it.

The embedded default — the local instance in ``.dagster_home``, no server — stays what ``make demo`` and the
tests use. The deployment's instance lives in ``.dagster_home_pg`` (``SHUCANG_DEPLOY_HOME``): the project's
dagster.yaml plus PostgreSQL storage, reached by ``DAGSTER_PG_HOST`` (127.0.0.1), ``DAGSTER_PG_PORT`` (5432),
``DAGSTER_PG_USER`` (postgres), ``DAGSTER_PG_PASSWORD`` (empty) and ``DAGSTER_PG_DB`` (shucang_dagster),
created on first use. The psycopg2 driver is named explicitly: the locked SQLAlchemy would otherwise look for
psycopg 3.

The distributed profile (``make up EXECUTOR=celery``): the webserver and the daemon run with
``SHUCANG_EXECUTOR=celery``, so every run's steps go to a Celery queue (``orchestration.instance.celery_workers``:
RabbitMQ broker, Redis results), and two workers consume it (``WORKERS=n``); more workers, on other hosts that
share the lake, the instance and the code, join by starting the same command.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from orchestration.instance import TEMPLATE, celery_workers

ROOT = Path(__file__).resolve().parents[2]
PG_ENV = {
    "DAGSTER_PG_HOST": "127.0.0.1",
    "DAGSTER_PG_PORT": "5432",
    "DAGSTER_PG_USER": "postgres",
    "DAGSTER_PG_PASSWORD": "",
    "DAGSTER_PG_DB": "shucang_dagster",
}


def pg_settings(env=None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: env.get(k, default) for k, default in PG_ENV.items()}


def ensure_database(pg: dict[str, str]) -> None:
    """Create the instance's database if the server does not have it yet."""
    import psycopg2

    connection = psycopg2.connect(
        host=pg["DAGSTER_PG_HOST"],
        port=int(pg["DAGSTER_PG_PORT"]),
        user=pg["DAGSTER_PG_USER"],
        password=pg["DAGSTER_PG_PASSWORD"] or None,
        dbname="postgres",
        connect_timeout=5,
    )
    connection.autocommit = True  # CREATE DATABASE runs outside a transaction
    try:
        with connection.cursor() as cur:
            cur.execute("select 1 from pg_database where datname = %s", (pg["DAGSTER_PG_DB"],))
            if cur.fetchone() is None:
                cur.execute(f'create database "{pg["DAGSTER_PG_DB"]}"')
    finally:
        connection.close()


def prepare(home: Path, pg: dict[str, str]) -> Path:
    """``home`` with the project's dagster.yaml plus PostgreSQL storage (credentials read from the
    environment by Dagster at start, never written into the file)."""
    home.mkdir(parents=True, exist_ok=True)
    config = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    config["storage"] = {
        "postgres": {
            "postgres_db": {
                "hostname": {"env": "DAGSTER_PG_HOST"},
                "port": {"env": "DAGSTER_PG_PORT"},
                "username": {"env": "DAGSTER_PG_USER"},
                "password": {"env": "DAGSTER_PG_PASSWORD"},
                "db_name": {"env": "DAGSTER_PG_DB"},
                "scheme": "postgresql+psycopg2",
            }
        }
    }
    (home / "dagster.yaml").write_text(
        "# Written by `make up` (orchestration/instance/deployment.py): the project's dagster.yaml on PostgreSQL.\n"
        + yaml.safe_dump(config, allow_unicode=True, sort_keys=False),
        encoding="utf-8",
    )
    return home


def up(home: Path, port: int = 3000, env=None, executor: str = "in_process", workers: int = 2) -> dict[str, int]:
    """Start the webserver (127.0.0.1:``port``) and the daemon against the PostgreSQL instance in ``home``;
    returns their pids (also written to ``home/run/*.pid``). Already running: nothing is started twice.
    ``executor="celery"``: the runs' steps go to Celery workers (``orchestration.instance.celery_workers``),
    and ``workers`` of them are started here, one step at a time each."""
    env = dict(os.environ if env is None else env, **{celery_workers.EXECUTOR_ENV: executor})
    celery_workers.executor(env)  # an unknown executor is refused before anything starts
    pg = pg_settings(env)
    ensure_database(pg)
    prepare(home, pg)
    env.update(pg, DAGSTER_HOME=str(home))
    run = home / "run"
    run.mkdir(exist_ok=True)
    workspace = ["-w", "workspace.yaml"]
    binaries = {
        "webserver": [str(Path(sys.executable).with_name("dagster-webserver")), "-h", "127.0.0.1", "-p", str(port)]
        + workspace,
        "daemon": [str(Path(sys.executable).with_name("dagster-daemon")), "run", *workspace],
    }
    if executor == "celery":
        queue = celery_workers.settings(env)["config_source"]["task_default_queue"]
        for i in range(1, workers + 1):
            binaries[f"worker{i}"] = [
                *(sys.executable, "-m", "celery", "-A", "orchestration.instance.celery_workers", "worker"),
                *("-Q", queue, "-c", "1", "-n", f"shucang{i}@%h", "-l", "info"),
            ]
    pids = {}
    for name, command in binaries.items():
        alive = _pid(run / f"{name}.pid")
        if alive:
            pids[name] = alive
            continue
        log = (run / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        (run / f"{name}.pid").write_text(str(proc.pid))
        pids[name] = proc.pid
    return pids


def down(home: Path, timeout: float = 20) -> list[str]:
    """Stop what ``up`` started (SIGTERM, then SIGKILL after ``timeout``); returns what was stopped."""
    stopped = []
    for pid_file in sorted((home / "run").glob("*.pid")):
        name = pid_file.stem
        pid = _pid(pid_file)
        if pid:
            os.killpg(pid, signal.SIGTERM)
            deadline = time.time() + timeout
            while _alive(pid) and time.time() < deadline:
                time.sleep(0.2)
            if _alive(pid):
                os.killpg(pid, signal.SIGKILL)
            stopped.append(name)
        pid_file.unlink(missing_ok=True)
    return stopped


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")
    return not (state.exists() and state.read_text().rsplit(")", 1)[-1].split()[0] == "Z")


def _pid(path: Path) -> int | None:
    """The pid in ``path`` if that process still runs."""
    try:
        pid = int(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None
