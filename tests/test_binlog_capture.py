"""MariaDB change capture from the binary log (ROW format, full row image and metadata) on a server the test
starts in a temp folder on a free port — the machine's shared server (whose log is not in ROW format with
metadata) must be refused with the settings it lacks, and is otherwise left alone.

Snapshot, then inserts, updates (one moving a row to another month), deletes: std ends equal to the table. A
crash inside the commit, or after it and before the log, loses and repeats nothing; batches end only at a
transaction's end; a column the registry does not know stops the read before its transaction."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import polars as pl
import pytest

from assets.ingest.binlog import MariaDBChangeCollector
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
    """mariadbd of the machine's packages with the binary log in ROW format, full images and metadata."""
    if not shutil.which("mariadbd") and not Path("/usr/sbin/mariadbd").exists():
        pytest.fail("the MariaDB server is not installed (mariadbd); the machine's packages provide it")
    home = Path(tempfile.mkdtemp(prefix="shucang-mdb-"))
    user = "mysql" if os.geteuid() == 0 else os.environ.get("USER", "")
    if os.geteuid() == 0:
        shutil.chown(home, "mysql")
    subprocess.run(
        [
            "mariadb-install-db",
            f"--datadir={home / 'data'}",
            f"--user={user}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    proc = subprocess.Popen(
        [
            shutil.which("mariadbd") or "/usr/sbin/mariadbd",
            "--no-defaults",
            f"--datadir={home / 'data'}",
            f"--port={port}",
            f"--socket={home / 'sock'}",
            "--bind-address=127.0.0.1",
            f"--log-bin={home / 'data' / 'binlog'}",
            "--binlog-format=ROW",
            "--character-set-server=utf8mb4",
            "--binlog-row-image=FULL",
            "--binlog-row-metadata=FULL",
            "--server-id=1",
            f"--user={user}",
            f"--pid-file={home / 'pid'}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=open(home / "log", "wb"),
    )
    import pymysql

    for _ in range(100):
        try:
            pymysql.connect(host="127.0.0.1", port=port, user="root").close()
            break
        except pymysql.err.OperationalError:
            time.sleep(0.1)
    con = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
    con.cursor().execute("create database src character set utf8mb4")
    con.close()
    yield f"mysql://root@127.0.0.1:{port}/src"
    proc.kill()
    proc.wait()
    shutil.rmtree(home, ignore_errors=True)


def code(i: int) -> str:
    return make_uscc("9", "1", "331003", f"MC{i:06d}")


class Table:
    def __init__(self, url: str):
        from urllib.parse import urlsplit

        import pymysql

        u = urlsplit(url)
        self.url, self.name = url, f"filings_{uuid.uuid4().hex[:8]}"
        self.con = pymysql.connect(
            host=u.hostname, port=u.port, user="root", database=u.path.lstrip("/"), autocommit=True
        )
        self.run(
            f"create table {self.name} (id bigint primary key, uscc varchar(18), taxpayer_name varchar(100), "
            "period varchar(7), filing_type varchar(8), revenue decimal(18,2), tax_paid decimal(18,2), "
            "amount_unit varchar(4), filed_on date) engine=InnoDB"
        )

    def run(self, sql: str, args=None):
        with self.con.cursor() as cur:
            cur.execute(sql, args)

    def insert(self, ids) -> None:
        """One transaction."""
        with self.con.cursor() as cur:
            cur.execute("begin")
            cur.executemany(
                f"insert into {self.name} (id, uscc, taxpayer_name, period, filing_type, revenue, tax_paid, "
                "amount_unit, filed_on) values (%s, %s, %s, %s, '正常', %s, %s, '元', '2024-01-10')",
                [(i, code(i), f"测试{i}模具有限公司", f"2023-{i % 12 + 1:02d}", 1000 + i, 30 + i % 7) for i in ids],
            )
            cur.execute("commit")

    def rows(self) -> pl.DataFrame:
        with self.con.cursor() as cur:
            cur.execute(f"select uscc, period, cast(revenue as char) from {self.name}")
            return pl.DataFrame(list(cur.fetchall()), schema=["uscc", "period", "revenue"], orient="row")

    def dataset(self, **options) -> Dataset:
        base = registry().dataset("tax_monthly").model_dump()
        database = {"connection": "erp", "table": self.name, "capture": "log", **options}
        return Dataset.model_validate({**base, "kind": "mysql", "database": database})


@pytest.fixture
def table(server):
    t = Table(server)
    yield t
    t.con.close()


def collect(ds: Dataset, lake: Lake, url: str, n: int):
    environ = {"SHUCANG_SOURCE_ERP": url}
    return MariaDBChangeCollector(ds, lake, f"batch-{n}", f"run-{n}", dt.datetime.now(dt.UTC), environ).run()


def _rules():
    rules = rules_for("tax_monthly")
    return rules.model_copy(update={"rules": [r for r in rules.rules if r.check != "references"]})


def test_the_table_is_copied_then_followed_through_the_binlog_and_std_equals_it(table, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 301))
    ds = table.dataset()
    first = collect(ds, lake, table.url, 1)
    assert [o.rows_landed for o in first.landed] == [300], [(o.status, o.note) for o in first.outcomes]
    table.insert(range(301, 311))
    table.run(f"update {table.name} set revenue = revenue + 1 where id between 1 and 3")
    table.run(f"update {table.name} set period = '2023-12', revenue = 4242.42 where id = 4")
    table.run(f"delete from {table.name} where id in (5, 6)")
    second = collect(ds, lake, table.url, 2)
    raw = lake.read("raw", ds.id)
    assert dict(raw.group_by("_change").len().iter_rows()) == {"snapshot": 300, "insert": 10, "update": 4, "delete": 2}
    # a change is delivered when its transaction committed (the binlog keeps seconds); a snapshot's rows state no time
    stamped = raw.group_by(pl.col("_change") == "snapshot").agg(
        pl.col("_changed_at").min(), pl.col("_changed_at").null_count().alias("nulls")
    )
    times = dict(zip(stamped[:, 0], stamped[:, 1:].rows(), strict=True))
    assert times[True] == (None, 300)
    assert times[False][1] == 0 and dt.datetime.now(dt.UTC) - times[False][0] < dt.timedelta(minutes=5)
    assert second.rows_landed == 16 and collect(ds, lake, table.url, 3).landed == []
    assert not standardise(lake, ds, _rules(), at=dt.datetime.now(dt.UTC)).withheld
    std = lake.read("std", ds.id).select(
        "uscc", pl.col("period").cast(pl.String).str.slice(0, 7), pl.col("revenue").cast(pl.Float64)
    )
    source = table.rows().with_columns(pl.col("revenue").cast(pl.Float64))
    assert std.height == 308 and std.sort("uscc").equals(source.sort("uscc"))


def test_a_crash_repeats_and_loses_nothing_and_batches_end_at_transactions(table, tmp_path, monkeypatch):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 51))
    ds = table.dataset(batch_rows=10)
    collect(ds, lake, table.url, 1)
    for start in range(51, 111, 20):  # three transactions of 20 rows
        table.insert(range(start, start + 20))
    real_append, calls = Lake.append, []

    def killed_after_the_first_commit(*args, **kwargs):
        version = real_append(*args, **kwargs)
        calls.append(version)
        if len(calls) == 1:
            raise SystemExit("killed after the Delta commit, before the rest and the log")
        return version

    monkeypatch.setattr(Lake, "append", killed_after_the_first_commit)
    with pytest.raises(SystemExit):
        collect(ds, lake, table.url, 2)
    monkeypatch.undo()
    assert lake.read("raw", ds.id).height == 70

    def dies_in_the_commit(*args, **kwargs):
        raise OSError("storage went away mid-commit")

    monkeypatch.setattr(Lake, "append", dies_in_the_commit)
    with pytest.raises(OSError):
        collect(ds, lake, table.url, 3)
    monkeypatch.undo()

    result = collect(ds, lake, table.url, 4)
    raw = lake.read("raw", ds.id)
    assert raw.height == 110 and raw["_source_key"].n_unique() == 110
    assert [o.rows_landed for o in result.landed if not o.note] == [20, 20]  # whole transactions, never split
    assert any("before a crash" in (o.note or "") for o in result.landed)


