"""A killed run never blocks a dataset: run monitoring finds dead run workers, frees their pool slots, and
run retries land what they were collecting exactly once.

The unit tests check the worker health check of ``orchestration/instance/launcher.py`` against real
processes (alive, exited and unreaped, gone). The integration test runs the real daemon over the project's
dagster.yaml (poll intervals shortened): a delivery arrives, the landing sensor starts its collection, and
every Dagster process — daemon, code server and the run worker holding the dataset's only collection
slot — is killed with SIGKILL, as a crash of the host would, and the daemon is started again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from orchestration.instance.launcher import WorkerStatus, worker_health

ROOT = Path(__file__).resolve().parent.parent


def test_a_running_worker_is_running():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert worker_health(proc.pid, time.time())[0] == WorkerStatus.RUNNING
    finally:
        proc.kill()
        proc.wait()


def test_a_worker_killed_but_not_yet_reaped_is_failed_and_a_reaped_one_is_gone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    reported = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    deadline = time.time() + 10
    while worker_health(proc.pid, reported)[0] == WorkerStatus.RUNNING and time.time() < deadline:
        time.sleep(0.05)
    status, message = worker_health(proc.pid, reported)
    assert status == WorkerStatus.FAILED and str(proc.pid) in message  # a zombie: dead, not running
    proc.wait()
    assert worker_health(proc.pid, reported)[0] == WorkerStatus.NOT_FOUND


def test_a_pid_reused_by_a_newer_process_is_not_taken_for_the_worker():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        # the worker reported this pid long before the process now holding it started
        status, message = worker_health(proc.pid, time.time() - 3600)
        assert status == WorkerStatus.NOT_FOUND and "newer process" in message
    finally:
        proc.kill()
        proc.wait()


def _telemetry(path: Path, lines: int) -> None:
    """A day of device telemetry, big enough that collecting it takes seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as out:
        for start in range(0, lines, 100_000):
            out.write(
                b"".join(
                    b'{"device_id":"DEV%08d","ts":"2024-03-01T00:00:00+08:00","state":"run","power_kw":1.5,'
                    b'"output_count":%d}\n' % (i, i % 97)
                    for i in range(start, min(lines, start + 100_000))
                )
            )


def _wait(what: str, probe, timeout: float, every: float = 0.2):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if found := probe():
            return found
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


@pytest.mark.integration
def test_a_run_killed_in_a_crash_is_failed_its_slot_freed_and_its_files_landed_once_by_the_retry(tmp_path, monkeypatch):
    import dagster as dg
    import polars as pl

    from lakehouse.lake import Lake
    from orchestration.instance import TEMPLATE

    home, data = tmp_path / "home", tmp_path / "data"
    home.mkdir()
    config = yaml.safe_load(TEMPLATE.read_text(encoding="utf-8"))
    assert config["run_launcher"]["class"] == "MonitoredRunLauncher"  # what the project's instance uses
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    lines = 1_500_000
    _telemetry(data / "landing" / "enterprise" / "telemetry" / "设备运行_2024-03-01.jsonl", lines)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "SHUCANG_ENV": "ci",
        "SHUCANG_DATA_DIR": str(data),
        "SHUCANG_SETTLE_SECONDS": "0",
    }
    monkeypatch.setenv("DAGSTER_HOME", str(home))  # this process reads the same instance
    daemons = []

    def start_daemon() -> subprocess.Popen:
        log = (tmp_path / f"daemon-{len(daemons)}.log").open("wb")
        daemons.append(
            subprocess.Popen(
                [str(Path(sys.executable).with_name("dagster-daemon")), "run", "-w", "workspace.yaml"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the daemon, its code server and their run workers: one group
            )
        )
        log.close()
        return daemons[-1]

    step, pool = "raw__raw_ent_telemetry", "collect_ent_telemetry"
    try:
        with dg.DagsterInstance.get() as instance:

            def runs(status):
                return instance.get_runs(dg.RunsFilter(statuses=[status], tags={"shucang/dataset": "ent_telemetry"}))

            first_daemon = start_daemon()
            first = _wait(
                "the landing sensor's collection run", lambda: next(iter(runs(dg.DagsterRunStatus.STARTED)), None), 180
            )

            def step_started():
                events = instance.all_logs(first.run_id, of_type=dg.DagsterEventType.STEP_START)
                return any(e.step_key == step for e in events)

            _wait("the collection step to start", step_started, 120, every=0.05)
            claimed = instance.event_log_storage.get_concurrency_info(pool).claimed_slots
            assert [(c.run_id, c.step_key) for c in claimed] == [(first.run_id, step)]  # it holds the only slot
            (pid,) = [
                int(e.message.split("pid: ")[1].rstrip(")."))
                for e in instance.all_logs(first.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
                if "Started process for run" in e.message
            ]
            os.killpg(first_daemon.pid, signal.SIGKILL)  # the host's Dagster processes die at once
            first_daemon.wait()
            _wait(
                f"the run worker {pid} to die", lambda: worker_health(pid, time.time())[0] != WorkerStatus.RUNNING, 30
            )
            assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.STARTED  # nobody noticed

            start_daemon()  # the host comes back
            _wait(
                "run monitoring to fail the dead run",
                lambda: instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.FAILURE,
                120,
            )
            messages = " ".join(e.message or "" for e in instance.all_logs(first.run_id))
            assert f"run worker process {pid}" in messages  # the launcher's finding, as the reason in the run's log
            _wait(
                "its slot to be freed",
                lambda: not instance.event_log_storage.get_concurrency_info(pool).claimed_slots,
                60,
            )
            retry = _wait(
                "the retry run to succeed",
                lambda: next(
                    (
                        r
                        for r in runs(dg.DagsterRunStatus.SUCCESS)
                        if r.tags.get("dagster/parent_run_id") == first.run_id
                    ),
                    None,
                ),
                240,
                every=1,
            )
            assert retry.tags.get("dagster/retry_number") == "1"
    finally:
        for daemon in daemons:
            if daemon.poll() is None:
                os.killpg(daemon.pid, signal.SIGKILL)
                daemon.wait()

    lake = Lake(str(data / "lake"))
    assert lake.row_count("raw", "ent_telemetry") == lines  # landed, and once
    commits = [c for c in lake.commits("raw", "ent_telemetry") if c.get("file_sha256")]
    assert len(commits) == 1
    landed = lake.read("ops", "collect_log").filter(
        (pl.col("dataset") == "ent_telemetry") & (pl.col("status") == "landed")
    )
    assert landed["rows_landed"].to_list() == [lines] and landed["sha256"].to_list() == [commits[0]["file_sha256"]]
