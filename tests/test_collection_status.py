"""归集 monitoring from a collection log: expected deliveries by the calendar, and what came when."""

import datetime as dt

import polars as pl
import pytest

from assets.ingest.collector import LOG_SCHEMA
from lakehouse.config import ConfigError
from lakehouse.registry import REGISTRY_PATH, Period, load_registry, registry
from quality.collection import collection_status, due_on, expected_periods

CST = dt.timezone(dt.timedelta(hours=8))


def _log(*rows: tuple[str, str, str, dt.datetime, int]) -> pl.DataFrame:
    """(dataset, file, status, delivered at, rows landed) → collection log rows, collected a day later."""
    return pl.DataFrame(
        [
            {
                "dataset": d,
                "department": registry().dataset(d).department,
                "file": f,
                "status": st,
                "mtime_ns": int(at.timestamp() * 1e9),
                "at": at.astimezone(dt.UTC) + dt.timedelta(days=1),
                "rows_landed": n,
                "reason_zh": "文件被截断" if st == "rejected" else None,
                "detail": "cut at row 7" if st == "rejected" else None,
            }
            for d, f, st, at, n in rows
        ],
        schema={
            k: v
            for k, v in pl.from_arrow(LOG_SCHEMA.empty_table()).schema.items()
            if k in {"dataset", "department", "file", "status", "mtime_ns", "at", "rows_landed", "reason_zh", "detail"}
        },
    )


def _at(day: str, hour: int = 10) -> dt.datetime:
    return dt.datetime.combine(dt.date.fromisoformat(day), dt.time(hour), CST)


def test_deadline_is_calendar_days_after_the_period_in_china_time():
    tax = registry().dataset("tax_monthly")
    assert due_on(tax, "2023-02") == dt.date(2023, 3, 15)
    assert due_on(registry().dataset("stats_annual"), "2023") == dt.date(2024, 3, 30)
    # 23:30 on the due day in Beijing is 15:30 UTC: on time; 00:30 the next day is late
    log = _log(
        ("tax_monthly", "tax/monthly/税务_月度申报_2023-01.csv", "landed", _at("2023-02-15", 23), 10),
        ("tax_monthly", "tax/monthly/税务_月度申报_2023-02.csv", "landed", _at("2023-03-16", 0), 10),
    )
    got = collection_status(registry(), log, _at("2023-03-20")).status.filter(pl.col("dataset") == "tax_monthly")
    states = dict(got.select("period", "state").iter_rows())
    assert states == {"2023-01": "on_time", "2023-02": "late"}
    assert got.filter(pl.col("period") == "2023-02")["days_late"].item() == 1


def test_missing_refused_and_not_yet_due_periods():
    log = _log(
        ("tax_monthly", "tax/monthly/税务_月度申报_2023-01.csv", "landed", _at("2023-02-10"), 100),
        ("tax_monthly", "tax/monthly/税务_月度申报_2023-03.csv", "rejected", _at("2023-04-10"), 0),
        ("tax_monthly", "tax/monthly/税务_月度申报_2023-04.csv", "landed", _at("2023-05-03"), 30),
    )
    result = collection_status(registry(), log, _at("2023-05-10"))
    tax = result.status.filter(pl.col("dataset") == "tax_monthly")
    states = dict(tax.select("period", "state").iter_rows())
    # February was due on 15 March and never came; March came only as a refused file; April came early
    # (before its deadline) and counts; May is not due and not listed
    assert states == {"2023-01": "on_time", "2023-02": "missing", "2023-03": "rejected", "2023-04": "on_time"}
    assert "cut at row 7" in tax.filter(pl.col("period") == "2023-03")["reasons"].item()
    assert tax.filter(pl.col("period") == "2023-04")["rows_short"].item()  # 30 rows against a typical 100
    assert set(result.overdue().filter(pl.col("dataset") == "tax_monthly")["period"]) == {"2023-02", "2023-03"}
    # every other periodic dataset delivered nothing: its due months are missing
    assert set(result.overdue()["state"]) == {"missing", "rejected"}
    rates = result.rates.filter(pl.col("department") == "tax")
    # the 归集率 of a month: deliveries due that month and received on time (each month's filing is due
    # the next month; April's, received early, already counts for May)
    assert dict(rates.select("month", "rate").iter_rows()) == {
        "2023-02": 1.0,
        "2023-03": 0.0,
        "2023-04": 0.0,
        "2023-05": 1.0,
    }


