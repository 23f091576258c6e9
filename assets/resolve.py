"""Entity resolution (主体识别) as a step: records the std build quarantined for the enterprise's identity alone
are matched to known enterprises (``quality.resolution``); the matches are ``ops/entity_matches`` (the
steward's review queue) and the resolved rows ``ops/resolved_<dataset>``, which the staging models read beside
std. One step after the std builds, before the models; it follows std and the stewards' decisions.
"""

import dagster as dg
import polars as pl

from assets.clean import audit_key_use, std_key
from assets.own_tables import key
from lakehouse.registry import registry
from lakehouse.tables import ENTITY_DECISIONS, ENTITY_MATCHES, RESOLVED, RESOLVED_DATASETS, resolved_table
from orchestration.automation import follows_inputs
from orchestration.resources import LakeResource, PrivacyResource
from privacy import policy
from quality import resolution

TABLES = (ENTITY_MATCHES, *RESOLVED)
INPUTS = "resolution_inputs"  # metadata of ops/entity_matches: per dataset, the digest of what it was resolved from


def _rows(value) -> list[dict]:
    """The records of a table metadata value (none when absent)."""
    return [dict(r.data) for r in value.records] if isinstance(value, dg.TableMetadataValue) else []


def _spec(table, deps, steward: str) -> dg.AssetSpec:
    return dg.AssetSpec(
        key(table),
        deps=deps,
        description=f"**{table.name_zh}** ({table.name_en}) — {table.description}",
        group_name="std",
        kinds={"python", "delta"},
        owners=[steward],
        tags={"zone": table.zone, "own_table": "true"},
        metadata={"dagster/table_name": f"{table.zone}.{table.name}"},
        automation_condition=follows_inputs(),
    )


def build() -> dg.AssetsDefinition:
    reg = registry()
    deps = [*(std_key(d) for d in RESOLVED_DATASETS), key(ENTITY_DECISIONS)]

    @dg.multi_asset(
        name="entity_resolution",
        specs=[_spec(t, deps, reg.defaults.steward) for t in TABLES],
        description="主体识别：因信用代码缺失/错误（或登记名称缺失）而隔离的记录，与已知企业匹配后补入模型。",
    )
    def entity_resolution(context: dg.AssetExecutionContext, lake: LakeResource, privacy: PrivacyResource):
        the_lake = lake.lake()
        ring = privacy.key_ring()

        def transform_for(ds):
            return (lambda frame: policy.apply_std(frame, ds, ring)) if policy.std_transforms(ds) else None

        # the digests of the inputs each dataset was resolved from last time: a dataset whose inputs did not
        # move is not resolved again (a new month of tax filings leaves the other datasets' matches alone)
        last = context.instance.get_latest_materialization_event(key(ENTITY_MATCHES))
        recorded = last.asset_materialization.metadata if last and last.asset_materialization else {}
        previous = {r["dataset"]: r["digest"] for r in _rows(recorded.get(INPUTS))}
        salt = f"key {ring.key()[0]}"  # a new pseudonymisation key resolves everything again
        summary = resolution.resolve(the_lake, transform_for, previous=previous, salt=salt)
        matches = the_lake.read(ENTITY_MATCHES.zone, ENTITY_MATCHES.name)
        for dataset, s in summary.items():
            context.log.info(
                f"{dataset}: {s['statuses'] or 'nothing quarantined for identity'}; {s['resolved']} rows resolved"
                + (" (inputs unchanged since the last run: not resolved again)" if s["skipped"] else "")
            )
            table = resolved_table(dataset)
            ds = reg.dataset(dataset)
            if table.label in s["versions"] and policy.std_transforms(ds):
                audit_key_use(
                    context,
                    privacy,
                    ring,
                    ds,
                    f"{table.zone}.{table.name}",
                    s["versions"][table.label],
                    s["resolved"],
                    "pseudonymise resolved std rows",
                )
        for t in TABLES:
            version = the_lake.table(t.zone, t.name).version()
            rows = the_lake.row_count(t.zone, t.name) or 0
            meta: dict = {"delta_version": version, "dagster/row_count": rows}
            if t is ENTITY_MATCHES:
                meta[INPUTS] = dg.TableMetadataValue(
                    records=[
                        dg.TableRecord({"dataset": d, "digest": s["inputs"], "resolved_again": not s["skipped"]})
                        for d, s in summary.items()
                    ],
                    schema=dg.TableSchema(
                        columns=[
                            dg.TableColumn("dataset", "string", description="数据集 dataset"),
                            dg.TableColumn("digest", "string", description="输入指纹 digest of the inputs"),
                            dg.TableColumn("resolved_again", "bool", description="本次重新识别 resolved in this run"),
                        ]
                    ),
                )
            if t is ENTITY_MATCHES and matches is not None and matches.height:
                by = matches.group_by("status").len().sort("status")
                meta |= {f"records/{s}": n for s, n in by.iter_rows()}
                meta["records/resolved"] = int(matches["resolved"].sum())
                review = matches.filter(pl.col("status") == "review").height
                meta["review_queue"] = review
            yield dg.MaterializeResult(asset_key=key(t), data_version=dg.DataVersion(str(version)), metadata=meta)

    return entity_resolution
