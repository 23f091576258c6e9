"""The dbt project as Dagster sees it: where it is, its prepared manifest, and how its nodes become assets.

The manifest is prepared ahead (``make`` runs ``dbt parse`` when a dbt file changed), so loading the
definitions never parses the project; when it is missing or older than the project files (a modeler just
added a model), it is prepared once, here, before the definitions load.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtProject

from orchestration import keys
from orchestration.automation import GATED_PREFIX, follows_inputs, year_complete
from orchestration.settings import PROJECT_ROOT, settings

PROJECT_DIR_ENV = "SHUCANG_DBT_PROJECT_DIR"
LAYERS = ("staging", "base", "theme", "topic")


def project_dir() -> Path:
    return Path(os.environ.get(PROJECT_DIR_ENV) or PROJECT_ROOT / "dbt_project").resolve()


def _project_files(root: Path):
    yield root / "dbt_project.yml"
    for sub in ("models", "seeds", "macros", "tests"):
        yield from (p for p in (root / sub).rglob("*") if p.is_file())


def stale(root: Path) -> bool:
    manifest = root / "target" / "manifest.json"
    if not manifest.exists():
        return True
    built = manifest.stat().st_mtime
    return any(p.stat().st_mtime > built for p in _project_files(root))


def prepare(root: Path | None = None) -> Path:
    """``dbt parse`` into ``target/`` when the manifest is missing or stale; returns the manifest path."""
    root = root or project_dir()
    if stale(root):
        dbt = Path(sys.executable).with_name("dbt")
        done = subprocess.run(
            [str(dbt), "parse", "--project-dir", str(root), "--profiles-dir", str(root), "--quiet"],
            cwd=root,
            capture_output=True,
            text=True,
            # the warehouse path runs will use: the profile is part of dbt's partial-parse state, and a
            # different one makes every run parse the whole project again
            env={
                **os.environ,
                "DBT_TARGET_PATH": "target",
                "DBT_LOG_PATH": str(root / "logs"),
                "WAREHOUSE_PATH": str(settings().warehouse_path),
            },
        )
        if done.returncode != 0:
            raise RuntimeError(f"dbt parse failed in {root}:\n{done.stdout}\n{done.stderr}")
    return root / "target" / "manifest.json"


def project(root: str | Path | None = None) -> DbtProject:
    """The dbt project (``$SHUCANG_DBT_PROJECT_DIR`` or ``dbt_project/``), its manifest prepared."""
    return _project(str(Path(root).resolve() if root else project_dir()))


@cache
def _project(root: str) -> DbtProject:
    prepare(Path(root))
    return DbtProject(project_dir=root, profiles_dir=root)


def manifest(dbt_project: DbtProject) -> dict[str, Any]:
    return json.loads(dbt_project.manifest_path.read_text(encoding="utf-8"))


def upstream_sources(the_manifest: Mapping[str, Any], model: str) -> set[str]:
    """The names of the dbt sources (std datasets) a model reads, directly or through other models."""
    nodes = {**the_manifest["nodes"], **the_manifest["sources"]}
    todo = [uid for uid, n in the_manifest["nodes"].items() if n.get("name") == model and n["resource_type"] == "model"]
    seen, out = set(todo), set()
    while todo:
        node = nodes[todo.pop()]
        if node["resource_type"] == "source":
            out.add(node["name"])
        for parent in node.get("depends_on", {}).get("nodes", []):
            if parent not in seen and parent in nodes:
                seen.add(parent)
                todo.append(parent)
    return out


def layer_of(props: Mapping[str, Any]) -> str:
    if props["resource_type"] == "seed":
        return "parameters"
    parts = props.get("fqn", [])
    return next((p for p in parts if p in LAYERS), "theme")


def is_public(props: Mapping[str, Any]) -> bool:
    return props["resource_type"] == "model" and props.get("access") == "public"


def model_meta(props: Mapping[str, Any]) -> dict[str, Any]:
    return {**props.get("meta", {}), **props.get("config", {}).get("meta", {})}


KEY_TESTS = ("unique_combination", "unique")


def model_key(the_manifest: Mapping[str, Any], props: Mapping[str, Any]) -> list[str]:
    """A model's business key, declared once: the columns of its ``unique_combination`` test, or the column
    of its ``unique`` test. Publication orders and diffs by it; a public model without one is an error."""
    found = []
    for node in the_manifest["nodes"].values():
        meta = node.get("test_metadata") or {}
        if node["resource_type"] != "test" or node.get("attached_node") != props["unique_id"]:
            continue
        if meta.get("name") == "unique_combination":
            found.append((0, list(meta["kwargs"]["columns"])))
        elif meta.get("name") == "unique":
            found.append((1, [meta["kwargs"]["column_name"]]))
    if not found:
        raise ValueError(
            f"{props['original_file_path']}: model {props['name']} declares no key — give it a "
            "unique_combination (or unique) data test; publication orders and diffs by it"
        )
    return min(found)[1]


def column_meta(props: Mapping[str, Any], column: str) -> dict[str, Any]:
    c = props.get("columns", {}).get(column, {})
    return {**c.get("meta", {}), **c.get("config", {}).get("meta", {})}


class Translator(DagsterDbtTranslator):
    """dbt sources are the std assets; models are keyed by layer (base/…, theme/…, topic/…), grouped by
    layer, owned as their yml says, and tagged with their zone and access."""

    def __init__(self) -> None:
        super().__init__(settings=DagsterDbtTranslatorSettings(enable_asset_checks=True))

    def get_asset_key(self, props: Mapping[str, Any]) -> dg.AssetKey:
        if props["resource_type"] == "source":
            return keys.key(props.get("config", {}).get("zone") or "std", props["name"])
        return dg.AssetKey([layer_of(props), props["name"]])

    def get_group_name(self, props: Mapping[str, Any]) -> str | None:
        return layer_of(props)

    def get_owners(self, props: Mapping[str, Any]):
        owner = model_meta(props).get("owner")
        return [owner] if owner else super().get_owners(props)

    def get_automation_condition(self, props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        """Models and seeds follow their inputs (``orchestration.automation``); a topic gated on complete
        years (the 亩均 evaluation) also waits until its year's deliveries are all in."""
        if props["resource_type"] == "model" and props["name"].startswith(GATED_PREFIX):
            return follows_inputs(context=True) & year_complete()
        return follows_inputs(context=True)

    def get_tags(self, props: Mapping[str, Any]) -> Mapping[str, str]:
        tags = {"zone": layer_of(props)}
        if props["resource_type"] == "model":
            tags["access"] = props.get("access") or "protected"
        return tags

    def get_description(self, props: Mapping[str, Any]) -> str:
        meta = model_meta(props)
        head = f"**{meta['name_zh']}** ({meta.get('name_en', '')}) — " if "name_zh" in meta else ""
        return head + (props.get("description") or "") + f"\n\n`{props.get('original_file_path', '')}`"
