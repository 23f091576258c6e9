"""The one place that touches dagster-dbt's private API. Pinned behaviour, checked by
tests/test_dbt_adapter.py, which fails loudly when an upgrade changes what is used here:

- ``_build_column_lineage_metadata`` (with ``EventHistoryMetadata``): dagster-dbt derives column lineage
  with sqlglot from the compiled SQL, but only inside its own ``fetch_column_metadata`` step, which opens
  a second DuckDB connection while dbt holds the file. The dbt step derives the same lineage after the build
  in one sqlglot pass per model (``orchestration.dbt.column_lineage``, ~2.6× faster); ``column_lineage``
  here is the reference that tests/test_modelling.py holds it to, on every model of a build.
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
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource
from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata
from dagster_dbt.core.dbt_cli_invocation import PARTIAL_PARSE_FILE_NAME, _get_dbt_target_path
from dbt.version import __version__ as dbt_version
from packaging import version


def column_lineage(
    props: Mapping[str, Any],
    manifest: Mapping[str, Any],
    translator: DagsterDbtTranslator,
    target_path: Path | None,
    columns: dict[str, dict[str, Any]],
    parents: dict[str, dict[str, dict[str, Any]]],
) -> dg.TableColumnLineage | None:
    """A model's column lineage from its compiled SQL; ``columns``: the model's column → {data_type};
    ``parents``: each parent's relation name → its columns. None when dagster-dbt derives none."""
    lineage = _build_column_lineage_metadata(
        EventHistoryMetadata(columns=columns, parents=parents), dict(props), manifest, translator, target_path, None
    ).get("dagster/column_lineage")
    return lineage or None


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
