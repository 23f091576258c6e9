"""The DuckDB warehouse and the dbt project work offline with the pinned versions."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import dbt_build

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


def test_seed_tests_refuse_policy_parameters_that_break_the_rules(tmp_path):
    """The 亩均 parameters are data, tested like data: weights that do not add up to 100, bands with a gap,
    a duplicated indicator or an unknown rule fail their dbt tests, each by name."""
    import shutil

    project = tmp_path / "dbt_project"
    shutil.copytree(ROOT / "dbt_project", project, ignore=shutil.ignore_patterns("target", "logs", ".user.yml"))
    seeds = project / "seeds"
    indicators = (seeds / "mujun_indicators.csv").read_text(encoding="utf-8").splitlines()
    indicators[1] = indicators[1].replace(",30,", ",31,")  # 规上 weights now add up to 101
    indicators.append(indicators[2])  # an indicator listed twice
    (seeds / "mujun_indicators.csv").write_text("\n".join(indicators) + "\n", encoding="utf-8")
    bands = (seeds / "mujun_bands.csv").read_text(encoding="utf-8").replace(",25,70", ",26,70")  # a gap at 25–26
    (seeds / "mujun_bands.csv").write_text(bands, encoding="utf-8")
    params = (seeds / "mujun_parameters.csv").read_text(encoding="utf-8").replace(",benchmark,", ",guess,", 1)
    (seeds / "mujun_parameters.csv").write_text(params, encoding="utf-8")
    done = dbt_build(
        project, "resource_type:seed", WAREHOUSE_PATH=str(tmp_path / "w.duckdb"), DBT_LOG_PATH=str(tmp_path / "logs")
    )
    assert done.returncode != 0
    failed = set(re.findall(r"\d+ of \d+ FAIL \d+ (\S+)", done.stdout))
    assert {
        "mujun_weights_sum_to_100",
        "mujun_bands_cover_0_to_100",
        "unique_combination_mujun_indicators_county_code__year__scale_group__indicator",
        "accepted_values_mujun_parameters_missing_emission_rule__benchmark__zero",
    } <= failed, done.stdout[-3000:]
    assert "mujun_one_default_parameter_set" not in failed and "mujun_indicator_ranges" not in failed
