"""dagster-dbt's private API, used in one module (orchestration/dbt/dagster_dbt_private.py) and, as the reference
the one-pass column lineage is held to, by tests/test_modelling.py: these tests fail loudly when an upgrade of
dagster-dbt changes what they rely on, before a run finds out."""

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


def test_an_invocation_still_starts_from_the_parse_in_the_target_folder_and_the_last_one_is_kept_there(
    tmp_path, monkeypatch
):
    from dagster_dbt.core import dbt_cli_invocation

    from orchestration.dbt.dagster_dbt_private import keep_parse

    source = inspect.getsource(dbt_cli_invocation.DbtCliInvocation.run)
    assert "_get_dbt_target_path()" in source and "PARTIAL_PARSE_FILE_NAME" in source
    project, run_target = tmp_path / "project", tmp_path / "run-target"
    run_target.mkdir(parents=True)
    assert not keep_parse(run_target, project)  # nothing parsed: nothing kept
    (run_target / "partial_parse.msgpack").write_bytes(b"parse of run 1")
    monkeypatch.delenv("DBT_TARGET_PATH", raising=False)
    assert keep_parse(run_target, project)
    assert (project / "target" / "partial_parse.msgpack").read_bytes() == b"parse of run 1"
    assert [p.name for p in (project / "target").iterdir()] == ["partial_parse.msgpack"]  # no staged leftovers
    elsewhere = tmp_path / "elsewhere"
    monkeypatch.setenv("DBT_TARGET_PATH", str(elsewhere))  # where dagster-dbt then looks
    assert keep_parse(run_target, project)
    assert (elsewhere / "partial_parse.msgpack").read_bytes() == b"parse of run 1"


def test_only_the_newest_invocation_folders_are_kept(tmp_path):
    import os

    from orchestration.dbt.assets import prune_targets

    target = tmp_path / "target"
    folders = []
    for i in range(8):
        folder = target / f"dbt_models-run{i}-abc"
        folder.mkdir(parents=True)
        (folder / "manifest.json").write_text("{}")
        os.utime(folder, (1_000_000 + i, 1_000_000 + i))
        folders.append(folder)
    other = target / "compiled"
    other.mkdir()
    (target / "partial_parse.msgpack").write_bytes(b"x")
    removed = prune_targets(folders[-1], keep=3)
    assert sorted(removed) == sorted(folders[:5])
    assert sorted(p.name for p in target.iterdir()) == sorted(
        ["compiled", "partial_parse.msgpack", *(f.name for f in folders[5:])]
    )
