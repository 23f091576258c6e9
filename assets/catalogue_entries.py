"""Catalogue entries (编目) as data: one row per dataset and one per column, after DB33/T 2426 attributes.

Built from the registry plus what the lake says now (version, row count), so the catalogue is always
what is really there. Plain code: the catalogue asset and the export call it.
"""

from __future__ import annotations

import datetime as dt
import json

import polars as pl

from lakehouse.lake import CATALOGUE_EXPORT, Lake
from lakehouse.provenance import CHANGE, CHANGED_AT, PROVENANCE, SOURCE_KEY
from lakehouse.registry import Dataset, Registry
from lakehouse.tables import CATALOGUE_COLUMNS, OWN_TABLES
from orchestration import keys
from privacy import grading, overrides, policy
from quality import units
from quality.gate import STD_TYPES

PROVENANCE_DESCRIPTIONS = {
    "_source_department": "数源单位代码 / source department",
    "_source_file": "来源文件（相对落地区）/ delivered file, relative to the landing area",
    "_file_sha256": "来源文件SHA-256 / content hash of the delivered file",
    "_row_number": "文件内数据行号（从1起）/ data-row number in the file, from 1",
    "_batch_id": "采集批次 / collection batch",
    "_ingested_at": "入湖时间（UTC）/ when the row landed (UTC)",
    "_period": "交付所属期（取自文件名）/ delivery period, from the file name",
    "_source_key": "源库行主键（JSON，库表来源）/ the source row's primary key (JSON; database sources)",
    "_change": "变更类型（upsert/snapshot/insert/update/delete，库表来源）/ the kind of change (database sources)",
    "_changed_at": "源端变更时间（UTC，源库更新时间/事务提交时间/消息到达时间）/ when the source changed the row (UTC)",
}


def _source_key_grade(ds: Dataset) -> str:
    """A source row's key holds the values of its key columns: the highest grade of those the registry
    grades (a surrogate id the registry does not list is L1; so is a change log's primary key, which the
    registry does not name)."""
    graded = {ds.db_column(c.name): c.grade for c in ds.columns if c.grade}
    return max((graded[k] for k in ds.source_key if k in graded), default="L1")


def dataset_entry(reg: Registry, ds: Dataset, zone: str, lake: Lake | None = None) -> dict:
    dept = reg.departments[ds.department]
    table = lake.table(zone, ds.id) if lake else None
    return {
        "dataset_id": ds.id,
        "zone": zone,
        "asset_key": keys.key(zone, ds.id).to_user_string(),
        "name_zh": ds.name_zh,
        "name_en": ds.name_en,
        "description": ds.description,
        "source_department": ds.department,
        "source_department_zh": dept.name_zh,
        "source_department_en": dept.name_en,
        "update_cycle": ds.update_cycle,
        "share_type": ds.share_type,
        "open_type": ds.open_type,
        "owner": reg.owner_of(ds),
        "steward": reg.defaults.steward,
        "classification": ds.classification or reg.defaults.classification,
        **dataset_grade(reg, ds, zone),
        "format": ds.format,
        "delta_uri": lake.uri(zone, ds.id) if lake else None,
        "delta_version": table.version() if table else None,
        "row_count": lake.row_count(zone, ds.id) if lake else None,
        "column_count": len(ds.columns) + len(PROVENANCE) + 2 * (zone == "raw" and ds.versioned),
    }


def _crosswalk(level: str | None, what: str):
    levels = grading.vocabulary()["levels"]
    return levels[level][what] if level in levels else None


def dataset_grade(reg: Registry, ds: Dataset, zone: str) -> dict:
    """A dataset is graded at its highest column (就高从严) — in std, after the std transforms; unclassified
    while any column is."""
    if grading.unclassified(ds):
        return {"grade": reg.defaults.grade, "grade_national": None, "miit_level": None}
    level = grading.dataset_level(ds) if zone == "raw" else grading.highest(policy.std_levels(ds).values())
    return {"grade": level, "grade_national": _crosswalk(level, "grade"), "miit_level": _crosswalk(level, "miit")}


