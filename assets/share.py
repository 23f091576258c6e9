"""交换区: the per-request shares of approved data requests, and the sharing statistics (共享情况分析).

``share/extracts`` has one partition per approved request (a dynamic partition the exchange sensor adds):
materialising it builds that request's share from the publish versions pinned at approval, through the
consumer's privacy policy and the privacy gate (a blocking check; a refused share writes nothing), and the
first time issues the consumer's bearer token. Afterwards the share follows its published datasets: when
one of them gets a new version (a delivery flowed through std and the models to publish), automation
rebuilds the share from the new versions within the approved scope and the ledger records the new pins;
a share whose datasets did not change, or whose request was revoked or expired, is left as it is. The steward decides requests with the ``decide_data_request``
job (the decision as run config), and revokes with ``revoke_share``; see sensors/exchange.py.
"""

import dagster as dg
import polars as pl

from assets.publish import publish_key
from exchange import statistics
from exchange.publication import write_if_changed
from exchange.shares import ShareRefused
from lakehouse.registry import registry
from orchestration.dbt.assets import GRADES
from orchestration.metadata import grades_table
from orchestration.resources import ExchangeResource, LakeResource

DATA_REQUESTS = dg.DynamicPartitionsDefinition(name="data_requests")
SHARE_KEY = dg.AssetKey(["share", "extracts"])


def _published() -> list[dg.AssetKey]:
    """What a share may be cut from: every public dbt model's publish table."""
    from assets.catalogue import public_models

    return [publish_key(m["name"]) for m in public_models() if m["name"] != statistics.NAME]


@dg.asset(
    key=SHARE_KEY,
    deps=_published(),
    partitions_def=DATA_REQUESTS,
    # follows a new data version of a published dataset (publish reports its Delta version)
    automation_condition=dg.AutomationCondition.any_deps_match(dg.AutomationCondition.data_version_changed())
    .since_last_handled()
    .with_label("a published dataset changed")
    & ~dg.AutomationCondition.any_deps_in_progress()
    & ~dg.AutomationCondition.in_progress()
    & dg.AutomationCondition.all_deps_blocking_checks_passed(),
    # a share that is current, or whose request is no longer active, is not materialised again
    output_required=False,
    group_name="share",
    kinds={"delta", "polars"},
    owners=[registry().defaults.steward],
    tags={"zone": "share"},
    check_specs=[
        dg.AssetCheckSpec(
            "privacy_gate",
            asset=SHARE_KEY,
            blocking=True,
            description="the consumer's policy applied; no identifiers; nothing above L2 untransformed; k-anonymity",
        )
    ],
)
def share_extracts(context: dg.AssetExecutionContext, lake: LakeResource, exchange: ExchangeResource):
    """交换区：经批准的数据申请的专属数据集 — the share of one approved data request (partition = request id):
    the columns and rows granted, the consumer's privacy policy applied, pinned to the publish versions of the
    approval, with a manifest of content hashes; served by the Delta Sharing service (`make share-server`)."""
    rid = context.partition_key
    ex = exchange.exchange(lake.lake())
    actor = f"dagster:{context.run.run_id}"
    try:
        if ex.state(rid).manifest is None:
            manifest, profile = ex.build(rid, actor=actor)
        else:
            manifest, what = ex.refresh(rid, actor=actor)
            context.log.info(what)
            if manifest is None:  # current, or no longer active: nothing written, the last share stands
                yield dg.AssetCheckResult(check_name="privacy_gate", passed=True, metadata={"unchanged": what})
                return
            profile = None
    except ShareRefused as refused:
        yield dg.AssetCheckResult(check_name="privacy_gate", passed=False, metadata={"problems": str(refused)})
        raise dg.Failure(f"share of request {rid} refused, nothing written: {refused}") from None
    tables = manifest["tables"]
    yield dg.AssetCheckResult(
        check_name="privacy_gate",
        passed=True,
        metadata={
            "transforms": dg.MetadataValue.md(
                "\n".join(
                    ["| dataset | column | transform |", "|---|---|---|"]
                    + [f"| {t['dataset']} | {c} | {how} |" for t in tables for c, how in t["transforms"].items()]
                )
            )
        },
    )
    lines = [
        "| dataset | publish version | rows | columns | transforms | content sha256 |",
        "|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {t['dataset']} | {t['source_version']} | {t['rows']} | {', '.join(t['columns'])} | "
        f"{', '.join(f'{c} ({how})' for c, how in t['transforms'].items()) or 'none'} | "
        f"`{(t.get('content_sha256') or '')[:16]}` |"
        for t in tables
    ]
    context.log.info(f"share {rid}: {len(tables)} table(s), {sum(t['rows'] for t in tables)} rows")
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": sum(t["rows"] for t in tables),
            "consumer": f"{manifest['consumer']['name']} ({manifest['consumer']['department']})",
            "tables": dg.MetadataValue.md("\n".join(lines)),
            "profile": profile or "issued before",
        }
    )


