"""归集 monitoring as assets: ``ops/collection_status`` (every expected delivery of every periodic dataset:
on time, late, rejected, missing) and ``ops/collection_rate`` (each department's monthly 归集率), rebuilt
after every collection from the collection log (``quality.collection``).

The latest 归集率 of each department is numeric metadata, so the UI plots its history on the asset; the
check ``deliveries_received`` fails, naming them, while an expected delivery is missing or was refused.
``ops/annual_completeness`` says, for each annual topic (the 亩均 evaluation), whether every delivery its
inputs owe for the latest year has arrived; its check gates that topic's automation
(``orchestration.automation``).
"""

import datetime as dt

import dagster as dg
import polars as pl

from assets.collect import raw_key
from exchange.publication import content_hash
from lakehouse.registry import Registry, registry
from lakehouse.tables import COLLECT_LOG, COLLECTION_STATUS
from orchestration import keys
from orchestration.automation import COMPLETENESS, follows_inputs
from orchestration.dbt.project import manifest, project, upstream_sources
from orchestration.resources import BACKGROUND, LakeResource
from quality.collection import collection_status, rates, versioned_deliveries, year_completeness

STATUS = keys.key(*COLLECTION_STATUS.path)
GATED = {"mujun": ("topic_mujun_evaluation", "亩均评价")}  # check prefix → (topic model, name)
RATE = dg.AssetKey(["ops", "collection_rate"])


def _table(frame: pl.DataFrame, columns: list[str], limit: int = 40) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in frame.head(limit).iter_rows(named=True):
        lines.append(
            "| "
            + " | ".join("" if r[c] is None else f"{r[c]:.1%}" if c == "rate" else str(r[c]) for c in columns)
            + " |"
        )
    if frame.height > limit:
        lines.append(f"| … {frame.height - limit} more |" + " |" * (len(columns) - 1))
    return "\n".join(lines)


# A delivery that never comes updates nothing: the status is also re-evaluated every hour, so a deadline
# passing turns into `missing` (and the check, and its alert) without waiting for another delivery.
RECHECK = dg.AutomationCondition.cron_tick_passed("15 * * * *") & ~dg.AutomationCondition.in_progress()


def _ops_asset(reg: Registry, table: str, automation: dg.AutomationCondition | None = None, **metadata: str) -> dict:
    """What the monitoring assets share: the ops group and zone, the steward, and following their inputs
    (or ``automation`` besides)."""
    return {
        "group_name": "ops",
        "kinds": {"delta", "polars"},
        "owners": [reg.defaults.steward],
        "tags": {"zone": "ops"},
        "automation_condition": follows_inputs() | automation if automation is not None else follows_inputs(),
        "metadata": {"dagster/table_name": f"ops.{table}", **metadata},
    }


