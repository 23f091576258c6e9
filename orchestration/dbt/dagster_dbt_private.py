"""The one place that touches dagster-dbt's private API. Pinned behaviour, checked by
tests/test_dbt_adapter.py, which fails loudly when an upgrade changes what is used here:

- ``DbtCliResource._cli_version`` and ``DbtCliResource._initialize_dbt_core_adapter``: two fixed costs on
  every dbt step (a ``dbt --version`` subprocess, ~5 s on 2 cores; an in-process adapter that only
  ``fetch_column_metadata`` uses). ``DbtResource`` replaces both.
- ``PARTIAL_PARSE_FILE_NAME`` and ``_get_dbt_target_path``: an invocation starts from the
  ``partial_parse.msgpack`` it finds in the project's target folder. ``keep_parse`` leaves the last
  invocation's parse there, so the next one re-parses only what changed (a full parse: ~2.5 s here, on
  every run, since the prepared parse was made with another warehouse path).
"""

from __future__ import annotations

import os
import shutil
from functools import cached_property
from pathlib import Path

from dagster_dbt import DbtCliResource
from dagster_dbt.core.dbt_cli_invocation import PARTIAL_PARSE_FILE_NAME, _get_dbt_target_path
from dbt.version import __version__ as dbt_version
from packaging import version


def keep_parse(invocation_target: Path, project_dir: str | Path) -> bool:
    """Leave an invocation's parse where the next invocation starts from (see the module doc); atomic, so
    a concurrent reader sees the old file or the new one. Returns whether there was one to keep."""
    made = Path(invocation_target) / PARTIAL_PARSE_FILE_NAME
    target = _get_dbt_target_path()
    home = (target if target.is_absolute() else Path(project_dir) / target) / PARTIAL_PARSE_FILE_NAME
    if not made.is_file() or made.resolve() == home.resolve():
        return False
    home.parent.mkdir(parents=True, exist_ok=True)
    staged = home.with_name(f".{home.name}.{os.getpid()}")
    shutil.copyfile(made, staged)
    os.replace(staged, home)
    return True


class DbtResource(DbtCliResource):
    """dagster-dbt's CLI resource without two fixed costs measured on every dbt step here (see above):
    the dbt-core version is the one already imported, and no in-process adapter is built — column lineage
    is derived after the build (``column_lineage``)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt_version)

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 — the adapter is not used
        return None
