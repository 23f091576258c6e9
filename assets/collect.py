"""Collection assets (采集/归集): one per registered source dataset, declared from the registry."""

import datetime as dt
from pathlib import Path

import dagster as dg

from assets import freshness
from assets.catalogue_entries import column_entries, dataset_grade
from assets.ingest.api import ApiCollector
from assets.ingest.binlog import MariaDBChangeCollector
from assets.ingest.changelog import PostgresChangeCollector
from assets.ingest.collector import Collector, CollectResult
from assets.ingest.database import DatabaseCollector
from assets.ingest.stream import StreamCollector
from assets.own_tables import own_table_reports
from lakehouse.registry import Dataset, Registry, registry
from lakehouse.tables import COLLECT_LOG, DEAD_LETTERS
from orchestration import keys, partitions
from orchestration.metadata import console_link, transformations_table
from orchestration.resources import LakeResource, LandingResource

DATA_VERSION = "dagster/data_version"  # the tag a materialisation reported at run time carries its data version in


def database_collector(ds: Dataset) -> type[DatabaseCollector]:
    """Who reads a database source: by watermark, or its change log (PostgreSQL's or MariaDB's)."""
    assert ds.database is not None
    if ds.database.capture == "watermark":
        return DatabaseCollector
    return PostgresChangeCollector if ds.kind == "postgres" else MariaDBChangeCollector


def landing_key(ds: Dataset) -> dg.AssetKey:
    return keys.key("landing", ds.id)


def raw_key(ds: Dataset) -> dg.AssetKey:
    return keys.key("raw", ds.id)


def column_schema(reg: Registry, ds: Dataset, zone: str) -> dg.TableSchema:
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=c["column"],
                type=c["physical_type"],
                description=" · ".join(
                    x
                    for x in (
                        c["description"],
                        c["source_header"] and f"原表头「{c['source_header']}」",
                        f"逻辑类型 {c['logical_type']}",
                    )
                    if x
                ),
                tags={
                    k: str(v)
                    for k, v in {
                        "classification": c["classification"],
                        # what the column holds in this zone (std: after its privacy transform)
                        "grade": c["effective_grade"] or c["grade"],
                        "grade_declared": c["grade"],
                        "grade_national": c["grade_national"],
                        "miit_level": c["miit_level"],
                        "role": c["role"],
                        "privacy_transform": c["privacy_transform"],
                    }.items()
                    if v is not None
                },
            )
            for c in column_entries(reg, ds, zone)
        ]
    )


def asset_tags(reg: Registry, ds: Dataset, zone: str) -> dict[str, str]:
    """The tags the UI filters by: the grade is the dataset's computed one (its highest column, 就高从严; in
    std after the privacy transforms), as in the catalogue."""
    return {
        "zone": zone,
        "department": ds.department,
        "grade": dataset_grade(reg, ds, zone)["grade"],
        "format": ds.format,
    }


def catalogue_line(reg: Registry, ds: Dataset) -> str:
    """What a steward looks for first in a description: 数源单位, 更新周期 and 共享/开放属性, in Chinese."""
    dept = reg.departments[ds.department]
    return f"数源单位 {dept.name_zh} · 更新周期 {ds.update_cycle} · {ds.share_type} · {ds.open_type}."


def _rejections_markdown(result: CollectResult) -> str:
    lines = ["| file | reason | detail | where | rows |", "|---|---|---|---|---|"]
    for o in result.rejected:
        r = o.rejection
        lines.append(f"| {o.file} | {r.reason_zh} / {r.reason_en} | {r.detail} | {r.position} | {o.rows_read} |")
    return "\n".join(lines)


