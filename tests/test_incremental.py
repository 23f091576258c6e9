"""Incremental std equals a full rebuild: after any sequence of deliveries — new months, late files,
corrections of old months in later files, re-deliveries, unreadable periods — std rebuilt period by period
holds exactly what a rebuild from scratch of the same raw holds: the std rows, the quarantine, the merged
duplicates and the per-period statistics (content compared, not counts).

Hypothesis draws the sequences; each step collects what was dropped and standardises incrementally."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from assets.ingest.collector import Collector
from lakehouse.lake import Lake
from lakehouse.registry import registry
from lakehouse.tables import DUPLICATES, FINDINGS, STD_PARTITIONS
from orchestration.dbt.assets import changed_periods
from quality.rulebook import rules_for
from quality.standardise import plan, standardise

T0 = dt.datetime(2024, 2, 1, tzinfo=dt.UTC)
TAX = "tax_monthly"
MONTHS = [f"2023-{m:02d}" for m in range(1, 13)]


def _tax_rows(generated: Path, month: str) -> tuple[str, list[str]]:
    folder = generated / "landing" / "tax" / "monthly"
    resent = folder / f"税务_月度申报_{month}_重报.csv"  # the full copy of a month first delivered truncated
    text = (resent if resent.exists() else folder / f"税务_月度申报_{month}.csv").read_text(encoding="utf-8-sig")
    header, *rows = text.splitlines()
    return header, rows


# one delivery: (kind, month, detail)
delivery = st.one_of(
    st.tuples(st.just("month"), st.sampled_from(MONTHS), st.just(0)),  # a month's file (again: a re-delivery)
    st.tuples(st.just("correction"), st.sampled_from(MONTHS), st.integers(1, 25)),  # rows of an old month
    st.tuples(st.just("garbage"), st.sampled_from(MONTHS), st.integers(1, 3)),  # unreadable periods
)


def _drop(generated: Path, landing: Path, step: int, kind: str, month: str, n: int) -> None:
    folder = landing / "tax" / "monthly"
    folder.mkdir(parents=True, exist_ok=True)
    # garbage always comes from January's rows: the same unreadable rows, delivered in different months' files
    header, rows = _tax_rows(generated, "2023-01" if kind == "garbage" else month)
    if kind == "month":
        body = rows
    else:
        # corrections vary with the step; garbage does not, so a second garbage delivery of a month repeats
        # the first exactly (copies of an unreadable row in different files must still merge)
        picked = rows[(step % 7 if kind == "correction" else 0) :: 37][:n]
        body = []
        for r in picked:
            f = r.split(",")
            if kind == "correction":  # 更正: a new amount for the same taxpayer and period
                f[3], f[4] = "更正", f"{float(f[4] or 0) * 1.1 + step:.2f}" if f[4].replace(".", "").isdigit() else f[4]
            else:
                f[2] = "2023年13月"  # no such month: the row falls in the partition ∅, and is quarantined
            body.append(",".join(f))
    # every file names the month it is delivered in; corrections arrive in a later month's file
    name = f"税务_月度申报_{month}_第{step}次.csv"
    (folder / name).write_text("\n".join([header, *body]) + "\n", encoding="utf-8")


def _frames(lake: Lake) -> dict[str, pl.DataFrame]:
    def own(table, dataset):
        frame = lake.read(*table.path)
        return frame.filter(pl.col("dataset") == dataset) if frame is not None else pl.DataFrame()

    out = {"std": lake.read("std", TAX)}
    out |= {t.label: own(t, TAX) for t in (FINDINGS, DUPLICATES, STD_PARTITIONS)}
    return {k: v.sort(v.columns, nulls_last=True) for k, v in out.items()}


@pytest.fixture(scope="module")
def registration(generated, tmp_path_factory):
    """The registration the tax rules check credit codes against, collected and standardised once."""
    work = tmp_path_factory.mktemp("incremental")
    shutil.copytree(generated / "landing" / "amr", work / "landing" / "amr")
    lake, ds = Lake(str(work / "lake")), registry().dataset("amr_registration")
    Collector(ds, lake, work / "landing", work / "rejected", "amr", now=T0).run()
    standardise(lake, ds, rules_for(ds.id), at=T0)
    return work


@pytest.mark.integration  # many small Delta writes: in make test, not make test-fast
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(first=st.sampled_from(MONTHS), steps=st.lists(delivery, min_size=1, max_size=4))
@example(first="2023-04", steps=[("garbage", "2023-02", 2), ("garbage", "2023-06", 2), ("correction", "2023-04", 9)])
def test_incremental_std_equals_a_full_rebuild(generated, registration, tmp_path_factory, first, steps):
    steps = [("month", first, 0), *steps]  # a department's first delivery is a month's file
    work = tmp_path_factory.mktemp("seq")
    shutil.copytree(registration / "lake", work / "lake")
    lake, ds, rules = Lake(str(work / "lake")), registry().dataset(TAX), rules_for(TAX)
    plans = []
    for i, (kind, month, n) in enumerate(steps):
        _drop(generated, work / "landing", i, kind, month, n)
        at = T0 + dt.timedelta(days=i + 1)
        Collector(ds, lake, work / "landing", work / "rejected", f"b{i}", now=at).run()
        out = standardise(lake, ds, rules, at=at)
        assert not out.withheld, out.reasons()
        plans.append(out.partitions)
        whole = out.whole
        # the dataset's totals account for every raw row, whatever was rebuilt
        assert (
            whole.rows_in
            == lake.row_count("raw", TAX)
            == (lake.row_count("std", TAX) + whole.quarantined + whole.exact_duplicates + whole.key_duplicates)
        )
    assert plans[0] is None and all(p is not None for p in plans[1:])  # after the first build: by period
    incremental = _frames(lake)

    # from scratch: the same raw, std and quarantine rebuilt whole
    scratch = tmp_path_factory.mktemp("scratch")
    shutil.copytree(registration / "lake", scratch / "lake")
    shutil.copytree(work / "lake" / "raw" / TAX, scratch / "lake" / "raw" / TAX)
    shutil.rmtree(scratch / "lake" / "ops" / "collect_log")
    shutil.copytree(
        work / "lake" / "ops" / "collect_log", scratch / "lake" / "ops" / "collect_log"
    )  # scores count files
    fresh = Lake(str(scratch / "lake"))
    full = standardise(fresh, ds, rules, at=T0, full=True)
    assert full.partitions is None
    rebuilt = _frames(fresh)
    for name, frame in incremental.items():
        assert frame.equals(rebuilt[name]), name
    assert out.whole.rule_failures == full.result.rule_failures
    assert (whole.rows_in, whole.exact_duplicates, whole.quarantined, whole.repaired) == (
        full.result.rows_in,
        full.result.exact_duplicates,
        full.result.quarantined,
        full.result.repaired,
    )
    assert out.scores == full.scores


def test_the_plan_names_the_periods_a_delivery_touched(generated, registration, tmp_path):
    shutil.copytree(registration / "lake", tmp_path / "lake")
    lake, ds, rules = Lake(str(tmp_path / "lake")), registry().dataset(TAX), rules_for(TAX)
    _drop(generated, tmp_path / "landing", 0, "month", "2023-05", 0)
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b0", now=T0).run()
    first = standardise(lake, ds, rules, at=T0)
    assert first.partitions is None and first.plan == "first build"
    # a file for November carrying corrections of March: March alone — not November, not May
    _drop(generated, tmp_path / "landing", 1, "correction", "2023-03", 5)
    folder = tmp_path / "landing" / "tax" / "monthly"
    corrected = folder / "税务_月度申报_2023-03_第1次.csv"
    corrected.rename(folder / "税务_月度申报_2023-11_第1次.csv")
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b1", now=T0 + dt.timedelta(days=1)).run()
    inputs = {k: v for k, v in lake.commits("std", TAX, 1)[0].items() if k in ("rules", "refs", "transform")}
    inputs["raw_version"] = str(lake.table("raw", TAX).version())
    touched, why = plan(lake, ds, rules, inputs)
    assert touched == ["2023-03"], why
    second = standardise(lake, ds, rules, at=T0 + dt.timedelta(days=1))
    assert second.partitions == ["2023-03"]
    assert standardise(lake, ds, rules, at=T0 + dt.timedelta(days=2)).partitions == []  # nothing new
    may = lake.read("std", TAX).filter(pl.col("period") == "2023-05")
    assert may.height > 900  # May untouched
    # a new pseudonym key (or rule book) changes every period: the whole table is rebuilt
    _drop(generated, tmp_path / "landing", 2, "month", "2023-06", 0)
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b2", now=T0 + dt.timedelta(days=3)).run()
    rotated = standardise(lake, ds, rules, at=T0 + dt.timedelta(days=3), transform_version="key@2")
    assert rotated.partitions is None and "transform" in rotated.plan
    # what the dbt models learn: the periods std rebuilt between the versions they read
    ref = f"std.{TAX}"
    assert changed_periods(lake, {ref: first.version}, {ref: second.version}) == {TAX: ["2023-03"]}
    assert changed_periods(lake, {ref: second.version}, {ref: second.version}) == {TAX: []}
    assert changed_periods(lake, {ref: first.version}, {ref: rotated.version}) == {TAX: "all"}
    assert changed_periods(lake, None, {ref: second.version}) == {TAX: "all"}


class _Crash(Exception):
    pass


@pytest.mark.integration
@pytest.mark.parametrize("crash_at", [FINDINGS.label, STD_PARTITIONS.label])
def test_a_period_build_killed_after_its_std_commit_is_completed_for_those_periods(
    generated, registration, tmp_path, monkeypatch, crash_at
):
    """The staging of a build that rebuilt some periods says which: the next build completes the quarantine
    and statistics of exactly those periods, and everything equals a rebuild from scratch."""
    import quality.standardise as std_engine

    shutil.copytree(registration / "lake", tmp_path / "lake")
    lake, ds, rules = Lake(str(tmp_path / "lake")), registry().dataset(TAX), rules_for(TAX)
    for i, (kind, month, n) in enumerate([("month", "2023-02", 0), ("month", "2023-03", 0)]):
        _drop(generated, tmp_path / "landing", i, kind, month, n)
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b0", now=T0).run()
    standardise(lake, ds, rules, at=T0)
    _drop(generated, tmp_path / "landing", 2, "correction", "2023-03", 12)
    _drop(generated, tmp_path / "landing", 3, "garbage", "2023-05", 2)
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b1", now=T0 + dt.timedelta(days=1)).run()

    real_write = Lake._write

    def write(self, zone, name, *a, **k):
        if f"{zone}/{name}" == crash_at:
            raise _Crash
        return real_write(self, zone, name, *a, **k)

    monkeypatch.setattr(Lake, "_write", write)
    with pytest.raises(_Crash):
        standardise(lake, ds, rules, at=T0 + dt.timedelta(days=1))
    monkeypatch.undo()
    assert json.loads(lake.commits("std", TAX, 1)[0]["partitions"]) == ["2023-03", "∅"]
    assert len(std_engine.pending_builds(lake, ds)) == 1
    after = standardise(lake, ds, rules, at=T0 + dt.timedelta(days=2))  # completes the staging first
    assert after.partitions == [] and len(after.recovered) == 1
    assert std_engine.pending_builds(lake, ds) == []

    scratch = tmp_path / "scratch"
    shutil.copytree(registration / "lake", scratch / "lake")
    shutil.copytree(tmp_path / "lake" / "raw" / TAX, scratch / "lake" / "raw" / TAX)
    fresh = Lake(str(scratch / "lake"))
    standardise(fresh, ds, rules, at=T0, full=True)
    rebuilt = _frames(fresh)
    for name, frame in _frames(lake).items():
        assert frame.equals(rebuilt[name]), name


def test_a_backfill_range_becomes_each_datasets_own_periods():
    from quality.standardise import periods_between

    reg = registry()
    assert periods_between(reg.dataset(TAX), "2023-11", "2024-02") == ["2023-11", "2023-12", "2024-01", "2024-02"]
    assert periods_between(reg.dataset("stats_annual"), "2023-11", "2024-02") == ["2023", "2024"]
    days = periods_between(reg.dataset("ent_telemetry"), "2023-12", "2023-12")
    assert days[0] == "2023-12-01" and days[-1] == "2023-12-31" and len(days) == 31
    with pytest.raises(ValueError, match="after"):
        periods_between(reg.dataset(TAX), "2023-05", "2023-02")


def test_the_backfill_command_refuses_what_is_not_a_month_range():
    from orchestration.cli.backfill import backfill
    from orchestration.settings import settings

    for start, end in (("2023-1", "2023-03"), ("2023-13", "2024-01"), ("2023-05", "2023-02")):
        with pytest.raises(SystemExit, match="backfill"):
            backfill(settings(), start, end)


@pytest.mark.integration
def test_a_backfill_after_a_rule_book_change_rebuilds_everything(generated, registration, tmp_path, monkeypatch):
    import quality.standardise as std_engine

    shutil.copytree(registration / "lake", tmp_path / "lake")
    lake, ds, rules = Lake(str(tmp_path / "lake")), registry().dataset(TAX), rules_for(TAX)
    for i, month in enumerate(("2023-02", "2023-05")):
        _drop(generated, tmp_path / "landing", i, "month", month, 0)
    Collector(ds, lake, tmp_path / "landing", tmp_path / "rejected", "b0", now=T0).run()
    standardise(lake, ds, rules, at=T0)
    assert standardise(lake, ds, rules, periods=["2023-02"]).partitions == ["2023-02"]
    monkeypatch.setattr(std_engine, "_rules_sha", lambda r: "edited")  # the rule book changed since
    done = standardise(lake, ds, rules, periods=["2023-02"])
    assert done.partitions is None and "rules changed" in done.plan  # May gets the new rules too


def test_std_of_a_dataset_nothing_was_collected_for_is_an_empty_table(registration, tmp_path):
    """A std build before any delivery (no raw table yet) writes std with the dataset's columns and no row,
    instead of failing: the models that read it see an empty input, not a missing one."""
    lake, ds = Lake(str(tmp_path / "lake")), registry().dataset(TAX)
    shutil.copytree(registration / "lake" / "std", tmp_path / "lake" / "std")
    out = standardise(lake, ds, rules_for(ds.id), at=T0, full=True)
    std = lake.read("std", TAX)
    assert out.result.rows_in == 0 and out.result.rows_out == 0 and std is not None and std.height == 0
    assert {c.name for c in ds.columns} <= set(std.columns)
