"""A run cancelled mid-step ends its asset runs with ABORT, and its job with ABORT."""

import json
import os
import subprocess
import sys
import textwrap
import time

import dagster as dg
import pytest
from openlineage_schema import EventValidator

from orchestration.definitions import defs
from orchestration.lineage.emit import emit_run
from orchestration.settings import settings

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

SCRIPT = textwrap.dedent("""
    import time
    import dagster as dg

    @dg.asset(key=["std", "slow"])
    def slow():
        time.sleep(120)

    with dg.DagsterInstance.get() as instance:
        dg.materialize([slow], instance=instance)
""")


def test_a_cancelled_run_emits_abort(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    (tmp_path / "slow_job.py").write_text(SCRIPT)
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "slow_job.py")],
        env={**os.environ, "DAGSTER_HOME": str(home)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    with dg.DagsterInstance.from_config(str(home)) as instance:
        try:
            deadline = time.time() + 120
            run = None
            while time.time() < deadline:
                runs = instance.get_runs()
                if runs and any(
                    e.dagster_event and e.dagster_event.event_type_value == "STEP_START"
                    for e in instance.all_logs(runs[0].run_id)
                ):
                    run = runs[0]
                    break
                time.sleep(0.5)
            assert run is not None, "the slow run never started its step"
        finally:
            proc.kill()  # the run worker dies mid-step, as when a steward terminates it
            proc.wait()
        instance.report_run_canceled(instance.get_run_by_id(run.run_id))
        s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(tmp_path / "data")})
        report = emit_run(instance, run.run_id, defs.resolve_asset_graph(), s)
    events = [json.loads(x) for x in open(report.file, encoding="utf-8")]
    by_job = {}
    for e in events:
        by_job.setdefault(e["job"]["name"], []).append(e["eventType"])
    assert by_job == {"__ephemeral_asset_job__": ["START", "ABORT"], "std.slow": ["START", "ABORT"]}
    assert all(EventValidator().errors(e) == [] for e in events)
