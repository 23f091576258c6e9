"""Relational sources by watermark, on the machine's shared PostgreSQL (127.0.0.1:5432) and MariaDB (127.0.0.1:3306):
every source row lands once — across batches that end among rows of one timestamp, updates, crashes between
the Delta commit and the log, or before the commit — rows per period reconcile source against raw, and a
schema change at the source is a refusal that loses nothing until it is registered."""

from __future__ import annotations

import datetime as dt
import os
import stat
import uuid

import dagster as dg
import polars as pl
import pytest

from assets.ingest import database
from assets.ingest.collector import collect_history
from assets.ingest.database import DatabaseCollector, Position, reconcile
from lakehouse.connections import SourceNotConfigured, redacted, url_of
from lakehouse.lake import Lake
from lakehouse.registry import Dataset, registry
from orchestration import keys

pytestmark = pytest.mark.integration  # needs the database servers

URLS = {"postgres": "postgresql://postgres@127.0.0.1:5432/test", "mysql": "mysql://root@127.0.0.1:3306/test"}
T0 = dt.datetime(2024, 1, 15, 9, 0, 0)


def code(i: int) -> str:
    """A valid unified social credit code (GB 32100) for test firm ``i``."""
    from sourcegen.codes import make_uscc

    return make_uscc("9", "1", "331003", f"MA{i:06d}")


class Source:
    """A department's table of tax filings in a real database, named uniquely for the test."""

    def __init__(self, kind: str):
        self.kind, self.url = kind, URLS[kind]
        self.table = f"tax_filings_{uuid.uuid4().hex[:10]}"
        if kind == "postgres":
            import psycopg2

            self.con = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="test")
            self.con.autocommit = True
            money, stamp = "numeric(18,2)", "timestamp(6)"
        else:
            import pymysql

            self.con = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)
            money, stamp = "decimal(18,2)", "datetime(6)"
        self.run(
            f"create table {self.table} (id bigint primary key, uscc varchar(18), taxpayer_name varchar(100), "
            f"period varchar(7), filing_type varchar(8), revenue {money}, tax_paid {money}, amount_unit varchar(4), "
            f"filed_on date, updated_at {stamp} not null)"
        )

    def run(self, sql: str, rows: list[tuple] | None = None) -> list[tuple]:
        with self.con.cursor() as cur:
            if rows is not None:
                cur.executemany(sql, rows)
                return []
            cur.execute(sql)
            return list(cur.fetchall()) if cur.description else []

    def insert(self, ids: range, at: dt.datetime) -> None:
        rows = [
            (
                i,
                code(i),
                f"台州市测试{i}模具有限公司",
                f"2023-{i % 12 + 1:02d}",
                "正常",
                f"{1000 + i}.50",
                f"{30 + i % 7}.25",
                "元",
                dt.date(2024, 1, 10),
                at,
            )
            for i in ids
        ]
        columns = "id, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, amount_unit, filed_on, updated_at"
        self.run(f"insert into {self.table} ({columns}) values ({', '.join(['%s'] * 10)})", rows)

    def dataset(self, **database_options) -> Dataset:
        base = registry().dataset("tax_monthly").model_dump()
        return Dataset.model_validate(
            {
                **base,
                "kind": self.kind,
                "database": {
                    "connection": "test_src",
                    "table": self.table,
                    "watermark": {"column": "updated_at", "key": ["id"]},
                    "lag_seconds": 0,
                    "batch_rows": 1000,
                    **database_options,
                },
            }
        )

    def close(self) -> None:
        self.run(f"drop table if exists {self.table}")
        self.con.close()


@pytest.fixture(params=["postgres", "mysql"])
def source(request):
    s = Source(request.param)
    yield s
    s.close()


def collect(ds: Dataset, lake: Lake, n: int = 0):
    environ = {"SHUCANG_SOURCE_TEST_SRC": URLS[ds.kind]}
    return DatabaseCollector(ds, lake, f"batch-{n}", f"run-{n}", dt.datetime.now(dt.UTC), environ).run()


