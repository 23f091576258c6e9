"""The catalogue asset (数据目录): Delta tables and a JSON export that need no Dagster to read."""

import datetime as dt
import json

import dagster as dg
import pyarrow.fs as pafs

from assets import catalogue_entries
from assets.clean import std_key
from assets.collect import raw_key
from assets.publish import GRADES, publish_key
from assets.registry import Registry, registry
from orchestration.resources import LakeResource

EXPORT_NAME = "catalogue.json"


def write_export(root: str, storage_options: dict, document: dict) -> str:
    """Write the JSON export next to the catalogue tables, on whatever filesystem the lake is."""
    fs, base = pafs.FileSystem.from_uri(root) if "://" in root else (pafs.LocalFileSystem(), root)
    path = f"{base.rstrip('/')}/catalogue/{EXPORT_NAME}"
    fs.create_dir(path.rsplit("/", 1)[0], recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(json.dumps(document, ensure_ascii=False, indent=1, default=str).encode("utf-8"))
    return path


def public_models() -> list[dict]:
    """The public dbt models as catalogue input: name, description, meta and columns from the manifest."""
    from exchange.statistics import CATALOGUE_ENTRY
    from orchestration.dbt.project import is_public, manifest, model_meta, project

    return [
        *(
            {
                "name": p["name"],
                "description": p.get("description") or "",
                "meta": model_meta(p),
                "columns": {
                    c: {
                        "description": spec.get("description"),
                        "data_type": spec.get("data_type"),
                        "meta": {**spec.get("meta", {}), **spec.get("config", {}).get("meta", {})},
                    }
                    for c, spec in p.get("columns", {}).items()
                },
            }
            for p in manifest(project())["nodes"].values()
            if is_public(p)
        ),
        CATALOGUE_ENTRY,  # published by the exchange (assets/share.py), not by dbt
    ]


def _published_grades(instance: dg.DagsterInstance, models: list[dict]) -> dict[str, dict]:
    out = {}
    for m in models:
        event = instance.get_latest_materialization_event(publish_key(m["name"]))
        value = event.asset_materialization.metadata.get(GRADES) if event else None
        if value is not None:
            out[m["name"]] = value.value
    return out


def build(reg: Registry | None = None, published: list[dict] | None = None) -> dg.AssetsDefinition:
    reg = reg or registry()
    published = public_models() if published is None else published

    @dg.asset(
        key=["catalogue", "datasets"],
        deps=[
            *(raw_key(ds) for ds in reg.datasets),
            *(std_key(ds.id) for ds in reg.datasets),
            *(publish_key(m["name"]) for m in published),
        ],
        group_name="catalogue",
        kinds={"delta", "polars"},
        owners=[reg.defaults.steward],
        tags={"zone": "catalogue"},
        automation_condition=dg.AutomationCondition.eager(),
    )
    def catalogue(context: dg.AssetExecutionContext, lake: LakeResource) -> dg.MaterializeResult:
        """数据目录：每个数据集（原始库、标准库、共享库）及其每一列的编目信息（中英文名称、数源单位、更新周期、共享/开放属性、
        分类分级、字段说明），连同当前Delta版本与行数。

        The catalogue of every dataset and column, as Delta tables `catalogue/datasets` and
        `catalogue/columns` plus `catalogue/catalogue.json`, readable without Dagster.
        """
        the_lake = lake.lake()
        now = dt.datetime.now(dt.UTC)
        grades = _published_grades(context.instance, published)
        datasets, columns = catalogue_entries.build(reg, the_lake, now, published, grades)
        version = the_lake.overwrite("catalogue", "datasets", datasets.to_arrow())
        the_lake.overwrite("catalogue", "columns", columns.to_arrow())
        by_ds = columns.partition_by("dataset_id", "zone", as_dict=True)
        document = {
            "generated_at": now.isoformat(),
            "datasets": [
                {**row, "columns": by_ds[(row["dataset_id"], row["zone"])].drop("dataset_id", "zone").to_dicts()}
                for row in datasets.drop("catalogued_at").to_dicts()
            ],
        }
        path = write_export(lake.root, lake.storage_options, document)
        context.log.info(f"catalogue: {datasets.height} datasets, {columns.height} columns → {path}")
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": datasets.height,
                "columns_catalogued": columns.height,
                "delta_version": version,
                "export": dg.MetadataValue.path(path),
                "datasets": dg.MetadataValue.md(_md(datasets)),
            }
        )

    return catalogue


def _md(datasets) -> str:
    lines = ["| dataset | 名称 | 数源单位 | rows | version |", "|---|---|---|---|---|"]
    for r in datasets.iter_rows(named=True):
        lines.append(
            f"| {r['asset_key']} | {r['name_zh']} | {r['source_department_zh']} | {r['row_count']} | "
            f"{r['delta_version']} |"
        )
    return "\n".join(lines)
