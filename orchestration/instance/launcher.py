"""The instance's run launcher: Dagster's default one, plus a health check so run monitoring sees dead runs.

Dagster's ``DefaultRunLauncher`` starts each run worker as a process of the code server, and cannot say
whether a worker is alive. The code server notices a worker that dies under it; but when the code server
dies too (kill -9 of the process group, an out-of-memory kill, ``dagster dev`` stopped hard, a host
restart), the run stays STARTED forever and keeps its concurrency-pool slots — the dataset's collection
waits behind it for good. With this check the daemon's run monitoring (``run_monitoring`` in
dagster.yaml) finds such a run within a poll interval, marks it failed — which frees its slots
(``free_slots_after_run_end_seconds``) and lets run retries relaunch it — with the reason in the run's
log.

The check reads the worker's pid from the run's own "Started process for run (pid: …)" event, and asks
the operating system (``/proc``) whether that process still runs: gone, a zombie, or a newer process
that reuses the pid (started after the event) all count as dead. A run launched on another host (its
gRPC tag names a remote host) or not yet started is reported UNKNOWN, never failed.

Uses ``dagster._core.launcher`` (WorkerStatus, CheckRunHealthResult): the run-launcher extension point has
no public module. Checked against dagster 1.13 by tests/test_run_monitoring.py.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

_PID = re.compile(r"Started process for run \(pid: (\d+)\)")
_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", None}


def _boot_time() -> float:
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    raise OSError("no btime in /proc/stat")


def process_state(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as a Unix timestamp) of a process, or None when there is none."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # the command name (field 2) is in parentheses and may hold blanks: split after its closing one
    fields = stat[stat.rindex(")") + 2 :].split()
    started = _boot_time() + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return fields[0], started


def worker_health(pid: int, reported_at: float) -> tuple[WorkerStatus, str]:
    """Whether the process that reported itself as a run's worker at ``reported_at`` still runs."""
    state = process_state(pid)
    if state is None:
        return WorkerStatus.NOT_FOUND, f"run worker process {pid} is gone"
    letter, started = state
    if letter in ("Z", "X"):
        return WorkerStatus.FAILED, f"run worker process {pid} has exited (state {letter})"
    if started > reported_at + 2.0:  # clock ticks are coarse; a reused pid starts well after the report
        return WorkerStatus.NOT_FOUND, f"run worker process {pid} is gone (the pid now belongs to a newer process)"
    return WorkerStatus.RUNNING, f"run worker process {pid} is running"


class MonitoredRunLauncher(dg.DefaultRunLauncher):
    """``DefaultRunLauncher`` with a run worker health check (see the module docstring)."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run) -> CheckRunHealthResult:
        grpc = json.loads(run.tags.get("dagster/grpc_info", "{}") or "{}")
        if grpc.get("host") not in _LOCAL_HOSTS:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, f"run worker on host {grpc.get('host')}")
        pid, reported_at = None, 0.0
        for entry in self._instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
            if m := _PID.search(entry.message or ""):
                pid, reported_at = int(m.group(1)), entry.timestamp
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, "the run worker has not reported its process yet")
        status, message = worker_health(pid, reported_at)
        return CheckRunHealthResult(status, message, run_worker_id=str(pid))
