"""A decoder of PostgreSQL's logical replication protocol (``pgoutput``, protocol version 1), as psycopg2's
replication connection hands it over: one message per call, values in text form.

Only what change capture needs: BEGIN (the transaction's final LSN and commit time), RELATION (a table's columns and which of
them form its replica identity), INSERT / UPDATE / DELETE (the new row, or the old key or whole row), COMMIT
(the commit and end LSNs) and MESSAGE (a logical decoding message: the collector's own marker). TRUNCATE is
reported, as it removes rows without a change per row. TYPE and ORIGIN messages carry nothing needed and are
skipped. Reference: PostgreSQL 15, "Logical Replication Message Formats".
"""

from __future__ import annotations

import datetime as dt
import struct
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

PG_EPOCH = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # the protocol's timestamps: microseconds since


@dataclass(frozen=True)
class Relation:
    oid: int
    namespace: str
    name: str
    columns: tuple[str, ...]
    key: tuple[str, ...]  # the replica identity's columns (REPLICA IDENTITY FULL: all)
    types: tuple[int, ...]  # type OIDs: a change of type at the source is a schema change
    typmods: tuple[int, ...] = ()  # type modifiers (a varchar's length, a numeric's precision)


@dataclass(frozen=True)
class Begin:
    final_lsn: int
    xid: int
    commit_ts: dt.datetime | None = None  # when the transaction committed, by the server's clock


@dataclass(frozen=True)
class Commit:
    commit_lsn: int
    end_lsn: int


@dataclass(frozen=True)
class Change:
    op: str  # insert | update | delete
    relation: int
    new: dict[str, str | None] | None = None
    old: dict[str, str | None] | None = None  # the old key (or the whole old row with REPLICA IDENTITY FULL)
    unchanged: frozenset[str] = field(default_factory=frozenset)  # TOASTed values the update did not send


@dataclass(frozen=True)
class Message:
    """A logical decoding message (``pg_logical_emit_message``; sent with the ``messages`` option)."""

    lsn: int
    prefix: str
    content: bytes
    transactional: bool


@dataclass(frozen=True)
class Truncate:
    relations: tuple[int, ...]


_STRUCTS: dict[str, struct.Struct] = {}


class Reader:
    def __init__(self, payload: bytes):
        self.b, self.i = payload, 0

    def take(self, fmt: str):
        st = _STRUCTS.get(fmt) or _STRUCTS.setdefault(fmt, struct.Struct(fmt))
        value = st.unpack_from(self.b, self.i)
        self.i += st.size
        return value[0] if len(value) == 1 else value

    def string(self) -> str:
        end = self.b.index(b"\0", self.i)
        value = self.b[self.i : end].decode("utf-8")
        self.i = end + 1
        return value

    def tuple_data(self, columns: tuple[str, ...]) -> tuple[dict[str, str | None], frozenset[str]]:
        b, i = self.b, self.i
        n = int.from_bytes(b[i : i + 2], "big", signed=True)
        i += 2
        values: dict[str, str | None] = {}
        unchanged: set[str] = set()
        for c in columns[:n]:
            kind = b[i]
            i += 1
            if kind == 116 or kind == 98:  # 't' text, 'b' binary
                size = int.from_bytes(b[i : i + 4], "big", signed=True)
                raw = b[i + 4 : i + 4 + size]
                i += 4 + size
                values[c] = raw.decode("utf-8") if kind == 116 else raw.hex()
            elif kind == 110:  # 'n' null
                values[c] = None
            elif kind == 117:  # 'u' unchanged TOAST value, not sent
                unchanged.add(c)
            else:
                raise ValueError(f"pgoutput: unknown tuple data kind {chr(kind)!r}")
        self.i = i
        return values, frozenset(unchanged)


