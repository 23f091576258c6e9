"""Objections (异议) to the 亩均 evaluation as records: filed with the corrected figure, decided once with a
reason, every step appended and audited, refusals that say why (the recomputation: test_modelling.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from lakehouse import objections
from lakehouse.lake import Lake
from lakehouse.tables import OBJECTIONS
from orchestration import keys
from privacy.audit import AuditLog

T0 = dt.datetime(2024, 3, 1, 10, tzinfo=dt.UTC)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(str(tmp_path / "lake"))


def test_an_objection_is_filed_then_decided_once_and_every_step_is_kept(lake, tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    filed, v1 = objections.file(
        lake,
        audit,
        "steward:zhang",
        "91331003MA0000001X",
        2023,
        "land_mu",
        "3.5",
        "新厂房已办证",
        "不动产权证 2024-001",
        now=T0,
    )
    assert filed.status == "filed" and filed.corrected_value == 3.5 and filed.input_zh == "用地面积"
    decided, v2 = objections.decide(
        lake, audit, "steward:li", filed.id, True, "经核实不动产权证", now=T0 + dt.timedelta(hours=1)
    )
    assert v2 == v1 + 1 and decided.status == "accepted" and decided.decided_by == "steward:li"
    assert decided.reason == "经核实不动产权证" and decided.statement == "新厂房已办证"  # the filing stays
    with pytest.raises(objections.ObjectionError, match="accepted"):
        objections.decide(lake, audit, "steward:li", filed.id, False, "改主意")
    events = lake.read(OBJECTIONS.zone, OBJECTIONS.name).sort("event_at")
    assert events["event"].to_list() == ["filed", "accepted"]  # appended, never rewritten
    assert [e["action"] for e in audit.entries()] == ["objection.filed", "objection.accepted"]
    assert objections.of_firm(lake, "91331003MA0000001X", 2023) == [decided]
    assert objections.of_firm(lake, "91331003MA0000001X", 2022) == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"input": "band"}, "not an input"),
        ({"value": "三亩"}, "not a number"),
        ({"value": "-1"}, "not negative"),
        ({"value": "nan"}, "finite"),
        ({"statement": " "}, "is required"),
        ({"statement": "x" * 301}, "at most 300"),
        ({"statement": "请联系法人，手机 13812345678"}, "personal information"),
    ],
)
def test_a_bad_objection_is_refused_with_the_reason_and_nothing_is_written(lake, tmp_path, change, message):
    args = {"input": "land_mu", "value": "3", "statement": "新厂房已办证"} | change
    with pytest.raises(objections.ObjectionError, match=message):
        objections.file(
            lake,
            AuditLog(tmp_path / "a.jsonl"),
            "steward:zhang",
            "X",
            2023,
            args["input"],
            args["value"],
            args["statement"],
        )
    assert objections.all_objections(lake) == []


def test_a_decision_needs_a_reason_without_personal_information(lake, tmp_path):
    audit = AuditLog(tmp_path / "audit.jsonl")
    filed, _ = objections.file(lake, audit, "steward:zhang", "X", 2023, "tax_wan", 12, "税款少计")
    for reason, message in (("", "is required"), ("已电话 13812345678 核实", "personal information")):
        with pytest.raises(objections.ObjectionError, match=message):
            objections.decide(lake, audit, "steward:zhang", filed.id, True, reason)
    with pytest.raises(objections.ObjectionError, match="no such objection"):
        objections.decide(lake, audit, "steward:zhang", "OBJ-NOPE", True, "理由")
    assert objections.of_firm(lake, "X", 2023)[0].status == "filed"


def test_the_table_exists_empty_before_any_objection(lake):
    table = objections.ensure(lake)
    assert table.version() == 0 and lake.read(OBJECTIONS.zone, OBJECTIONS.name).height == 0
    assert objections.ensure(lake).version() == 0  # idempotent


def test_a_write_outside_dagster_is_reported_to_the_instance_of_the_home_as_it_is(tmp_path):
    """The console's (and the grade-override command's) report reads the home's dagster.yaml as it is — a
    deployment's own configuration is never replaced by the project's template — and the event lands there."""
    from types import SimpleNamespace

    import dagster as dg

    from assets.own_tables import report_write
    from orchestration.instance import TEMPLATE

    home = tmp_path / "home"
    assert report_write(SimpleNamespace(dagster_home=home), OBJECTIONS, 1) is False  # no instance there
    home.mkdir()
    config = TEMPLATE.read_text(encoding="utf-8") + "# the deployment's own settings\n"
    (home / "dagster.yaml").write_text(config, encoding="utf-8")
    assert report_write(SimpleNamespace(dagster_home=home), OBJECTIONS, 3, event="accepted") is True
    assert (home / "dagster.yaml").read_text(encoding="utf-8") == config
    with dg.DagsterInstance.from_config(str(home)) as instance:
        event = instance.get_latest_materialization_event(keys.key(*OBJECTIONS.path))
    assert event.asset_materialization.metadata["delta_version"].value == 3
