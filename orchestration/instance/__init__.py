"""The project-local Dagster instance (DAGSTER_HOME) and its configuration file."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

TEMPLATE = Path(__file__).with_name("dagster.yaml")


def prepare(dagster_home: Path) -> Path:
    """Create DAGSTER_HOME with the project's dagster.yaml, and point this process at it."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    target = dagster_home / "dagster.yaml"
    if not target.exists() or target.read_bytes() != TEMPLATE.read_bytes():
        shutil.copyfile(TEMPLATE, target)
    os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dagster_home