def test_a_file_touched_after_collection_keeps_its_collection_time():
    log = _log(("tax_monthly", "tax/monthly/税务_月度申报_2023-01.csv", "landed", _at("2023-02-10"), 5))
    log = log.with_columns(pl.lit(int(_at("2023-06-01").timestamp() * 1e9)).alias("mtime_ns"))
    got = collection_status(registry(), log, _at("2023-06-02")).status
    got = got.filter((pl.col("dataset") == "tax_monthly") & (pl.col("period") == "2023-01"))
    assert got["state"].item() == "on_time"  # collected on 11 Feb, whatever the file's time says later


def test_window_bounds_the_expected_periods():
    tax = registry().dataset("tax_monthly")
    assert tax.period.since == "2023-01" and tax.period.until == "2023-12"
    assert expected_periods(tax, [], dt.date(2030, 1, 1)) == [f"2023-{m:02d}" for m in range(1, 13)]
    assert expected_periods(tax, [], dt.date(2023, 3, 14)) == ["2023-01"]
    open_ended = tax.model_copy(update={"period": tax.period.model_copy(update={"since": None, "until": None})})
    assert expected_periods(open_ended, [], dt.date(2030, 1, 1)) == []  # nothing received, no start
    assert expected_periods(open_ended, ["2023-11"], dt.date(2024, 2, 20)) == ["2023-11", "2023-12", "2024-01"]
    log = _log(("tax_monthly", "tax/monthly/税务_月度申报_2022-12.csv", "landed", _at("2023-01-10"), 5))
    got = collection_status(registry(), log, _at("2023-01-20")).status.filter(pl.col("dataset") == "tax_monthly")
    assert got.filter(pl.col("period") == "2022-12")["state"].item() == "unexpected"
    assert not got.filter(pl.col("period") == "2022-12")["expected"].item()


def test_period_bounds_are_validated(tmp_path):
    with pytest.raises(ValueError, match="not a month period"):
        Period(granularity="month", from_filename=r"(\d{4}-\d{2})", since="2023")
    with pytest.raises(ValueError, match="after until"):
        Period(granularity="year", from_filename=r"(\d{4})", since="2024", until="2023")
    bad = tmp_path / "sources.yaml"
    bad.write_text(REGISTRY_PATH.read_text(encoding="utf-8").replace("since: '2023-01'", "since: '2023-1'", 1))
    with pytest.raises(ConfigError, match="tax_monthly|datasets.1"):
        load_registry(bad)


def test_a_year_is_complete_when_every_delivery_it_owes_has_arrived():
    from quality.collection import year_completeness

    months = [f"2023-{m:02d}" for m in range(1, 13)]
    log = _log(
        *(("tax_monthly", f"tax/monthly/税务_月度申报_{m}.csv", "landed", _at(f"{m}-28"), 10) for m in months),
        *(("power_monthly", f"power/monthly/电力_月度用电_{m}.csv", "landed", _at(f"{m}-28"), 10) for m in months[:11]),
        ("power_monthly", "power/monthly/电力_月度用电_2023-12.csv", "rejected", _at("2024-01-05"), 0),
    )
    status = collection_status(registry(), log, _at("2024-06-01")).status
    table = year_completeness(status, ["tax_monthly", "power_monthly"])
    got = {r["dataset"]: r for r in table.iter_rows(named=True)}
    assert set(table["year"]) == {"2023"}
    assert got["tax_monthly"]["received"] == 12 and got["tax_monthly"]["not_received"] is None
    assert got["power_monthly"]["received"] == 11 and got["power_monthly"]["not_received"] == "2023-12 (rejected)"