def decode(payload: bytes, relations: dict[int, Relation]):
    """One message: Begin, Commit, Relation (also recorded in ``relations``), Change, Truncate or None."""
    r = Reader(payload)
    kind = r.take(">c")
    if kind == b"B":
        final_lsn, ts, xid = r.take(">QqI")
        return Begin(final_lsn, xid, PG_EPOCH + dt.timedelta(microseconds=ts))
    if kind == b"C":
        _flags, commit_lsn, end_lsn, _ts = r.take(">bQQq")
        return Commit(commit_lsn, end_lsn)
    if kind == b"R":
        oid = r.take(">I")
        namespace, name = r.string(), r.string()
        r.take(">c")  # replica identity setting
        columns, key, types, typmods = [], [], [], []
        for _ in range(r.take(">h")):
            flags = r.take(">b")
            column = r.string()
            type_oid, typmod = r.take(">Ii")
            columns.append(column)
            types.append(type_oid)
            typmods.append(typmod)
            if flags & 1:
                key.append(column)
        relation = Relation(oid, namespace, name, tuple(columns), tuple(key), tuple(types), tuple(typmods))
        relations[oid] = relation
        return relation
    if kind in (b"I", b"U", b"D"):
        oid = r.take(">I")
        columns = relations[oid].columns
        old = None
        marker = r.take(">c")
        if marker in (b"K", b"O"):
            old, _ = r.tuple_data(columns)
            if kind == b"D":
                return Change("delete", oid, old=old)
            marker = r.take(">c")
        if marker != b"N":
            raise ValueError(f"pgoutput: expected a new tuple, got {marker!r}")
        new, unchanged = r.tuple_data(columns)
        return Change("insert" if kind == b"I" else "update", oid, new=new, old=old, unchanged=unchanged)
    if kind == b"T":
        n = r.take(">I")
        r.take(">b")  # options
        return Truncate(tuple(r.take(">I") for _ in range(n)))
    if kind == b"M":
        flags = r.take(">b")
        lsn = r.take(">Q")
        prefix = r.string()
        size = r.take(">i")
        return Message(lsn, prefix, r.b[r.i : r.i + size], bool(flags & 1))
    return None  # TYPE, ORIGIN: nothing a change record needs


# --- many messages at once ---------------------------------------------------------------------------------------
COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00"


def copy_frames(buf: bytes) -> tuple[np.ndarray, np.ndarray]:
    """Where each message lies in the output of ``COPY (SELECT data FROM pg_logical_slot_peek_binary_changes(…))
    TO STDOUT (FORMAT binary)``: its start and length (one bytea field per row)."""
    if not buf.startswith(COPY_SIGNATURE):
        raise ValueError("pgoutput: not a binary COPY")
    (ext,) = struct.unpack_from(">i", buf, 15)
    i, end = 19 + ext, len(buf)
    unpack = struct.Struct(">hi").unpack_from
    starts, lengths = [], []
    add_start, add_length = starts.append, lengths.append
    while i < end:
        fields, size = unpack(buf, i) if i + 6 <= end else (-1, 0)
        if fields == -1:
            break
        if fields != 1 or size < 0:
            raise ValueError(f"pgoutput: a COPY row of {fields} fields (size {size}) at byte {i}")
        add_start(i + 6)
        add_length(size)
        i += 6 + size
    return np.asarray(starts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)


def decode_inserts(buf: bytes, starts: np.ndarray, columns: tuple[str, ...]) -> pa.Table | None:
    """INSERT messages of one relation (each starting at ``starts`` in ``buf``) decoded column by column for all of
    them at once (numpy over the bytes; text values as UTF-8, validated); None when one of them is not the plain
    shape (a new tuple of exactly ``columns``, every value text or NULL) — the caller decodes those one by one."""
    data = np.frombuffer(buf, dtype=np.uint8)
    n = len(starts)
    if n == 0:
        return pa.table({c: pa.array([], pa.large_string()) for c in columns})

    def be(at: np.ndarray, width: int) -> np.ndarray:
        out = np.zeros(len(at), dtype=np.int64)
        for k in range(width):
            out = (out << 8) | data[at + k]
        return out

    if not (np.all(data[starts] == 73) and np.all(data[starts + 5] == 78)):  # 'I' … 'N'
        return None
    if not np.all(be(starts + 6, 2) == len(columns)):
        return None
    pos = starts + 8
    arrays = []
    for _ in columns:
        kind = data[pos]
        text, null = kind == 116, kind == 110  # 't', 'n'
        if not np.all(text | null):
            return None
        lengths = np.where(text, be(np.where(text, pos + 1, starts), 4), 0)
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        begin = pos + 5
        gather = np.repeat(begin - offsets[:-1], lengths) + np.arange(offsets[-1], dtype=np.int64)
        values = data[gather]
        validity = None if not null.any() else pa.py_buffer(np.packbits(text, bitorder="little"))
        array = pa.LargeStringArray.from_buffers(
            n, pa.py_buffer(offsets), pa.py_buffer(values), validity, int(null.sum())
        )
        array.validate(full=True)  # UTF-8, as the database sends text
        arrays.append(array)
        pos = np.where(text, pos + 5 + lengths, pos + 1)
    return pa.table(dict(zip(columns, arrays, strict=True)))