def raw(lake: Lake, ds: Dataset) -> pl.DataFrame:
    return lake.read("raw", ds.id)


def test_every_row_lands_once_across_equal_timestamps_updates_and_reruns(source, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    # 2,500 rows in three update times: the first batch of 1,000 ends inside the first 1,200 of one timestamp
    source.insert(range(1, 1201), T0)
    source.insert(range(1201, 2001), T0 + dt.timedelta(seconds=1))
    source.insert(range(2001, 2501), T0 + dt.timedelta(seconds=2))
    ds = source.dataset()
    first = collect(ds, lake, 1)
    assert [o.rows_landed for o in first.landed] == [1000, 1000, 500] and not first.rejected
    table = raw(lake, ds)
    assert table.height == 2500 and table["_source_key"].n_unique() == 2500
    assert table.filter(pl.col("_source_key") == '["7"]')["revenue"].item() == "1007.50"  # as the source prints it
    assert set(table["_period"]) == {f"2023-{m:02d}" for m in range(1, 13)}
    # the position is the last row's, in the commit that landed it
    assert Position.from_json(lake.commits("raw", ds.id, 1)[0]["source_position"]).key == ("2500",)

    # rows committed later with the very timestamp of the position (higher keys), and updates of old rows
    source.insert(range(2501, 2508), T0 + dt.timedelta(seconds=2))
    source.run(
        f"update {source.table} set revenue = revenue + 1, updated_at = %s where id between 5 and 14"
        % "'2024-01-15 09:00:03'"
    )
    second = collect(ds, lake, 2)
    assert second.rows_landed == 17
    table = raw(lake, ds)
    assert table.height == 2517 and table["_source_key"].n_unique() == 2507
    latest = table.sort("_ingested_at", "_row_number").unique("_source_key", keep="last")
    assert latest.filter(pl.col("_source_key") == '["7"]')["revenue"].item() == "1008.50"
    # rows per period: the source's against raw's latest version of each source row
    check = reconcile(DatabaseCollector(ds, lake, "check", environ={"SHUCANG_SOURCE_TEST_SRC": source.url}))
    assert check.height == 12 and (check["source_rows"] == check["raw_rows"]).all()
    assert check["source_rows"].sum() == 2507

    # nothing new: nothing lands, the table does not move
    version = lake.table("raw", ds.id).version()
    third = collect(ds, lake, 3)
    assert not third.landed and lake.table("raw", ds.id).version() == version
    # a row stamped just now waits out the lag (a transaction still open could commit behind it)
    source.run(
        f"insert into {source.table} select 9999, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, "
        f"amount_unit, filed_on, {'now()' if source.kind == 'postgres' else 'now(6)'} from {source.table} where id = 1"
    )
    assert not collect(source.dataset(lag_seconds=3600), lake, 4).landed
    assert collect(ds, lake, 5).rows_landed == 1
    log = collect_history(lake, ds.id)
    assert log.filter(pl.col("status") == "landed").height == 5  # one log row per landed batch


def test_a_crash_before_or_after_the_commit_neither_loses_nor_repeats_a_row(source, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    source.insert(range(1, 2501), T0)  # one timestamp: the positions are keys alone
    ds = source.dataset()
    real_append, appended = Lake.append, []

    def dies_after_the_second_commit(*args, **kwargs):
        version = real_append(*args, **kwargs)
        appended.append(version)
        if len(appended) == 2:
            raise SystemExit("killed after the Delta commit, before the next batch and the log")
        return version

    monkeypatch.setattr(Lake, "append", dies_after_the_second_commit)
    with pytest.raises(SystemExit):
        collect(ds, lake, 1)
    monkeypatch.setattr(Lake, "append", real_append)
    assert raw(lake, ds).height == 2000 and collect_history(lake, ds.id).is_empty()

    def dies_in_the_commit(*args, **kwargs):
        raise OSError("storage went away mid-commit")

    monkeypatch.setattr(Lake, "append", dies_in_the_commit)
    with pytest.raises(OSError):
        collect(ds, lake, 2)
    monkeypatch.setattr(Lake, "append", real_append)
    assert raw(lake, ds).height == 2000

    result = collect(ds, lake, 3)
    notes = [o.note for o in result.landed if o.note]
    assert len(notes) == 2 and all("before a crash" in n for n in notes)  # the two committed batches, logged now
    assert sum(o.rows_landed for o in result.landed if not o.note) == 500
    table = raw(lake, ds)
    assert table.height == 2500 and table["_source_key"].n_unique() == 2500
    check = reconcile(DatabaseCollector(ds, lake, "check", environ={"SHUCANG_SOURCE_TEST_SRC": source.url}))
    assert (check["source_rows"] == check["raw_rows"]).all() and check["raw_rows"].sum() == 2500


def test_a_schema_change_at_the_source_is_refused_until_registered_and_loses_nothing(source, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    source.insert(range(1, 101), T0)
    ds = source.dataset()
    assert collect(ds, lake, 1).rows_landed == 100
    version = lake.table("raw", ds.id).version()

    source.run(f"alter table {source.table} add column remark varchar(50)")
    source.run(
        f"insert into {source.table} (id, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, amount_unit, "
        f"filed_on, updated_at, remark) values (101, '91331003MA0000101X', '新增', '2023-02', '正常', 1.00, 0.10, "
        "'元', '2024-01-10', '2024-01-15 10:00:00', '备注')"
    )
    added = collect(ds, lake, 2)
    (refused,) = added.rejected
    assert refused.rejection.code == "unexpected_columns" and "remark" in refused.rejection.detail
    assert "ignore_columns" in refused.rejection.detail and lake.table("raw", ds.id).version() == version
    logged = collect_history(lake, ds.id).filter(pl.col("status") == "rejected")
    assert logged.height == 1
    # registered: the column is ignored, and the waiting row lands
    ds = source.dataset(ignore_columns=["remark"])
    assert collect(ds, lake, 3).rows_landed == 1

    retype = (
        f"alter table {source.table} alter column revenue type text"
        if source.kind == "postgres"
        else f"alter table {source.table} modify revenue varchar(30)"
    )
    source.run(retype)
    retyped = collect(ds, lake, 4)
    (refused,) = retyped.rejected
    assert refused.rejection.code == "retyped_columns" and refused.rejection.detail.startswith("revenue: ")
    new_type = "text" if source.kind == "postgres" else "varchar(30)"
    assert (
        collect(source.dataset(ignore_columns=["remark"], accept_types={"revenue": new_type}), lake, 5).rejected == []
    )

    source.run(f"alter table {source.table} drop column tax_paid")
    (refused,) = collect(ds, lake, 6).rejected
    assert refused.rejection.code == "missing_columns" and refused.rejection.detail == "tax_paid"
    assert raw(lake, ds).height == 101


def test_connection_settings_come_from_the_environment_or_an_owner_only_file(tmp_path):
    with pytest.raises(SourceNotConfigured, match="SHUCANG_SOURCE_TAX_DB"):
        url_of("tax_db", {"SHUCANG_CONNECTIONS_FILE": str(tmp_path / "none.json")})
    assert url_of("tax_db", {"SHUCANG_SOURCE_TAX_DB": "postgresql://a@h/db"}) == "postgresql://a@h/db"
    file = tmp_path / "connections.json"
    file.write_text('{"tax_db": "postgresql://tax:s3cret@db.example:5432/tax"}', encoding="utf-8")
    os.chmod(file, 0o644)
    with pytest.raises(SourceNotConfigured, match="chmod 600"):
        url_of("tax_db", {"SHUCANG_CONNECTIONS_FILE": str(file)})
    os.chmod(file, stat.S_IRUSR | stat.S_IWUSR)
    url = url_of("tax_db", {"SHUCANG_CONNECTIONS_FILE": str(file)})
    assert redacted(url) == "postgresql://tax:***@db.example:5432/tax" and "s3cret" not in redacted(url)


def test_the_registry_refuses_a_database_source_without_its_table():
    base = registry().dataset("tax_monthly").model_dump()
    with pytest.raises(ValueError, match="needs `database:`"):
        Dataset.model_validate({**base, "kind": "postgres"})
    with pytest.raises(ValueError, match="not columns of the dataset"):
        Dataset.model_validate(
            {
                **base,
                "kind": "mysql",
                "database": {
                    "connection": "erp",
                    "table": "t",
                    "watermark": {"column": "u", "key": ["id"]},
                    "columns": {"no_such": "x"},
                },
            }
        )
    assert database.DIALECTS["mysql"].literal("a'b\\c") == "'a''b\\\\c'"


def test_the_source_sensor_starts_the_collection_asset_which_materialises_the_periods_it_landed(
    source, tmp_path, monkeypatch
):
    from assets.collect import _collect_asset
    from orchestration.resources import LakeResource, LandingResource
    from sensors.defs import source_sensor

    monkeypatch.setenv("SHUCANG_SOURCE_TEST_SRC", source.url)
    source.insert(range(1, 301), T0)
    ds = source.dataset()
    resources = {
        "lake": LakeResource(root=str(tmp_path / "lake")),
        "landing": LandingResource(landing_root=str(tmp_path / "landing"), rejected_root=str(tmp_path / "rejected")),
    }
    sensor = source_sensor(ds)
    request = sensor(dg.build_sensor_context(resources=resources))
    assert isinstance(request, dg.RunRequest) and "300 row(s) after start" in request.tags["shucang/reason"]
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (
        "2023-01",
        "2023-12",
    )
    asset = _collect_asset(registry(), ds)
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], resources=resources, instance=instance, tags=request.tags)
        assert result.success
        periods = sorted(
            m.partition
            for m in result.asset_materializations_for_node(asset.node_def.name)
            if m.asset_key == keys.key("raw", ds.id)
        )
        assert periods == [f"2023-{m:02d}" for m in range(1, 13)]
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"rows_reconcile": True, "files_accepted": True}
    assert isinstance(sensor(dg.build_sensor_context(resources=resources)), dg.SkipReason)  # nothing after it now
    # a refused collection (a column the registry does not know) fails its check, and the run says so
    source.run(f"alter table {source.table} add column remark varchar(50)")
    source.insert(range(301, 302), T0 + dt.timedelta(seconds=5))
    with dg.instance_for_test() as instance:
        result = dg.materialize([asset], resources=resources, instance=instance, tags=request.tags)
        checks = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert checks == {"rows_reconcile": True, "files_accepted": False}
        run = instance.get_run_by_id(result.run_id)
        assert run.tags.get("shucang/rejected") == "yes"