def test_a_year_under_way_does_not_hold_back_the_judgement_of_the_year_before():
    """An open-ended agreement (no ``until``): in March 2024, January's and February's filings are in; the
    year judged is 2023 — over, and complete for tax, one power month refused — not 2024."""
    from quality.collection import year_completeness

    base = registry()
    open_ended = base.model_copy(
        update={
            "datasets": [
                d.model_copy(update={"period": d.period.model_copy(update={"until": None})}) if d.period else d
                for d in base.datasets
            ]
        }
    )
    months = [f"2023-{m:02d}" for m in range(1, 13)] + ["2024-01", "2024-02"]
    log = _log(
        *(("tax_monthly", f"tax/monthly/税务_月度申报_{m}.csv", "landed", _at(f"{m}-10"), 10) for m in months),
        *(("power_monthly", f"power/monthly/电力_月度用电_{m}.csv", "landed", _at(f"{m}-10"), 10) for m in months),
    )
    status = collection_status(open_ended, log, _at("2024-03-20")).status
    table = year_completeness(status, ["tax_monthly", "power_monthly"], open_ended)
    assert set(table["year"]) == {"2023"} and table["not_received"].is_null().all()
    # in January 2024 nothing of 2024 is due yet: 2023 is judged, its December still owed until its deadline
    early = year_completeness(
        collection_status(
            open_ended, log.filter(~pl.col("file").str.contains("2024|2023-12")), _at("2024-01-10")
        ).status,
        ["tax_monthly"],
        open_ended,
    )
    assert set(early["year"]) == {"2023"} and early["received"].to_list() == [11]


@pytest.mark.integration
def test_the_status_is_rechecked_every_hour_so_a_passing_deadline_shows_without_a_delivery():
    import dagster as dg

    from orchestration.definitions import defs

    instance = dg.DagsterInstance.ephemeral()
    t0 = dt.datetime(2024, 3, 16, 9, 20, tzinfo=dt.UTC)
    status, tax = dg.AssetKey(["ops", "collection_status"]), dg.AssetKey(["std", "tax_monthly"])
    first = dg.evaluate_automation_conditions(defs=defs, instance=instance, evaluation_time=t0)
    later = dg.evaluate_automation_conditions(
        defs=defs, instance=instance, cursor=first.cursor, evaluation_time=t0 + dt.timedelta(hours=1)
    )
    requested = {r.key for r in later.results if r.true_subset.size}
    assert status in requested  # the hourly tick, with nothing delivered
    assert tax not in requested  # std still only follows raw


@pytest.mark.integration
def test_a_recheck_that_changes_no_state_keeps_the_data_version_so_nothing_downstream_runs(tmp_path):
    import dagster as dg

    from lakehouse.tables import COLLECT_LOG
    from orchestration import runs as runner
    from orchestration.definitions import defs
    from orchestration.resources import resources
    from orchestration.settings import settings

    s = settings({"SHUCANG_ENV": "ci", "SHUCANG_DATA_DIR": str(tmp_path)})
    lake = s.lake()
    january = ("tax_monthly", "tax/monthly/税务_月度申报_2023-01.csv", "landed", _at("2023-02-10"), 10)
    lake.overwrite(COLLECT_LOG.zone, COLLECT_LOG.name, _log(january).to_arrow())
    instance = dg.DagsterInstance.ephemeral()
    status = dg.AssetKey(["ops", "collection_status"])

    def version() -> str:
        assert runner.materialize(list(defs.assets), [status], instance, resources=resources(s)).success
        return instance.get_latest_materialization_event(status).asset_materialization.tags["dagster/data_version"]

    first, again = version(), version()
    assert first == again  # re-checked, a new Delta version written, the same states: the same data version
    february = ("tax_monthly", "tax/monthly/税务_月度申报_2023-02.csv", "landed", _at("2023-03-10"), 10)
    lake.overwrite(COLLECT_LOG.zone, COLLECT_LOG.name, _log(january, february).to_arrow())
    assert version() != first
