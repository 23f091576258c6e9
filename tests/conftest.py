"""Shared fixtures: small generated sources, and a lake in a temporary folder."""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

from sourcegen.generate import generate

# Pseudonymisation keys and the audit log of a test session live in its own temporary folder, never in
# the developer's ~/.config (each process of pytest-xdist gets its own, which is what a fresh machine sees).
_KEYS = Path(tempfile.mkdtemp(prefix="shucang-test-keys-"))
atexit.register(shutil.rmtree, _KEYS, ignore_errors=True)
os.environ.setdefault("SHUCANG_KEY_FILE", str(_KEYS / "pseudonym_keys.json"))
os.environ.setdefault("SHUCANG_AUDIT_LOG", str(_KEYS / "privileged.jsonl"))  # for tests on default settings

SMALL_SCALE = 1.0  # the demo scale: 1,000 enterprises, 100,000 telemetry rows; every defect kind occurs


@pytest.fixture(scope="session")
def generated(tmp_path_factory) -> Path:
    """Sources generated once per test session; copy before mutating (see ``workdir``)."""
    out = tmp_path_factory.mktemp("sources")
    generate(out, scale=SMALL_SCALE)
    return out


@pytest.fixture(scope="session")
def manifest(generated) -> dict:
    return json.loads((generated / "truth" / "manifest.json").read_text(encoding="utf-8"))


@pytest.fixture
def workdir(generated, tmp_path) -> Path:
    """A private copy of the generated landing zone with an empty lake beside it."""
    shutil.copytree(generated / "landing", tmp_path / "landing")
    return tmp_path


@pytest.fixture(scope="module")
def module_workdir(generated, tmp_path_factory) -> Path:
    """Like ``workdir``, shared by the tests of one module: for a costly run that its tests only read."""
    work = tmp_path_factory.mktemp("work")
    shutil.copytree(generated / "landing", work / "landing")
    return work


@dataclass(frozen=True)
class DemoSite:
    """A finished ``make demo`` in a temporary folder: its data, Dagster home, environment and output."""

    data: Path
    home: Path
    env: dict
    stdout: str

    @property
    def lake(self) -> Path:
        return self.data / "lake"


@pytest.fixture(scope="session")
def demo_site(tmp_path_factory) -> DemoSite:
    """The demo pipeline, run once per test session however many workers ask for it (a file lock in the
    session's shared temporary folder): the UI and the console tests read what it built. Its keys and audit
    log live beside it, so every process that reads its ledger shares them."""
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    root = shared / "demo-site"
    env = {
        **os.environ,
        "SHUCANG_ENV": "ci",
        "SHUCANG_DATA_DIR": str(root / "data"),
        "DAGSTER_HOME": str(root / "home"),
        "SHUCANG_KEY_FILE": str(root / "keys" / "pseudonym_keys.json"),
        "SHUCANG_AUDIT_LOG": str(root / "keys" / "privileged.jsonl"),
    }
    env.pop("SHUCANG_CHAIN_KEY_FILE", None)
    with FileLock(str(shared / "demo-site.lock")):
        done = root / "stdout.txt"
        if not done.exists():
            shutil.rmtree(root, ignore_errors=True)
            root.mkdir(parents=True)
            demo = subprocess.run(
                [sys.executable, "-m", "orchestration.cli", "demo"],
                cwd=Path(__file__).resolve().parent.parent,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
            done.write_text(demo.stdout, encoding="utf-8")
    return DemoSite(root / "data", root / "home", env, done.read_text(encoding="utf-8"))


def is_published(a) -> bool:
    """Publish- and share-zone assets need the dbt models (or approved data requests) upstream; tests of the
    Python stages leave them out."""
    return any(k.path[0] in ("publish", "share") for k in a.keys)


def dbt_build(project: Path, select: str, **env: str) -> subprocess.CompletedProcess:
    """``dbt build --select …`` on a dbt project copy, with the project's own dbt, extra environment on top."""
    return subprocess.run(
        [
            str(Path(sys.executable).with_name("dbt")),
            "build",
            "--select",
            select,
            "--project-dir",
            str(project),
            "--profiles-dir",
            str(project),
        ],
        cwd=project,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )


# Test files by how long they take, slowest first (measured with `pytest --durations`, 2026-12-07): make test
# hands whole files to its two workers in collection order (`--dist loadfile --no-loadscope-reorder`), so the
# long ones start first and the short ones fill in around them — xdist's default order (most tests first)
# started the one-test automation file (~3 min) last, after everything else.
SLOW_FIRST = (
    "test_automation.py",
    "test_sail.py",
    "test_modelling.py",
    "test_console_browser.py",
    "test_object_store.py",
    "test_partition_backfill.py",
    "test_run_monitoring.py",
    "test_lint.py",
    "test_govern.py",
    "test_lineage.py",
    "test_deployment.py",
    "test_incremental.py",
    "test_ui.py",
    "test_warehouse.py",
    "test_materialize.py",
)


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: a file's own order stays