def test_std_keeps_the_latest_change_of_each_source_row_and_drops_deleted_ones(source, tmp_path):
    """An update arrives as a new version of its source row — here one that moves the row to another month —
    and a change log's delete as a delete record: std holds each live source row once, in its current period;
    the versions it replaced and the deleted row are merged duplicates with the reason, and the counts
    reconcile (std's conservation check)."""
    from lakehouse.tables import DUPLICATES
    from quality.rulebook import rules_for
    from quality.standardise import standardise

    lake = Lake(str(tmp_path / "lake"))
    rules = rules_for("tax_monthly")
    rules = rules.model_copy(update={"rules": [r for r in rules.rules if r.check != "references"]})
    source.insert(range(1, 121), T0)  # ids 1…120, ten per month
    ds = source.dataset()
    collect(ds, lake, 1)
    first = standardise(lake, ds, rules, at=T0.replace(tzinfo=dt.UTC))
    assert not first.withheld and lake.read("std", ds.id).height == 120
    # row 15 (2023-04) is corrected at the source into May, with a new amount
    source.run(
        f"update {source.table} set period = '2023-05', revenue = 5555.55, updated_at = '2024-01-15 09:00:05' "
        "where id = 15"
    )
    collect(ds, lake, 2)
    # a change log's delete of row 16 (2023-05): the record the log would land, with the old row's values
    old = raw(lake, ds).filter(pl.col("_source_key") == '["16"]')
    lake.append(
        "raw",
        ds.id,
        old.with_columns(
            pl.lit("delete").alias("_change"),
            pl.lit("batch-cdc").alias("_batch_id"),
            pl.lit(dt.datetime.now(dt.UTC)).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
        ).to_arrow(),
    )
    second = standardise(lake, ds, rules, at=T0.replace(tzinfo=dt.UTC) + dt.timedelta(days=1))
    assert not second.withheld, (second.reasons(), second.result.stats)
    std = lake.read("std", ds.id)
    assert std.height == 119  # 120, one deleted; the moved row once
    moved = std.filter(pl.col("uscc") == code(15))
    assert moved.height == 1 and str(moved["period"][0]).startswith("2023-05")
    assert std.filter(pl.col("uscc") == code(16)).is_empty()
    merged = lake.read(*DUPLICATES.path).filter(pl.col("dataset") == ds.id)
    kinds = dict(merged.group_by("kind").len().iter_rows())
    assert kinds == {"changed_at_source": 1, "deleted_at_source": 2}  # row 15's April; row 16 and its delete


