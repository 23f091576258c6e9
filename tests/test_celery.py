"""The distributed profile (#20): Dagster steps on Celery workers (RabbitMQ broker, Redis results) — the
machine's RabbitMQ and Redis, two workers the test starts on a queue of their own. A run's steps execute in
the workers, not in the run's process; a worker killed with SIGKILL in the middle of a step loses nothing:
the broker gives the step to the other worker, and the run succeeds."""

from __future__ import annotations

import os
import time
from pathlib import Path

import celery_job
import dagster as dg
import pytest
from celery_pool import CeleryWorkers

from orchestration.instance import celery_workers

pytestmark = pytest.mark.integration


def _steps_by_worker(instance: dg.DagsterInstance, run_id: str) -> list[tuple[str, str]]:
    """(step, worker) for every time a worker started executing a step of the run, in order."""
    out = []
    for entry in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        data = entry.dagster_event.engine_event_data
        meta = data.metadata if data else {}
        if "Celery worker" in meta:
            out.append((entry.dagster_event.step_key, meta["Celery worker"].value))
    return out


def _run_with_kill(pool: CeleryWorkers, instance: dg.DagsterInstance, trace: Path):
    import threading

    killed: list[int] = []

    def killer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            started = trace / "slow.1.pid"
            if started.exists() and started.read_text():
                pid = int(started.read_text())
                killed.append(pool.kill(pid).pid)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    result = dg.execute_job(dg.reconstructable(celery_job.job), instance=instance, raise_on_error=False)
    thread.join(timeout=5)
    return result, killed


def test_celery_profile(tmp_path: Path, monkeypatch):
    trace = tmp_path / "trace"
    trace.mkdir()
    with CeleryWorkers(tmp_path / "workers", 2, {"CELERY_TEST_DIR": str(trace)}) as pool:
        monkeypatch.setenv("SHUCANG_CELERY_QUEUE", pool.queue)
        monkeypatch.setenv("CELERY_TEST_DIR", str(trace))
        (tmp_path / "home").mkdir()
        with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
            result, killed = _run_with_kill(pool, instance, trace)
            assert result.success, pool.output()
            ran = _steps_by_worker(instance, result.run_id)
        # every step ran in a worker, none in this process
        assert {s for s, _ in ran} == {"first", "slow", "beside"}
        pids = {p.name: int(p.read_text()) for p in trace.glob("*.pid")}
        assert os.getpid() not in pids.values()
        # the slow step's worker was killed in the middle of it; the other worker ran it again, to its end
        assert len(killed) == 1
        slow = [w for s, w in ran if s == "slow"]
        assert len(slow) == 2 and slow[0] != slow[1], ran
        assert (trace / "slow.done").exists() and set(pids) >= {"slow.1.pid", "slow.2.pid"}
        assert not any(p.name.startswith("slow.3") for p in trace.glob("*"))


def test_executor_follows_the_environment():
    assert celery_workers.executor({}) is dg.in_process_executor
    assert celery_workers.executor({"SHUCANG_EXECUTOR": "in_process"}) is dg.in_process_executor
    celery = celery_workers.executor({"SHUCANG_EXECUTOR": "celery", "SHUCANG_CELERY_QUEUE": "q1"})
    assert celery.name == "celery"
    conf = celery_workers.settings({"SHUCANG_CELERY_QUEUE": "q1"})
    assert conf["config_source"]["task_default_queue"] == "q1"
    assert conf["config_source"]["task_acks_late"] and conf["config_source"]["task_reject_on_worker_lost"]
    with pytest.raises(ValueError, match="SHUCANG_EXECUTOR"):
        celery_workers.executor({"SHUCANG_EXECUTOR": "dask"})


@pytest.mark.long  # make test-celery: a second whole demo would add minutes to make test
def test_the_demo_on_celery_workers_publishes_what_the_local_demo_does(demo_site, tmp_path: Path):
    """``make demo`` with ``SHUCANG_EXECUTOR=celery`` and two workers: every step of every run executes in a
    worker, and every published table equals the local demo's (same seed, same keys)."""
    import subprocess
    import sys

    from lakehouse.lake import Lake
    from orchestration.compare import compare_published

    (tmp_path / "home").mkdir()
    env = {
        **demo_site.env,
        "SHUCANG_EXECUTOR": "celery",
        "SHUCANG_DATA_DIR": str(tmp_path / "data"),
        "DAGSTER_HOME": str(tmp_path / "home"),
        "SHUCANG_AUDIT_LOG": str(tmp_path / "audit" / "privileged.jsonl"),
    }
    with CeleryWorkers(tmp_path / "workers", 2, env) as pool:
        demo = subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "demo"],
            cwd=Path(__file__).resolve().parents[1],
            env=pool.env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:] + pool.output()
        assert "SUCCESS" in demo.stdout
        with dg.DagsterInstance.local_temp(str(tmp_path / "home")) as instance:
            records = instance.get_run_records()
            assert records
            workers, local = set(), []
            for record in records:
                ran = _steps_by_worker(instance, record.dagster_run.run_id)
                steps = {
                    e.dagster_event.step_key
                    for e in instance.all_logs(record.dagster_run.run_id, of_type=dg.DagsterEventType.STEP_START)
                }
                local += sorted(steps - {s for s, _ in ran})
                workers |= {w for _, w in ran}
        assert not local, f"steps not run on a worker: {local}"
        assert len(workers) == 2, workers  # both workers took steps
    comparison = compare_published(Lake(str(demo_site.lake)), Lake(str(tmp_path / "data" / "lake")))
    assert comparison.equal, "\n".join(comparison.lines())
    assert len(comparison.tables) >= 10
