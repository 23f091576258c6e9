"""Collection you can trust (issue 14): every delivered file lands exactly once, correctly, or is refused
with a reason. One test per class of fault, the bad input built in the test."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import polars as pl
import pyarrow as pa
import pytest

from assets.ingest.collector import Collector, collect_history, landed_fingerprints, recorded_fingerprints
from lakehouse.lake import Lake
from lakehouse.provenance import raw_table_schema
from lakehouse.registry import registry
from quality.conform import conform
from quality.rulebook import rules_for
from sensors.landing import arrivals, scan

USCC = "91331003MA2AAAAA7K"  # valid (GB 32100)
TAX = registry().dataset("tax_monthly")
HEADER = ",".join(TAX.source_headers)


def raw_rows(ds, rows: list[dict], file: str, ingested: dt.datetime) -> pl.DataFrame:
    """Delivered rows of one file as the raw table holds them: text values and provenance."""
    n = len(rows)
    data = {f.name: [r.get(f.name) for r in rows] for f in raw_table_schema(ds)}
    data.update(
        _source_department=[ds.department] * n,
        _source_file=[file] * n,
        _file_sha256=[file.ljust(64, "0")] * n,
        _row_number=list(range(1, n + 1)),
        _batch_id=[file] * n,
        _ingested_at=[ingested] * n,
        _period=[None] * n,
    )
    return pl.from_arrow(pa.Table.from_pydict(data, schema=raw_table_schema(ds)))


def _filing(revenue: str, kind: str = "正常") -> dict:
    return dict(
        uscc=USCC,
        taxpayer_name="甲公司",
        period="2024-01",
        filing_type=kind,
        revenue=revenue,
        tax_paid="1",
        amount_unit="元",
        filed_on="2024-02-10",
    )


def test_a_second_correction_back_to_the_original_value_wins():
    """Delivery 1: revenue 100; delivery 2 corrects it to 200; delivery 3 corrects it back to 100 — the very
    values of delivery 1. The latest delivery wins: std says 100."""
    day = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    raw = pl.concat(
        [
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1.csv", day),
            raw_rows(TAX, [_filing("200", "更正")], "tax/monthly/d2.csv", day + dt.timedelta(days=1)),
            raw_rows(TAX, [_filing("100")], "tax/monthly/d3.csv", day + dt.timedelta(days=2)),
        ]
    )
    out = conform(TAX, rules_for(TAX.id), raw, {"amr_registration.uscc": pl.Series([USCC])})
    assert out.std["revenue"].to_list() == [100.0]
    assert (out.exact_duplicates, out.key_duplicates, out.rows_out) == (1, 1, 1)
    superseded = out.duplicates.filter(pl.col("kind") == "superseded")["_source_file"].to_list()
    assert superseded == ["tax/monthly/d2.csv"]  # the first correction is what was superseded
    # and a correction that stays corrected still wins over the original delivered again before it
    raw = pl.concat(
        [
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1.csv", day),
            raw_rows(TAX, [_filing("100")], "tax/monthly/d1-again.csv", day + dt.timedelta(days=1)),
            raw_rows(TAX, [_filing("200", "更正")], "tax/monthly/d2.csv", day + dt.timedelta(days=2)),
        ]
    )
    out = conform(TAX, rules_for(TAX.id), raw, {"amr_registration.uscc": pl.Series([USCC])})
    assert out.std["revenue"].to_list() == [200.0]


def _tax_file(rows: list[str]) -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode("utf-8")


def _row(revenue: str, kind: str = "正常") -> str:
    f = _filing(revenue, kind)
    return ",".join(f[c.name] for c in TAX.columns)


def test_a_file_rewritten_in_place_with_its_size_and_mtime_restored_is_collected_again(tmp_path):
    """cp -p / rsync -t: same name, same size, same mtime, other content. Neither the collector nor the
    sensor may take it for the file already landed."""
    landing, lake = tmp_path / "landing", Lake(str(tmp_path / "lake"))
    folder = landing / TAX.landing
    folder.mkdir(parents=True)
    path = folder / "税务_月度申报_2024-01.csv"
    path.write_bytes(_tax_file([_row("100")]))
    stat = path.stat()
    first = Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run()
    assert [o.status for o in first.outcomes] == ["landed"]
    cursor = arrivals(None, scan(TAX, landing)).cursor  # the sensor saw the folder after that
    assert Collector(TAX, lake, landing, tmp_path / "rejected", "b2").run().outcomes[0].status == "skipped"

    corrected = _tax_file([_row("900")])  # the same number of bytes
    assert len(corrected) == stat.st_size
    path.write_bytes(corrected)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # mtime restored, as cp -p does
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (stat.st_size, stat.st_mtime_ns)

    collected = landed_fingerprints(collect_history(lake, TAX.id))
    assert arrivals(cursor, scan(TAX, landing), collected).files == ["tax/monthly/税务_月度申报_2024-01.csv"]
    again = Collector(TAX, lake, landing, tmp_path / "rejected", "b3").run()
    assert [o.status for o in again.outcomes] == ["landed"]
    revenues = lake.read("raw", TAX.id).sort("_batch_id")["revenue"].to_list()
    assert revenues == ["100", "900"]


def test_a_copy_of_a_landed_file_is_recognised_by_its_content(tmp_path):
    """The other way round: a file whose stat changed (copied, touched) but whose bytes did not is hashed
    and skipped as already landed — the fingerprint only ever saves reading, never decides alone."""
    landing, lake = tmp_path / "landing", Lake(str(tmp_path / "lake"))
    (landing / TAX.landing).mkdir(parents=True)
    path = landing / TAX.landing / "税务_月度申报_2024-01.csv"
    path.write_bytes(_tax_file([_row("100")]))
    Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run()
    copy = path.with_name("copy.tmp")
    shutil.copy(path, copy)
    copy.replace(path)  # a new inode and times, the same bytes
    out = Collector(TAX, lake, landing, tmp_path / "rejected", "b2").run()
    assert [o.status for o in out.outcomes] == ["skipped"] and lake.row_count("raw", TAX.id) == 1


def test_every_typed_column_of_every_dataset_refuses_an_unreadable_value_with_the_delivered_text():
    """No typed column turns a delivered value it cannot read into a silent NULL: each has a parse rule
    (declared in its rule book, or given from the registry), and the finding keeps the delivered text."""
    bad = "约三十万(待核)"
    day = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    checked = 0
    for ds in registry().datasets:
        rules = rules_for(ds.id)
        refs = {f"{r.table}.{r.table_column}": pl.Series([], dtype=pl.String) for r in rules.rules if r.table}
        for c in ds.columns:
            if c.type not in ("date", "month", "timestamp", "decimal", "integer"):
                continue
            raw = raw_rows(ds, [{c.name: bad}], f"{ds.landing}/f.csv", day)
            out = conform(ds, rules, raw, refs)
            parse_rules = [r for r in rules.rules if r.check == "parsed" and r.column == c.name]
            assert len(parse_rules) == 1, (ds.id, c.name)
            found = out.findings.filter(pl.col("rule_id") == parse_rules[0].id)
            assert found["value"].to_list() == [bad], (ds.id, c.name)
            assert out.std.height == 0 or parse_rules[0].severity == "WARN", (ds.id, c.name)
            checked += 1
    assert checked >= 30


def _folder(tmp_path):
    landing = tmp_path / "landing"
    (landing / TAX.landing).mkdir(parents=True)
    return landing, landing / TAX.landing, Lake(str(tmp_path / "lake"))


def _log(lake) -> pl.DataFrame:
    return lake.read("ops", "collect_log").sort("file")


def test_a_link_is_never_followed_and_nothing_of_its_target_leaks(tmp_path):
    landing, folder, lake = _folder(tmp_path)
    secret = tmp_path / "secret.csv"
    secret.write_text(HEADER + "\n" + "TOPSECRET-330102199001011234," * 8 + "\n", encoding="utf-8")
    (folder / "税务_月度申报_2024-01.csv").symlink_to(secret)
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "税务_月度申报_2024-02.csv").write_bytes(_tax_file([_row("100")]))
    (folder / "more").symlink_to(outside, target_is_directory=True)
    result = Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run()
    assert sorted((o.file, o.status) for o in result.outcomes) == [
        ("tax/monthly/more", "rejected"),
        ("tax/monthly/税务_月度申报_2024-01.csv", "rejected"),
    ]
    assert lake.table("raw", TAX.id) is None or lake.row_count("raw", TAX.id) == 0
    log = _log(lake)
    assert set(log["reason_code"]) == {"symlink"} and log["sha256"].is_null().all()
    recorded = log.write_csv() + "".join(p.read_text() for p in (tmp_path / "rejected").rglob("*.reason.json"))
    assert "TOPSECRET" not in recorded and "3301021990" not in recorded
    assert secret.read_text(encoding="utf-8").startswith(HEADER)  # the target is untouched, and stays put
    assert not os.path.lexists(folder / "税务_月度申报_2024-01.csv")  # the link itself moved out


def test_every_entry_in_landing_gets_exactly_one_recorded_outcome(tmp_path):
    landing, folder, lake = _folder(tmp_path)
    (folder / "税务_月度申报_2024-01.CSV").write_bytes(_tax_file([_row("100")]))  # upper-case extension
    (folder / "税务_月度申报_2024-02.xls").write_bytes(b"\xd0\xcf\x11\xe0 old binary excel")
    (folder / ".税务_月度申报_2024-03.csv").write_bytes(_tax_file([_row("1")]))
    (folder / "税务_月度申报_2024-04.csv.part").write_bytes(_tax_file([_row("1")])[:20])
    (folder / "2024").mkdir()
    (folder / "2024" / "税务_月度申报_2024-05.csv").write_bytes(_tax_file([_row("1")]))
    os.mkfifo(folder / "pipe.csv")
    first = Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run()
    outcome = {o.file.rsplit("/", 1)[-1]: (o.status, o.rejection.code if o.rejection else None) for o in first.outcomes}
    assert outcome == {
        "税务_月度申报_2024-01.CSV": ("landed", None),
        "税务_月度申报_2024-02.xls": ("ignored", "pattern"),
        ".税务_月度申报_2024-03.csv": ("ignored", "hidden"),
        "税务_月度申报_2024-04.csv.part": ("waiting", "uploading"),
        "税务_月度申报_2024-05.csv": ("ignored", "subfolder"),
        "pipe.csv": ("ignored", "not_regular"),
    }
    assert _log(lake).height == 6  # each recorded, with its reason
    again = Collector(TAX, lake, landing, tmp_path / "rejected", "b2").run()
    assert all(o.status == "skipped" for o in again.outcomes) and _log(lake).height == 6  # not twice
    # the sensor: what a run would record is known, the upload in progress does not count…
    history = collect_history(lake, TAX.id)
    collected = landed_fingerprints(history) | {(f, *fp) for f, _, *fp in recorded_fingerprints(history)}
    assert arrivals(None, scan(TAX, landing), collected).files == []
    # …until it is renamed to its final name, when it is collected
    (folder / "税务_月度申报_2024-04.csv.part").write_bytes(_tax_file([_row("400")]))
    (folder / "税务_月度申报_2024-04.csv.part").rename(folder / "税务_月度申报_2024-04.csv")
    assert arrivals(None, scan(TAX, landing), collected).files == ["tax/monthly/税务_月度申报_2024-04.csv"]
    done = Collector(TAX, lake, landing, tmp_path / "rejected", "b3").run()
    assert [o.status for o in done.outcomes if o.file.endswith("2024-04.csv")] == ["landed"]


def test_any_file_name_the_file_system_allows_is_handled(tmp_path):
    """A GBK-encoded name (unzipped from a Windows archive) lands under its readable name; a name of 250
    bytes that is refused still gets its reason record."""
    landing, folder, lake = _folder(tmp_path)
    gbk = os.fsdecode(folder) + "/" + os.fsdecode("税务_月度申报_2024-01.csv".encode("gbk"))
    Path(gbk).write_bytes(_tax_file([_row("100")]))
    long_name = "税" * 80 + "_2024-02.csv"  # 252 bytes in UTF-8
    assert len(long_name.encode()) > 240
    (folder / long_name).write_bytes(b"not,the,header\n1,2,3\n")
    assert set(scan(TAX, landing)) == {"tax/monthly/税务_月度申报_2024-01.csv", f"tax/monthly/{long_name}"}
    result = Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run()
    status = {o.file: o.status for o in result.outcomes}
    assert status == {"tax/monthly/税务_月度申报_2024-01.csv": "landed", f"tax/monthly/{long_name}": "rejected"}
    assert lake.read("raw", TAX.id)["_source_file"].to_list() == ["tax/monthly/税务_月度申报_2024-01.csv"]
    reasons = list((tmp_path / "rejected").rglob("*.reason.json"))
    assert len(reasons) == 1 and long_name in reasons[0].read_text(encoding="utf-8")


def test_a_crash_between_a_files_commit_and_the_log_never_lands_it_twice(tmp_path, monkeypatch):
    """The collect log is written once per run; a run that dies after committing files (and after moving
    a bad one to the rejected area) leaves no log row. The next run records those outcomes, lands nothing
    twice and refuses nothing twice."""
    landing, folder, lake = _folder(tmp_path)
    for month in ("01", "02"):
        rows = [_row(f"1{month}"), _row(f"2{month}", "更正")]
        (folder / f"税务_月度申报_2024-{month}.csv").write_bytes(_tax_file(rows))
    (folder / "税务_月度申报_2024-03.csv").write_bytes(b"not,the,header\n1,2,3\n")

    def die(self, result):  # the process is killed where the log would be written
        raise KeyboardInterrupt("kill -9")

    monkeypatch.setattr(Collector, "_log", die)
    with pytest.raises(KeyboardInterrupt):
        Collector(TAX, lake, landing, tmp_path / "rejected", "crashed").run()
    monkeypatch.undo()
    assert lake.row_count("raw", TAX.id) == 4 and lake.table("ops", "collect_log") is None

    rerun = Collector(TAX, lake, landing, tmp_path / "rejected", "rerun").run()
    assert lake.row_count("raw", TAX.id) == 4  # nothing landed twice
    log = _log(lake)
    landed = log.filter(pl.col("status") == "landed")
    assert landed.height == 2 and landed["rows_landed"].to_list() == [2, 2]
    assert landed["detail"].str.contains("before a crash").all()
    rejected = log.filter(pl.col("status") == "rejected")
    assert rejected.select("file", "batch_id").rows() == [("tax/monthly/税务_月度申报_2024-03.csv", "crashed")]
    assert {o.status for o in rerun.outcomes} == {"landed", "rejected"}
    # and a third run has nothing more to say
    Collector(TAX, lake, landing, tmp_path / "rejected", "third").run()
    assert _log(lake).height == 3 and lake.row_count("raw", TAX.id) == 4


@pytest.mark.integration  # real processes killed with SIGKILL
@pytest.mark.parametrize("trial", range(4))
def test_collection_killed_at_a_random_point_lands_every_file_exactly_once_after_a_rerun(generated, tmp_path, trial):
    import random
    import signal
    import subprocess
    import sys
    import time

    landing = tmp_path / "landing"
    shutil.copytree(generated / "landing" / TAX.landing, landing / TAX.landing)
    script = (
        "import sys\nfrom pathlib import Path\nfrom assets.ingest.collector import Collector\n"
        "from lakehouse.lake import Lake\nfrom lakehouse.registry import registry\n"
        f"Collector(registry().dataset('{TAX.id}'), Lake(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]), 'killed').run()\n"
    )
    lake_root, rejected = tmp_path / "lake", tmp_path / "rejected"
    proc = subprocess.Popen([sys.executable, "-c", script, str(lake_root), str(landing), str(rejected)])
    time.sleep(random.Random(trial).uniform(0.8, 3.5))  # start-up is ~1 s; collecting the files a few more
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    lake = Lake(str(lake_root))
    Collector(TAX, lake, landing, rejected, "rerun").run()
    raw = lake.read("raw", TAX.id)
    log = _log(lake)
    for path in sorted((landing / TAX.landing).iterdir()):
        name = f"{TAX.landing}/{path.name}"
        rows = len(path.read_text(encoding="utf-8-sig", errors="replace").splitlines()) - 1
        outcomes = log.filter(pl.col("file") == name)["status"].to_list()
        assert outcomes == ["landed"], (name, outcomes)
        assert raw.filter(pl.col("_source_file") == name).height <= rows  # landed once (blank lines aside)
        assert raw.filter(pl.col("_source_file") == name)["_row_number"].is_unique().all()
    assert raw.select("_file_sha256", "_row_number").is_unique().all()  # no file's row twice, whatever its name
    rejected_files = log.filter(pl.col("status") == "rejected")
    assert rejected_files["file"].is_unique().all()


EQUIP = registry().dataset("ent_equipment")
DEVICE = {
    "device_id": "DEV1",
    "uscc": USCC,
    "device_name": "注塑机",
    "model": "HX-180",
    "rated_power_kw": "180",
    "commissioned_on": "2019-05-01",
}


def _device_line(**change) -> str:
    import json

    return json.dumps({**DEVICE, **change}, ensure_ascii=False)


def test_a_utf8_file_with_one_line_in_another_encoding_is_refused_at_that_byte(tmp_path):
    landing, lake = tmp_path / "landing", Lake(str(tmp_path / "lake"))
    folder = landing / EQUIP.landing
    folder.mkdir(parents=True)
    good = (_device_line() + "\n").encode("utf-8")
    gbk = (_device_line(device_id="DEV2", device_name="电火花成型机") + "\n").encode("gbk")
    (folder / "mixed.jsonl").write_bytes(good + gbk + good.replace(b"DEV1", b"DEV3"))
    out = Collector(EQUIP, lake, landing, tmp_path / "rejected", "b1").run().outcomes[0]
    assert (out.status, out.rejection.code) == ("rejected", "encoding_mixed")
    first_bad = len(good) + gbk.index("电".encode("gbk"))
    assert out.rejection.position == f"byte {first_bad}"
    assert lake.row_count("raw", EQUIP.id) == 0


def test_a_gbk_file_that_happens_to_be_valid_utf8_is_not_read_as_latin_letters(tmp_path):
    """平磨 in GBK is C6 BD C4 A5 — valid UTF-8 for ƽĥ. Refused as ambiguous, never landed as ƽĥ."""
    landing, lake = tmp_path / "landing", Lake(str(tmp_path / "lake"))
    folder = landing / EQUIP.landing
    folder.mkdir(parents=True)
    data = (_device_line(device_name="平磨") + "\n").encode("gbk")
    assert data.decode("utf-8").count("ƽĥ") == 1
    (folder / "short.jsonl").write_bytes(data)
    out = Collector(EQUIP, lake, landing, tmp_path / "rejected", "b1").run().outcomes[0]
    assert (out.status, out.rejection.code) == ("rejected", "encoding_ambiguous")
    # a UTF-8 file with Chinese in it and a sign like ² is plainly UTF-8
    (folder / "plain.jsonl").write_bytes((_device_line(model="5m²") + "\n").encode("utf-8"))
    landed = Collector(EQUIP, lake, landing, tmp_path / "rejected", "b2").run().outcomes
    assert [(o.file.rsplit("/", 1)[-1], o.status) for o in landed] == [("plain.jsonl", "landed")]


def test_gb18030_2022_characters_land_as_themselves_and_private_use_is_a_finding(tmp_path):
    """FE51 is 𠂇 (U+20087) in GB 18030-2022 (Python's 2005 table: private use). A code that is private use
    in every edition (AAA1, user-defined area) lands as delivered, and std flags it."""
    landing, lake = tmp_path / "landing", Lake(str(tmp_path / "lake"))
    folder = landing / TAX.landing
    folder.mkdir(parents=True)
    new = "台州".encode("gb18030") + bytes.fromhex("fe51") + "模具有限公司".encode("gb18030")
    pua = "台州".encode("gb18030") + bytes.fromhex("aaa1") + "塑料厂".encode("gb18030")
    rows = [
        _row("100").replace("甲公司", "{name}"),
        _row("200").replace("甲公司", "{name}").replace("2024-01", "2024-02"),
    ]
    text = HEADER.encode("gb18030") + b"\n"
    text += rows[0].encode("gb18030").replace(b"{name}", new) + b"\n"
    text += rows[1].encode("gb18030").replace(b"{name}", pua) + b"\n"
    (folder / "税务_月度申报_2024-01.csv").write_bytes(text)
    out = Collector(TAX, lake, landing, tmp_path / "rejected", "b1").run().outcomes[0]
    assert (out.status, out.encoding) == ("landed", "gb18030-2022")
    names = lake.read("raw", TAX.id).sort("period")["taxpayer_name"].to_list()
    assert names[0] == "台州\U00020087模具有限公司"
    assert names[1] == "台州" + bytes.fromhex("aaa1").decode("gb18030") + "塑料厂"
    assert "\ue000" <= bytes.fromhex("aaa1").decode("gb18030") <= "\uf8ff"  # private use, as delivered
    result = conform(TAX, rules_for(TAX.id), lake.read("raw", TAX.id), {"amr_registration.uscc": pl.Series([USCC])})
    flagged = result.findings.filter(pl.col("rule_id") == "taxpayer_name_private_use")
    assert flagged.select("row_number", "action").rows() == [(2, "flagged")]
    assert result.rows_out == 2  # a flag, not a quarantine


def test_a_file_still_being_written_waits_until_it_settles(tmp_path):
    """A writer that does not use a temporary name: a file modified within the settle time is neither
    collected half-done nor moved to the rejected area; once it stands still, it lands whole."""
    import time

    landing, folder, lake = _folder(tmp_path)
    path = folder / "税务_月度申报_2024-01.csv"
    path.write_bytes(_tax_file([_row("100")])[:30])  # the writer is half-way
    first = Collector(TAX, lake, landing, tmp_path / "rejected", "b1", settle_seconds=30).run()
    assert [(o.status, o.rejection.code) for o in first.outcomes] == [("waiting", "settling")]
    assert path.exists() and not (tmp_path / "rejected").exists()
    assert scan(TAX, landing, settle_seconds=30) == {}  # the sensor does not count it yet
    path.write_bytes(_tax_file([_row("100")]))  # done
    past = time.time() - 60
    os.utime(path, (past, past))  # …and a minute has gone by
    assert list(scan(TAX, landing, settle_seconds=30)) == ["tax/monthly/税务_月度申报_2024-01.csv"]
    done = Collector(TAX, lake, landing, tmp_path / "rejected", "b2", settle_seconds=30).run()
    assert [o.status for o in done.outcomes] == ["landed"] and lake.row_count("raw", TAX.id) == 1


def test_the_read_ahead_keeps_order_hands_over_errors_in_place_and_stops_when_abandoned():
    import threading

    from assets.ingest.collector import prefetched

    assert list(prefetched(iter(range(50)))) == list(range(50))

    def failing():
        yield from range(3)
        raise ValueError("bad block")

    seen = []
    with pytest.raises(ValueError, match="bad block"):
        for item in prefetched(failing()):
            seen.append(item)
    assert seen == [0, 1, 2]  # everything before the fault, nothing after

    produced = []

    def endless():
        n = 0
        while True:
            produced.append(n)
            yield n
            n += 1

    stream = prefetched(endless(), depth=2)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    stream.close()  # the consumer (the Delta writer) gave up
    assert not any(t.name == "reader-prefetch" and t.is_alive() for t in threading.enumerate())
    assert len(produced) <= 3 + 2 + 1  # read ahead by at most the queue depth


@pytest.mark.parametrize("value", ["税务_月度申报_2022-01.csv", "plain.csv", "", "𠀀 a supplementary-plane name", None])
@pytest.mark.parametrize("n", [0, 1, 3, 250_000])
def test_a_provenance_constant_is_the_same_array_pyarrow_would_repeat(value, n):
    from assets.ingest.collector import repeated_text

    built = repeated_text(value, n)
    built.validate(full=True)  # offsets and UTF-8 checked, not just compared
    assert built.type == pa.string() and len(built) == n
    assert built.equals(pa.repeat(pa.scalar(value, pa.string()), n))
    if n and value is not None:
        assert built[n - 1].as_py() == value