def test_a_periods_delivery_is_when_the_source_changed_its_rows_not_when_they_were_collected(source, tmp_path):
    """The collection status of a database source: February's rows written on 10 March are on time (due 15
    March), March's written on 20 April five days late — however late the warehouse collected them. A
    wall-clock update time is read in the source's zone (China Standard Time by default)."""
    from quality.collection import collection_status, versioned_deliveries

    lake = Lake(str(tmp_path / "lake"))
    source.insert(range(1, 2), dt.datetime(2023, 3, 10, 9, 0))  # id 1: period 2023-02
    source.insert(range(2, 3), dt.datetime(2023, 4, 20, 9, 0))  # id 2: period 2023-03
    ds = source.dataset()
    collect(ds, lake, 1)
    landed = raw(lake, ds).sort("_source_key")
    assert landed["_changed_at"].to_list() == [
        dt.datetime(2023, 3, 10, 1, 0, tzinfo=dt.UTC),
        dt.datetime(2023, 4, 20, 1, 0, tzinfo=dt.UTC),
    ]
    reg = registry().model_copy(update={"datasets": [ds]})
    status = collection_status(
        reg, lake.read("ops", "collect_log"), dt.datetime(2024, 6, 1, tzinfo=dt.UTC), versioned_deliveries(reg, lake)
    ).status
    got = {p: (s, late) for p, s, late in status.select("period", "state", "days_late").iter_rows()}
    assert got["2023-02"] == ("on_time", 0) and got["2023-03"] == ("late", 5)
    assert got["2023-01"] == ("missing", None)


