"""The house style holds on every commit: ruff for the Python, sqlfluff for the dbt project's SQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / args[0]), *args[1:]], cwd=cwd, capture_output=True, text=True)


def test_python_is_ruff_clean_and_formatted():
    check = _run("ruff", "check", ".")
    assert check.returncode == 0, check.stdout
    fmt = _run("ruff", "format", "--check", ".")
    assert fmt.returncode == 0, fmt.stdout


@pytest.mark.integration  # the whole dbt project through sqlfluff (seconds): make test and make lint run it
def test_dbt_sql_is_sqlfluff_clean():
    lint = _run("sqlfluff", "lint", "models", "tests", "macros", "--processes", "2", cwd=ROOT / "dbt_project")
    assert lint.returncode == 0, lint.stdout[-3000:]
