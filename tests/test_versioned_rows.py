"""Rows from sources that are not files (unit tests, no server): their period read as std reads it, the time the
source changed them, which of two versions is the latest, the registry overlay that moves a dataset off files,
the demo's platform interface, and the comparison of published tables."""

from __future__ import annotations

import datetime as dt
import json
import threading
import urllib.error
import urllib.request

import polars as pl
import pyarrow as pa
import pytest

from assets.ingest import pgoutput
from assets.ingest.database import changed_at_sql, parse_changed_at
from lakehouse.config import ConfigError
from lakehouse.lake import Lake
from lakehouse.provenance import raw_table_schema
from lakehouse.registry import load_registry, registry
from orchestration.compare import compare_published, compare_table
from quality.conform import conform, with_row_period
from quality.rulebook import rules_for
from sourcegen import platform


def test_a_rows_period_is_read_as_std_reads_its_period_column():
    tax = registry().dataset("tax_monthly")
    months = with_row_period(pl.DataFrame({"period": ["2023-05", "202305", " 2023年5月 ", "May", ""]}), tax)
    assert months["_period"].to_list() == ["2023-05", "2023-05", "2023-05", None, None]
    # a large batch reads each distinct text once and maps it: the same periods
    many = with_row_period(pl.DataFrame({"period": ["2023-05", "202305", " 2023年5月 ", "May", ""] * 500}), tax)
    assert many["_period"].to_list() == ["2023-05", "2023-05", "2023-05", None, None] * 500
    telemetry = registry().dataset("ent_telemetry")
    # a reading's day is its day in China Standard Time, whatever offset the device wrote
    days = with_row_period(
        pl.DataFrame({"ts": ["2023-11-30T20:00:00+00:00", "2023-12-01T00:30:00+08:00", "yesterday"]}), telemetry
    )
    assert days["_period"].to_list() == ["2023-12-01", "2023-12-01", None]
    registration = registry().dataset("amr_registration")
    assert with_row_period(pl.DataFrame({"uscc": ["x"]}), registration)["_period"].to_list() == [None]


@pytest.mark.parametrize(
    ("kind", "source_type", "text", "zone", "expected"),
    [
        # a wall-clock time in the source's zone (China Standard Time is UTC+8)
        ("postgres", "timestamp without time zone", "2024-01-15 09:00:00.250000", "Asia/Shanghai", "2024-01-15T01:00:00.250000"),
        ("postgres", "timestamp with time zone", "2024-01-15 09:00:00", "Asia/Shanghai", "2024-01-15T09:00:00"),
        ("postgres", "timestamp without time zone", "2024-01-15 09:00:00.25", "UTC", "2024-01-15T09:00:00.250000"),
        ("postgres", "date", "2024-01-15 00:00:00", "Asia/Shanghai", "2024-01-14T16:00:00"),
        ("mysql", "datetime(6)", "2024-01-15 09:00:00.000000", "Europe/Berlin", "2024-01-15T08:00:00"),
        ("mysql", "timestamp(6)", "1705309200.500000", "Asia/Shanghai", "2024-01-15T09:00:00.500000"),
    ],
)  # fmt: skip
def test_the_time_a_source_changed_a_row_is_read_in_utc(kind, source_type, text, zone, expected):
    sql, form = changed_at_sql(kind, "c", source_type)
    assert sql is not None
    got = pl.select(parse_changed_at(pl.lit(text), form, zone)).item()
    assert got == dt.datetime.fromisoformat(expected).replace(tzinfo=dt.UTC)


def test_a_time_that_is_none_leaves_the_collection_time_to_stand_in():
    got = pl.select(parse_changed_at(pl.lit("infinity"), "local", "Asia/Shanghai")).item()
    assert got is None


def test_a_version_counter_states_no_time():
    assert changed_at_sql("postgres", "c", "bigint") == (None, "")
    assert changed_at_sql("mysql", "c", "int(11)") == (None, "")


def _versions(rows: list[dict]) -> pl.DataFrame:
    ds = registry().dataset("tax_monthly").model_copy(update={"kind": "postgres"})
    schema = raw_table_schema(ds)
    base = {c.name: "" for c in ds.columns} | {
        "uscc": "91331003MA0000074J",
        "taxpayer_name": "台州市黄岩区测试模具有限公司",
        "period": "2023-05",
        "revenue": "100.00",
        "tax_paid": "3.00",
        "amount_unit": "元",
        "filed_on": "2023-06-07",
        "filing_type": "正常",
        "_source_department": "tax",
        "_source_file": "postgres:tax/filings",
        "_file_sha256": "0" * 64,
        "_batch_id": "b1",
        "_ingested_at": dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
        "_period": "2023-05",
        "_change": "upsert",
    }
    frame = pl.DataFrame([base | r for r in rows])
    return frame.select(pl.col(f.name).cast(pl.from_arrow(pa_empty(f)).dtype) for f in schema)


def pa_empty(field):
    import pyarrow as pa

    return pa.table({field.name: pa.array([], field.type)})[field.name]