def test_a_copy_cut_short_commits_nothing_and_the_next_run_lands_every_row(tmp_path, monkeypatch):
    """PostgreSQL's rows are written while the COPY still streams: a connection that dies mid-COPY, or a COPY
    that gives fewer rows than the snapshot counted, fails the write — no commit, so no position passes rows
    that did not land — and the next run takes the batch again, whole."""
    s = Source("postgres")
    try:
        lake = Lake(str(tmp_path / "lake"))
        s.insert(range(1, 5_001), T0)
        ds = s.dataset(batch_rows=1_000_000)
        monkeypatch.setattr(database, "COPY_CHUNK_BYTES", 20_000)  # parsed and made raw in many pieces
        real_write = database._CopyChunks.write

        def dies_mid_copy(self, data):
            self.written = getattr(self, "written", 0) + len(data)
            if self.written > 100_000:
                raise ConnectionResetError("server closed the connection unexpectedly")
            return real_write(self, data)

        monkeypatch.setattr(database._CopyChunks, "write", dies_mid_copy)
        with pytest.raises(ConnectionResetError):
            collect(ds, lake, 1)
        monkeypatch.undo()
        assert lake.row_count("raw", ds.id) == 0 and collect_history(lake, ds.id).is_empty()

        real = DatabaseCollector._copy_into_raw

        def counted_one_more(self, con, cur, sql, expected, *args):
            return real(self, con, cur, sql, expected + 1, *args)

        monkeypatch.setattr(DatabaseCollector, "_copy_into_raw", counted_one_more)
        with pytest.raises(RuntimeError, match="the COPY gave 5000 rows of the 5001 counted"):
            collect(ds, lake, 2)
        monkeypatch.undo()
        assert lake.row_count("raw", ds.id) == 0

        assert collect(ds, lake, 3).rows_landed == 5_000
        landed = raw(lake, ds)
        assert landed.height == 5_000 and landed["_source_key"].n_unique() == 5_000
        assert landed["_row_number"].sort().to_list() == list(range(1, 5_001))
    finally:
        s.close()