def _landing_spec(reg: Registry, ds: Dataset) -> dg.AssetSpec:
    dept = reg.departments[ds.department]
    if ds.stream is not None:
        return dg.AssetSpec(
            key=landing_key(ds),
            description=f"源数据流：设备经MQTT上报、NATS JetStream 流 `{ds.stream.stream}`（主题 "
            f"{', '.join(ds.stream.subjects)}）保存的「{ds.name_zh}」，按微批次采集，落湖后确认。"
            f"Devices publish MQTT; the JetStream stream `{ds.stream.stream}` keeps the readings until collected.",
            group_name="landing",
            kinds={"nats", "mqtt"},
            owners=[reg.owner_of(ds)],
            tags={"zone": "landing", "department": ds.department},
            metadata={
                "stream": ds.stream.stream,
                "subjects": ", ".join(ds.stream.subjects),
                "connection": ds.stream.connection,
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(ds.db_column(c.name), "string", description=c.description) for c in ds.columns
                    ]
                ),
            },
        )
    if ds.api is not None:
        return dg.AssetSpec(
            key=landing_key(ds),
            description=f"源接口：{dept.name_zh}数据平台接口 `{ds.api.path}`（连接 {ds.api.connection}），按游标分页增量采集。"
            f"{dept.name_en}'s interface `{ds.api.path}`, read page by page from a resumable cursor.",
            group_name="landing",
            kinds={"api"},
            owners=[reg.owner_of(ds)],
            tags={"zone": "landing", "department": ds.department},
            metadata={
                "endpoint": ds.api.path,
                "connection": ds.api.connection,
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(ds.db_column(c.name), "string", description=c.description) for c in ds.columns
                    ]
                ),
            },
        )
    if ds.database is not None:
        db = ds.database
        return dg.AssetSpec(
            key=landing_key(ds),
            description=f"源库：{dept.name_zh}业务库中的「{ds.name_zh}」表 `{db.table}`（{ds.kind}，连接 {db.connection}），"
            + (
                f"按更新时间 `{db.watermark.column}` 与主键 `{', '.join(db.watermark.key)}` 增量采集。"
                if db.watermark is not None
                else "按变更日志（逻辑复制）采集。"
            )
            + f"{dept.name_en}'s table `{db.table}` ({ds.kind}), read by {db.capture}.",
            group_name="landing",
            kinds={ds.kind},
            owners=[reg.owner_of(ds)],
            tags={"zone": "landing", "department": ds.department},
            metadata={
                "source_table": db.table,
                "connection": db.connection,
                "capture": db.capture
                + (f": {db.watermark.column} + {', '.join(db.watermark.key)}" if db.watermark is not None else ""),
                "dagster/column_schema": dg.TableSchema(
                    columns=[
                        dg.TableColumn(ds.db_column(c.name), "string", description=c.description) for c in ds.columns
                    ]
                ),
            },
        )
    return dg.AssetSpec(
        key=landing_key(ds),
        description=f"落地区：{dept.name_zh}交付的「{ds.name_zh}」文件（{ds.format}，{ds.pattern}）。"
        f"Landing folder `{ds.landing}` where {dept.name_en} drops {ds.name_en} files.",
        group_name="landing",
        kinds={"file", ds.format},
        owners=[reg.owner_of(ds)],
        tags={"zone": "landing", "department": ds.department},
        metadata={
            "landing_folder": ds.landing,
            "file_pattern": ds.pattern,
            "dagster/column_schema": dg.TableSchema(
                columns=[dg.TableColumn(c.source, "string", description=c.description) for c in ds.columns]
            ),
        },
    )


def _reported_version(context: dg.AssetExecutionContext, key: dg.AssetKey) -> int | None:
    """The raw Delta version the last materialisation of a partitioned raw reported (None: never)."""
    last = context.instance.get_latest_materialization_event(key)
    tag = last.asset_materialization.tags.get(DATA_VERSION) if last and last.asset_materialization else None
    return int(tag) if tag and tag.isdigit() else None


def column_lineage(ds: Dataset) -> dg.TableColumnLineage:
    """Each raw column is its delivered column, unchanged (text as received).

    Provenance columns have no upstream column: they describe the file, so they are left out and
    lineage reports their origin as unknown rather than inventing one.
    """
    return dg.TableColumnLineage(
        deps_by_column={
            c.name: [dg.TableColumnDep(asset_key=landing_key(ds), column_name=c.source)] for c in ds.columns
        }
    )


