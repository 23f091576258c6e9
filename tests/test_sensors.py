"""Landing sensors: a dropped file requests that source's collection once, with the reason shown."""

import os
from pathlib import Path

import dagster as dg

from assets.ingest.collector import Collector
from lakehouse.registry import registry
from orchestration.resources import LakeResource, LandingResource
from sensors.defs import landing_sensor
from sensors.landing import arrivals

TAX = registry().dataset("tax_monthly")


def _resources(tmp_path):
    return {
        "landing": LandingResource(landing_root=str(tmp_path / "landing"), rejected_root=str(tmp_path / "rejected")),
        "lake": LakeResource(root=str(tmp_path / "lake")),
    }


def _evaluate(sensor, cursor, resources):
    ctx = dg.build_sensor_context(cursor=cursor, resources=resources)
    return sensor(ctx), ctx.cursor


def test_cursor_logic_reports_only_new_or_changed_uncollected_files():
    first = arrivals(None, {"a.csv": (10, 1), "b.csv": (20, 1)})
    assert first.files == ["a.csv", "b.csv"]
    assert arrivals(first.cursor, {"a.csv": (10, 1), "b.csv": (20, 1)}).files == []
    changed = arrivals(first.cursor, {"a.csv": (10, 1), "b.csv": (21, 2), "c.csv": (5, 3)})
    assert changed.files == ["b.csv", "c.csv"]
    # a file the collect log shows landed unchanged is not news, even to a sensor with no cursor
    assert arrivals(None, {"a.csv": (10, 1), "b.csv": (20, 1)}, {("a.csv", 10, 1)}).files == ["b.csv"]


def test_a_dropped_file_triggers_one_run_with_its_reason(tmp_path):
    resources = _resources(tmp_path)
    sensor = landing_sensor(TAX)
    result, cursor = _evaluate(sensor, None, resources)
    assert isinstance(result, dg.SkipReason)

    folder = tmp_path / "landing" / TAX.landing
    folder.mkdir(parents=True)
    (folder / "税务_月度申报_2023-01.csv").write_text("x", encoding="utf-8")
    (folder / "~$lock.csv").write_text("office lock file", encoding="utf-8")  # ignored
    result, cursor = _evaluate(sensor, cursor, resources)
    assert isinstance(result, dg.RunRequest)
    assert result.tags["shucang/dataset"] == "tax_monthly"
    assert "1 new or changed file(s)" in result.tags["shucang/reason"] and "2023-01" in result.tags["shucang/reason"]
    # raw is partitioned by month: the run names the period of the file's name
    assert result.tags["dagster/asset_partition_range_start"] == result.tags["dagster/asset_partition_range_end"]
    assert result.tags["dagster/asset_partition_range_start"] == "2023-01"
    first_key = result.run_key

    result, cursor = _evaluate(sensor, cursor, resources)  # nothing new: no second run
    assert isinstance(result, dg.SkipReason)

    path = folder / "税务_月度申报_2023-01.csv"
    path.write_text("xy", encoding="utf-8")
    os.utime(path, ns=(1, 2_000_000_000))
    result, _ = _evaluate(sensor, cursor, resources)  # a corrected delivery under the same name
    assert isinstance(result, dg.RunRequest) and result.run_key != first_key


def test_files_already_collected_do_not_trigger_runs_for_a_new_sensor(workdir):
    resources = _resources(workdir)
    Collector(TAX, resources["lake"].lake(), workdir / "landing", workdir / "rejected", "b1").run()
    result, _ = _evaluate(landing_sensor(TAX), None, resources)  # e.g. `make ui` after `make demo`
    assert isinstance(result, dg.SkipReason)
    Path(workdir / "landing" / TAX.landing / "税务_月度申报_2024-01.csv").write_bytes(
        (workdir / "landing" / TAX.landing / "税务_月度申报_2023-12.csv").read_bytes().replace(b"2023-12", b"2024-01")
    )
    (workdir / "landing" / TAX.landing / "税务_月度申报_2023-02_更正.csv").write_text("x", encoding="utf-8")
    (workdir / "landing" / TAX.landing / "税务_月度申报_补报.csv").write_text("x", encoding="utf-8")  # no period
    result, _ = _evaluate(landing_sensor(TAX), None, resources)
    assert isinstance(result, dg.RunRequest) and "2024-01" in result.tags["shucang/reason"]
    # one run over the periods the new files' names state (rows decide what is materialised)
    assert (result.tags["dagster/asset_partition_range_start"], result.tags["dagster/asset_partition_range_end"]) == (
        "2023-02",
        "2024-01",
    )


def test_a_bucket_key_that_is_no_file_name_of_the_mirror_is_refused_with_the_reason(tmp_path):
    from assets.ingest.bucket import _target, is_bucket

    assert (
        _target(tmp_path, "tax/monthly/税务_月度申报_2023-01.csv") == tmp_path / "tax/monthly/税务_月度申报_2023-01.csv"
    )
    for key in (
        "tax/monthly/" + "/".join([".."] * 2) + "/escape.csv",
        "/etc/passwd",
        "tax//x.csv",
        "tax/./x.csv",
        "a\\..\\b.csv",
        "x\x00.csv",
    ):
        why = _target(tmp_path, key)
        assert isinstance(why, str) and why, key
    assert is_bucket("s3://landing/departments") and not is_bucket(tmp_path)


def test_landing_root_as_a_bucket_is_mirrored_locally():
    from orchestration.settings import settings

    s = settings({"SHUCANG_DATA_DIR": "/srv/shucang", "LANDING_ROOT": "s3://uploads/departments"})
    assert s.landing_bucket == "s3://uploads/departments" and str(s.landing_root) == "/srv/shucang/landing-cache"
    assert settings({"SHUCANG_DATA_DIR": "/srv/shucang"}).landing_bucket is None
    s = settings({"LAKE_STORAGE_OPTIONS": '{"AWS_REGION": "x"}', "LANDING_ROOT": "s3://u/d"})
    assert s.landing_storage_options == {"AWS_REGION": "x"}  # the lake's store unless told otherwise
    s = settings({"LANDING_STORAGE_OPTIONS": '{"AWS_REGION": "y"}', "LANDING_ROOT": "s3://u/d"})
    assert s.landing_storage_options == {"AWS_REGION": "y"}