def build(reg: Registry | None = None) -> list[dg.AssetsDefinition]:
    reg = reg or registry()
    periodic = [ds for ds in reg.datasets if ds.period is not None]

    @dg.asset(
        key=STATUS,
        op_tags=BACKGROUND,
        deps=[raw_key(ds) for ds in periodic],
        description="**归集监测** (Collection status) — for every periodic dataset and period: the delivery "
        "its 归集 agreement expects (due date from `lakehouse/sources.yaml`: period, due_days, since, until), and "
        "whether it came on time, late, only as refused files, or not at all; rows landed against the "
        "dataset's typical period.",
        **_ops_asset(reg, "collection_status", automation=RECHECK),
        check_specs=[
            dg.AssetCheckSpec(
                "deliveries_received",
                asset=STATUS,
                description="every expected delivery whose deadline has passed has arrived in a usable file "
                "(WARN: a missing or refused delivery; late ones are reported, not failed)",
            )
        ],
    )
    def collection_status_asset(context: dg.AssetExecutionContext, lake: LakeResource):
        the_lake = lake.lake()
        now = dt.datetime.now(dt.UTC)
        result = collection_status(
            reg, the_lake.read(COLLECT_LOG.zone, COLLECT_LOG.name), now, versioned_deliveries(reg, the_lake)
        )
        status = result.status
        version = the_lake.overwrite(*COLLECTION_STATUS.path, status.to_arrow(), metadata={"as_of": now.isoformat()})
        counts = dict(status.filter(pl.col("expected")).group_by("state").len().iter_rows())
        overdue = result.overdue()
        columns = ["department_name", "dataset", "period", "due_on", "state", "reasons"]
        yield dg.MaterializeResult(
            # the content, not the write: an hourly re-check that changed no state starts nothing downstream
            data_version=dg.DataVersion(content_hash(status.drop("as_of"), ["dataset", "period"])),
            metadata={
                "dagster/row_count": status.height,
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri(*COLLECTION_STATUS.path)),
                **{f"deliveries/{s}": int(counts.get(s, 0)) for s in ("on_time", "late", "rejected", "missing")},
                "not_received": dg.MetadataValue.md(_table(overdue, columns) if overdue.height else "none"),
            },
        )
        yield dg.AssetCheckResult(
            check_name="deliveries_received",
            passed=overdue.is_empty(),
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "not_received": overdue.height,
                "late": int(counts.get("late", 0)),
                "list": dg.MetadataValue.md(_table(overdue, columns) if overdue.height else "none"),
            },
        )

    @dg.asset(
        key=RATE,
        op_tags=BACKGROUND,
        deps=[STATUS],
        description="**归集率** (Collection rate) — per department and month: deliveries due that month, received "
        "on time, late, refused, missing; the rate is on time / due. The rate to date of each department is "
        "plotted on this asset.",
        **_ops_asset(reg, "collection_rate"),
    )
    def collection_rate_asset(context: dg.AssetExecutionContext, lake: LakeResource):
        the_lake = lake.lake()
        status = the_lake.read(*COLLECTION_STATUS.path)
        if status is None:
            raise dg.Failure("ops/collection_status has never been built; nothing to rate")
        table = rates(reg, status)
        version = the_lake.overwrite("ops", "collection_rate", table.to_arrow())
        to_date = (
            table.group_by("department", "department_name")
            .agg(pl.col("expected").sum(), pl.col("on_time").sum(), pl.col("month").max().alias("latest_month"))
            .with_columns((pl.col("on_time") / pl.col("expected")).alias("rate"))
            .sort("department")
        )
        return dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "delta_version": version,
                "delta_uri": dg.MetadataValue.path(the_lake.uri("ops", "collection_rate")),
                # one number per department: plotted by the UI across materialisations
                **{
                    f"collection_rate/{r['department']}": dg.FloatMetadataValue(round(r["rate"], 4))
                    for r in to_date.iter_rows(named=True)
                },
                "by_department": dg.MetadataValue.md(
                    _table(to_date, ["department_name", "expected", "on_time", "rate", "latest_month"])
                ),
                "by_month": dg.MetadataValue.md(
                    _table(
                        table,
                        ["department_name", "month", "expected", "on_time", "late", "rejected", "missing", "rate"],
                        60,
                    )
                ),
            },
        )

    the_manifest = manifest(project())
    inputs = {
        name: sorted(upstream_sources(the_manifest, model) & {ds.id for ds in periodic})
        for name, (model, _) in GATED.items()
    }

    @dg.asset(
        key=COMPLETENESS,
        op_tags=BACKGROUND,
        deps=[STATUS],
        description="**年度归集完整性** (Annual completeness) — for each annual topic (the 亩均 evaluation): "
        "the latest year its periodic inputs are expected to deliver, and per input dataset the deliveries "
        "expected that year and those not received. The topic's models wait (automation) until its check "
        "passes.",
        **_ops_asset(reg, "annual_completeness", inputs=str(inputs)),
        check_specs=[
            dg.AssetCheckSpec(
                f"{name}_inputs_complete",
                asset=COMPLETENESS,
                description=f"{zh}: every delivery its inputs ({', '.join(inputs[name])}) owe for the year has "
                "arrived; until then the automation does not evaluate the year",
            )
            for name, (_, zh) in GATED.items()
        ],
    )
    def annual_completeness_asset(context: dg.AssetExecutionContext, lake: LakeResource):
        the_lake = lake.lake()
        status = the_lake.read(*COLLECTION_STATUS.path)
        if status is None:
            raise dg.Failure("ops/collection_status has never been built")
        frames = []
        for name, (model, zh) in GATED.items():
            table = year_completeness(status, inputs[name], reg).select(pl.lit(model).alias("topic"), pl.all())
            frames.append(table)
            gaps = table.filter(pl.col("not_received").is_not_null())
            yield dg.AssetCheckResult(
                check_name=f"{name}_inputs_complete",
                passed=table.height > 0 and gaps.is_empty(),
                metadata={
                    "topic": zh,
                    "year": table["year"].max() if table.height else "none",
                    "not_received": dg.MetadataValue.md(
                        _table(gaps, ["dataset", "expected", "received", "not_received"]) if gaps.height else "none"
                    ),
                },
            )
        table = pl.concat(frames)
        version = the_lake.overwrite("ops", "annual_completeness", table.to_arrow())
        yield dg.MaterializeResult(
            metadata={
                "dagster/row_count": table.height,
                "delta_version": version,
                "completeness": dg.MetadataValue.md(_table(table, list(table.columns))),
            }
        )

    return [collection_status_asset, collection_rate_asset, annual_completeness_asset]
