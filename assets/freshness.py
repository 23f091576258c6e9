"""Freshness (时效): every raw and published dataset's update cycle as a Dagster freshness policy (shown on
the asset) and a ``freshness`` check, run hourly by a schedule: an overdue dataset is a failed check in the
UI that says how late it is (``overdue_by``), WARN past the cycle's warn window, ERROR past its fail window.
Windows: ``lakehouse/cycles.py``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from lakehouse.cycles import assess, windows, words
from orchestration.resources import BACKGROUND

CHECK = "freshness"


def policy(cycle: str, where: str = "") -> dg.FreshnessPolicy:
    warn, fail = windows(cycle, where)
    return dg.FreshnessPolicy.time_window(fail_window=fail, warn_window=warn)


def evaluate(key: dg.AssetKey, cycle: str, updated: float | None, now: float) -> dg.AssetCheckResult:
    """The freshness of one dataset last updated at ``updated`` (a Unix time; None: never), as of ``now``."""
    warn, fail = windows(cycle)
    meta = {
        "update_cycle": cycle,
        "warn_after": words(warn.total_seconds()),
        "fail_after": words(fail.total_seconds()),
    }
    state = assess(cycle, updated, now)
    if state.state == "never":
        return dg.AssetCheckResult(
            asset_key=key,
            check_name=CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            description=f"never updated; expected {cycle}",
            metadata=meta,
        )
    age = state.age_seconds
    meta |= {
        "last_updated": dg.MetadataValue.timestamp(updated),
        "age": words(age),
        "due_by": dg.MetadataValue.timestamp(updated + fail.total_seconds()),
    }
    if state.state == "fresh":
        return dg.AssetCheckResult(asset_key=key, check_name=CHECK, passed=True, metadata=meta)
    late = state.late_seconds
    severity = dg.AssetCheckSeverity.ERROR if state.state == "overdue" else dg.AssetCheckSeverity.WARN
    meta |= {"overdue_seconds": int(late), "overdue_by": words(late)}
    return dg.AssetCheckResult(
        asset_key=key,
        check_name=CHECK,
        passed=False,
        severity=severity,
        description=f"{'overdue' if state.state == 'overdue' else 'late'} by {words(late)}: "
        f"last updated {words(age)} ago, expected {cycle}",
        metadata=meta,
    )


def checks(cycles: Iterable[tuple[dg.AssetKey, str]]) -> dg.AssetChecksDefinition:
    """One ``freshness`` check per dataset (``(key, update cycle)``), evaluated from its last materialisation."""
    cycle_of = dict(cycles)
    for cycle in set(cycle_of.values()):
        windows(cycle)  # an unknown cycle fails when the definitions load

    @dg.multi_asset_check(
        specs=[
            dg.AssetCheckSpec(
                CHECK, asset=key, description=f"updated within its update cycle ({cycle}); how late if not"
            )
            for key, cycle in sorted(cycle_of.items(), key=lambda kv: kv[0].to_user_string())
        ],
        name="dataset_freshness",
        op_tags=BACKGROUND,
        can_subset=True,  # a job of some datasets runs their checks only
    )
    def _freshness(context):  # an AssetCheckExecutionContext (a string annotation would not be recognised)
        now = dt.datetime.now(dt.UTC).timestamp()
        for key in sorted(context.selected_asset_check_keys, key=lambda k: k.asset_key.to_user_string()):
            event = context.instance.get_latest_materialization_event(key.asset_key)
            yield evaluate(key.asset_key, cycle_of[key.asset_key], event.timestamp if event else None, now)

    return _freshness


def schedule(check: dg.AssetChecksDefinition) -> dg.ScheduleDefinition:
    job = dg.define_asset_job("freshness_checks", selection=dg.AssetSelection.checks(check))
    return dg.ScheduleDefinition(
        name="freshness_hourly",
        job=job,
        cron_schedule="7 * * * *",
        execution_timezone="Asia/Shanghai",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Every hour: is every dataset updated within its update cycle? (the freshness checks)",
    )
