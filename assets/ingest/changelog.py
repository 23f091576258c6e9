"""Collect a PostgreSQL table by its change log: logical decoding with ``pgoutput`` through a replication slot.

The first run creates the publication (if the DBA has not) and the slot, and copies the table as it was at
the slot's start — the snapshot the slot exports, read with ``COPY … TO STDOUT`` in the same transaction
snapshot — into raw as ``snapshot`` records, in one Delta commit carrying the slot's start LSN. Every later
run reads the slot (``pg_logical_slot_peek_binary_changes``, whole transactions in batches, one binary COPY
each) from the LSN the last raw commit recorded up to the WAL's end when the run began, each change a record
of raw (``insert``, ``update``, ``delete`` with the old row's key, or the
whole old row under REPLICA IDENTITY FULL), each batch one Delta commit carrying the end LSN of its last
transaction. The slot is told that LSN (``pg_replication_slot_advance``; its WAL may then be recycled) only
after that commit: a crash before it gives the same transactions again and those at or before the recorded LSN
are skipped (the slot is advanced to it first) — nothing lost, nothing twice. A crash between slot creation and the snapshot's commit leaves a slot no commit refers to: the
next run drops and recreates it (nothing was acknowledged through it).

A transaction that brings a table whose columns left the registered layout stops the run before it: what
came before lands, the refusal is logged with the reason, and the same transaction waits in the slot until a
steward registers the change. An update that leaves a large (TOASTed) value out while no old row is sent
cannot be written whole: it is refused with the fix (REPLICA IDENTITY FULL). TRUNCATE is refused likewise: it
removes rows without a change per row.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import json
import time
from dataclasses import dataclass

import numpy as np
import polars as pl

from assets.ingest import pgoutput
from assets.ingest.collector import CollectResult, FileOutcome
from assets.ingest.database import DatabaseCollector
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.registry import Dataset

MAX_SECONDS = 300.0  # one run reads the log at most this long; the rest waits for the next


def lsn_text(lsn: int) -> str:
    return f"{lsn >> 32:X}/{lsn & 0xFFFFFFFF:X}"


def lsn_int(text: str) -> int:
    high, low = text.split("/")
    return (int(high, 16) << 32) | int(low, 16)


@dataclass
class _Txn:
    end_lsn: int  # (PostgreSQL) where the transaction ends in the log
    changes: list[dict]
    position: dict | None = None  # the position to resume after it, as its commit records it
    label: str = ""  # how the log names that position, for the collect log
    changed_at: dt.datetime | None = None  # when it committed at the source
    first: int = -1  # (PostgreSQL) its BEGIN and COMMIT among the messages peeked
    last: int = -1


class ChangeCollector(DatabaseCollector):
    """What capturing a table's change log is, whichever database keeps the log: the run (a snapshot first,
    then the log from the position the last raw commit recorded), the layout check, change records and
    their commits. Subclasses read the log (``_snapshot``, ``_stream``) and the catalogue."""

    def __init__(self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None):
        super().__init__(dataset, lake, batch_id, run_id, now, environ)
        assert self.db.capture == "log"
        self.label = f"{dataset.kind}:{self.db.connection}/{self.db.table} (log)"
        self.keys: list[str] = []

    def _connect(self):
        raise NotImplementedError

    def key_columns(self, con) -> list[str]:
        raise NotImplementedError

    def _catalog_types(self, con) -> dict[str, str]:
        raise NotImplementedError

    def _snapshot(self, con, keys: list[str], schema: dict[str, str]) -> FileOutcome:
        raise NotImplementedError

    def _stream(self, con, position: dict, keys: list[str], schema: dict[str, str]):
        raise NotImplementedError

    # --- a run -------------------------------------------------------------------------------------------------
    def run(self) -> CollectResult:
        result, last = self.begin()
        recorded = json.loads(last["source_schema"]) if last and last.get("source_schema") else None
        con = self._connect()
        try:
            keys = self.key_columns(con)
            if not keys:
                raise FileRejected(
                    Rejection(
                        "missing_columns", f"{self.db.table} has no primary key (the change log needs one)", "table", 0
                    )
                )
            self.keys = keys
            if last is None:
                self._checked_schema(None, tuple(keys))
                result.outcomes.append(self._snapshot(con, keys, self._catalog_types(con)))
            else:
                # the layout is judged on the change log's own description of the table (PostgreSQL's
                # RELATION messages, MariaDB's table maps): what changed after the position must not hold
                # back what came before it
                landed, refusal = self._stream(con, json.loads(last["source_position"]), keys, recorded or {})
                result.outcomes += landed
                if refusal is not None:
                    raise refusal
        except FileRejected as exc:
            self.refused(result, exc)
        finally:
            con.close()
        return self.finish(result)

    def _needed(self) -> list[str]:
        return [self.dataset.db_column(c.name) for c in self.dataset.columns] + list(self.keys)

    def _check_layout(self, names: tuple[str, ...], types: dict[str, str], recorded: dict[str, str]):
        """The layout the log describes the table with (its columns, their types), refused if it left the
        registered one; returns the types to record with the next commit."""
        columns = set(names)
        missing = [c for c in self._needed() if c not in columns]
        if missing:
            raise FileRejected(Rejection("missing_columns", ", ".join(missing), "change log", 0))
        extra = [c for c in names if c not in set(self._needed()) | set(self.db.ignore_columns)]
        if extra:
            raise FileRejected(
                Rejection(
                    "unexpected_columns",
                    f"{', '.join(extra)} (register them, or list them in database.ignore_columns)",
                    "change log",
                    0,
                )
            )
        changed = [
            f"{c}: {recorded[c]} → {types[c]}"
            for c in self._needed()
            if c in recorded and recorded[c] != types.get(c) and self.db.accept_types.get(c) != types.get(c)
        ]
        if changed:
            raise FileRejected(
                Rejection(
                    "retyped_columns",
                    f"{'; '.join(changed)} (accept the new type in database.accept_types)",
                    "change log",
                    0,
                )
            )
        return {c: types[c] for c in self._needed() if c in types}

    def _records(self, change: pgoutput.Change, key: list[str]) -> list[tuple]:
        """The change records of one row change (an update of the key: a delete of the old row, then the
        new row), as tuples: the registered columns in order, the key, the change."""
        names = self._source_columns

        def record(values: dict, op: str) -> tuple:
            return (*map(values.get, names), *map(values.get, key), op)

        if change.op == "delete":
            return [record(change.old or {}, "delete")]
        new = dict(change.new or {})
        lost = [c for c in change.unchanged if c in names]
        if lost:
            if change.old is None or any(c not in change.old for c in lost):
                raise FileRejected(
                    Rejection(
                        "unreadable",
                        f"an update left {', '.join(lost)} out (a large value it did not change) and the log holds "
                        f"no old row: ALTER TABLE {self.db.table} REPLICA IDENTITY FULL",
                        "change log",
                        0,
                    )
                )
            new.update({c: change.old[c] for c in lost})
        out = []
        if change.op == "update" and change.old is not None and any(change.old.get(k) != new.get(k) for k in key):
            out.append(record(change.old, "delete"))  # the key itself changed: the old row is gone
        out.append(record(new, change.op))
        return out

    @functools.cached_property
    def _source_columns(self) -> list[str]:
        return [self.dataset.db_column(c.name) for c in self.dataset.columns]

    def _land_transactions(self, batch: list[_Txn], nkeys: int, schema: dict[str, str]) -> FileOutcome:
        names = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(nkeys)] + ["_change"]
        rows = [c for t in batch for c in t.changes]
        # column-wise from the tuples: one list per column is what polars builds fastest
        columns = list(zip(*rows, strict=True)) if rows else [[] for _ in names]
        frame = pl.DataFrame({n: pl.Series(n, v, dtype=pl.String) for n, v in zip(names, columns, strict=True)})
        frame = frame.with_columns(
            pl.Series("_changed_at", [t.changed_at for t in batch for _ in t.changes], dtype=pl.Datetime("us", "UTC"))
        )
        span = f"{batch[0].label} … {batch[-1].label}"
        return self._land(frame, nkeys, batch[-1].position or {}, schema, span)


class PostgresChangeCollector(ChangeCollector):
    """One run of a change-captured PostgreSQL table (``database.capture: log``)."""

    def __init__(self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None):
        super().__init__(dataset, lake, batch_id, run_id, now, environ)
        assert dataset.kind == "postgres"
        self.slot = self.db.slot or f"shucang_{dataset.id}"
        self.publication = self.db.publication or f"shucang_{dataset.id}"
        self.label = f"postgres:{self.db.connection}/{self.db.table} (log)"
        self.dsn = "postgresql:" + self.uri.split(":", 1)[1]

    # --- connections -------------------------------------------------------------------------------------------
    def _connect(self, replication: bool = False):
        import psycopg2
        import psycopg2.extras

        factory = psycopg2.extras.LogicalReplicationConnection if replication else None
        con = psycopg2.connect(self.dsn, connection_factory=factory)
        if not replication:
            con.autocommit = True
        return con

    def key_columns(self, con) -> list[str]:
        """The table's replica identity: its primary key's columns, in order."""
        with con.cursor() as cur:
            cur.execute(
                "select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
                "and a.attnum = any(i.indkey) where i.indrelid = %s::regclass and i.indisprimary "
                "order by array_position(i.indkey, a.attnum)",
                (self._table,),
            )
            return [r[0] for r in cur.fetchall()]

    def _catalog_types(self, con) -> dict[str, str]:
        """column → its type as the catalogue prints it (``numeric(18,2)``), for the columns read."""
        with con.cursor() as cur:
            cur.execute(
                "select attname, format_type(atttypid, atttypmod) from pg_attribute "
                "where attrelid = %s::regclass and attnum > 0 and not attisdropped",
                (self._table,),
            )
            found = dict(cur.fetchall())
        return {c: found[c] for c in self._needed() if c in found}

    def _relation_types(self, con, relation: pgoutput.Relation) -> dict[str, str]:
        with con.cursor() as cur:
            out = {}
            for column, oid, typmod in zip(relation.columns, relation.types, relation.typmods, strict=True):
                cur.execute("select format_type(%s, %s)", (oid, typmod))
                out[column] = cur.fetchone()[0]
        return out

    def _ensure_publication(self, con) -> None:
        with con.cursor() as cur:
            cur.execute("select 1 from pg_publication where pubname = %s", (self.publication,))
            if cur.fetchone() is None:
                cur.execute(f"create publication {self.dialect.ident(self.publication)} for table {self._table}")

    def pending(self) -> tuple[int, list[str]]:
        """Whether a run has something to do — no snapshot yet, or changes of the publication waiting in the
        slot (peeked, not consumed) — for the source sensor; periods are not known before decoding."""
        con = self._connect()
        try:
            with con.cursor() as cur:
                cur.execute("select active from pg_replication_slots where slot_name = %s", (self.slot,))
                slot = cur.fetchone()
                if slot is None or self.last_commit() is None:
                    return 1, []
                if slot[0]:  # a collection is streaming it now
                    return 0, []
                cur.execute(
                    "select count(*) from pg_logical_slot_peek_binary_changes(%s, null, 64, 'proto_version', '1', "
                    "'publication_names', %s) where substr(data, 1, 1) in ('I', 'U', 'D', 'T')",
                    (self.slot, self.publication),
                )
                return int(cur.fetchone()[0]), []
        finally:
            con.close()

    def _snapshot(self, con, keys: list[str], schema: dict[str, str]) -> FileOutcome:
        """The table as of the slot's start, then the slot: nothing before it is missed, nothing after it
        copied twice."""
        self._ensure_publication(con)
        rep = self._connect(replication=True)
        try:
            cur = rep.cursor()
            with con.cursor() as c:
                c.execute("select 1 from pg_replication_slots where slot_name = %s", (self.slot,))
                stale = c.fetchone() is not None
            if stale:  # created by a run that died before the snapshot landed: nothing went through it
                cur.drop_replication_slot(self.slot)
            cur.create_replication_slot(self.slot, output_plugin="pgoutput")
            _, start, snapshot, _ = cur.fetchone()
            d = self.dialect
            cols = [
                f"cast({d.ident(self.dataset.db_column(c.name))} as text) as {d.ident(c.name)}"
                for c in self.dataset.columns
            ]
            cols += [f"cast({d.ident(k)} as text) as {d.ident(f'__k{i}')}" for i, k in enumerate(keys)]
            names = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(len(keys))]
            position = {"lsn": start, "snapshot": snapshot}
            reader = self._connect()
            try:
                reader.autocommit = False
                with reader.cursor() as c:
                    c.execute("begin isolation level repeatable read")
                    c.execute("set transaction snapshot %s", (snapshot,))
                    c.execute(f"select count(*) from {self._table}")
                    expected = c.fetchone()[0]
                    # read and made raw while the server still sends, landed in one commit with the slot's start
                    version, rows, sha = self._copy_into_raw(
                        reader, c, f"copy (select {', '.join(cols)} from {self._table}) to stdout with "
                        "(format csv, header true)", expected, names, len(keys),
                        lambda frame: frame.with_columns(pl.lit("snapshot").alias("_change")), position, schema,
                    )  # fmt: skip
                reader.rollback()
            finally:
                reader.close()
        finally:
            rep.close()
        return self._landed(rows, version, f"snapshot at {start}", sha)

    def _stream(
        self, con, after: dict, keys: list[str], schema: dict[str, str]
    ) -> tuple[list[FileOutcome], FileRejected | None]:
        """Every whole transaction after the position that committed before this run began, landed in batches;
        and the refusal that stopped early, if one did (what came before it landed).

        The slot is read with ``pg_logical_slot_peek_binary_changes`` — up to ``batch_rows`` messages, whole
        transactions, as one binary COPY — and told (``pg_replication_slot_advance``) only after the batch's
        Delta commit; transactions at or before the position raw records (a run that died between the commit
        and telling the slot) are skipped. INSERTs are decoded for all rows at once (``pgoutput.decode_inserts``),
        other messages one by one."""
        position = lsn_int(after["lsn"])
        outcomes: list[FileOutcome] = []
        refusal: FileRejected | None = None
        self._relations: dict[int, pgoutput.Relation] = {}
        with con.cursor() as c:
            c.execute("select pg_current_wal_lsn()::text")
            upto = c.fetchone()[0]  # what was written before this run: decoded now; the rest waits for the next
            c.execute("select confirmed_flush_lsn::text from pg_replication_slots where slot_name = %s", (self.slot,))
            row = c.fetchone()
        if row and row[0] and lsn_int(row[0]) < position:  # landed by a run that died before telling the slot
            self._advance(con, position)
        started = time.monotonic()
        while time.monotonic() - started < MAX_SECONDS:
            buf, starts, lengths = self._peek(con, upto)
            if not len(starts):
                break
            txns, refusal, schema, last_end = self._transactions(con, buf, starts, lengths, position, schema)
            if txns:
                outcomes.append(self._land_peeked(buf, starts, lengths, txns, keys, schema))
            if last_end > position:  # landed (or nothing of the publication in it): the slot moves past it
                position = last_end
                self._advance(con, position)
            if refusal is not None or len(starts) < self.db.batch_rows or not last_end:
                break
        return outcomes, refusal

    def _peek(self, con, upto: str):
        d = self.dialect
        buffer = io.BytesIO()
        with con.cursor() as c:
            c.copy_expert(
                f"copy (select data from pg_logical_slot_peek_binary_changes({d.literal(self.slot)}, "
                f"{d.literal(upto)}::pg_lsn, {int(self.db.batch_rows)}, 'proto_version', '1', 'publication_names', "
                f"{d.literal(self.publication)})) to stdout with (format binary)",
                buffer,
            )
        buf = buffer.getvalue()
        return (buf, *pgoutput.copy_frames(buf))

    def _advance(self, con, lsn: int) -> None:
        """The slot told that everything up to ``lsn`` is in raw (only ever after the Delta commit)."""
        with con.cursor() as c:
            c.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)", (self.slot, lsn_text(lsn)))

    def _transactions(self, con, buf: bytes, starts, lengths, position: int, schema: dict[str, str]):
        """The peeked messages other than INSERTs, one by one: transactions (their first and last message, commit
        time, end LSN, decoded updates and deletes), the layout check on every RELATION message; returns the
        transactions after ``position``, the refusal that stopped the walk (if any), the layout, and the end LSN
        of the last whole transaction walked (0: none)."""
        kinds = np.frombuffer(buf, dtype=np.uint8)[starts]
        self._relations_at: dict[int, list[tuple[int, pgoutput.Relation]]] = {}
        txns: list[_Txn] = []
        txn: _Txn | None = None
        last_end = 0
        try:
            for idx in np.nonzero(kinds != 73)[0].tolist():  # 'I' is for later, all at once
                start = int(starts[idx])
                event = pgoutput.decode(buf[start : start + int(lengths[idx])], self._relations)
                if isinstance(event, pgoutput.Begin):
                    txn = _Txn(0, [], changed_at=event.commit_ts, first=idx)
                elif isinstance(event, pgoutput.Relation):
                    self._relations_at.setdefault(event.oid, []).append((idx, event))
                    schema = self._check_layout(event.columns, self._relation_types(con, event), schema)
                elif isinstance(event, pgoutput.Change) and txn is not None:
                    key = list(self._relations[event.relation].key)
                    txn.changes += [(idx, r) for r in self._records(event, key)]
                elif isinstance(event, pgoutput.Truncate):
                    raise FileRejected(
                        Rejection(
                            "unreadable",
                            f"TRUNCATE of {self.db.table}: rows removed without a change per row; reload the "
                            "dataset (drop the slot and raw) to copy the table anew",
                            "change log",
                            0,
                        )
                    )
                elif isinstance(event, pgoutput.Commit) and txn is not None:
                    txn.end_lsn, txn.last = event.end_lsn, idx
                    txn.position, txn.label = {"lsn": lsn_text(event.end_lsn)}, lsn_text(event.end_lsn)
                    if event.end_lsn > position:  # at or before it: landed already
                        txns.append(txn)
                    last_end = event.end_lsn
                    txn = None
        except FileRejected as exc:  # the transactions before the refused one land; it waits in the slot
            return txns, exc, schema, last_end
        return txns, None, schema, last_end

    def _land_peeked(self, buf: bytes, starts, lengths, txns: list[_Txn], keys: list[str], schema) -> FileOutcome:
        """The transactions' change records in log order — INSERTs decoded together per relation, the rest as
        walked — landed in one commit with the last transaction's end as the position."""
        data = np.frombuffer(buf, dtype=np.uint8)
        kinds = data[starts]
        firsts = np.asarray([t.first for t in txns], dtype=np.int64)
        lasts = np.asarray([t.last for t in txns], dtype=np.int64)
        inserts = np.nonzero(kinds == 73)[0]
        which = np.searchsorted(firsts, inserts, side="right") - 1
        inside = (which >= 0) & (inserts < lasts[np.clip(which, 0, None)])
        inserts, which = inserts[inside], which[inside]
        oids = np.zeros(len(inserts), dtype=np.int64)
        for k in range(4):
            oids = (oids << 8) | data[starts[inserts] + 1 + k]
        names = self._source_columns
        frames, records = [], []
        # each transaction's commit time, in microseconds, to give its inserts by index (not one Python object each)
        committed = (
            pl.Series("_changed_at", [t.changed_at for t in txns], pl.Datetime("us", "UTC")).to_physical().to_numpy()
        )
        for oid in np.unique(oids).tolist():
            mine, txn_of = inserts[oids == oid], which[oids == oid]
            seen = self._relations_at.get(oid, [])
            relation = self._relations[oid]
            # all at once when one layout held for all of them (else, or when one is not plain: one by one)
            table = pgoutput.decode_inserts(buf, starts[mine], relation.columns) if len(seen) <= 1 else None
            if table is not None:
                frame = pl.from_arrow(table).select(
                    *(
                        pl.col(n).cast(pl.String).alias(c.name)
                        for n, c in zip(names, self.dataset.columns, strict=True)
                    ),
                    *(pl.col(k).cast(pl.String).alias(f"__k{i}") for i, k in enumerate(keys)),
                )
                frames.append(
                    frame.with_columns(
                        pl.lit("insert").alias("_change"),
                        pl.Series("_changed_at", committed[txn_of]).cast(pl.Datetime("us", "UTC")),
                        pl.Series("__order", mine, pl.Int64),
                    )
                )
                continue
            for idx, t in zip(mine.tolist(), txn_of.tolist(), strict=True):  # one by one, as the layout changed
                start = int(starts[idx])
                event = pgoutput.decode(buf[start : start + int(lengths[idx])], self._relations_at_index(oid, idx))
                records += [(idx, txns[t].changed_at, r) for r in self._records(event, list(relation.key))]
        for t in txns:
            records += [(idx, t.changed_at, r) for idx, r in t.changes]
        cols = [c.name for c in self.dataset.columns] + [f"__k{i}" for i in range(len(keys))] + ["_change"]
        if records:
            values = list(zip(*(r for _, _, r in records), strict=True))
            frames.append(
                pl.DataFrame(
                    {n: pl.Series(n, v, dtype=pl.String) for n, v in zip(cols, values, strict=True)}
                ).with_columns(
                    pl.Series("_changed_at", [at for _, at, _ in records], pl.Datetime("us", "UTC")),
                    pl.Series("__order", [i for i, _, _ in records], pl.Int64),
                )
            )
        frame = (
            pl.concat(frames, how="vertical_relaxed").sort("__order", maintain_order=True).drop("__order")
            if frames
            else pl.DataFrame(schema={**{c: pl.String for c in cols}, "_changed_at": pl.Datetime("us", "UTC")})
        )
        span = f"{txns[0].label} … {txns[-1].label}"
        return self._land(frame, len(keys), txns[-1].position or {}, schema, span)

    def _relations_at_index(self, oid: int, idx: int) -> dict[int, pgoutput.Relation]:
        """The relations as they were at message ``idx`` (the last RELATION message of ``oid`` before it)."""
        seen = [r for at, r in self._relations_at.get(oid, []) if at < idx]
        return {**self._relations, oid: seen[-1] if seen else self._relations[oid]}