def test_of_two_source_rows_with_one_business_key_the_one_the_source_changed_last_wins():
    """In one batch a table read unsorted comes in its storage order: the row stored first may be the one changed
    last. The latest change wins, not the later place in the batch."""
    rows = [
        # stored first, changed last: the correction the department entered after the original
        {"_row_number": 1, "_source_key": '["7"]', "filing_type": "更正", "revenue": "120.00",
         "_changed_at": dt.datetime(2023, 6, 9, tzinfo=dt.UTC)},
        {"_row_number": 2, "_source_key": '["3"]', "filing_type": "正常", "revenue": "100.00",
         "_changed_at": dt.datetime(2023, 6, 8, tzinfo=dt.UTC)},
    ]  # fmt: skip
    ds = registry().dataset("tax_monthly").model_copy(update={"kind": "postgres"})
    rules = rules_for("tax_monthly")
    rules = rules.model_copy(update={"rules": [r for r in rules.rules if r.check != "references"]})
    result = conform(ds, rules, _versions(rows))
    assert result.std.height == 1 and result.key_duplicates == 1
    assert result.std["filing_type"].to_list() == ["更正"]
    assert float(result.std["revenue"][0]) == 120.0
    # … and the other way round, the other wins
    rows[0]["_changed_at"], rows[1]["_changed_at"] = rows[1]["_changed_at"], rows[0]["_changed_at"]
    assert conform(ds, rules, _versions(rows)).std["filing_type"].to_list() == ["正常"]


# --- the registry overlay --------------------------------------------------------------------------------------
def test_the_overlay_moves_datasets_and_keeps_the_rest(tmp_path):
    overlay = tmp_path / "live.yaml"
    overlay.write_text(
        "datasets:\n  tax_monthly:\n    kind: postgres\n    database: {connection: x, table: t, "
        "watermark: {column: updated_at, key: [id]}}\n",
        encoding="utf-8",
    )
    reg = load_registry(overlay=overlay)
    tax = reg.dataset("tax_monthly")
    assert tax.kind == "postgres" and tax.database.table == "t" and tax.versioned
    assert (
        tax.columns == registry().dataset("tax_monthly").columns
        and tax.period == registry().dataset("tax_monthly").period
    )
    assert reg.dataset("power_monthly").kind == "file"


def test_an_overlay_moves_the_start_of_an_agreement_and_nothing_else(tmp_path):
    """A deployment holding an earlier history (the bench's 24 months) moves ``since``; the dataset stays
    where it is, and its period keeps the rest of what sources.yaml says."""
    overlay = tmp_path / "history.yaml"
    overlay.write_text("datasets:\n  tax_monthly: {since: '2022-01'}\n  stats_annual: {since: '2022'}\n")
    reg, plain = load_registry(overlay=overlay), registry()
    tax, before = reg.dataset("tax_monthly"), plain.dataset("tax_monthly")
    assert tax.period.since == "2022-01" and before.period.since == "2023-01"
    assert tax.period.model_dump(exclude={"since"}) == before.period.model_dump(exclude={"since"})
    assert tax.model_dump(exclude={"period"}) == before.model_dump(exclude={"period"})
    assert reg.dataset("stats_annual").period.since == "2022"
    assert reg.dataset("power_monthly") == plain.dataset("power_monthly")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("datasets:\n  no_such: {kind: postgres}\n", "datasets.no_such: no such dataset"),
        ("departments: {}\n", "departments"),
        ("datasets:\n  tax_monthly: {kind: postgres, id: other}\n", "datasets.tax_monthly.id"),
        ("datasets:\n  tax_monthly: {kind: postgres, columns: []}\n", "datasets.tax_monthly.columns"),
        ("datasets:\n  tax_monthly: {kind: postgres}\n", "a database source needs `database:`"),
        ("datasets:\n  tax_monthly:\n    kind: postgres\n    database: {connection: x, table: t, time_zone: Mars/Olympus, "
         "watermark: {column: u, key: [id]}}\n", "unknown time zone 'Mars/Olympus'"),
        ("datasets:\n  tax_monthly: {since: '2022'}\n", "since '2022' is not a month period"),
        ("datasets:\n  ent_equipment: {since: '2022'}\n", "datasets.ent_equipment.since: the dataset has no period"),
        ("datasets:\n  tax_monthly: {database: {connection: x, table: t, watermark: {column: u, key: [id]}}}\n",
         "a channel's settings need its `kind:`"),
    ],
)  # fmt: skip
def test_a_wrong_overlay_is_refused_naming_the_file_and_the_key(tmp_path, text, message):
    """An overlay moves a dataset to another channel and says nothing else of it (not its id, not its
    columns); what it says is validated with the dataset it lands on."""
    overlay = tmp_path / "live.yaml"
    overlay.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=str(overlay)) as err:
        load_registry(overlay=overlay)
    assert message in str(err.value)


def test_the_live_overlay_in_the_repository_is_valid():
    from orchestration.cli.demo import LIVE_OVERLAY

    reg = load_registry(overlay=LIVE_OVERLAY)
    assert {d.kind for d in reg.datasets} == {"file", "postgres", "mysql", "api", "stream"}


