"""The one place that touches dagster-dbt's private API. Pinned behaviour, checked by
tests/test_dbt_adapter.py, which fails loudly when an upgrade changes what is used here:

- ``_build_column_lineage_metadata`` (with ``EventHistoryMetadata``): dagster-dbt derives column lineage
  with sqlglot from the compiled SQL, but only inside its own ``fetch_column_metadata`` step, which opens
  a second DuckDB connection while dbt holds the file. The project calls it after the build instead, with
  the schemas DuckDB reports then.
- ``DbtCliResource._cli_version`` and ``DbtCliResource._initialize_dbt_core_adapter``: two fixed costs on
  every dbt step (a ``dbt --version`` subprocess, ~5 s on 2 cores; an in-process adapter that only
  ``fetch_column_metadata`` uses). ``DbtResource`` replaces both.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DbtCliResource
from dagster_dbt.core.dbt_cli_event import EventHistoryMetadata, _build_column_lineage_metadata
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


class DbtResource(DbtCliResource):
    """dagster-dbt's CLI resource without two fixed costs measured on every dbt step here (see above):
    the dbt-core version is the one already imported, and no in-process adapter is built — column lineage
    is derived after the build (``column_lineage``)."""

    @cached_property
    def _cli_version(self) -> version.Version:
        return version.parse(dbt_version)

    def _initialize_dbt_core_adapter(self, args):  # noqa: ARG002 — the adapter is not used
        return None