def column_entries(reg: Registry, ds: Dataset, zone: str) -> list[dict]:
    classified = not grading.unclassified(ds)
    std_levels = policy.std_levels(ds) if classified else {}
    rows = []
    for i, c in enumerate(ds.columns, start=1):
        rows.append(
            {
                "dataset_id": ds.id,
                "zone": zone,
                "position": i,
                "column": c.name,
                "source_header": c.source,
                "physical_type": "string" if zone == "raw" else str(STD_TYPES[c.type]),
                "logical_type": c.type,
                "description": c.description,
                "unit": _unit(c, zone),
                "classification": c.classification or reg.defaults.classification,
                "grade": c.grade or reg.defaults.grade,
                "grade_national": _crosswalk(c.grade, "grade"),
                "miit_level": _crosswalk(c.grade, "miit"),
                "role": c.role or reg.defaults.role,
                "privacy_transform": (policy.std_transforms(ds).get(c.name) if zone != "raw" and classified else None),
                "effective_grade": (std_levels.get(c.name) if zone != "raw" else c.grade) if classified else None,
            }
        )
    provenance = list(PROVENANCE) + ([SOURCE_KEY, CHANGE, CHANGED_AT] if zone == "raw" and ds.versioned else [])
    for j, f in enumerate(provenance, start=len(rows) + 1):
        grade = _source_key_grade(ds) if f.name == SOURCE_KEY.name else "L1"
        rows.append(
            {
                "dataset_id": ds.id,
                "zone": zone,
                "position": j,
                "column": f.name,
                "source_header": None,
                "physical_type": str(f.type),
                "logical_type": "provenance",
                "description": PROVENANCE_DESCRIPTIONS[f.name],
                "unit": None,
                "classification": "provenance",
                "grade": grade,
                "grade_national": _crosswalk(grade, "grade"),
                "miit_level": _crosswalk(grade, "miit"),
                "role": "none",
                "privacy_transform": None,
                "effective_grade": grade,
            }
        )
    return rows


def _unit(c, zone: str) -> str | None:
    """Raw keeps the delivered unit; std holds one canonical unit per measure."""
    if zone == "raw":
        return c.unit or (f"见 {c.unit_column}" if c.unit_column else None)
    if c.unit:
        return units.canonical(c.unit)
    return units.canonical_of_measure(c.measure) if c.measure else None


CATALOGUED_ZONES = ("raw", "std")


