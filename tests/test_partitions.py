"""Time partitions: which datasets are partitioned by which period, and how a selection spanning several
partitionings is split into runs Dagster accepts."""

import dagster as dg
import pytest

from lakehouse.registry import registry
from orchestration import keys, partitions
from orchestration.definitions import defs
from orchestration.jobs import SELECTIONS
from orchestration.runs import stages
from quality.conform import partitioned
from quality.rulebook import rules_for


def test_a_periodic_dataset_is_partitioned_by_its_period_from_the_first_one_expected():
    reg = registry()
    graph = defs.resolve_asset_graph()
    seen = {}
    for ds in reg.datasets:
        pdef = partitions.for_dataset(ds)
        raw, std = (graph.get(keys.key(z, ds.id)).partitions_def for z in ("raw", "std"))
        assert raw == std == pdef
        if ds.period is None or not partitioned(ds, rules_for(ds.id)):
            assert pdef is None, ds.id  # no period, or std does not rebuild it by period
            continue
        periods = partitions.keys(pdef)
        # partition keys are the period texts std uses: '2023', '2023-05', '2023-12-01'
        assert len(periods[0]) == {"year": 4, "month": 7, "day": 10}[ds.period.granularity]
        assert periods[0] <= ds.period.since and ds.period.since in periods
        seen.setdefault(ds.period.granularity, set()).add(id(pdef))
    # one definition per granularity, shared: datasets of a granularity build in one run
    assert set(seen) == {"day", "month", "year"} and all(len(v) == 1 for v in seen.values())


def test_file_names_and_period_ranges():
    ds = registry().dataset("tax_monthly")
    month = partitions.for_dataset(ds)
    named = partitions.named_range(month, ds, ["tax/monthly/税务_月度申报_2023-11_补充.csv", "tax/说明.csv"])
    assert named == dg.PartitionKeyRange("2023-11", "2023-11")  # the period the names state
    last = partitions.keys(month)[-1]
    assert partitions.named_range(month, ds, ["tax/说明.csv"]) == dg.PartitionKeyRange(last, last)  # none: now
    inside, outside = partitions.valid(month, ["2023-03", "2022-12", "2099-01", "2023-3", "2023-03"])
    assert inside == ["2023-03"] and outside == ["2022-12", "2023-3", "2099-01"]
    assert partitions.ranges(month, ["2023-05", "2023-01", "2023-02", "2023-09", "2023-04", "1999-01"]) == [
        dg.PartitionKeyRange("2023-01", "2023-02"),
        dg.PartitionKeyRange("2023-04", "2023-05"),
        dg.PartitionKeyRange("2023-09", "2023-09"),
    ]
    assert partitions.ranges(month, []) == []


@pytest.mark.parametrize("name", sorted(SELECTIONS))
def test_a_selection_is_split_into_runs_dagster_accepts_in_dependency_order(name):
    graph = defs.resolve_asset_graph()
    selected = SELECTIONS[name].resolve(graph)
    plan = stages(graph, selected)
    assert sorted(k for s in plan for k in s.keys) == sorted(selected)  # each asset once
    position = {k: i for i, s in enumerate(plan) for k in s.keys}
    for i, stage in enumerate(plan):
        assert {graph.get(k).partitions_def for k in stage.keys} == {stage.pdef}  # one partitioning per run
        for key in stage.keys:
            for parent in graph.get(key).parent_keys & selected:
                assert position[parent] <= i, (key, parent)  # inputs first
                # never in the run of a partitioned input (a collection reports periods, not an output)
                if graph.get(parent).partitions_def is not None:
                    assert position[parent] < i, (key, parent)
    # the dbt project builds in one invocation
    dbt = {position[k] for k in selected if k.path[0] in ("staging", "base", "theme", "topic", "parameters")}
    assert len(dbt) <= 1


def test_of_the_runs_that_could_go_next_the_one_on_the_way_to_publication_goes_first():
    """A delivery's tick requests std and the privacy scan of the same raw tables: std (what the models and
    publication wait for) runs first; the reports after it."""
    graph = defs.resolve_asset_graph()
    tax, power = dg.AssetKey(["std", "tax_monthly"]), dg.AssetKey(["std", "power_monthly"])
    scan, status = dg.AssetKey(["catalogue", "privacy_scan"]), dg.AssetKey(["ops", "collection_status"])
    plan = stages(graph, [scan, status, tax, power])
    assert set(plan[0].keys) == {tax, power} and plan[0].pdef is not None
    assert set(plan[1].keys) == {scan, status}
    # and inside a run, the steps off the way to publication yield to the others
    for key in (scan, status, dg.AssetKey(["quality", "problem_lists"]), dg.AssetKey(["quality", "reconciliation"])):
        assert graph.get(key).assets_def.op.tags.get("dagster/priority") == "-1", key


def test_std_of_a_periodic_dataset_follows_its_periods_in_any_month_not_only_the_latest():
    graph = defs.resolve_asset_graph()
    monthly = graph.get(dg.AssetKey(["std", "tax_monthly"])).automation_condition
    whole = graph.get(dg.AssetKey(["std", "amr_registration"])).automation_condition
    label = str(monthly.get_snapshot())
    assert "latest time window" not in label.lower()
    assert "latest time window" in str(whole.get_snapshot()).lower()
