"""Freshness: each dataset's update cycle is a freshness policy on its asset and a freshness check; a dataset
not updated within its cycle's window is a failed check saying how late it is."""

from __future__ import annotations

import dagster as dg
import pytest

from assets import freshness
from lakehouse import cycles
from lakehouse.registry import registry

DAY = 86400.0


def test_every_raw_and_published_dataset_has_the_freshness_of_its_update_cycle():
    from assets.collect import raw_key
    from assets.publish import cycles as publish_cycles
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    expected = {raw_key(ds): ds.update_cycle for ds in registry().datasets} | dict(publish_cycles())
    assert len(expected) >= 20
    checked = {k.asset_key for k in graph.asset_check_keys if k.name == freshness.CHECK}
    assert checked == set(expected)
    for key, cycle in expected.items():
        policy = graph.get(key).freshness_policy
        assert policy is not None and policy.fail_window.to_timedelta() == cycles.windows(cycle)[1], key
    assert defs.resolve_schedule_def("freshness_hourly").job.name == "freshness_checks"


def test_an_unknown_update_cycle_is_a_clear_error():
    with pytest.raises(ValueError, match="update_cycle '每两月' is not one of"):
        freshness.policy("每两月", "dbt model x: ")
    with pytest.raises(ValueError, match="每两月"):
        freshness.checks([(dg.AssetKey("x"), "每两月")])


@pytest.mark.parametrize(
    ("cycle", "days", "passed", "severity", "late_days"),
    [
        ("每月", 10, True, None, None),
        ("每月", 40, False, dg.AssetCheckSeverity.WARN, 5),  # past 35 days: late
        ("每月", 50, False, dg.AssetCheckSeverity.ERROR, 4),  # past 46 days: overdue
        ("每年", 420, False, dg.AssetCheckSeverity.ERROR, 9),
        ("实时", 0.5, False, dg.AssetCheckSeverity.ERROR, 0.25),  # 12 h, fails after 6 h
    ],
)
def test_a_dataset_past_its_window_fails_its_check_saying_how_late(cycle, days, passed, severity, late_days):
    key = dg.AssetKey(["raw", "raw_x"])
    result = freshness.evaluate(key, cycle, 1_000_000.0, 1_000_000.0 + days * DAY)
    assert result.passed is passed
    if not passed:
        assert result.severity == severity
        assert result.metadata["overdue_seconds"].value == pytest.approx(late_days * DAY, abs=1)
        assert "by " in result.description and cycle in result.description


def test_the_check_runs_against_the_instance_and_flags_a_dataset_never_collected():
    key, other = dg.AssetKey(["raw", "raw_tax_monthly"]), dg.AssetKey(["raw", "raw_stats_annual"])
    check = freshness.checks([(key, "每月"), (other, "每年")])
    defs = dg.Definitions(
        assets=[dg.AssetSpec(key), dg.AssetSpec(other)], asset_checks=[check], schedules=[freshness.schedule(check)]
    )
    with dg.DagsterInstance.ephemeral() as instance:
        instance.report_runless_asset_event(dg.AssetMaterialization(key))
        result = defs.resolve_job_def("freshness_checks").execute_in_process(instance=instance)
    outcome = {e.asset_key: e for e in result.get_asset_check_evaluations()}
    assert outcome[key].passed and "last_updated" in outcome[key].metadata
    assert not outcome[other].passed and outcome[other].severity == dg.AssetCheckSeverity.ERROR
