"""dagster-dbt's private API, used in one module (orchestration/dbt/dagster_dbt_private.py): these tests fail
loudly when an upgrade of dagster-dbt changes what that module relies on, before a run finds out."""

from __future__ import annotations

import inspect
from functools import cached_property

from dagster_dbt import DbtCliResource
from dagster_dbt.core import dbt_cli_event

from orchestration.dbt.dagster_dbt_private import DbtResource
from orchestration.resources import resources


def test_column_lineage_builder_keeps_its_signature():
    build = dbt_cli_event._build_column_lineage_metadata
    assert list(inspect.signature(build).parameters) == [
        "event_history_metadata",
        "dbt_resource_props",
        "manifest",
        "dagster_dbt_translator",
        "target_path",
        "project",
    ]
    assert list(inspect.signature(dbt_cli_event.EventHistoryMetadata).parameters) == ["columns", "parents"]


def test_the_cli_resource_still_has_the_two_costs_the_project_replaces():
    assert isinstance(inspect.getattr_static(DbtCliResource, "_cli_version"), cached_property)
    assert list(inspect.signature(DbtCliResource._initialize_dbt_core_adapter).parameters) == ["self", "args"]
    # and the project's resource replaces them: no subprocess for the version, no adapter
    resource = resources()["dbt"]
    assert isinstance(resource, DbtResource)
    assert str(resource._cli_version).startswith("1.11")
    assert resource._initialize_dbt_core_adapter(["build"]) is None


def test_no_other_module_imports_dagster_dbt_private_api():
    from test_structure import ROOT

    offenders = []
    for path in ROOT.rglob("*.py"):
        rel = path.relative_to(ROOT)
        if rel.parts[0] in (".venv", ".venv-sharing", "tests") or rel.name == "dagster_dbt_private.py":
            continue
        text = path.read_text(encoding="utf-8")
        if "dagster_dbt" in text and ("import _" in text or "._" in text.split("dagster_dbt", 1)[1][:80]):
            offenders.append(str(rel))
    assert offenders == []
