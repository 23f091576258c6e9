"""OpenLineage facets from what Dagster knows about an asset: its definition and its materialisation."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from openlineage.client.generated import (
    column_lineage_dataset,
    data_quality_assertions_dataset,
    data_quality_metrics_dataset,
    dataset_version_dataset,
    datasource_dataset,
    documentation_dataset,
    documentation_job,
    error_message_run,
    job_type_job,
    output_statistics_output_dataset,
    ownership_dataset,
    ownership_job,
    schema_dataset,
)

from orchestration.lineage.naming import DatasetRef, Naming
from orchestration.metadata import transformations_of

UNKNOWN_ORIGIN_FACET = "shucang_columnLineageCoverage"


def _owner_type(owner: str) -> str:
    return "TEAM" if owner.startswith("team:") else "USER"


def _value(entry: Any) -> Any:
    return entry.value if isinstance(entry, dg.MetadataValue) else entry


def schema(metadata: Mapping[str, Any]) -> schema_dataset.SchemaDatasetFacet | None:
    table = _value(metadata.get("dagster/column_schema"))
    if not isinstance(table, dg.TableSchema):
        return None
    return schema_dataset.SchemaDatasetFacet(
        fields=[
            schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.type, description=c.description)
            for c in table.columns
        ]
    )


def dataset_facets(ref: DatasetRef, description: str | None, owners: list[str], metadata: Mapping) -> dict:
    facets: dict[str, Any] = {
        "datasource": datasource_dataset.DatasourceDatasetFacet(name=ref.namespace, uri=ref.namespace)
    }
    if (s := schema(metadata)) is not None:
        facets["schema"] = s
    if description:
        facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=description)
    if owners:
        facets["ownership"] = ownership_dataset.OwnershipDatasetFacet(
            owners=[ownership_dataset.Owner(name=o, type=_owner_type(o)) for o in owners]
        )
    return facets


def version(metadata: Mapping) -> dataset_version_dataset.DatasetVersionDatasetFacet | None:
    v = _value(metadata.get("delta_version"))
    return None if v is None else dataset_version_dataset.DatasetVersionDatasetFacet(datasetVersion=str(v))


def column_lineage(
    metadata: Mapping, naming: Naming, output_columns: list[str]
) -> tuple[column_lineage_dataset.ColumnLineageDatasetFacet | None, list[str]]:
    """The declared column lineage, and the output columns whose origin nobody declared (reported, not guessed)."""
    lineage = _value(metadata.get("dagster/column_lineage"))
    declared = lineage.deps_by_column if isinstance(lineage, dg.TableColumnLineage) else {}
    how = transformations_of(metadata.get("shucang/column_transformations"))
    fields = {}
    for column, deps in declared.items():
        t = how.get(column, {"type": "DIRECT"})
        fields[column] = column_lineage_dataset.Fields(
            inputFields=[
                column_lineage_dataset.InputField(
                    namespace=(ref := naming.dataset(list(dep.asset_key.path))).namespace,
                    name=ref.name,
                    field=dep.column_name,
                    transformations=[
                        column_lineage_dataset.Transformation(
                            type=t["type"],
                            subtype=t.get("subtype"),
                            description=t.get("description"),
                            masking=bool(t.get("masking")),
                        )
                    ],
                )
                for dep in deps
            ]
        )
    unknown = [c for c in output_columns if c not in declared]
    return (column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields) if fields else None), unknown


def quality(checks: list[dict], metadata: Mapping) -> dict:
    facets: dict[str, Any] = {}
    if checks:
        facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
            assertions=[
                data_quality_assertions_dataset.Assertion(
                    assertion=c["name"],
                    success=c["passed"],
                    severity=c["severity"],
                    name=c["name"],
                    description=c.get("description"),
                )
                for c in checks
            ]
        )
    rows = _value(metadata.get("dagster/row_count"))
    column_metrics = _value(metadata.get("shucang/column_metrics")) or {}
    if rows is not None or column_metrics:
        facets["dataQualityMetrics"] = data_quality_metrics_dataset.DataQualityMetricsDatasetFacet(
            rowCount=rows,
            columnMetrics={col: data_quality_metrics_dataset.ColumnMetrics(**m) for col, m in column_metrics.items()},
        )
    return facets


def output_statistics(metadata: Mapping) -> dict:
    rows = _value(metadata.get("rows_written"))
    if rows is None:
        return {}
    return {"outputStatistics": output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(rowCount=rows)}


def job_facets(description: str | None, owners: list[str]) -> dict:
    facets: dict[str, Any] = {
        "jobType": job_type_job.JobTypeJobFacet(processingType="BATCH", integration="DAGSTER", jobType="ASSET")
    }
    if description:
        facets["documentation"] = documentation_job.DocumentationJobFacet(description=description)
    if owners:
        facets["ownership"] = ownership_job.OwnershipJobFacet(
            owners=[ownership_job.Owner(name=o, type=_owner_type(o)) for o in owners]
        )
    return facets


def error(message: str, stack: str | None) -> dict:
    return {
        "errorMessage": error_message_run.ErrorMessageRunFacet(
            message=message, programmingLanguage="python", stackTrace=stack
        )
    }
