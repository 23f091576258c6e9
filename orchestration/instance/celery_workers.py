"""The distributed profile: Dagster's steps run on Celery workers (``SHUCANG_EXECUTOR=celery``).

A run's worker (started by the daemon or the webserver, as in the embedded default) plans the run and
sends each step to a Celery queue on RabbitMQ; Celery workers — on this machine or others that share the
lake, the Dagster instance (PostgreSQL) and the code — execute the steps and return their events through
the result backend (Redis). The steps, their concurrency pools and their checks are the same as in the
embedded default; only where a step runs changes.

Settings, from the environment (the same for the executor and every worker):

- ``SHUCANG_CELERY_BROKER``  the broker, default ``pyamqp://guest:guest@127.0.0.1:5672//`` (the machine's
  RabbitMQ)
- ``SHUCANG_CELERY_BACKEND`` the result backend, default ``redis://127.0.0.1:6379/0``
- ``SHUCANG_CELERY_QUEUE``   the queue the steps go to and the workers consume, default ``shucang``

A worker killed in the middle of a step (kill -9, a lost host) must not lose the step: a task is
acknowledged to the broker only when it has finished (``task_acks_late``), and a task whose worker was
lost is given back to the queue (``task_reject_on_worker_lost``) — the broker hands it to another
worker, which runs the step again from its start. Each worker takes one task at a time (no prefetch):
a step waiting in one worker's buffer while another is idle would only make runs slower.

Start a worker: ``celery -A orchestration.instance.celery_workers worker -Q shucang -c 1`` (``make up
EXECUTOR=celery`` starts two).
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

BROKER = "pyamqp://guest:guest@127.0.0.1:5672//"
BACKEND = "redis://127.0.0.1:6379/0"
QUEUE = "shucang"
QUEUE_ENV = "SHUCANG_CELERY_QUEUE"
ROOT = Path(__file__).resolve().parents[2]
EXECUTOR_ENV = "SHUCANG_EXECUTOR"  # "celery": steps on Celery workers; unset or "in_process": the default


def settings(environ=None) -> dict:
    """The executor's (and the workers') configuration, as dagster-celery's executor takes it."""
    env = os.environ if environ is None else environ
    queue = env.get(QUEUE_ENV, QUEUE)
    return {
        "broker": env.get("SHUCANG_CELERY_BROKER", BROKER),
        "backend": env.get("SHUCANG_CELERY_BACKEND", BACKEND),
        "config_source": {
            "task_default_queue": queue,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "worker_prefetch_multiplier": 1,
            "broker_connection_retry_on_startup": True,
        },
    }


def executor(environ=None) -> dg.ExecutorDefinition:
    """The executor the code location's jobs run with: in process (the default), or on Celery workers."""
    env = os.environ if environ is None else environ
    name = env.get(EXECUTOR_ENV, "in_process")
    if name == "in_process":
        return dg.in_process_executor
    if name != "celery":
        raise ValueError(f"{EXECUTOR_ENV}={name!r}: expected 'in_process' or 'celery'")
    from dagster_celery import celery_executor

    return celery_executor.configured(settings(env), name="celery")


def make_app():
    """The workers' Celery app: dagster-celery's step task, with the settings the executor uses."""
    from dagster_celery.config import DEFAULT_CONFIG, dict_wrapper
    from dagster_celery.make_app import make_app as dagster_app
    from dagster_celery.tasks import create_task

    s = settings()
    app_ = dagster_app(
        {
            "broker": s["broker"],
            "backend": s["backend"],
            "include": [],
            "config_source": dict_wrapper({**DEFAULT_CONFIG, **s["config_source"]}),
        }
    )
    create_task(app_)
    return app_


def __getattr__(name: str):
    """``app``: made on first use (``celery -A`` looks it up), so importing the module for the executor
    does not connect anything."""
    if name == "app":
        globals()["app"] = made = make_app()
        return made
    raise AttributeError(name)


class LocalWorkers:
    """``with LocalWorkers(folder, 2, env) as pool:`` starts that many workers on this host, on a queue of their
    own (``pool.env`` names it: the executor of the runs they serve must read it too), each in its own process
    group — ``pool.kill(pid)`` kills the worker that holds a process as a lost host would die — and removes the
    queue from the broker afterwards. For the tests and the benchmark; ``make up EXECUTOR=celery`` starts the
    deployment's workers on the configured queue."""

    def __init__(self, folder: Path, count: int = 2, env: dict[str, str] | None = None, paths: tuple = ()):
        self.folder, self.count = Path(folder), count
        self.queue = "shucang-" + secrets.token_hex(4)
        self.env = {
            **os.environ,
            **(env or {}),
            QUEUE_ENV: self.queue,
            "PYTHONPATH": os.pathsep.join([str(ROOT), *map(str, paths)]),
        }
        self.procs: list[subprocess.Popen] = []
        self.logs: list[Path] = []

    def __enter__(self) -> LocalWorkers:
        self.folder.mkdir(parents=True, exist_ok=True)
        for i in range(self.count):
            log = self.folder / f"worker{i + 1}.log"
            self.logs.append(log)
            with log.open("wb") as out:
                self.procs.append(
                    subprocess.Popen(
                        [
                            sys.executable,
                            "-m",
                            "celery",
                            "-A",
                            "orchestration.instance.celery_workers",
                            "worker",
                            "-Q",
                            self.queue,
                            "-c",
                            "1",
                            "-n",
                            f"w{i + 1}-{self.queue}@127.0.0.1",
                            "--without-gossip",
                            "--without-mingle",
                            "-l",
                            "info",
                        ],
                        cwd=ROOT,
                        env=self.env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                    )
                )
        deadline = time.monotonic() + 60
        while not all(" ready." in log.read_text(errors="replace") for log in self.logs):
            if time.monotonic() > deadline or any(p.poll() is not None for p in self.procs):
                raise RuntimeError("celery workers did not start:\n" + self.output())
            time.sleep(0.2)
        return self

    def output(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}" for log in self.logs)

    def worker_of(self, pid: int) -> subprocess.Popen | None:
        """The worker whose process group holds ``pid`` (a step runs in a child of the worker)."""
        group = os.getpgid(pid)
        return next((p for p in self.procs if p.pid == group), None)

    def kill(self, pid: int) -> subprocess.Popen:
        """SIGKILL to the whole worker that runs ``pid``: its main process and the pool's children."""
        worker = self.worker_of(pid)
        if worker is None:
            raise RuntimeError(f"process {pid} is not in a worker of this pool")
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)
        return worker

    def __exit__(self, *exc) -> None:
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
        self._delete_queue()

    def _delete_queue(self) -> None:
        from kombu import Connection

        with Connection(settings(self.env)["broker"], connect_timeout=5) as conn:
            conn.default_channel.queue_delete(self.queue)
