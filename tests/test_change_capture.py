"""PostgreSQL change capture (logical decoding, pgoutput) on an instance the test starts with the settings it
needs (wal_level=logical) in a temp folder on a free port — the machine's shared server is left as it is.

The table is copied at the slot's start, then its changes stream as records — inserts, updates (one moving a
row to another month), deletes — and std ends equal to the table. A crash after the Delta commit but before
the slot is told, or inside the commit, loses and repeats nothing; a transaction is never split across
batches; a column the registry does not know stops the stream before its transaction, which waits."""

from __future__ import annotations

import datetime as dt
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

import polars as pl
import pytest

from assets.ingest.changelog import PostgresChangeCollector
from assets.ingest.collector import collect_history
from lakehouse.lake import Lake
from lakehouse.registry import Dataset, registry
from quality.rulebook import rules_for
from quality.standardise import standardise
from sourcegen.codes import make_uscc

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    """A PostgreSQL of the machine's packages with logical decoding on, owned by the postgres account when
    the tests run as root (initdb refuses root)."""
    binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not binaries:
        pytest.fail("PostgreSQL server binaries are not installed (initdb); the machine's packages provide them")
    bin_dir = os.path.dirname(binaries[-1])
    # its own folder directly under the temp root: pytest's folders are private to this account, and the
    # server runs as postgres
    home = Path(tempfile.mkdtemp(prefix="shucang-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(home, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = home / "data", _free_port()
    subprocess.run(
        [*as_user, f"{bin_dir}/initdb", "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
    )
    options = (
        f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c wal_level=logical -c max_replication_slots=8 "
        "-c max_wal_senders=8 -c fsync=off"
    )
    subprocess.run(
        [*as_user, f"{bin_dir}/pg_ctl", "-D", str(data), "-l", str(home / "log"), "-o", options, "-w", "start"],
        check=True,
        capture_output=True,
    )
    yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    subprocess.run([*as_user, f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
    shutil.rmtree(home, ignore_errors=True)


class Table:
    def __init__(self, url: str):
        import psycopg2

        self.url = url
        self.name = f"filings_{uuid.uuid4().hex[:8]}"
        self.con = psycopg2.connect(url)
        self.con.autocommit = True
        self.run(
            f"create table {self.name} (id bigint primary key, uscc varchar(18), taxpayer_name text, period text, "
            "filing_type text, revenue numeric(18,2), tax_paid numeric(18,2), amount_unit text, filed_on date)"
        )

    def run(self, sql: str, args=None):
        with self.con.cursor() as cur:
            cur.execute(sql, args)

    def insert(self, ids) -> None:
        """One transaction."""
        with self.con.cursor() as cur:
            cur.execute("begin")
            cur.executemany(
                f"insert into {self.name} values (%s, %s, %s, %s, '正常', %s, %s, '元', '2024-01-10')",
                [(i, code(i), f"测试{i}模具有限公司", f"2023-{i % 12 + 1:02d}", 1000 + i, 30 + i % 7) for i in ids],
            )
            cur.execute("commit")

    def rows(self) -> pl.DataFrame:
        with self.con.cursor() as cur:
            cur.execute(f"select uscc, period, cast(revenue as text) from {self.name}")
            return pl.DataFrame(cur.fetchall(), schema=["uscc", "period", "revenue"], orient="row")

    def dataset(self, **options) -> Dataset:
        base = registry().dataset("tax_monthly").model_dump()
        database = {
            "connection": "cdc",
            "table": self.name,
            "capture": "log",
            "slot": f"s_{self.name}",
            "publication": f"p_{self.name}",
            **options,
        }
        return Dataset.model_validate({**base, "kind": "postgres", "database": database})


def code(i: int) -> str:
    return make_uscc("9", "1", "331003", f"MB{i:06d}")


@pytest.fixture
def table(server):
    t = Table(server)
    yield t
    t.run("select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s", (f"s_{t.name}",))
    t.con.close()


def collect(ds: Dataset, lake: Lake, url: str, n: int):
    environ = {"SHUCANG_SOURCE_CDC": url}
    return PostgresChangeCollector(ds, lake, f"batch-{n}", f"run-{n}", dt.datetime.now(dt.UTC), environ).run()


def _rules():
    rules = rules_for("tax_monthly")
    return rules.model_copy(update={"rules": [r for r in rules.rules if r.check != "references"]})


def test_the_table_is_copied_then_followed_change_by_change_and_std_equals_it(table, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 501))
    ds = table.dataset()
    first = collect(ds, lake, table.url, 1)
    assert len(first.landed) == 1, [(o.status, o.note) for o in first.outcomes]
    (snapshot,) = first.landed
    assert snapshot.rows_landed == 500 and "snapshot at" in snapshot.file
    # changes after the slot's start: inserts, updates (one into another month), deletes, in transactions
    table.insert(range(501, 521))
    table.run(f"update {table.name} set revenue = revenue + 1 where id between 1 and 4")
    table.run(f"update {table.name} set period = '2023-12', revenue = 4242.42 where id = 5")
    table.run(f"delete from {table.name} where id in (6, 7, 8)")
    second = collect(ds, lake, table.url, 2)
    raw = lake.read("raw", ds.id)
    changes = dict(raw.group_by("_change").len().iter_rows())
    assert changes == {"snapshot": 500, "insert": 20, "update": 5, "delete": 3}
    # a change is delivered when its transaction committed; a snapshot's rows state no time
    stamped = raw.group_by(pl.col("_change") == "snapshot").agg(
        pl.col("_changed_at").min(), pl.col("_changed_at").null_count().alias("nulls")
    )
    times = dict(zip(stamped[:, 0], stamped[:, 1:].rows(), strict=True))
    assert times[True] == (None, 500)
    assert times[False][1] == 0 and dt.datetime.now(dt.UTC) - times[False][0] < dt.timedelta(minutes=5)
    assert second.rows_landed == 28 and not second.rejected
    assert collect(ds, lake, table.url, 3).landed == []  # nothing more in the slot
    # std is the table as it is now: 517 rows, the moved row once, in December, with its new amount
    at = dt.datetime.now(dt.UTC)
    assert not standardise(lake, ds, _rules(), at=at).withheld
    std = lake.read("std", ds.id).select(
        "uscc", pl.col("period").cast(pl.String).str.slice(0, 7), pl.col("revenue").cast(pl.Float64)
    )
    source = table.rows().with_columns(pl.col("revenue").cast(pl.Float64))
    assert std.height == 517 and std.sort("uscc").equals(source.sort("uscc"))


def test_a_crash_before_the_slot_is_told_or_inside_the_commit_repeats_and_loses_nothing(table, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 101))
    ds = table.dataset(batch_rows=10)
    collect(ds, lake, table.url, 1)
    for start in range(101, 161, 20):  # three transactions of 20 rows each
        table.insert(range(start, start + 20))

    def killed_before_acknowledging(self, *args, **kwargs):
        raise SystemExit("killed after the Delta commit, before the slot was told")

    monkeypatch.setattr(PostgresChangeCollector, "_advance", killed_before_acknowledging)
    with pytest.raises(SystemExit):
        collect(ds, lake, table.url, 2)
    monkeypatch.undo()
    # the first transaction is in raw (its commit carries its LSN), the slot was never told
    assert lake.read("raw", ds.id).height == 120

    def dies_in_the_commit(*args, **kwargs):
        raise OSError("storage went away mid-commit")

    monkeypatch.setattr(Lake, "append", dies_in_the_commit)
    with pytest.raises(OSError):
        collect(ds, lake, table.url, 3)
    monkeypatch.undo()
    assert lake.read("raw", ds.id).height == 120

    result = collect(ds, lake, table.url, 4)
    raw = lake.read("raw", ds.id)
    # the slot streams all three transactions again: the landed one is skipped by its LSN
    assert raw.height == 160 and raw["_source_key"].n_unique() == 160
    # a batch ends only at a transaction's end: 20-row transactions with batches of 10 rows
    fresh = [o.rows_landed for o in result.landed if not o.note]
    assert fresh == [20, 20]
    assert any("before a crash" in (o.note or "") for o in result.landed)  # the unlogged commit, logged now


def test_a_column_the_registry_does_not_know_stops_the_stream_before_its_transaction(table, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 11))
    ds = table.dataset()
    collect(ds, lake, table.url, 1)
    table.insert(range(11, 16))  # before the change: lands
    table.run(f"alter table {table.name} add column remark text")
    table.run(
        f"insert into {table.name} (id, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, amount_unit, "
        "filed_on, remark) values (16, %s, '新增', '2023-02', '正常', 1, 0.1, '元', '2024-01-10', '备注')",
        (code(16),),
    )
    result = collect(ds, lake, table.url, 2)
    assert [o.rows_landed for o in result.landed] == [5], [(o.status, o.note) for o in result.outcomes]
    (refused,) = result.rejected
    assert refused.rejection.code == "unexpected_columns" and "remark" in refused.rejection.detail
    assert collect_history(lake, ds.id).filter(pl.col("status") == "rejected").height == 1
    # still refused while unregistered; once ignored, the waiting transaction lands
    assert collect(ds, lake, table.url, 3).rejected
    landed = collect(table.dataset(ignore_columns=["remark"]), lake, table.url, 4)
    assert [o.rows_landed for o in landed.landed] == [1] and lake.read("raw", ds.id).height == 16
    # a registered column retyped at the source: refused until the new type is accepted
    table.run(f"alter table {table.name} alter column revenue type numeric(20,2)")
    table.insert(range(17, 19))
    ignoring = table.dataset(ignore_columns=["remark"])
    (refused,) = collect(ignoring, lake, table.url, 5).rejected
    assert refused.rejection.code == "retyped_columns"
    assert refused.rejection.detail.startswith("revenue: numeric(18,2) → numeric(20,2)")
    accepted = table.dataset(ignore_columns=["remark"], accept_types={"revenue": "numeric(20,2)"})
    assert [o.rows_landed for o in collect(accepted, lake, table.url, 6).landed] == [2]
    assert lake.read("raw", ds.id).height == 18


def test_an_empty_tables_copy_lands_nothing_and_its_changes_follow(table, tmp_path):
    """A table captured before its first row: the copy commits no row but the slot's start, and what is
    inserted later comes through the log."""
    lake = Lake(str(tmp_path / "lake"))
    ds = table.dataset()
    first = collect(ds, lake, table.url, 1)
    assert [o.rows_landed for o in first.landed] == [0] and lake.row_count("raw", ds.id) == 0
    table.insert(range(1, 11))
    assert collect(ds, lake, table.url, 2).rows_landed == 10
    assert dict(lake.read("raw", ds.id).group_by("_change").len().iter_rows()) == {"insert": 10}


def test_changes_of_one_row_inside_one_transaction_land_in_log_order(table, tmp_path):
    """INSERTs are decoded together and other changes one by one; the records still come in the log's order:
    a row inserted, updated and deleted in one transaction, another inserted then updated — std holds the
    table as it is after the commit."""
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 4))
    ds = table.dataset()
    collect(ds, lake, table.url, 1)
    with table.con.cursor() as cur:
        cur.execute("begin")
        cur.execute(
            f"insert into {table.name} values (10, %s, '测试10模具有限公司', '2023-02', '正常', 10, 1, '元', '2024-01-10')",
            (code(10),),
        )
        cur.execute(f"update {table.name} set revenue = 11 where id = 10")
        cur.execute(
            f"insert into {table.name} values (20, %s, '测试20模具有限公司', '2023-03', '正常', 20, 1, '元', '2024-01-10')",
            (code(20),),
        )
        cur.execute(f"update {table.name} set revenue = 21 where id = 20")
        cur.execute(f"delete from {table.name} where id = 10")
        cur.execute(f"update {table.name} set revenue = 99 where id = 1")
        cur.execute("commit")
    collect(ds, lake, table.url, 2)
    changes = lake.read("raw", ds.id).filter(pl.col("_change") != "snapshot").sort("_row_number")
    assert changes.select("_source_key", "_change", "revenue").rows() == [
        ('["10"]', "insert", "10.00"),
        ('["10"]', "update", "11.00"),
        ('["20"]', "insert", "20.00"),
        ('["20"]', "update", "21.00"),
        ('["10"]', "delete", None),
        ('["1"]', "update", "99.00"),
    ]
    assert not standardise(lake, ds, _rules(), at=dt.datetime.now(dt.UTC)).withheld
    std = lake.read("std", ds.id).select("uscc", pl.col("revenue").cast(pl.Float64)).sort("uscc")
    assert std.rows() == sorted([(code(1), 99.0), (code(2), 1002.0), (code(3), 1003.0), (code(20), 21.0)])