def test_an_unknown_column_stops_the_read_before_its_transaction(table, tmp_path):
    lake = Lake(str(tmp_path / "lake"))
    table.insert(range(1, 11))
    ds = table.dataset()
    collect(ds, lake, table.url, 1)
    table.insert(range(11, 14))
    table.run(f"alter table {table.name} add column remark varchar(20)")
    table.run(
        f"insert into {table.name} values (14, %s, '新增', '2023-02', '正常', 1, 0.1, '元', '2024-01-10', '备注')",
        (code(14),),
    )
    result = collect(ds, lake, table.url, 2)
    assert [o.rows_landed for o in result.landed] == [3]
    (refused,) = result.rejected
    assert refused.rejection.code == "unexpected_columns" and "remark" in refused.rejection.detail
    assert collect_history(lake, ds.id).filter(pl.col("status") == "rejected").height == 1
    landed = collect(table.dataset(ignore_columns=["remark"]), lake, table.url, 3)
    assert [o.rows_landed for o in landed.landed] == [1] and lake.read("raw", ds.id).height == 14


def test_a_server_whose_log_cannot_be_captured_is_refused_with_what_it_lacks(tmp_path):
    """The machine's shared MariaDB (127.0.0.1:3306): its settings are read, never changed."""
    import pymysql

    con = pymysql.connect(host="127.0.0.1", port=3306, user="root", database="test", autocommit=True)
    name = f"filings_{uuid.uuid4().hex[:8]}"
    with con.cursor() as cur:
        cur.execute("select @@log_bin, @@binlog_format, @@binlog_row_metadata")
        settings = cur.fetchone()
        cur.execute(
            f"create table {name} (id bigint primary key, uscc varchar(18), taxpayer_name varchar(100), "
            "period varchar(7), filing_type varchar(8), revenue decimal(18,2), tax_paid decimal(18,2), "
            "amount_unit varchar(4), filed_on date)"
        )
    try:
        if settings[0] == 1 and settings[1] == "ROW" and settings[2] == "FULL":
            pytest.fail("the shared server logs full rows: this test needs one that does not (it never changes it)")
        base = registry().dataset("tax_monthly").model_dump()
        ds = Dataset.model_validate(
            {**base, "kind": "mysql", "database": {"connection": "erp", "table": name, "capture": "log"}}
        )
        environ = {"SHUCANG_SOURCE_ERP": "mysql://root@127.0.0.1:3306/test"}
        result = MariaDBChangeCollector(ds, Lake(str(tmp_path / "lake")), "b", environ=environ).run()
        (refused,) = result.rejected
        assert "binary log cannot be captured" in refused.rejection.detail and "needs" in refused.rejection.detail
    finally:
        with con.cursor() as cur:
            cur.execute(f"drop table {name}")
        con.close()
