"""Collection you can trust (issue 14): every delivered file lands exactly once, correctly, or is refused
with a reason. One test per class of fault, the bad input built in the test."""

from __future__ import annotations

import datetime as dt
import os
import shutil

import polars as pl
import pyarrow as pa

from assets.ingest.collector import Collector, collect_history, landed_fingerprints
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
