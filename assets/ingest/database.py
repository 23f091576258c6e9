"""Collect a dataset from a relational database by watermark: PostgreSQL (a department's business system) or
MariaDB/MySQL (an enterprise's ERP or MES), through connectorx into Arrow.

A table is read in the order of (update time, primary key), after the position the last raw commit recorded,
in batches of ``batch_rows``. Each batch is one Delta commit of raw that carries the position of its last row
(``source_position``: the update time and the key as the source prints them) — so the position moves exactly
when the rows land: a crash before the commit reads the batch again, a crash after it resumes behind it, and
rows of equal update time are neither lost nor taken twice (the key orders them). Only rows whose update time
is at least ``lag_seconds`` old by the source's own clock are read: a transaction that stamped a row before
the batch was read but committed after it would otherwise fall behind the position and be lost.

Every value lands as the source prints it (``CAST(… AS text)``), like a file's text, under the warehouse's
column names, with provenance: the connection and table as ``_source_file``, the batch's content hash, the
row's place in the batch, the period its period column states. An updated row arrives again with its new
values (std keeps the latest delivery of a business key); a deleted row is not seen by a watermark — that
needs the source's change log.

Before reading, the table's columns are checked against the registry: a registered column missing, a column
the registry does not know (and does not ignore), or a registered column whose type differs from the one the
last commit recorded (and is not an accepted evolution) refuses the collection with the reason — nothing
lands, the position stays, and the rows wait in the source until a steward registers the change.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import queue
import threading
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from assets.ingest.collector import Collector, CollectResult, FileOutcome, collect_history
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.connections import redacted, url_of
from lakehouse.provenance import raw_table_schema
from lakehouse.registry import Dataset
from quality.conform import with_row_period

_WM, _KEY, _CHANGED = "__shucang_wm", "__shucang_key", "__shucang_changed"


def changed_at_sql(kind: str, column: str, source_type: str) -> tuple[str | None, str]:
    """How to read a watermark column as the time the source changed the row: a SQL expression and how its text
    reads — ``local`` (a wall-clock time in the source's zone, ``database.time_zone``), ``utc`` or ``epoch``
    (seconds) — or no expression when the column is no time (a version counter states no time)."""
    t = source_type.lower()
    if kind == "postgres":  # text output, DateStyle ISO (set on the reading session): cheaper than to_char
        if t == "timestamp with time zone":
            return f"cast({column} at time zone 'UTC' as text)", "utc"
        if t == "timestamp without time zone":
            return f"cast({column} as text)", "local"
        if t == "date":
            return f"cast({column} as text) || ' 00:00:00'", "local"
        return None, ""
    if t.startswith("timestamp"):  # MariaDB keeps a TIMESTAMP in UTC and shows it in the session's zone
        return f"cast(unix_timestamp({column}) as char)", "epoch"
    if t.startswith("datetime"):
        return f"date_format({column}, '%Y-%m-%d %H:%i:%s.%f')", "local"
    if t == "date":
        return f"date_format({column}, '%Y-%m-%d 00:00:00')", "local"
    return None, ""


def parse_changed_at(values: pl.Expr, form: str, time_zone: str) -> pl.Expr:
    """The text ``changed_at_sql`` reads, as a UTC timestamp (null where it is none: PostgreSQL's 'infinity',
    a year before 1 — the collection time stands in for it)."""
    if form == "epoch":
        return (values.cast(pl.Float64, strict=False) * 1_000_000).round().cast(pl.Int64).cast(pl.Datetime("us", "UTC"))
    stamp = values.str.to_datetime("%Y-%m-%d %H:%M:%S%.f", time_unit="us", strict=False)
    if form == "utc":
        return stamp.dt.replace_time_zone("UTC")
    return stamp.dt.replace_time_zone(time_zone, ambiguous="earliest", non_existent="null").dt.convert_time_zone("UTC")


@dataclass(frozen=True)
class Dialect:
    quote: str
    text: str  # the type a value is cast to, to read it as the source prints it
    now: str  # the source's clock, ``lag`` seconds ago
    backslash_escapes: bool

    def ident(self, name: str) -> str:
        return self.quote + name.replace(self.quote, self.quote * 2) + self.quote

    def literal(self, value: str) -> str:
        if self.backslash_escapes:
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"


DIALECTS = {
    "postgres": Dialect('"', "text", "now() - make_interval(secs => {lag})", False),
    # MariaDB reads a backslash in a string literal as an escape (unless NO_BACKSLASH_ESCAPES)
    "mysql": Dialect("`", "char", "now(6) - interval {lag} second", True),
}


@dataclass(frozen=True)
class Position:
    """Where the last landed batch ended: its last row's update time and key, as text."""

    watermark: str
    key: tuple[str, ...]

    def to_json(self) -> str:
        return json.dumps({"watermark": self.watermark, "key": list(self.key)}, ensure_ascii=False)

    @classmethod
    def from_json(cls, raw: str) -> Position:
        value = json.loads(raw)
        return cls(value["watermark"], tuple(value["key"]))


def _scheme(url: str) -> str:
    return url.split(":", 1)[0].lower()


def _uri(kind: str, url: str) -> str:
    """connectorx's spelling of the URL (postgres → postgresql; MariaDB speaks mysql)."""
    rest = url.split(":", 1)[1]
    return ("postgresql:" if kind == "postgres" else "mysql:") + rest


def _key_json(values: list[pl.Series]) -> pl.Expr:
    """The JSON array of a row's key values (text), built column-wise."""
    quoted = [
        pl.lit('"')
        + pl.lit(v).str.replace_all("\\", "\\\\", literal=True).str.replace_all('"', '\\"', literal=True)
        + pl.lit('"')
        for v in values
    ]
    return pl.concat_str([pl.lit("["), pl.concat_str(quoted, separator=","), pl.lit("]")])


COPY_CHUNK_BYTES = 16 << 20  # a COPY handed from the connection to the parser in pieces of this size


class _CopyChunks:
    """Where psycopg2's ``copy_expert`` writes a ``COPY … TO STDOUT``: it calls ``write`` once per message the
    server sends — one row each (the header first) — and the rows are handed on, whole, in chunks of about
    ``size`` bytes through a bounded queue (memory stays a few chunks, whatever the batch). A reader that
    stopped (``stopped`` set) makes the next write fail, which ends the COPY."""

    def __init__(self, size: int | None = None, depth: int = 2):
        self.chunks: queue.Queue = queue.Queue(maxsize=depth)
        self.stopped = threading.Event()
        self.size, self._parts, self._held = size or COPY_CHUNK_BYTES, [], 0

    def write(self, data) -> int:
        self._parts.append(data)
        self._held += len(data)
        if self._held >= self.size:
            self._hand_on()
        return len(data)

    def _hand_on(self, item=None) -> None:
        if item is None:
            item, self._parts, self._held = b"".join(self._parts), [], 0
        while True:
            if self.stopped.is_set():
                raise RuntimeError("the COPY's reader stopped")
            try:
                self.chunks.put(item, timeout=0.5)
                return
            except queue.Full:
                continue

    def end(self, failure: BaseException | None = None) -> None:
        """The COPY is over: what is held, then the end (``failure``: how it ended, when it failed)."""
        with contextlib.suppress(RuntimeError):
            if failure is None and self._parts:
                self._hand_on()
            self._hand_on(failure or _COPY_END)

    def __iter__(self):
        while (item := self.chunks.get()) is not _COPY_END:
            if isinstance(item, BaseException):
                raise item
            yield item


_COPY_END = object()


class VersionedLanding:
    """Landing rows that are versions of a source's rows (a database table's, an interface's items): one
    Delta commit of raw per batch, carrying the position to resume after it — so the position moves exactly
    when the rows land. ``changes`` holds the registered columns (text), the key columns ``__k0…`` and
    ``_change``. Row numbers continue across a run's batches: a row changed between two batches of one run
    lands twice, and its later version must sort later (std keeps the latest change of a source row)."""

    dataset: Dataset
    label: str
    batch_id: str
    rows_this_run: int = 0

    def _raw_table(self, changes: pl.DataFrame, nkeys: int, first: int, sha: str) -> pa.Table:
        """Raw rows of a batch: registered columns as text, provenance, the source key, the change and when the
        source made it."""
        return self._as_raw(self._raw_frame(changes, nkeys, first, sha))

    def _as_raw(self, frame: pl.DataFrame) -> pa.Table:
        raw_schema = raw_table_schema(self.dataset)
        return frame.select(raw_schema.names).to_arrow().cast(raw_schema)

    def _raw_frame(self, changes: pl.DataFrame, nkeys: int, first: int, sha: str | None) -> pl.DataFrame:
        """``_raw_table`` before its layout (of a chunk of a batch, its rows numbered from ``first``; ``sha``
        None: the batch's hash is added when the whole batch has been read)."""
        data = changes.select(pl.col(c.name).cast(pl.String) for c in self.dataset.columns)
        return with_row_period(data, self.dataset).with_columns(  # its period as std reads it: '202305' is May 2023
            pl.lit(self.dataset.department).alias("_source_department"),
            pl.lit(self.label).alias("_source_file"),
            pl.lit(sha).alias("_file_sha256"),
            pl.int_range(first, first + data.height, dtype=pl.Int64).alias("_row_number"),
            pl.lit(self.batch_id).alias("_batch_id"),
            pl.lit(self.now).cast(pl.Datetime("us", "UTC")).alias("_ingested_at"),
            pl.select(_key_json([changes[f"__k{i}"] for i in range(nkeys)])).to_series().alias("_source_key"),
            changes["_change"],
            (
                changes["_changed_at"].cast(pl.Datetime("us", "UTC"))
                if "_changed_at" in changes.columns
                else pl.lit(None, pl.Datetime("us", "UTC")).alias("_changed_at")
            ),
        )

    def _commit_raw(self, data, position: dict, schema: dict[str, str], sha: str) -> int:
        """One Delta commit of raw carrying the position after it."""
        return self.lake.append(
            "raw",
            self.dataset.id,
            data,
            self.partition_by,
            {
                "batch_id": self.batch_id,
                "source_file": self.label,
                "file_sha256": sha,
                # the position moves with the rows, in the same commit: exactly once across crashes
                "source_position": json.dumps(position, ensure_ascii=False),
                "source_schema": json.dumps(schema, ensure_ascii=False),
            },
            schema_mode="merge",  # a raw table from before ``_changed_at`` gains it
        )

    def _landed(self, rows: int, version: int, span: str, sha: str) -> FileOutcome:
        self.rows_this_run += rows
        outcome = FileOutcome(f"{self.label} ({span})", "landed", sha256=sha, rows_read=rows, rows_landed=rows)
        outcome.delta_version = version
        return outcome

    def _land(
        self,
        changes: pl.DataFrame,
        nkeys: int,
        position: dict,
        schema: dict[str, str],
        span: str,
        sha: str | None = None,
    ):
        """``sha``: the batch's hash when the caller has one, else the hash of the batch in Arrow IPC."""
        if sha is None:
            sha = hashlib.sha256(changes.write_ipc(None, compression="uncompressed").getvalue()).hexdigest()
        table = self._raw_table(changes, nkeys, self.rows_this_run + 1, sha)
        return self._landed(table.num_rows, self._commit_raw(table, position, schema, sha), span, sha)

    def last_commit(self) -> dict | None:
        """The newest raw commit that recorded a source position (None: nothing landed yet)."""
        limit = 16
        while True:
            commits = self.lake.commits("raw", self.dataset.id, limit)
            for commit in commits:
                if commit.get("source_position"):
                    return commit
            if len(commits) < limit:
                return None
            limit *= 4

    def recovered(self, result: CollectResult) -> None:
        """Batches a run committed and died before logging: recorded now, not read again (their position
        holds)."""
        history = collect_history(self.lake, self.dataset.id)
        for sha, (version, rows, batch) in self._committed_but_unlogged(
            history.filter(pl.col("status") == "landed")
        ).items():
            result.outcomes.append(
                FileOutcome(
                    f"{self.label} (batch {batch})",
                    "landed",
                    sha256=sha,
                    rows_read=rows,
                    rows_landed=rows,
                    delta_version=version,
                    note=f"committed by batch {batch} (raw version {version}) before a crash; recorded now",
                    batch_id=batch,
                )
            )

    def begin(self) -> tuple[CollectResult, dict | None]:
        """A run's start: the raw table there, batches a crashed run committed recorded, row numbers from 1,
        and the last commit that recorded a position (None: nothing landed yet)."""
        result = CollectResult(self.dataset, self.batch_id)
        self.ensure_raw()
        self.recovered(result)
        self.rows_this_run = 0
        return result, self.last_commit()

    def finish(self, result: CollectResult) -> CollectResult:
        """A run's end: its outcomes logged, the raw version it leaves."""
        result.log_version = self._log(result)
        result.table_version = self.lake.table("raw", self.dataset.id).version()
        return result

    def refused(self, result: CollectResult, exc: FileRejected) -> None:
        """A refusal of the source (its layout changed, a page not the agreed shape): logged with its reason;
        nothing of it landed."""
        result.outcomes.append(
            FileOutcome(self.label, "rejected", rejection=exc.rejection, rows_read=0, note=exc.rejection.detail)
        )


def versioned_partitioning(dataset: Dataset) -> list[str] | None:
    """How raw of a versioned source is laid out: a stream's by the day of its readings (a redelivery is
    looked for in the days of the batch), a table's or an interface's in one piece — their batches span many
    periods, std finds a period by its column, and a write split into periods costs more than twice one
    unsplit (measured: 1.3 s against 0.5 s for a million rows)."""
    return ["_period"] if dataset.kind == "stream" and dataset.period is not None else None


class DatabaseCollector(VersionedLanding, Collector):
    """One collection run of a database source: every batch after the last position, or a refusal."""

    def __init__(self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None):
        assert dataset.database is not None, f"{dataset.id} is not a database source"
        super().__init__(dataset, lake, None, None, batch_id, run_id, now)  # type: ignore[arg-type]
        self.partition_by = versioned_partitioning(dataset)
        self._types: dict[str, str] = {}
        self.db = dataset.database
        self.dialect = DIALECTS[dataset.kind]
        url = url_of(self.db.connection, environ)
        if _scheme(url) not in {"postgres": ("postgres", "postgresql"), "mysql": ("mysql", "mariadb")}[dataset.kind]:
            raise ValueError(
                f"{dataset.id}: connection {self.db.connection!r} is {redacted(url)}, not a {dataset.kind} URL"
            )
        self.uri = _uri(dataset.kind, url)
        self.label = f"{dataset.kind}:{self.db.connection}/{self.db.table}"

    # --- the source's catalogue ------------------------------------------------------------------------------
    def _query(self, sql: str) -> pl.DataFrame:
        return pl.read_database_uri(sql, self.uri, engine="connectorx")

    def _read(self, after: Position | None) -> tuple[pl.DataFrame, Position | None]:
        """MariaDB's next batch after ``after`` through connectorx, sorted, every value text, and the position
        after its last row (None: nothing)."""
        frame = self._query(self._select(after))
        return frame, self._last_of(frame)

    def _copy_batch(
        self, after: Position | None, schema: dict[str, str]
    ) -> tuple[FileOutcome | None, Position | None, int]:
        """PostgreSQL's next batch after ``after``: ``COPY (…) TO STDOUT`` — its fastest way out, and text is
        what raw keeps (every non-null value quoted, so an empty text stays empty and a NULL null) — read in one
        repeatable-read snapshot and parsed while the server still sends (the two cores overlap). The position
        is looked up first in the same snapshot (the batch's last row by the index on update time and key); the
        rows are read unsorted when all that is left fits in the batch. The commit happens only if every row
        counted came: a COPY cut short lands nothing, so no position passes rows that did not land. Returns the
        outcome, the position and the rows (None and 0: nothing after ``after``)."""
        import psycopg2

        con = psycopg2.connect("postgresql:" + self.uri.split(":", 1)[1])
        try:
            con.set_session(isolation_level="REPEATABLE READ", readonly=True)
            with con.cursor() as cur:
                cur.execute("set datestyle = 'ISO, YMD'")  # times as text the way raw keeps them and we read them
                cur.execute(f"select count(*) from {self._table} where {self._where(after)}")
                rest = cur.fetchone()[0]
                if rest == 0:
                    return None, None, 0
                take = min(rest, self.db.batch_rows)
                d, wm = self.dialect, self.db.watermark
                order = [f"src.{d.ident(wm.column)}", *(f"src.{d.ident(k)}" for k in wm.key)]
                cur.execute(
                    f"select {', '.join(f'cast({c} as text) as p{i}' for i, c in enumerate(order))} "
                    f"from {self._table} as src where {self._where(after)} "
                    + (
                        f"order by {', '.join(order)} offset {take - 1} limit 1"
                        if rest > take
                        else f"order by {', '.join(f'{c} desc' for c in order)} limit 1"
                    )
                )
                last = cur.fetchone()
                position = Position(last[0], tuple(last[1:]))
                sql = self._select(after, ordered=rest > take, with_watermark=False)
                nkeys = len(wm.key)
                changed, form = self._changed
                names = [c.name for c in self.dataset.columns] + [f"{_KEY}{i}" for i in range(nkeys)]
                names += [_CHANGED] if changed is not None else []

                def prepare(frame: pl.DataFrame) -> pl.DataFrame:
                    changes = frame.rename({f"{_KEY}{i}": f"__k{i}" for i in range(nkeys)}).with_columns(
                        pl.lit("upsert").alias("_change")
                    )
                    if changed is None:
                        return changes
                    return changes.with_columns(
                        parse_changed_at(pl.col(_CHANGED), form, self.db.time_zone).alias("_changed_at")
                    )

                version, rows, sha = self._copy_into_raw(
                    con, cur, f"copy ({sql}) to stdout with (format csv, header true, force_quote *)", take,
                    names, nkeys, prepare, json.loads(position.to_json()), schema,
                )  # fmt: skip
        finally:
            con.close()
        span = f"{after.watermark if after else '…'} → {position.watermark}"
        return self._landed(rows, version, span, sha), position, rows

    def _copy_into_raw(
        self, con, cur, copy_sql: str, expected: int, names: list[str], nkeys: int, prepare, position: dict,
        schema: dict,
    ):  # fmt: skip
        """A COPY (CSV with a header of ``names``; NULL unquoted, an empty text quoted), its rows handed over in
        chunks by the connection's thread (``_CopyChunks``) and parsed as they come (polars' CSV reader, which
        works without the GIL while the connection reads on; the content hashed on the way); ``prepare`` turns
        each chunk's rows into change records (key columns ``__k0…``, ``_change``); checked against the
        ``expected`` rows, then landed in one commit: (version, rows, content hash)."""
        stream = _CopyChunks()

        def produce() -> None:
            try:
                cur.copy_expert(copy_sql, stream)
            except BaseException as exc:  # noqa: BLE001 - handed to the reader, which fails the write
                stream.end(exc)
            else:
                stream.end()

        producer = threading.Thread(target=produce, name=f"copy-{self.dataset.id}", daemon=True)
        hasher = hashlib.sha256()
        text = {n: pl.String for n in names}
        chunks: list[pa.Table] = []
        rows = 0
        producer.start()
        try:
            for i, chunk in enumerate(stream):
                hasher.update(chunk)
                if not chunk.endswith(b"\n"):  # every COPY message is a whole row, ended by its line break
                    raise RuntimeError(f"{self.label}: a piece of the COPY ends inside a row ({chunk[-80:]!r})")
                body = chunk
                if i == 0:  # the header: the columns asked for, in their order
                    head, _, body = chunk.partition(b"\n")
                    if next(csv.reader([head.decode("utf-8")])) != names:
                        raise RuntimeError(f"{self.label}: the COPY's header {head[:200]!r} is not {names}")
                if not body:
                    continue
                # every value text; an unquoted empty field is NULL, a quoted one an empty text; invalid UTF-8 fails
                changes = prepare(pl.read_csv(body, has_header=False, schema=text, null_values=None))
                chunks.append(self._as_raw(self._raw_frame(changes, nkeys, self.rows_this_run + 1 + rows, None)))
                rows += changes.height
        finally:
            stream.stopped.set()  # a parse that failed early: the connection's next write fails, the COPY ends
            if producer.is_alive():
                con.cancel()
            producer.join(60)
        if rows != expected:
            raise RuntimeError(f"{self.label}: the COPY gave {rows} rows of the {expected} counted")
        sha = hasher.hexdigest()
        if not chunks:  # nothing to copy (an empty table's snapshot): the commit still carries the position
            empty = prepare(pl.DataFrame(schema=text))
            chunks.append(self._as_raw(self._raw_frame(empty, nkeys, self.rows_this_run + 1, None)))
        raw = pa.concat_tables(chunks)
        raw = raw.set_column(
            raw.schema.get_field_index("_file_sha256"),
            raw.schema.field("_file_sha256"),
            pa.repeat(pa.scalar(sha, raw.schema.field("_file_sha256").type), raw.num_rows),
        )
        return self._commit_raw(raw, position, schema, sha), rows, sha

    def _last_of(self, frame: pl.DataFrame) -> Position | None:
        if frame.is_empty():
            return None
        last = frame.row(-1, named=True)
        return Position(last[_WM], tuple(last[f"{_KEY}{i}"] for i in range(len(self.db.watermark.key))))

    def source_columns(self) -> dict[str, str]:
        """column → type, as the source's information_schema names them (ordered); empty: no such table."""
        schema, _, table = self.db.table.rpartition(".")
        where_schema = (
            f"table_schema = {self.dialect.literal(schema)}"
            if schema
            else ("table_schema = current_schema()" if self.dataset.kind == "postgres" else "table_schema = database()")
        )
        kind = "data_type" if self.dataset.kind == "postgres" else "column_type"
        frame = self._query(
            f"select cast(column_name as {self.dialect.text}) as c, cast({kind} as {self.dialect.text}) as t "
            f"from information_schema.columns where {where_schema} and table_name = {self.dialect.literal(table)} "
            "order by ordinal_position"
        )
        return dict(zip(frame["c"].to_list(), frame["t"].to_list(), strict=True))

    def _checked_schema(self, recorded: dict[str, str] | None, keys: tuple[str, ...] = ()) -> dict[str, str]:
        """The source's columns, refused if they left the registered layout (see the module's docstring);
        ``keys``: the primary key's columns, read too (a change log names rows by them)."""
        found = self.source_columns()
        if not found:
            raise FileRejected(Rejection("table_missing", self.db.table, "table", 0))
        wanted = [self.dataset.db_column(c.name) for c in self.dataset.columns]
        wm = self.db.watermark
        needed = list(dict.fromkeys([*wanted, *([wm.column, *wm.key] if wm is not None else []), *keys]))
        missing = [c for c in needed if c not in found]
        if missing:
            raise FileRejected(Rejection("missing_columns", ", ".join(missing), "table", 0))
        known = set(needed) | set(self.db.ignore_columns)
        extra = [c for c in found if c not in known]
        if extra:
            raise FileRejected(
                Rejection(
                    "unexpected_columns",
                    f"{', '.join(extra)} (register them, or list them in database.ignore_columns)",
                    "table",
                    0,
                )
            )
        if recorded:
            changed = [
                f"{c}: {recorded[c]} → {found[c]}"
                for c in needed
                if c in recorded and recorded[c] != found[c] and self.db.accept_types.get(c) != found[c]
            ]
            if changed:
                raise FileRejected(
                    Rejection(
                        "retyped_columns",
                        f"{'; '.join(changed)} (accept the new type in database.accept_types)",
                        "table",
                        0,
                    )
                )
        return {c: found[c] for c in needed}

    # --- positions ---------------------------------------------------------------------------------------------
    def _where(self, after: Position | None) -> str:
        """Rows after the position whose update time has outlived the lag."""
        d, wm = self.dialect, self.db.watermark
        order = [d.ident(wm.column), *(d.ident(k) for k in wm.key)]
        where = [f"{d.ident(wm.column)} <= {d.now.format(lag=int(self.db.lag_seconds))}"]
        if after is not None:
            # a row value after the position: later update time, or the same time and a later key
            where.append(f"({', '.join(order)}) > ({', '.join(d.literal(v) for v in (after.watermark, *after.key))})")
        return " and ".join(where)

    @property
    def _table(self) -> str:
        return ".".join(self.dialect.ident(p) for p in self.db.table.split("."))

    def pending(self) -> tuple[int, list[str]]:
        """What a collection would read now — rows after the position, and the first and last period they
        state (empty when the dataset has no period column) — for the source sensor; nothing is read."""
        last = self.last_commit()
        after = Position.from_json(last["source_position"]) if last else None
        d, ds = self.dialect, self.dataset
        column = ds.period.column if ds.period is not None else None
        if not column:
            return int(self._query(f"select count(*) as n from {self._table} where {self._where(after)}")["n"][0]), []
        # the distinct texts of the period column (few), read as std reads them
        found = self._query(
            f"select cast({d.ident(ds.db_column(column))} as {d.text}) as {d.ident(column)}, count(*) as n "
            f"from {self._table} where {self._where(after)} group by 1"
        )
        periods = with_row_period(found, ds)["_period"].drop_nulls().unique().sort().to_list()
        return int(found["n"].sum()), periods

    def _select(self, after: Position | None, ordered: bool = True, with_watermark: bool = True) -> str:
        d, wm = self.dialect, self.db.watermark
        cols = [
            f"cast({d.ident(self.dataset.db_column(c.name))} as {d.text}) as {d.ident(c.name)}"
            for c in self.dataset.columns
        ]
        cols += [f"cast({d.ident(k)} as {d.text}) as {d.ident(f'{_KEY}{i}')}" for i, k in enumerate(wm.key)]
        changed, _ = self._changed
        if changed is not None:
            cols.append(f"{changed} as {d.ident(_CHANGED)}")
        if not ordered:  # the position is looked up apart: no update time per row
            return f"select {', '.join(cols)} from {self._table} where {self._where(after)}"
        if with_watermark:  # the position is the last row's (else it is looked up apart)
            cols.append(f"cast({d.ident(wm.column)} as {d.text}) as {d.ident(_WM)}")
        # the table's own columns, qualified: ORDER BY a bare name that is also an output alias (a registered
        # column named like the key) would sort its text ('9' after '14')
        order = [f"src.{d.ident(wm.column)}", *(f"src.{d.ident(k)}" for k in wm.key)]
        return (
            f"select {', '.join(cols)} from {self._table} as src where {self._where(after)} "
            f"order by {', '.join(order)} limit {int(self.db.batch_rows)}"
        )

    @property
    def _changed(self) -> tuple[str | None, str]:
        """The update-time column as the time the source changed each row (see ``changed_at_sql``)."""
        column = self.db.watermark.column
        return changed_at_sql(self.dataset.kind, self.dialect.ident(column), self._types.get(column, ""))

    # --- a run -------------------------------------------------------------------------------------------------
    def run(self) -> CollectResult:
        result, last = self.begin()
        after = Position.from_json(last["source_position"]) if last else None
        recorded = json.loads(last["source_schema"]) if last and last.get("source_schema") else None
        try:
            schema = self._checked_schema(recorded)
        except FileRejected as exc:
            self.refused(result, exc)
        else:
            self._types = schema
            while True:
                if self.dataset.kind == "postgres":
                    outcome, position, rows = self._copy_batch(after, schema)
                else:
                    frame, position = self._read(after)
                    outcome, rows = (
                        (self._land_batch(frame, after, position, schema), frame.height) if position else (None, 0)
                    )
                if position is None:
                    break
                result.outcomes.append(outcome)
                after = position
                if rows < self.db.batch_rows:
                    break
        return self.finish(result)

    def _land_batch(
        self, frame: pl.DataFrame, after: Position | None, position: Position, schema: dict[str, str]
    ) -> FileOutcome:
        nkeys = len(self.db.watermark.key)
        changes = frame.rename({f"{_KEY}{i}": f"__k{i}" for i in range(nkeys)}).with_columns(
            pl.lit("upsert").alias("_change")
        )
        _, form = self._changed
        if _CHANGED in changes.columns:
            changes = changes.with_columns(
                parse_changed_at(pl.col(_CHANGED), form, self.db.time_zone).alias("_changed_at")
            )
        span = f"{after.watermark if after else '…'} → {position.watermark}"
        return self._land(changes, nkeys, json.loads(position.to_json()), schema, span)


def reconcile(collector: DatabaseCollector) -> pl.DataFrame:
    """Rows per period at the source, up to the position raw has reached, against raw's rows per period — the
    latest version of each source row (``_source_key``): an update is a new version, not a new row. Columns
    period, source_rows, raw_rows; they agree when nothing was lost or taken twice."""
    ds, d = collector.dataset, collector.dialect
    assert ds.period is not None and ds.period.column is not None
    schema = {"period": pl.String, "source_rows": pl.Int64, "raw_rows": pl.Int64}
    last = collector.last_commit()
    if last is None:
        return pl.DataFrame(schema=schema)
    at = Position.from_json(last["source_position"])
    wm = collector.db.watermark
    order = [d.ident(wm.column), *(d.ident(k) for k in wm.key)]
    column = d.ident(ds.db_column(ds.period.column))
    table = collector._table
    found = collector._query(
        f"select cast({column} as {d.text}) as {d.ident(ds.period.column)}, count(*) as n from {table} "
        f"where ({', '.join(order)}) <= ({', '.join(d.literal(v) for v in (at.watermark, *at.key))}) group by 1"
    )
    source = (
        with_row_period(found, ds, "period")  # as raw's ``_period`` places them
        .group_by("period")
        .agg(pl.col("n").sum().cast(pl.Int64).alias("source_rows"))
    )
    raw = (
        collector.lake.read(
            "raw", ds.id, columns=["_source_file", "_source_key", "_period", "_ingested_at", "_row_number"]
        )
        .filter(pl.col("_source_file") == collector.label)
        .sort("_ingested_at", "_row_number")
        .unique("_source_key", keep="last")
        .group_by(pl.col("_period").alias("period"))
        .agg(pl.len().cast(pl.Int64).alias("raw_rows"))
    )
    return (
        source.join(raw, on="period", how="full", coalesce=True, nulls_equal=True)
        .with_columns(pl.col("source_rows", "raw_rows").fill_null(0))
        .select(list(schema))
        .sort("period", nulls_last=True)
    )
