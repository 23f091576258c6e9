"""Partitions end to end: a collection that dies after its Delta commit still reports the periods it
landed; a partition backfill launched the way the UI launches it (the webserver's GraphQL
``launchPartitionBackfill``) is run by the real daemon as one run over the range and rebuilds exactly
those periods of std, leaving the table as it was."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import dagster as dg
import pytest
import yaml

from lakehouse.lake import Lake
from orchestration import partitions, runs
from orchestration.definitions import defs
from orchestration.keys import key as asset_key
from orchestration.resources import resources
from orchestration.settings import settings

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parent.parent
RAW_TAX, STD_TAX = dg.AssetKey(["raw", "raw_tax_monthly"]), dg.AssetKey(["std", "tax_monthly"])
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]


def test_a_collection_that_died_after_its_commit_reports_the_periods_on_its_retry(workdir, monkeypatch):
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(workdir)})
    calls = []
    real = partitions.landed

    def dies_once(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:  # the rows are committed to raw; the step dies before it reports them
            raise OSError("storage hiccup after the Delta commit")
        return real(*args, **kwargs)

    monkeypatch.setattr(partitions, "landed", dies_once)
    instance = dg.DagsterInstance.ephemeral()
    result = runs.materialize(defs, [RAW_TAX], instance, resources=resources(s))
    assert result.success and len(calls) == 2  # the step's retry policy ran it again
    # the retry landed nothing new (the files are collected) and still reported every period landed
    assert sorted(instance.get_materialized_partitions(RAW_TAX)) == MONTHS
    assert Lake(s.lake_root).row_count("raw", "tax_monthly") > 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str, variables: dict | None = None) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query, "variables": variables or {}}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def _wait(what: str, probe, timeout: float, every: float = 1.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if found := probe():
                return found
        except OSError:
            pass
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


LAUNCH = """
mutation($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}"""

STATUS = """
query($id: String!) {
  partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } }
}"""


def test_a_partition_backfill_from_the_ui_runs_on_the_daemon_and_rebuilds_exactly_its_periods(workdir, monkeypatch):
    home, data = workdir / "home", workdir
    home.mkdir()
    config = yaml.safe_load((ROOT / "orchestration" / "instance" / "dagster.yaml").read_text(encoding="utf-8"))
    (home / "dagster.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    for folder in (data / "landing").iterdir():  # the registration and the tax filings only
        if folder.name not in ("amr", "tax"):
            shutil.rmtree(folder)
    env = {**os.environ, "DAGSTER_HOME": str(home), "SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(data)}
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(data)})
    keys = [asset_key(z, d) for d in ("amr_registration", "tax_monthly") for z in ("raw", "std")]
    lake = Lake(s.lake_root)
    with dg.DagsterInstance.get() as instance:
        assert runs.materialize(defs, keys, instance, resources=resources(s)).success
        assert sorted(instance.get_materialized_partitions(STD_TAX)) == MONTHS
    before = lake.read("std", "tax_monthly").sort(["uscc", "period"], nulls_last=True)
    version = lake.table("std", "tax_monthly").version()

    port = _free_port()
    procs = []
    logs = []

    def start(*argv: str) -> None:
        log = (workdir / f"{Path(argv[0]).name}.log").open("wb")
        logs.append(log)
        procs.append(
            subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        )

    bin_dir = Path(sys.executable).parent
    try:
        start(str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port))
        _wait("the webserver", lambda: _graphql(port, "{ version }").get("data"), 120)
        # a steward pauses the sensors (nothing else should run here), then backfills February–March
        sensors = _graphql(
            port,
            '{ sensorsOrError(repositorySelector: {repositoryLocationName: "shucang", repositoryName: '
            '"__repository__"}) { ... on Sensors { results { id name sensorState { id status } } } } }',
        )["data"]["sensorsOrError"]["results"]
        assert sensors
        for sensor in sensors:
            stopped = _graphql(
                port,
                "mutation($id: String!) { stopSensor(id: $id) { __typename } }",
                {"id": sensor["sensorState"]["id"]},
            )
            assert "errors" not in stopped, stopped
        params = {
            "partitionNames": ["2023-02", "2023-03"],
            "assetSelection": [{"path": ["std", "tax_monthly"]}],
            "fromFailure": False,
            "tags": [{"key": "shucang/backfill", "value": "ui"}],
        }
        launched = _graphql(port, LAUNCH, {"params": params})["data"]["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        backfill = launched["backfillId"]
        start(str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml")
        status = _wait(
            "the backfill to finish",
            lambda: (
                (_graphql(port, STATUS, {"id": backfill})["data"]["partitionBackfillOrError"] or {}).get("status")
                in ("COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED")
                and _graphql(port, STATUS, {"id": backfill})["data"]["partitionBackfillOrError"]["status"]
            ),
            300,
            every=2,
        )
    finally:
        for proc in procs:
            try:
                os.killpg(proc.pid, 15)
            except ProcessLookupError:
                pass
        for proc in procs:
            proc.wait(timeout=60)
        for log in logs:
            log.close()
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (workdir / "dagster-daemon.log").read_text()[-3000:]
    with dg.DagsterInstance.get() as instance:
        done = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill}))
    # one run over the range (single-run backfill policy), not one per month …
    assert [
        (r.tags["dagster/asset_partition_range_start"], r.tags["dagster/asset_partition_range_end"]) for r in done
    ] == [("2023-02", "2023-03")]
    assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in done)
    # … that rebuilt those two periods of std and nothing else, to the same content
    assert lake.table("std", "tax_monthly").version() > version
    assert json.loads(lake.commits("std", "tax_monthly", 1)[0]["partitions"]) == ["2023-02", "2023-03"]
    assert lake.read("std", "tax_monthly").sort(["uscc", "period"], nulls_last=True).equals(before)
