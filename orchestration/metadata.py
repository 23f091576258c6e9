"""Metadata a steward reads and the pipeline reads back: tables in the Dagster UI, never JSON blobs.

What one step records for the next — a dbt build's column grades, failed tests and the std versions it
read, a stage's column transformations — is kept as a table (one row per column, test or source table),
which the UI shows as a table and ``*_of`` turns back into the mapping the readers use. The readers also
accept the mappings recorded by earlier versions of the project (JSON), so an instance's history stays
readable.
"""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

# per column: (field, type, description shown in the UI)
GRADES = (
    ("level", "string", "有效分级 effective grade"),
    ("role", "string", "标识角色 identifier role"),
    ("transform", "string", "隐私变换 privacy transform"),
    ("inherited", "string", "来源最高分级 highest grade of its inputs"),
)
TRANSFORMATIONS = (
    ("type", "string", "DIRECT / INDIRECT"),
    ("subtype", "string", "IDENTITY, TRANSFORMATION, AGGREGATION, …"),
    ("description", "string", "说明 what was done"),
    ("masking", "bool", "隐私变换 masks the value"),
)


CONSOLE_URL = "http://127.0.0.1:3100"  # the steward console (python -m console serve); SHUCANG_CONSOLE_URL moves it


def console_link(zone: str, name: str) -> dg.UrlMetadataValue:
    """The dataset's page in the steward console: its data preview, quality trend, quarantine and lineage."""
    import os

    base = os.environ.get("SHUCANG_CONSOLE_URL", CONSOLE_URL).rstrip("/")
    return dg.MetadataValue.url(f"{base}/datasets/{zone}/{name}")


def _table(columns: list[tuple[str, str, str]], rows: list[dict]) -> dg.TableMetadataValue:
    schema = dg.TableSchema(columns=[dg.TableColumn(n, t, description=d) for n, t, d in columns])
    return dg.MetadataValue.table(records=[dg.TableRecord(r) for r in rows], schema=schema)


def _value(entry):
    """A metadata entry's content: a table's records, a JSON value, or the plain value given."""
    if isinstance(entry, dg.TableMetadataValue):
        return [r.data for r in entry.records]
    return entry.value if isinstance(entry, dg.MetadataValue) else entry


def _per_column_table(fields, values: Mapping[str, Mapping]) -> dg.TableMetadataValue:
    """Column → {field: value} as a table, one row per column."""
    names = [f for f, _, _ in fields]
    return _table(
        [("column", "string", "列 column"), *fields],
        [{"column": c, **{f: v.get(f) for f in names}} for c, v in values.items()],
    )


def _per_column_of(fields, entry) -> dict[str, dict]:
    """The mapping ``_per_column_table`` shows (or an earlier JSON record of it); {} for None."""
    value = _value(entry)
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {c: dict(v) for c, v in value.items()}
    return {r["column"]: {f: r.get(f) for f, _, _ in fields} for r in value}


def grades_table(grades: Mapping[str, Mapping]) -> dg.TableMetadataValue:
    """Column → {level, role, transform, inherited}, as a table."""
    return _per_column_table(GRADES, grades)


def grades_of(entry) -> dict[str, dict]:
    return _per_column_of(GRADES, entry)


def transformations_table(transformations: Mapping[str, Mapping]) -> dg.TableMetadataValue:
    """Column → how it was derived from its input (OpenLineage transformation type, subtype, description,
    masking), as a table."""
    return _per_column_table(TRANSFORMATIONS, transformations)


def transformations_of(entry) -> dict[str, dict]:
    return _per_column_of(TRANSFORMATIONS, entry)


def versions_table(versions: Mapping[str, int]) -> dg.TableMetadataValue:
    """'zone.dataset' → Delta version read, as a table."""
    return _table(
        [("table", "string", "读取的表 table read"), ("version", "int", "Delta 版本 version")],
        [{"table": t, "version": int(v)} for t, v in sorted(versions.items())],
    )


def versions_of(entry) -> dict[str, int]:
    value = _value(entry)
    if value is None:
        return {}
    if isinstance(value, Mapping):
        return {t: int(v) for t, v in value.items()}
    return {r["table"]: int(r["version"]) for r in value}


def tests_table(tests: list[str]) -> dg.TableMetadataValue:
    """Names of the dbt tests that failed, as a table (empty: none failed)."""
    return _table([("test", "string", "未通过的 dbt 测试 failed dbt test")], [{"test": t} for t in sorted(tests)])


def tests_of(entry) -> list[str]:
    value = _value(entry)
    if value is None:
        return []
    return [r["test"] if isinstance(r, Mapping) else r for r in value]