def test_a_copy_read_in_many_pieces_lands_what_one_piece_lands_every_text_exactly(tmp_path, monkeypatch):
    """PostgreSQL's COPY is handed from the connection to the parser in chunks of whole rows: texts with a line
    break, a quote, a comma, an empty text and a NULL land exactly as the source holds them, and the rows, their
    order and the batch's content hash do not depend on where the chunks were cut."""
    s = Source("postgres")
    try:
        s.insert(range(1, 3_001), T0)
        names = {1: "甲\n乙", 2: 'say "hi"', 3: "a,b", 4: "", 5: None, 6: "\r\n", 7: "x" * 40}
        for i, name in names.items():
            with s.con.cursor() as cur:
                cur.execute(f"update {s.table} set taxpayer_name = %s where id = %s", (name, i))
        ds = s.dataset(batch_rows=1_000_000)
        landed = {}
        for size in (None, 700):  # one piece; a piece of a few rows each
            if size:
                monkeypatch.setattr(database, "COPY_CHUNK_BYTES", size)
            lake = Lake(str(tmp_path / f"lake-{size}"))
            assert collect(ds, lake).rows_landed == 3_000
            landed[size] = raw(lake, ds).sort("_row_number")
        one, many = landed[None], landed[700]
        assert one.drop("_ingested_at", "_batch_id").equals(many.drop("_ingested_at", "_batch_id"))
        assert one["_file_sha256"].n_unique() == 1
        by_key = dict(zip(one["_source_key"], one["taxpayer_name"], strict=True))
        for i, name in names.items():
            assert by_key[f'["{i}"]'] == name, (i, by_key[f'["{i}"]'])
    finally:
        s.close()


def test_a_copy_handed_over_in_pieces_that_cut_rows_is_refused_and_lands_nothing(tmp_path, monkeypatch):
    """The pieces are whole rows because the driver writes one COPY message — one row — at a time. A driver
    that cut a row between two writes would make a piece end inside a row: refused loudly, nothing lands."""
    s = Source("postgres")
    try:
        s.insert(range(1, 201), T0)
        ds = s.dataset(batch_rows=1_000_000)
        monkeypatch.setattr(database, "COPY_CHUNK_BYTES", 500)
        real_write = database._CopyChunks.write

        def halves(self, data):
            middle = len(data) // 2
            real_write(self, data[:middle])
            real_write(self, data[middle:])
            return len(data)

        monkeypatch.setattr(database._CopyChunks, "write", halves)
        lake = Lake(str(tmp_path / "lake"))
        with pytest.raises(RuntimeError, match="ends inside a row"):
            collect(ds, lake)
        assert not lake.row_count("raw", ds.id) and collect_history(lake, ds.id).is_empty()
    finally:
        s.close()
