"""What a steward sees: the demo CLI records its run in the instance, and the Dagster webserver started on
workspace.yaml serves every dataset's description, column schema, tags, row count and Delta version."""

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lakehouse.lake import Lake

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

QUERY = """
{
  assetNodes(assetKeys: [{path: ["raw", "raw_amr_registration"]}]) {
    description groupName kinds
    tags { key value }
    owners { ... on TeamAssetOwner { team } }
    metadataEntries {
      label
      ... on TableSchemaMetadataEntry { schema { columns { name description } } }
      ... on UrlMetadataEntry { url }
    }
    assetMaterializations(limit: 1) {
      runId
      metadataEntries {
        label
        ... on IntMetadataEntry { intValue }
        ... on TableColumnLineageMetadataEntry {
          lineage { columnName columnDeps { assetKey { path } columnName } }
        }
      }
    }
  }
}
"""


def _expected_jobs() -> set[str]:
    """The OpenLineage job of every asset of the full refresh (all but the per-request shares)."""
    from orchestration import keys as asset_keys
    from orchestration.definitions import defs

    keys = [k for k in defs.resolve_asset_graph().materializable_asset_keys if k.path[0] != "share"]
    return {".".join(asset_keys.table(k)) for k in keys}


def _demo_runs(port: int) -> list[str]:
    """The runs of the demo's pipeline (one per partitioning of a period: orchestration.runs)."""
    found = _graphql(
        port,
        '{ runsOrError(filter: {tags: [{key: "shucang/trigger", value: "demo"}]}) { ... on Runs { results { runId } } } }',
    )
    return [r["runId"] for r in found["data"]["runsOrError"]["results"]]


def _demo_events(port: int, lake_root: Path) -> list[dict]:
    return [
        json.loads(line)
        for run_id in _demo_runs(port)
        for line in (lake_root / "ops" / "lineage" / f"{run_id}.jsonl").read_text(encoding="utf-8").splitlines()
    ]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _graphql(port: int, query: str) -> dict:
    req = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=json.dumps({"query": query}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture(scope="module")
def webserver(demo_site):
    env = demo_site.env
    port = _free_port()
    proc = subprocess.Popen(
        [str(BIN / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                if _graphql(port, "{ version }").get("data"):
                    break
            except OSError:
                time.sleep(1)
        yield port, demo_site.stdout, demo_site.lake
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_demo_prints_what_it_built_and_where(webserver):
    _, out, _ = webserver
    assert "raw/amr_registration" in out and "企业登记信息" in out
    assert "rejected files (4)" in out and "税务_月度申报_2023-09.csv" in out and "truncated" in out
    assert "lake:" in out and "make ui" in out and "make console" in out and "SUCCESS" in out
    port, _, lake_root = webserver
    events = _demo_events(port, lake_root)
    assert f"lineage: {len(events)} events from {len(_demo_runs(port))} runs" in out
    # the exchange: rules decided L1 and the unpublished request, the demo steward the 亩均 one; shares built
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and line.split()}
    assert "approved" in lines["chain-directory"] and "L1" in lines["chain-directory"]
    assert "approved" in lines["mujun-jingxinju"] and "703" in lines["mujun-jingxinju"]
    assert "pending" in lines["operations-bank"] and "rejected" in lines["registration-raw"]
    assert "chain verifies" in out and "mujun-jingxinju.share" in out and "publish/sharing_statistics" in out


def test_the_ui_serves_catalogue_facts_in_chinese(webserver):
    port, _, lake_root = webserver
    node = _graphql(port, QUERY)["data"]["assetNodes"][0]
    assert "企业登记信息" in node["description"] and "台州市黄岩区市场监督管理局" in node["description"]
    assert node["groupName"] == "raw" and "delta" in node["kinds"]
    # the computed grade (its highest column, 就高从严), which the UI filters by — not the registry default
    assert {"zone": "raw", "department": "amr", "grade": "L4"}.items() <= {
        t["key"]: t["value"] for t in node["tags"]
    }.items()
    assert {"黄岩区市场监管局", "data-stewards"} <= {o["team"] for o in node["owners"]}  # the department in Chinese
    schema = next(e for e in node["metadataEntries"] if e["label"] == "dagster/column_schema")["schema"]
    described = {c["name"]: c["description"] for c in schema["columns"]}
    # linked to its page in the steward console (which links back to this asset)
    link = next(e for e in node["metadataEntries"] if e["label"] == "steward_console")["url"]
    assert link == "http://127.0.0.1:3100/datasets/raw/amr_registration"
    assert "法定代表人证件号码" in described["legal_rep_id_no"]
    mat = node["assetMaterializations"][0]
    values = {e["label"]: e.get("intValue") for e in mat["metadataEntries"]}
    lineage = next(e["lineage"] for e in mat["metadataEntries"] if e["label"] == "dagster/column_lineage")
    deps = {c["columnName"]: c["columnDeps"] for c in lineage}
    assert deps["legal_rep_id_no"] == [
        {"assetKey": {"path": ["landing", "landing_amr_registration"]}, "columnName": "法定代表人证件号码"}
    ]
    lake = Lake(str(lake_root))
    assert values["dagster/row_count"] == lake.row_count("raw", "amr_registration") > 1000
    assert values["delta_version"] == lake.table("raw", "amr_registration").version()


def test_the_demo_run_lineage_validates_and_answers_impact_questions(webserver):
    from openlineage_schema import EventValidator

    from orchestration.lineage.transport import LakeFileTransport

    _, out, lake_root = webserver
    events = LakeFileTransport(Lake(str(lake_root))).read_all()  # the pipeline run's and the exchange runs'
    validator = EventValidator()
    assert all(validator.errors(e) == [] for e in events)
    port = webserver[0]
    main = _demo_events(port, lake_root)
    assert re.search(rf"pipeline: {len(_demo_runs(port))} of \d+ runs .* SUCCESS", out)
    # every asset of the full refresh started and completed, once per run it was in
    jobs = {e["job"]["name"] for e in main if e["eventType"] == "COMPLETE"}
    assert jobs - {"__ASSET_JOB"} == _expected_jobs()
    assert sum(e["eventType"] == "START" for e in main) == sum(e["eventType"] == "COMPLETE" for e in main)
    shares = [e for e in events if e["job"]["name"] == "share.extracts" and e["eventType"] == "COMPLETE"]
    assert len(shares) == 2 and "publish/topic_mujun_evaluation" in {i["name"] for i in shares[0]["inputs"]}
    env = {**os.environ, "SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(lake_root.parent)}

    def lineage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "orchestration.cli", "lineage", *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    down = lineage("downstream", "landing/amr_registration", "法定代表人证件号码")
    assert down.returncode == 0, down.stderr
    assert "→ raw/amr_registration.legal_rep_id_no  [IDENTITY]" in down.stdout
    assert "→ catalogue/datasets  [whole table" in down.stdout
    up = lineage("upstream", "raw/amr_registration", "_row_number")
    assert "origin unknown" in up.stdout
    # a 亩均 weight is county policy: its trace ends at the seed file it is loaded from, not "unknown"
    weight = lineage("upstream", "publish/topic_mujun_indicator_scores", "weight")
    assert weight.returncode == 0, weight.stderr
    assert "source: file dbt_project/seeds/mujun_indicators.csv" in weight.stdout, weight.stdout
    assert "origin unknown" not in weight.stdout
