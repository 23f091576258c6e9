"""The catalogue asset (数据目录): Delta tables and a JSON export that need no Dagster to read."""

import datetime as dt

import dagster as dg

from assets import catalogue_entries, own_tables
from assets.clean import std_key
from assets.collect import raw_key
from assets.govern import PROBLEM_LISTS_KEY
from assets.own_tables import own_table_reports
from assets.publish import GRADES, publish_key
from lakehouse.registry import Registry, registry
from lakehouse.tables import CATALOGUE_COLUMNS, OWN_TABLES
from orchestration.automation import follows_inputs
from orchestration.metadata import grades_of
from orchestration.resources import BACKGROUND, LakeResource


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
            out[m["name"]] = grades_of(value)
    return out


def build(reg: Registry | None = None, published: list[dict] | None = None) -> dg.AssetsDefinition:
    reg = reg or registry()
    published = public_models() if published is None else published

    @dg.asset(
        key=["catalogue", "datasets"],
        op_tags=BACKGROUND,
        deps=[
            *(raw_key(ds) for ds in reg.datasets),
            *(std_key(ds.id) for ds in reg.datasets),
            *(publish_key(m["name"]) for m in published),
            *(own_tables.key(t) for t in OWN_TABLES if "catalogue" not in t.written_by),
            # the steps that write those tables: Dagster orders steps by executable assets only
            PROBLEM_LISTS_KEY,
        ],
        group_name="catalogue",
        kinds={"delta", "polars"},
        owners=[reg.defaults.steward],
        tags={"zone": "catalogue"},
        automation_condition=follows_inputs(),
    )
    def catalogue(context: dg.AssetExecutionContext, lake: LakeResource):
        """数据目录：每个数据集（原始库、标准库、共享库）及其每一列的编目信息（中英文名称、数源单位、更新周期、共享/开放属性、
        分类分级、字段说明），连同当前Delta版本与行数。

        The catalogue of every dataset and column, as Delta tables `catalogue/datasets` and
        `catalogue/columns` plus `catalogue/catalogue.json`, readable without Dagster.
        """
        the_lake = lake.lake()
        now = dt.datetime.now(dt.UTC)
        grades = _published_grades(context.instance, published)
        datasets, columns = catalogue_entries.build(reg, the_lake, now, published, grades)
        versions, path = catalogue_entries.write(the_lake, datasets, columns, now)
        version = versions.pop("catalogue/datasets")
        yield from own_table_reports(versions, {CATALOGUE_COLUMNS.label: columns.height})
        context.log.info(f"catalogue: {datasets.height} datasets, {columns.height} columns → {path}")
        yield dg.MaterializeResult(
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
