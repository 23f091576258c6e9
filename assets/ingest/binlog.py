"""Collect a MariaDB (or MySQL) table by its binary log in ROW format, with python-mysql-replication.

The server must log rows whole and name their columns: ``binlog_format=ROW``, ``binlog_row_image=FULL`` and
``binlog_row_metadata=FULL`` (without names in the log a row would be read with the columns the table has
*now*, which after an ALTER silently shifts values into the wrong columns) — the collector refuses a server
without them, saying which setting is missing.

The first run copies the table in a transaction WITH CONSISTENT SNAPSHOT and takes the binlog position that
snapshot corresponds to (MariaDB's ``binlog_snapshot_file``/``binlog_snapshot_position``): the copy lands as
``snapshot`` records in one Delta commit carrying that position. Every later run reads the log from the
position the last raw commit recorded, whole transactions only — a position is taken only at a transaction's
end (its XID event, or COMMIT for a non-transactional table): resuming inside a transaction would silently
skip its first rows. Each batch is one Delta commit carrying the position after its last transaction; the
binlog needs no acknowledgement (the server keeps it by its expiry settings, which must outlast the longest
pause between collections).
"""

from __future__ import annotations

import datetime as dt
import decimal

import polars as pl

from assets.ingest import pgoutput
from assets.ingest.changelog import ChangeCollector, _Txn
from assets.ingest.collector import FileOutcome
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.registry import Dataset

REQUIRED = {"binlog_format": "ROW", "binlog_row_image": "FULL", "binlog_row_metadata": "FULL"}