def _collect_asset(reg: Registry, ds: Dataset) -> dg.AssetsDefinition:
    dept = reg.departments[ds.department]
    key = raw_key(ds)
    pdef = partitions.for_dataset(ds, reg)
    description = (
        f"**{ds.name_zh}** ({ds.name_en}) — 原始库 raw zone.\n\n{ds.description}\n\n"
        f"{catalogue_line(reg, ds)}\n\n"
        "Every new file in the landing folder lands whole, as received (all values text) with provenance "
        "columns, or is moved to the rejected area with a reason; re-collecting a file adds nothing."
        + (
            f"\n\nPartitioned by {ds.period.granularity} (分区): a collection materialises the periods its rows fall "
            "in — a correction of an earlier period in a later file included — and only those."
            if pdef is not None
            else ""
        )
    )

    @dg.asset(
        key=key,
        deps=[landing_key(ds)],
        description=description,
        group_name="raw",
        kinds={"delta", "pyarrow"},
        freshness_policy=freshness.policy(ds.update_cycle),
        owners=[reg.owner_of(ds), reg.defaults.steward],
        tags=asset_tags(reg, ds, "raw"),
        pool=f"collect_{ds.id}",
        partitions_def=pdef,
        # a collection takes every file that arrived, whatever the period: one run, whatever range it names
        backfill_policy=dg.BackfillPolicy.single_run() if pdef is not None else None,
        # partitioned: the partitions the delivered rows fall in are reported as they are known, not the range
        output_required=pdef is None,
        # transient faults (a storage hiccup, a file system briefly busy) are retried with backoff; a bad
        # file is not a fault: it is refused inside the step and the rest lands
        retry_policy=dg.RetryPolicy(
            max_retries=3, delay=5, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS
        ),
        metadata={
            "dagster/column_schema": column_schema(reg, ds, "raw"),
            "dagster/table_name": f"raw.{ds.id}",
            "steward_console": console_link("raw", ds.id),
            "name_zh": ds.name_zh,
            "source_department": dept.name_zh,
        },
        check_specs=[
            dg.AssetCheckSpec(
                "rows_reconcile",
                asset=key,
                blocking=True,
                description="the raw table grew by exactly the rows the readers accepted "
                "(rows read = rows landed + rows in rejected files)",
            ),
            dg.AssetCheckSpec(
                "files_accepted",
                asset=key,
                description="no delivered file of this batch was rejected (ERROR, not blocking: the rest still "
                "lands and flows on; the refused file waits in the rejected area with its reason)",
            ),
        ],
    )
    def collect(context: dg.AssetExecutionContext, lake: LakeResource, landing: LandingResource):
        the_lake = lake.lake()
        rows_before = the_lake.row_count("raw", ds.id) or 0
        now = dt.datetime.now(dt.UTC)
        batch_id = f"{now:%Y%m%dT%H%M%SZ}-{context.run.run_id[:8]}"
        if ds.database is not None:  # a department's database: by watermark or its change log
            result = database_collector(ds)(ds, the_lake, batch_id, context.run.run_id, now).run()
        elif ds.stream is not None:  # device telemetry: micro-batches of a stream, acknowledged after landing
            stream_collector = StreamCollector(ds, the_lake, batch_id, context.run.run_id, now)
            result = stream_collector.run()
            if stream_collector.dead_letter_version is not None:
                yield from own_table_reports(
                    {DEAD_LETTERS.label: stream_collector.dead_letter_version},
                    {DEAD_LETTERS.label: stream_collector.dead_letters},
                    dataset=ds.id,
                )
            if stream_collector.dead_letters or stream_collector.duplicates:
                context.log.warning(
                    f"{ds.id}: {stream_collector.dead_letters} message(s) to dead letters, "
                    f"{stream_collector.duplicates} redelivered reading(s) already in raw dropped"
                )
        elif ds.api is not None:  # a data platform's interface: pages instead of files
            result = ApiCollector(ds, the_lake, batch_id, context.run.run_id, now).run()
        else:
            if (mirror := landing.mirror()) is not None:  # uploads to a bucket: its new objects first
                synced = mirror.sync(ds)
                context.log.info(
                    f"{ds.id}: {len(synced.downloaded)} object(s) downloaded from {mirror.uri}/{ds.landing}, "
                    f"{synced.unchanged} unchanged"
                )
                for name, why in synced.refused.items():
                    context.log.warning(f"{ds.id}: object {name!r} of {mirror.uri} not downloaded: {why}")
            result = Collector(
                ds,
                the_lake,
                Path(landing.landing_root),
                Path(landing.rejected_root),
                batch_id,
                context.run.run_id,
                now,
                settle_seconds=landing.settle_seconds,
            ).run()
        for o in result.rejected:
            context.log.warning("REJECTED " + o.rejection.message(o.file) + f" → {o.rejected_to}")
        if result.rejected:  # the run list shows it: a run that refused a delivery is not a plain success
            context.instance.add_run_tags(
                context.run.run_id, {f"shucang/rejected/{ds.id}": str(len(result.rejected)), "shucang/rejected": "yes"}
            )
        for o in result.landed:
            how = f" ({o.encoding})" if o.encoding else ""  # a file's encoding; a table's rows have none
            context.log.info(f"landed {o.file}: {o.rows_landed} rows{how}, Delta version {o.delta_version}")
        rows_after = the_lake.row_count("raw", ds.id)
        grew = rows_after - rows_before
        raw_table = the_lake.table("raw", ds.id)
        metadata = {
            "dagster/row_count": rows_after,
            "dagster/column_lineage": column_lineage(ds),
            "shucang/column_transformations": transformations_table(
                {
                    c.name: {"type": "DIRECT", "subtype": "IDENTITY", "description": "copied as delivered text"}
                    for c in ds.columns
                }
            ),
            "rows_written": result.rows_landed,
            "delta_version": result.table_version,
            "delta_uri": dg.MetadataValue.path(the_lake.uri("raw", ds.id)),
            "batch_id": batch_id,
            "files_landed": len(result.landed),
            "files_rejected": len(result.rejected),
            "files_skipped": len(result.skipped),
            "rows_read": result.rows_read,
            "rows_landed": result.rows_landed,
            "rows_in_rejected_files": result.rows_in_rejected_files,
            "rejected_files": dg.MetadataValue.md(_rejections_markdown(result) if result.rejected else "none"),
        }
        # the Delta version: a run that landed nothing leaves it, and nothing downstream follows
        version = str(raw_table.version()) if raw_table is not None else "none"
        if pdef is None:
            yield dg.MaterializeResult(data_version=dg.DataVersion(version), metadata=metadata)
        elif raw_table is not None and (since := _reported_version(context, key)) != raw_table.version():
            # rows landed since the last version reported, this run's or an earlier attempt's that died
            # between its Delta commit and its report (a retry lands nothing new but still reports them)
            touched, unplaced = partitions.landed(the_lake, ds, pdef, since)
            if unplaced:
                context.log.warning(
                    f"raw/{ds.id}: {unplaced} landed row(s) fall in no partition — neither their "
                    f"{ds.period.column} nor their file name states a period from {partitions.keys(pdef)[0]} to "
                    "now; std quarantines them with the next build of any period"
                )
            context.log.info(f"raw/{ds.id}: rows landed in {', '.join(f'{p} ({n})' for p, n in touched.items())}")
            for p, n in touched.items():
                yield dg.AssetMaterialization(
                    asset_key=key,
                    partition=p,
                    tags={DATA_VERSION: version},
                    metadata={**metadata, "rows_landed_in_period": n, "rows_unplaced": unplaced},
                )
        else:
            context.log.info(f"raw/{ds.id}: nothing landed; no period materialised")
        if result.log_version is not None:
            rows = len([o for o in result.outcomes if o.status != "skipped"])
            yield from own_table_reports(
                {COLLECT_LOG.label: result.log_version}, {COLLECT_LOG.label: rows}, dataset=ds.id
            )
        yield dg.AssetCheckResult(
            check_name="rows_reconcile",
            # the readers' count of rows against what the Delta log says was committed
            passed=grew == result.rows_landed,
            metadata={
                "rows_read": result.rows_read,
                "rows_landed": result.rows_landed,
                "rows_in_rejected_files": result.rows_in_rejected_files,
                "table_rows_added": grew,
            },
        )
        yield dg.AssetCheckResult(
            check_name="files_accepted",
            passed=not result.rejected,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={
                "rejected": dg.MetadataValue.md(_rejections_markdown(result) if result.rejected else "none"),
                "rejected_area": dg.MetadataValue.path(str(Path(landing.rejected_root) / ds.id / batch_id)),
            },
        )

    return collect


def build(reg: Registry | None = None) -> tuple[list[dg.AssetSpec], list[dg.AssetsDefinition]]:
    reg = reg or registry()
    return [_landing_spec(reg, ds) for ds in reg.datasets], [_collect_asset(reg, ds) for ds in reg.datasets]
