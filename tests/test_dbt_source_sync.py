"""The warehouse's copies of the std tables follow the lake by period (orchestration/dbt/delta_source.py):
after every step the copy equals the Delta table at the version asked for, content for content."""

from __future__ import annotations

import json

import duckdb
import polars as pl
import pytest

from lakehouse.lake import Lake
from orchestration.dbt.delta_source import sync

SOURCES = [("std", "std", "tax_monthly")]
REF = "std.tax_monthly"


def _copy(con) -> pl.DataFrame:
    return con.sql('select * from "std"."tax_monthly"').pl().sort("uscc", "period")


def _lake_rows(lake: Lake, version: int | None = None) -> pl.DataFrame:
    table = lake.table("std", "tax_monthly")
    if version is not None:
        table.load_as_version(version)
    return pl.from_arrow(table.to_pyarrow_table()).sort("uscc", "period")


def _frame(rows):
    return pl.DataFrame(rows, schema={"uscc": pl.String, "period": pl.String, "revenue": pl.Float64}, orient="row")


def _rebuild(lake: Lake, period: str, rows) -> None:
    """A std build of one period, as std commits it: the period's rows replaced, the period recorded."""
    lake.overwrite_where(
        "std", "tax_monthly", _frame(rows).to_arrow(), f"period IN ('{period}')", {"partitions": json.dumps([period])}
    )


@pytest.fixture
def lake(tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    first = _frame([("a", "2023-01", 1.0), ("b", "2023-01", 2.0), ("a", "2023-02", 3.0), ("b", "2023-02", 4.0)])
    lake.overwrite("std", "tax_monthly", first.to_arrow(), metadata={"partitions": "all"})
    return lake


def test_the_copy_replaces_only_the_periods_std_rebuilt_and_equals_the_lake_after_each_step(lake):
    con = duckdb.connect()
    assert sync(con, lake, SOURCES, {}) == {REF: "whole"}
    assert _copy(con).equals(_lake_rows(lake))
    assert sync(con, lake, SOURCES, {}) == {REF: "current"}  # nothing new: nothing read
    # February rebuilt (a correction), then March arrives
    _rebuild(lake, "2023-02", [("a", "2023-02", 3.5), ("b", "2023-02", 4.0), ("c", "2023-02", 9.0)])
    _rebuild(lake, "2023-03", [("a", "2023-03", 5.0)])
    # a row the lake does not hold, in a period no commit names, shows the copy was not reloaded whole
    con.execute("""insert into "std"."tax_monthly" values ('ghost', '2023-01', 0)""")
    assert sync(con, lake, SOURCES, {}) == {REF: "periods 2023-02, 2023-03"}
    expected = _lake_rows(lake).vstack(_frame([("ghost", "2023-01", 0.0)])).sort("uscc", "period")
    assert _copy(con).equals(expected)
    con.execute("""delete from "std"."tax_monthly" where uscc = 'ghost'""")
    assert _copy(con).equals(_lake_rows(lake))
    assert con.sql("select version from main._lake_sources").fetchall() == [(2,)]


def test_a_table_created_anew_under_the_same_name_is_copied_whole(lake, tmp_path):
    """Its versions start again: version 2 of the new table is not version 2 of the one copied."""
    import shutil

    con = duckdb.connect()
    for p in ("2023-02", "2023-03"):
        _rebuild(lake, p, [("a", p, 7.0)])
    sync(con, lake, SOURCES, {})  # the copy of version 2
    shutil.rmtree(tmp_path / "lake" / "std" / "tax_monthly")
    lake.overwrite("std", "tax_monthly", _frame([("z", "2024-01", 1.0)]).to_arrow(), metadata={"partitions": "all"})
    for p in ("2024-02", "2024-03"):
        _rebuild(lake, p, [("z", p, 2.0)])
    sync(con, lake, SOURCES, {})  # version 2 of another table
    assert sync(con, lake, SOURCES, {}) == {REF: "current"}
    assert _copy(con).equals(_lake_rows(lake))


@pytest.mark.parametrize("change", ["rebuilt_whole", "unsaid", "older_pin", "new_column"])
def test_the_copy_is_reloaded_whole_when_the_commits_cannot_say_what_changed(lake, change):
    con = duckdb.connect()
    sync(con, lake, SOURCES, {})
    more = _frame([("a", "2023-03", 5.0)])
    if change == "rebuilt_whole":
        lake.overwrite("std", "tax_monthly", more.to_arrow(), metadata={"partitions": "all"})
    elif change == "unsaid":
        lake.append("std", "tax_monthly", more.to_arrow())  # a commit without the periods it rebuilt
    elif change == "new_column":
        lake.overwrite(
            "std",
            "tax_monthly",
            more.with_columns(pl.lit("x").alias("note")).to_arrow(),
            metadata={"partitions": json.dumps(["2023-03"])},
        )
    pins = {}
    if change == "older_pin":
        _rebuild(lake, "2023-03", more.rows())
        sync(con, lake, SOURCES, {})
        pins = {REF: 0}  # a reproduction of an earlier run
    assert sync(con, lake, SOURCES, pins) == {REF: "whole"}
    got = con.sql('select * from "std"."tax_monthly"').pl().sort("uscc", "period")
    assert got.equals(_lake_rows(lake, pins.get(REF)))


def test_a_failed_sync_leaves_the_copy_and_its_recorded_version_as_they_were(lake, monkeypatch):
    con = duckdb.connect()
    sync(con, lake, SOURCES, {})
    before = _copy(con)
    _rebuild(lake, "2023-03", [("a", "2023-03", 5.0)])
    import quality.standardise

    monkeypatch.setattr(quality.standardise, "std_predicate", lambda ds, periods: "no_such_column = 1")
    with pytest.raises(duckdb.Error):
        sync(con, lake, SOURCES, {})
    assert _copy(con).equals(before)
    assert con.sql("select version from main._lake_sources").fetchall() == [(0,)]
