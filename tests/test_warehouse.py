"""The DuckDB warehouse and the dbt project work offline with the pinned versions."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from orchestration.resources import WarehouseResource

pytestmark = pytest.mark.integration  # Dagster runs, dbt, servers: make test, not make test-fast

ROOT = Path(__file__).resolve().parent.parent


def test_warehouse_connection_never_downloads_extensions(tmp_path):
    con = WarehouseResource(path=str(tmp_path / "w.duckdb")).connect()
    settings = dict(
        con.execute(
            "select name, value from duckdb_settings() "
            "where name in ('autoinstall_known_extensions', 'autoload_known_extensions')"
        ).fetchall()
    )
    assert settings == {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    con.close()


def test_dbt_project_parses_offline(tmp_path):
    env = {**os.environ, "WAREHOUSE_PATH": str(tmp_path / "w.duckdb"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    dbt = Path(sys.executable).with_name("dbt")
    proc = subprocess.run(
        [
            str(dbt),
            "parse",
            "--project-dir",
            "dbt_project",
            "--profiles-dir",
            "dbt_project",
            "--target-path",
            str(tmp_path / "target"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert (tmp_path / "target" / "manifest.json").is_file()
