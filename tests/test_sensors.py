"""Landing sensors: a dropped file requests that source's collection once, with the reason shown."""

import os

import dagster as dg

from assets.registry import registry
from orchestration.resources import LandingResource
from sensors.defs import landing_sensor
from sensors.landing import arrivals

TAX = registry().dataset("tax_monthly")


def _evaluate(sensor, cursor, landing):
    ctx = dg.build_sensor_context(cursor=cursor, resources={"landing": landing})
    result = sensor(ctx)
    return result, ctx.cursor


def test_cursor_logic_reports_only_new_or_changed_files():
    first = arrivals(None, {"a.csv": "10:1", "b.csv": "20:1"})
    assert first.files == ["a.csv", "b.csv"]
    assert arrivals(first.cursor, {"a.csv": "10:1", "b.csv": "20:1"}).files == []
    assert arrivals(first.cursor, {"a.csv": "10:1", "b.csv": "21:2", "c.csv": "5:3"}).files == ["b.csv", "c.csv"]


def test_a_dropped_file_triggers_one_run_with_its_reason(tmp_path):
    landing = LandingResource(landing_root=str(tmp_path / "landing"), rejected_root=str(tmp_path / "rejected"))
    sensor = landing_sensor(TAX)
    result, cursor = _evaluate(sensor, None, landing)
    assert isinstance(result, dg.SkipReason)

    folder = tmp_path / "landing" / TAX.landing
    folder.mkdir(parents=True)
    (folder / "税务_月度申报_2023-01.csv").write_text("x", encoding="utf-8")
    (folder / "~$lock.csv").write_text("office lock file", encoding="utf-8")  # ignored
    result, cursor = _evaluate(sensor, cursor, landing)
    assert isinstance(result, dg.RunRequest)
    assert result.tags["shucang/dataset"] == "tax_monthly"
    assert "1 new or changed file(s)" in result.tags["shucang/reason"] and "2023-01" in result.tags["shucang/reason"]
    first_key = result.run_key

    result, cursor = _evaluate(sensor, cursor, landing)  # nothing new: no second run
    assert isinstance(result, dg.SkipReason)

    path = folder / "税务_月度申报_2023-01.csv"
    path.write_text("xy", encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000))
    result, _ = _evaluate(sensor, cursor, landing)  # a corrected delivery under the same name
    assert isinstance(result, dg.RunRequest) and result.run_key != first_key