@dg.asset(
    key=publish_key(statistics.NAME),
    group_name="publish",
    kinds={"delta", "polars"},
    owners=[registry().defaults.steward],
    tags={"zone": "publish", "access": "public"},
    automation_condition=dg.AutomationCondition.cron_tick_passed("*/15 * * * *")
    & ~dg.AutomationCondition.in_progress(),
    metadata={
        "dagster/column_schema": dg.TableSchema(
            columns=[dg.TableColumn(c, t, description=d) for c, (d, t) in statistics.COLUMNS.items()]
        ),
        "dagster/table_name": f"publish.{statistics.NAME}",
    },
)
def sharing_statistics(context: dg.AssetExecutionContext, lake: LakeResource, exchange: ExchangeResource):
    """共享情况分析：按数据集、部门、申请方统计申请、审批、共享、读取 — sharing statistics from the exchange
    ledger (verified first: a broken ledger publishes nothing)."""
    the_lake = lake.lake()
    ex = exchange.exchange(the_lake)
    verdict = ex.ledger.verify()
    if not verdict.ok:
        raise dg.Failure(f"the exchange ledger {ex.ledger.path} does not verify: {verdict.problem}")
    frame = statistics.statistics(ex.ledger.entries())
    version, *_ = write_if_changed(the_lake, statistics.NAME, frame, statistics.KEY)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": frame.height,
            "delta_version": version,
            "ledger_entries": verdict.entries,
            GRADES: grades_table(statistics.grades()),
            "by_department": dg.MetadataValue.md(_by_department(frame)),
            "awaiting_decision": dg.MetadataValue.md(_pending(ex.ledger.states().values())),
        }
    )


def _pending(states) -> str:
    """The steward's queue: requests waiting for the decide_data_request job."""
    waiting = sorted((s for s in states if s.status == "pending"), key=lambda s: s.filed_at)
    if not waiting:
        return "no request awaits a decision"
    lines = ["| request | consumer | grade | datasets | purpose | filed |", "|---|---|---|---|---|---|"]
    for s in waiting:
        asks = "; ".join(f"{a['dataset']} ({', '.join(a['columns'])})" for a in s.request["datasets"])
        c = s.request["consumer"]
        lines.append(
            f"| {s.id} | {c['name']} ({c['department']}) | {s.level} | {asks} | {s.request['purpose']} | {s.filed_at[:19]} |"
        )
    return "\n".join(lines)


def _by_department(frame: pl.DataFrame) -> str:
    if frame.height == 0:
        return "no requests yet"
    agg = frame.group_by("department").agg(pl.col("requests", "approved", "rejected", "reads", "rows_read").sum())
    lines = ["| department | requests | approved | rejected | reads | rows read |", "|---|---|---|---|---|---|"]
    lines += [
        f"| {r['department']} | {r['requests']} | {r['approved']} | {r['rejected']} | {r['reads']} | {r['rows_read']} |"
        for r in agg.sort("department").iter_rows(named=True)
    ]
    return "\n".join(lines)
