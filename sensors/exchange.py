"""The exchange's automation and the steward's jobs (交换共享).

- ``data_request_inbox``: a request YAML dropped in ``<exchange>/inbox`` starts ``file_data_requests``,
  which files it on the ledger; the grade rules approve L1 and reject L4 at once, the rest wait.
- ``decide_data_request``: the steward's decision, launched from the UI's launchpad with the request id and
  the decision the steward signed with their own key (``exchange sign``); the run verifies the signature,
  and the ledger records that steward; approval pins the publish versions.
- ``share_builds``: an approved request without a share gets its partition of ``share/extracts`` built.
- ``revoke_share``: takes effect on the sharing service's next call; ``share_expiry`` records expiries
  (the service refuses an expired share from the moment its period ends, recorded or not);
  ``purge_ended_shares`` (nightly) deletes the files of ended shares.
"""

import hashlib
import json

import dagster as dg
from pydantic import Field

from assets.share import DATA_REQUESTS, SHARE_KEY
from orchestration.resources import ExchangeResource, LakeResource


class DecisionConfig(dg.Config):
    """数据申请审批 / A steward's decision, signed with the steward's own key
    (python -m orchestration.cli exchange sign REQUEST approved|rejected --reason … --as STEWARD): the run
    verifies the signature against the identity registry, and the ledger records the steward the key
    belongs to."""

    request_id: str = Field(description="申请编号 the request decided (the one the signed decision names)")
    signed_decision: str = Field(description="签名的决定 shd1.… as printed by `exchange sign`")


class RevocationConfig(dg.Config):
    """撤销共享 / A steward's signed revocation (exchange sign REQUEST revoke --reason … --as STEWARD)."""

    request_id: str = Field(description="申请编号 the request whose share is revoked")
    signed_revocation: str = Field(description="签名的撤销 shd1.… as printed by `exchange sign`")


def _not_recorded(what: str, exc: Exception) -> dg.Failure:
    from exchange.identity import IdentityError

    if isinstance(exc, IdentityError):
        return dg.Failure(description=f"{what} not recorded: the signed action does not verify: {exc}")
    return dg.Failure(description=f"{what} not recorded: {exc}")


@dg.op(description="File every request in the exchange inbox on the ledger, with what the grade rules say.")
def file_requests(context: dg.OpExecutionContext, lake: LakeResource, exchange: ExchangeResource) -> None:
    ex = exchange.exchange(lake.lake())
    filed = ex.file_inbox(actor=f"dagster:{context.run.run_id}")
    for name, outcome in filed:
        if isinstance(outcome, str):
            context.log.warning(f"{name}: refused — {outcome}")
        else:
            context.log.info(f"{name}: request {outcome.id} ({outcome.level}) {outcome.status}: {outcome.reasons[-1]}")


@dg.op(description="Record the steward's decision on a pending data request.")
def decide(context: dg.OpExecutionContext, config: DecisionConfig, lake: LakeResource, exchange: ExchangeResource):
    ex = exchange.exchange(lake.lake())
    try:  # the signature is verified, and must name the request in the form
        state = ex.decide(config.signed_decision, config.request_id)
    except (ValueError, KeyError, FileNotFoundError) as exc:  # IdentityError is a ValueError
        raise _not_recorded("decision", exc) from None
    context.log.info(f"request {state.id}: {state.status} by {state.decided_by}; pinned {state.pins}")


@dg.op(description="Revoke a data request's share: the sharing service refuses its token from the next call.")
def revoke(context: dg.OpExecutionContext, config: RevocationConfig, lake: LakeResource, exchange: ExchangeResource):
    ex = exchange.exchange(lake.lake())
    try:
        state = ex.revoke(config.signed_revocation, config.request_id)
    except (ValueError, KeyError) as exc:
        raise _not_recorded("revocation", exc) from None
    context.log.info(f"request {state.id}: {state.status} — {state.reasons[-1]}")


@dg.op(description="Delete the files and profiles of shares that were revoked or have expired (recorded).")
def purge(context: dg.OpExecutionContext, lake: LakeResource, exchange: ExchangeResource):
    purged = exchange.exchange(lake.lake()).purge(actor=f"dagster:{context.run.run_id}")
    context.log.info(f"purged {len(purged)} ended share(s): {', '.join(purged) or 'none'}")


@dg.job(tags={"shucang/area": "exchange"})
def purge_ended_shares():
    purge()


purge_daily = dg.ScheduleDefinition(
    name="purge_ended_shares_daily",
    job=purge_ended_shares,
    cron_schedule="30 2 * * *",
    execution_timezone="Asia/Shanghai",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Every night: the files of revoked and expired shares are deleted (the ledger keeps their hashes).",
)


@dg.job(tags={"shucang/area": "exchange"})
def file_data_requests():
    file_requests()


@dg.job(tags={"shucang/area": "exchange"})
def decide_data_request():
    decide()


@dg.job(tags={"shucang/area": "exchange"})
def revoke_share():
    revoke()


def _inbox_listing(folder) -> dict[str, list[int]]:
    inbox = folder / "inbox"
    if not inbox.is_dir():
        return {}
    return {p.name: [p.stat().st_size, p.stat().st_mtime_ns] for p in sorted(inbox.glob("*.y*ml"))}


@dg.sensor(
    job=file_data_requests,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Files data requests dropped in the exchange inbox.",
)
def data_request_inbox(context: dg.SensorEvaluationContext, lake: LakeResource, exchange: ExchangeResource):
    listing = _inbox_listing(exchange.exchange(lake.lake()).folder)
    if not listing:
        return dg.SkipReason("no request in the inbox")
    key = hashlib.sha256(json.dumps(listing, sort_keys=True).encode()).hexdigest()[:16]
    return dg.RunRequest(run_key=key, tags={"shucang/requests": ", ".join(listing)[:1000]})


@dg.sensor(
    asset_selection=[SHARE_KEY],
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Builds the share of every approved data request that has none yet.",
)
def share_builds(context: dg.SensorEvaluationContext, lake: LakeResource, exchange: ExchangeResource):
    states = exchange.exchange(lake.lake()).ledger.states()
    due = sorted(s.id for s in states.values() if s.status == "approved" and s.manifest is None)
    if not due:
        waiting = sorted(s.id for s in states.values() if s.status == "pending")
        return dg.SkipReason(
            "no approved request waiting for its share"
            + (f"; awaiting a steward's decision (decide_data_request): {', '.join(waiting)}" if waiting else "")
        )
    known = set(context.instance.get_dynamic_partitions(DATA_REQUESTS.name))
    return dg.SensorResult(
        run_requests=[
            dg.RunRequest(
                partition_key=rid, asset_selection=[SHARE_KEY], run_key=f"share-{rid}-{states[rid].decided_at}"
            )
            for rid in due
        ],
        dynamic_partitions_requests=[DATA_REQUESTS.build_add_request([r for r in due if r not in known])],
    )


@dg.sensor(
    minimum_interval_seconds=300,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records on the ledger the expiry of shares whose period has ended.",
)
def share_expiry(context: dg.SensorEvaluationContext, lake: LakeResource, exchange: ExchangeResource):
    expired = exchange.exchange(lake.lake()).expire()
    return dg.SkipReason(f"recorded expiry of {expired}" if expired else "nothing expired")


defs = dg.Definitions(
    jobs=[file_data_requests, decide_data_request, revoke_share, purge_ended_shares],
    sensors=[data_request_inbox, share_builds, share_expiry],
    schedules=[purge_daily],
)
