"""GB/T 36344 scores: each dimension is the share of checks passed; unassessed dimensions are left out."""

import datetime as dt

import polars as pl
import pytest

from quality.rulebook import rules_for
from quality.scores import DIMENSIONS, dataset_scores, department_scores, overall, row


def test_dimension_scores_count_rule_failures_repairs_duplicates_and_files():
    rules = rules_for("tax_monthly")  # completeness: 1 rule; validity: 7; accuracy: 1; timeliness: 1; referential: 1
    fails = {"uscc_required": 10, "uscc_valid": 0, "revenue_non_negative": 5, "uscc_registered": 20}
    s = dataset_scores(
        rules,
        fails,
        rows_evaluated=1000,
        rows_in=1010,
        exact_duplicates=10,
        files_delivered=12,
        files_landed=11,
        repaired={"period": 500, "filed_on": 0},
    )
    assert s["完整性"] == pytest.approx(99.0)  # 10 of 1000
    assert s["准确性"] == pytest.approx(99.5)
    validity_rules = sum(1 for r in rules.rules if r.dimension == "validity")
    assert s["规范性"] == pytest.approx(100 * (1 - 500 / (1000 * (validity_rules + 2))), abs=0.01)
    assert s["一致性"] == pytest.approx(100 * (1 - (20 + 10) / (1000 + 1010)), abs=0.01)
    assert s["可访问性"] == pytest.approx(100 * 11 / 12, abs=0.01) and s["时效性"] == 100.0
    assert overall(s) == pytest.approx(sum(s.values()) / 6, abs=0.01)


def test_a_dimension_without_checks_is_not_scored():
    s = dataset_scores(rules_for("ent_equipment"), {}, 10, 10, 0, 1, 1)
    assert "时效性" not in s and "准确性" not in s and s["完整性"] == 100.0


def test_department_scores_are_row_weighted():
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    latest = pl.DataFrame(
        [
            row("dataset", "a", "tax", 100, {d: 90.0 for d in DIMENSIONS}, at),
            row("dataset", "b", "tax", 300, {d: 100.0 for d in DIMENSIONS}, at),
        ]
    )
    dept = department_scores(latest, at).row(0, named=True)
    assert dept["subject"] == "tax" and dept["完整性"] == 97.5 and dept["overall"] == 97.5 and dept["rows"] == 400


def test_department_scores_are_never_nan():
    """A department whose datasets hold no rows, or are not scored on a dimension, gets a plain mean or no
    score there — never 0/0 = NaN, which the score history would keep."""
    at = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    some = {d: 80.0 for d in DIMENSIONS if d != "时效性"}
    latest = pl.DataFrame(
        [
            row("dataset", "empty1", "eco", 0, {d: 100.0 for d in DIMENSIONS}, at),
            row("dataset", "empty2", "eco", 0, {d: 90.0 for d in DIMENSIONS}, at),
            row("dataset", "c", "land", 50, some, at),
            row("dataset", "d", "land", 0, some, at),
        ]
    )
    dept = {r["subject"]: r for r in department_scores(latest, at).iter_rows(named=True)}
    assert dept["eco"]["完整性"] == 95.0 and dept["eco"]["overall"] == 95.0  # no rows: the plain mean
    assert dept["land"]["时效性"] is None and dept["land"]["完整性"] == 80.0  # not scored there: no score
    assert dept["land"]["overall"] == 80.0
    nan = department_scores(latest, at).select(pl.col(pl.Float64).is_nan().any())
    assert not any(nan.row(0))  # no NaN anywhere