def _text(value) -> str | None:
    """A binlog value as the server prints it (CAST … AS CHAR)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, dt.datetime):
        return value.isoformat(sep=" ")
    if isinstance(value, (dt.date, decimal.Decimal)):
        return str(value)
    if isinstance(value, dt.timedelta):  # TIME
        seconds = int(value.total_seconds())
        return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return str(value)


def _type(column) -> str:
    """A binlog column's type as the table map states it: its type code and, where it has them, precision
    and scale (DECIMAL) or length (VARCHAR)."""
    extra = [getattr(column, a, None) for a in ("precision", "decimals", "max_length")]
    return f"{column.type}" + (f"({','.join(str(x) for x in extra if x is not None)})" if any(extra) else "")


class MariaDBChangeCollector(ChangeCollector):
    """One run of a change-captured MariaDB/MySQL table (``database.capture: log``)."""

    def __init__(self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None):
        super().__init__(dataset, lake, batch_id, run_id, now, environ)
        assert dataset.kind == "mysql"
        from urllib.parse import unquote, urlsplit

        url = urlsplit(self.uri)
        self.settings = {
            "host": url.hostname or "127.0.0.1",
            "port": url.port or 3306,
            "user": unquote(url.username or "root"),
            "passwd": unquote(url.password or ""),
        }
        schema, _, self.table_name = self.db.table.rpartition(".")
        self.schema_name = schema or url.path.lstrip("/")

    def _connect(self):
        import pymysql

        return pymysql.connect(
            host=self.settings["host"],
            port=self.settings["port"],
            user=self.settings["user"],
            password=self.settings["passwd"],
            database=self.schema_name,
            autocommit=True,
            charset="utf8mb4",
        )

    def key_columns(self, con) -> list[str]:
        with con.cursor() as cur:
            cur.execute(
                "select column_name from information_schema.key_column_usage where table_schema = %s and "
                "table_name = %s and constraint_name = 'PRIMARY' order by ordinal_position",
                (self.schema_name, self.table_name),
            )
            return [r[0] for r in cur.fetchall()]

    def _catalog_types(self, con) -> dict[str, str]:
        # the log's table maps describe types their own way: the first one read records them
        return {}

    def _server_settings(self, con) -> None:
        with con.cursor() as cur:
            cur.execute(
                "select variable_name, variable_value from information_schema.global_variables "
                "where variable_name in ('BINLOG_FORMAT', 'BINLOG_ROW_IMAGE', 'BINLOG_ROW_METADATA', 'LOG_BIN')"
            )
            found = {k.lower(): v for k, v in cur.fetchall()}
        wrong = [
            f"{k}={found.get(k, 'unset')} (needs {v})" for k, v in REQUIRED.items() if found.get(k, "").upper() != v
        ]
        if found.get("log_bin", "").upper() != "ON":
            wrong.insert(0, "log_bin=OFF (needs ON)")
        if wrong:
            raise FileRejected(
                Rejection("unreadable", f"the server's binary log cannot be captured: {'; '.join(wrong)}", "server", 0)
            )

    def pending(self) -> tuple[int, list[str]]:
        """Whether a run has something to do: no snapshot yet, or the log grew past the recorded position
        (any table's writes count: the log is read to know)."""
        last = self.last_commit()
        if last is None:
            return 1, []
        import json

        at = json.loads(last["source_position"])
        con = self._connect()
        try:
            with con.cursor() as cur:
                cur.execute("show master status")
                file, pos = cur.fetchone()[:2]
        finally:
            con.close()
        return int((file, int(pos)) != (at["file"], int(at["pos"]))), []

    def _snapshot(self, con, keys: list[str], schema: dict[str, str]) -> FileOutcome:
        self._server_settings(con)
        d = self.dialect
        cols = [
            f"cast({d.ident(self.dataset.db_column(c.name))} as char) as {d.ident(c.name)}"
            for c in self.dataset.columns
        ]
        cols += [f"cast({d.ident(k)} as char) as {d.ident(f'__k{i}')}" for i, k in enumerate(keys)]
        with con.cursor() as cur:
            cur.execute("start transaction with consistent snapshot")
            try:
                cur.execute("show status like 'binlog_snapshot_%'")
                status = {k.lower(): v for k, v in cur.fetchall()}
                cur.execute(f"select {', '.join(cols)} from {self._table}")
                rows = cur.fetchall()
            finally:
                cur.execute("commit")
        if "binlog_snapshot_file" not in status:
            raise FileRejected(
                Rejection(
                    "unreadable", "the server reports no binlog position for a snapshot (MariaDB only)", "server", 0
                )
            )
        names = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(len(keys))]
        frame = pl.DataFrame(list(rows), schema={n: pl.String for n in names}, orient="row")
        position = {"file": status["binlog_snapshot_file"], "pos": int(status["binlog_snapshot_position"])}
        changes = frame.with_columns(pl.lit("snapshot").alias("_change"))
        return self._land(changes, len(keys), position, schema, f"snapshot at {position['file']}:{position['pos']}")

    def _stream(self, con, after: dict, keys: list[str], schema: dict[str, str]):
        from pymysqlreplication import BinLogStreamReader
        from pymysqlreplication.event import QueryEvent, RotateEvent, XidEvent
        from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

        self._server_settings(con)
        stream = BinLogStreamReader(
            connection_settings=self.settings,
            server_id=0x5C000000 + (abs(hash(self.dataset.id)) % 0xFFFFFF),  # a replica id of its own
            blocking=False,
            resume_stream=True,
            log_file=after["file"],
            log_pos=int(after["pos"]),
            only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent, QueryEvent, RotateEvent],
        )
        outcomes: list[FileOutcome] = []
        refusal: FileRejected | None = None
        batch: list[_Txn] = []
        txn: _Txn | None = None
        rows = 0
        ops = {WriteRowsEvent: "insert", UpdateRowsEvent: "update", DeleteRowsEvent: "delete"}
        try:
            try:
                for event in stream:
                    if isinstance(event, RotateEvent):
                        continue
                    if isinstance(event, QueryEvent):
                        query = event.query.strip().upper()
                        if query == "BEGIN":
                            txn = _Txn(0, [])
                            continue
                        if query != "COMMIT":  # DDL is its own transaction: a position after it is safe
                            txn = None
                            continue
                    if isinstance(event, (XidEvent, QueryEvent)):  # a transaction's end: a safe position
                        if txn is not None and txn.changes:
                            pos = {"file": stream.log_file, "pos": int(event.packet.log_pos)}
                            txn.position, txn.label = pos, f"{pos['file']}:{pos['pos']}"
                            txn.changed_at = dt.datetime.fromtimestamp(event.timestamp, dt.UTC)  # its commit
                            batch.append(txn)
                            rows += len(txn.changes)
                        txn = None
                        if rows >= self.db.batch_rows:
                            landed, batch, rows = batch, [], 0
                            outcomes.append(self._land_transactions(landed, len(keys), schema))
                        continue
                    if event.schema != self.schema_name or event.table != self.table_name:
                        continue
                    if txn is None:  # MariaDB opens a transaction with a GTID event, not a BEGIN query
                        txn = _Txn(0, [])
                    names = tuple(c.name for c in event.columns)
                    if any(n is None for n in names):
                        raise FileRejected(
                            Rejection("unreadable", "the log names no columns (binlog_row_metadata=FULL)", "log", 0)
                        )
                    types = {c.name: _type(c) for c in event.columns}
                    schema = self._check_layout(names, types, schema)
                    for row in event.rows:
                        if isinstance(event, UpdateRowsEvent):
                            old = {k: _text(v) for k, v in row["before_values"].items()}
                            new = {k: _text(v) for k, v in row["after_values"].items()}
                            change = pgoutput.Change("update", 0, new=new, old=old)
                        else:
                            values = {k: _text(v) for k, v in row["values"].items()}
                            op = ops[type(event)]
                            change = pgoutput.Change(op, 0, new=values if op == "insert" else None, old=values)
                        txn.changes += self._records(change, keys)
            except FileRejected as exc:  # what came before the refused transaction lands
                refusal = exc
            if batch:
                outcomes.append(self._land_transactions(batch, len(keys), schema))
        finally:
            stream.close()
        return outcomes, refusal