# --- the platform interface of the live demo -------------------------------------------------------------------
@pytest.fixture
def served(tmp_path):
    items = [{"parcel_id": f"P{i:03d}", "area": str(i)} for i in range(7)]
    (tmp_path / "api__land_parcels.jsonl").write_text("\n".join(json.dumps(i) for i in items), encoding="utf-8")
    srv = platform.server(platform.load(tmp_path), "s3cret")
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}", items
    srv.shutdown()


def _get(url: str, token: str = "s3cret") -> tuple[int, dict]:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return r.status, json.load(r)
    except urllib.error.HTTPError as e:
        return e.code, json.load(e)


def test_the_platform_pages_with_a_cursor_and_refuses_without_the_token(served):
    base, items = served
    seen, cursor = [], ""
    while True:
        status, page = _get(f"{base}/api/land_parcels?limit=3" + (f"&cursor={cursor}" if cursor else ""))
        assert status == 200
        seen += page["data"]
        cursor = page["next_cursor"]
        if not page["has_more"]:
            break
    assert seen == items
    assert _get(f"{base}/api/land_parcels?limit=3", token="wrong")[0] == 401
    assert _get(f"{base}/api/nothing?limit=3")[0] == 404
    assert _get(f"{base}/api/land_parcels?limit=3&cursor=!!")[0] == 400
    assert _get(f"{base}/api/land_parcels?limit=0")[0] == 400


# --- comparing published tables --------------------------------------------------------------------------------
def test_a_comparison_finds_a_changed_value_a_repeated_row_and_a_missing_table(tmp_path):
    a = pl.DataFrame({"k": ["a", "b", "c"], "v": [1.0, 2.0, None]})
    assert compare_table(a, a.select("v", "k"), "t").equal  # column order is not content
    changed = compare_table(a, a.with_columns(pl.when(pl.col("k") == "b").then(2.5).otherwise("v").alias("v")), "t")
    assert (changed.only_left, changed.only_right) == (1, 1) and not changed.equal
    repeated = compare_table(a, pl.concat([a, a.head(1)]), "t")
    assert (repeated.only_left, repeated.only_right) == (1, 2)  # ('a', 1.0) once against twice
    assert compare_table(a, a.rename({"v": "w"}), "t").problem.startswith("columns differ")
    assert compare_table(a, a.with_columns(pl.col("v").cast(pl.Float32)), "t").problem.startswith("types differ")
    left, right = Lake(str(tmp_path / "a")), Lake(str(tmp_path / "b"))
    left.overwrite("publish", "t", a.to_arrow())
    left.overwrite("publish", "u", a.to_arrow())
    right.overwrite("publish", "t", a.to_arrow())
    report = compare_published(left, right)
    assert not report.equal and [t.name for t in report.tables if not t.equal] == ["u"]
    right.overwrite("publish", "u", a.to_arrow())
    assert compare_published(left, right).equal


# --- the change log's INSERTs, decoded together ------------------------------------------------------------------
def _insert(oid: int, values: list[str | None]) -> bytes:
    out = b"I" + oid.to_bytes(4, "big") + b"N" + len(values).to_bytes(2, "big")
    for v in values:
        out += b"n" if v is None else b"t" + len(v.encode()).to_bytes(4, "big") + v.encode()
    return out


def _copy(payloads: list[bytes]) -> bytes:
    body = b"".join(b"\x00\x01" + len(p).to_bytes(4, "big") + p for p in payloads)
    return pgoutput.COPY_SIGNATURE + b"\x00" * 8 + body + b"\xff\xff"


def test_inserts_decoded_together_equal_the_one_by_one_decoder():
    columns = ("id", "name", "note")
    rows = [["1", "台州市黄岩区模具厂", None], ["22", "", "a\"quote'\n"], ["333", "x" * 300, "€"]] * 50
    payloads = [_insert(16384, r) for r in rows]
    buf = _copy(payloads)
    starts, lengths = pgoutput.copy_frames(buf)
    assert len(starts) == 150 and [buf[s : s + n] for s, n in zip(starts, lengths, strict=True)] == payloads
    table = pgoutput.decode_inserts(buf, starts, columns)
    relation = pgoutput.Relation(16384, "public", "t", columns, ("id",), (20, 25, 25))
    one_by_one = [pgoutput.decode(p, {16384: relation}).new for p in payloads]
    assert table.to_pylist() == one_by_one


def test_an_insert_not_of_the_plain_shape_is_left_to_the_one_by_one_decoder():
    columns = ("id", "name")
    plain = _insert(1, ["1", "a"])
    fewer = _insert(1, ["2"])  # a tuple of another layout
    buf = _copy([plain, fewer])
    assert pgoutput.decode_inserts(buf, pgoutput.copy_frames(buf)[0], columns) is None
    bad = _copy(
        [b"I" + (1).to_bytes(4, "big") + b"N" + (1).to_bytes(2, "big") + b"t" + (2).to_bytes(4, "big") + b"\xff\xfe"]
    )
    with pytest.raises(pa.ArrowInvalid):  # text that is not UTF-8 is an error, never landed as garbage
        pgoutput.decode_inserts(bad, pgoutput.copy_frames(bad)[0], ("id",))