def build(
    reg: Registry, lake: Lake, now: dt.datetime, published: list[dict] | None = None, grades: dict | None = None
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(datasets, columns) frames of the whole catalogue as the lake stands now: raw and std from the
    registry, the publish zone from the public dbt models (``published_entries``)."""
    entries = [dataset_entry(reg, ds, zone, lake) for zone in CATALOGUED_ZONES for ds in reg.datasets]
    columns = [row for zone in CATALOGUED_ZONES for ds in reg.datasets for row in column_entries(reg, ds, zone)]
    for more_entries, more_columns in (
        published_entries(reg, published or [], lake, grades or {}),
        own_table_entries(reg, lake),
    ):
        entries += more_entries
        columns += more_columns
    datasets = pl.DataFrame(entries, infer_schema_length=None).with_columns(pl.lit(now).alias("catalogued_at"))
    return _apply_overrides(datasets, pl.DataFrame(columns, infer_schema_length=None), overrides.current(lake))


def _apply_overrides(
    datasets: pl.DataFrame, columns: pl.DataFrame, approved: dict
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Stewards' grade overrides replace the propagated effective grade; a dataset whose columns changed
    is graded again at its highest effective column (L1 < … < L4 sort as text)."""
    if not approved:
        return datasets, columns.with_columns(pl.lit(False).alias("grade_overridden"))
    approved_grades = pl.DataFrame(
        [(d, z, c, lv) for (d, z, c), lv in approved.items()],
        schema=["dataset_id", "zone", "column", "override"],
        orient="row",
    )
    columns = (
        columns.join(approved_grades, on=["dataset_id", "zone", "column"], how="left")
        .with_columns(
            pl.col("override").is_not_null().alias("grade_overridden"),
            pl.coalesce("override", "effective_grade").alias("effective_grade"),
        )
        .drop("override")
    )
    touched = {(d, z) for d, z, _ in approved}
    regraded = (
        columns.filter(pl.struct("dataset_id", "zone").is_in([{"dataset_id": d, "zone": z} for d, z in touched]))
        .group_by("dataset_id", "zone")
        .agg(pl.col("effective_grade").max().alias("regraded"))
    )
    crosswalk = grading.vocabulary()["levels"]
    datasets = (
        datasets.join(regraded, on=["dataset_id", "zone"], how="left")
        .with_columns(pl.coalesce("regraded", "grade").alias("grade"))
        .with_columns(
            pl.col("grade")
            .replace_strict({k: v["grade"] for k, v in crosswalk.items()}, default=pl.col("grade_national"))
            .alias("grade_national"),
            pl.col("grade")
            .replace_strict({k: v["miit"] for k, v in crosswalk.items()}, default=pl.col("miit_level"))
            .alias("miit_level"),
        )
        .drop("regraded")
    )
    return datasets, columns


def published_entries(
    reg: Registry, models: list[dict], lake: Lake, grades: dict[str, dict]
) -> tuple[list[dict], list[dict]]:
    """Catalogue rows of the publish zone: one dataset per public dbt model (its yml ``meta`` is the entry)
    and its columns with the grade propagated along column lineage (``grades``: model → column → grading).

    ``models``: dicts with name, description, meta, columns (name → description, data_type, meta)."""
    datasets, columns = [], []
    for m in models:
        meta, name = m["meta"], m["name"]
        graded = grades.get(name, {})
        level = grading.highest(g["level"] for g in graded.values()) if graded else None
        table = lake.table("publish", name)
        datasets.append(
            {
                "dataset_id": name,
                "zone": "publish",
                "asset_key": keys.key("publish", name).to_user_string(),
                "name_zh": meta.get("name_zh", name),
                "name_en": meta.get("name_en", name),
                "description": m["description"],
                "source_department": "modelling",
                "source_department_zh": "分析建模（dbt）",
                "source_department_en": "modelling (dbt)",
                "update_cycle": meta.get("update_cycle"),
                "share_type": meta.get("share_type"),
                "open_type": meta.get("open_type"),
                "disclosure": meta.get("disclosure"),  # identified | deidentified (exchange/publication.py)
                # an aggregate's count column(s), comma-separated
                "small_cell_count": _names(meta.get("small_cell_count")),
                "owner": meta.get("owner"),
                "steward": reg.defaults.steward,
                "classification": meta.get("classification", "derived"),
                "grade": level,
                "grade_national": _crosswalk(level, "grade"),
                "miit_level": _crosswalk(level, "miit"),
                "format": "delta",
                "delta_uri": lake.uri("publish", name),
                "delta_version": table.version() if table else None,
                "row_count": lake.row_count("publish", name) if table else None,
                "column_count": len(m["columns"]),
            }
        )
        for i, (column, spec) in enumerate(m["columns"].items(), start=1):
            g = graded.get(column, {})
            columns.append(
                {
                    "dataset_id": name,
                    "zone": "publish",
                    "position": i,
                    "column": column,
                    "source_header": None,
                    "physical_type": spec.get("data_type"),
                    "logical_type": spec.get("data_type"),
                    "description": spec.get("description"),
                    "unit": spec.get("meta", {}).get("unit"),
                    "classification": spec.get("meta", {}).get("classification", "unclassified"),
                    "grade": g.get("inherited"),
                    "grade_national": _crosswalk(g.get("level"), "grade"),
                    "miit_level": _crosswalk(g.get("level"), "miit"),
                    "role": g.get("role") or spec.get("meta", {}).get("role"),
                    "privacy_transform": g.get("transform"),
                    "effective_grade": g.get("level"),
                }
            )
    return datasets, columns


def own_table_entries(reg: Registry, lake: Lake) -> tuple[list[dict], list[dict]]:
    """Catalogue rows of the warehouse's own tables (quarantine, scores, logs: ``lakehouse.tables``); their
    columns as the Delta table has them (a table not written yet has none)."""
    datasets, columns = [], []
    for t in OWN_TABLES:
        table = lake.table(t.zone, t.name)
        fields = list(table.schema().to_arrow()) if table is not None else []
        datasets.append(
            {
                "dataset_id": t.name,
                "zone": t.zone,
                "asset_key": keys.key(*t.path).to_user_string(),
                "name_zh": t.name_zh,
                "name_en": t.name_en,
                "description": t.description,
                "source_department": "warehouse",
                "source_department_zh": "数据仓（自身记录）",
                "source_department_en": "the warehouse's own records",
                "update_cycle": "每次运行 / every run",
                "share_type": "不予共享",
                "open_type": "不予开放",
                "owner": reg.defaults.steward,
                "steward": reg.defaults.steward,
                "classification": "metadata",
                "grade": t.grade,
                "grade_national": _crosswalk(t.grade, "grade"),
                "miit_level": _crosswalk(t.grade, "miit"),
                "format": "delta",
                "delta_uri": lake.uri(t.zone, t.name),
                "delta_version": table.version() if table is not None else None,
                "row_count": lake.row_count(t.zone, t.name) if table is not None else None,
                "column_count": len(fields),
            }
        )
        columns += [
            {
                "dataset_id": t.name,
                "zone": t.zone,
                "position": i,
                "column": f.name,
                "source_header": None,
                "physical_type": str(f.type),
                "logical_type": str(f.type),
                "description": None,
                "unit": None,
                "classification": "metadata",
                "grade": t.grade,
                "grade_national": _crosswalk(t.grade, "grade"),
                "miit_level": _crosswalk(t.grade, "miit"),
                "role": "none",
                "privacy_transform": None,
                "effective_grade": t.grade,
            }
            for i, f in enumerate(fields, start=1)
        ]
    return datasets, columns


def write(lake: Lake, datasets: pl.DataFrame, columns: pl.DataFrame, now: dt.datetime) -> tuple[dict[str, int], str]:
    """The catalogue as Delta tables ``catalogue/datasets`` and ``catalogue/columns`` and as one JSON export
    (each dataset with its columns) that needs neither Dagster nor Delta to read. Returns the version of
    each table written (``catalogue/datasets``, ``catalogue/columns``) and the export's URI."""
    versions = {
        "catalogue/datasets": lake.overwrite("catalogue", "datasets", datasets.to_arrow()),
        CATALOGUE_COLUMNS.label: lake.overwrite(CATALOGUE_COLUMNS.zone, CATALOGUE_COLUMNS.name, columns.to_arrow()),
    }
    by_ds = {
        k: part.drop("dataset_id", "zone").to_dicts()
        for k, part in columns.partition_by("dataset_id", "zone", as_dict=True).items()
    }
    document = {
        "generated_at": now.isoformat(),
        "datasets": [
            {**row, "columns": by_ds.get((row["dataset_id"], row["zone"]), [])}  # a table not yet written: none
            for row in datasets.drop("catalogued_at").to_dicts()
        ],
    }
    body = json.dumps(document, ensure_ascii=False, indent=1, default=str).encode("utf-8")
    return versions, lake.write_bytes("catalogue", CATALOGUE_EXPORT, body)


def _names(value) -> str | None:
    """One column name or a list of them, as the catalogue keeps it: comma-separated text."""
    if not value:
        return None
    return value if isinstance(value, str) else ",".join(value)
