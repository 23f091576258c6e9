"""Collect device telemetry from a stream: devices publish MQTT to NATS, whose JetStream keeps it; the
warehouse reads it with a durable pull consumer in micro-batches (nats-py).

Why this broker (measured on these machines, README): Mosquitto on its default settings dropped 93.6% of a
100k QoS 1 burst (its queue limit), and tuned it lost acknowledged messages when killed (it persists
periodically); NATS speaks MQTT 3.1.1 and with a JetStream stream on the devices' subjects (file storage)
kept every acknowledged reading across a ``kill -9``.

A run fetches batches until the stream holds nothing more for it (or ``max_seconds`` pass). Each batch:
messages that are not a reading (not JSON, not an object, no key, no time, a value of the wrong kind) are
recorded in ``quarantine/dead_letters`` with the reason; readings already in raw — a redelivery after a
crash between the Delta commit and the acknowledgement — or twice in the batch are dropped by their key
(device, sequence) when their values are the same; other values under a key already taken are a conflict,
kept as a dead letter naming the columns that differ (never dropped as a duplicate); the rest land in one Delta commit, each in the partition of its own reading time (a
late or out-of-order reading lands in its day, not the day it arrived). Values are read as JSON and written
as text the one way polars prints them (a number ``10.0`` is ``10``), whatever batch a reading comes in. Only then is the batch
acknowledged: a consumer killed at any point loses nothing and lands nothing twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json

import polars as pl
import pyarrow as pa

from assets.ingest.collector import Collector, CollectResult
from assets.ingest.database import VersionedLanding, _key_json
from lakehouse.connections import url_of
from lakehouse.registry import Dataset
from lakehouse.tables import DEAD_LETTERS
from quality.conform import with_row_period
from quality.dates import parse_timestamp

DEAD_LETTER_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("stream", pa.string()),
        ("stream_sequence", pa.int64()),
        ("subject", pa.string()),
        ("payload", pa.string()),
        ("reason", pa.string()),
        ("received_at", pa.timestamp("us", tz="UTC")),
        ("batch_id", pa.string()),
    ]
)
FETCH_WAIT = 1.0  # seconds a fetch waits for messages before the run counts the stream as drained


def _conflicts(again: pl.DataFrame, before: pl.DataFrame, values: list[str], where: str) -> list[tuple[int, str]]:
    """Readings of ``again`` whose ``_source_key`` is in ``before`` with other values: (message index, reason)."""
    joined = again.join(before.select("_source_key", *values), on="_source_key", how="inner", suffix="__before")
    differ = pl.concat_list(
        pl.when(~pl.col(v).eq_missing(pl.col(f"{v}__before"))).then(pl.lit(v)).otherwise(None) for v in values
    ).list.drop_nulls()
    found = joined.with_columns(differ.alias("__differ")).filter(pl.col("__differ").list.len() > 0)
    return [
        (
            row["__msg"],
            f"conflicts with the reading {row['_source_key']} that {where} ("
            + ", ".join(f"{c}: {row[c + '__before']!r} ≠ {row[c]!r}" for c in row["__differ"])
            + ")",
        )
        for row in found.iter_rows(named=True)
    ]


class StreamCollector(VersionedLanding, Collector):
    """One run of a stream source: every batch the consumer is given, landed, then acknowledged."""

    def __init__(self, dataset: Dataset, lake, batch_id: str, run_id: str = "", now=None, environ=None):
        assert dataset.stream is not None, f"{dataset.id} is not a stream source"
        super().__init__(dataset, lake, None, None, batch_id, run_id, now)  # type: ignore[arg-type]
        self.spec = dataset.stream
        self.url = url_of(self.spec.connection, environ)
        self.durable = self.spec.durable or f"shucang_{dataset.id}"
        self.label = f"stream:{self.spec.connection}/{self.spec.stream}"
        self.dead_letters = 0
        self.duplicates = 0
        self.dead_letter_version: int | None = None

    # --- a message -----------------------------------------------------------------------------------------------
    # --- a run ---------------------------------------------------------------------------------------------------
    def run(self) -> CollectResult:
        result, _ = self.begin()
        asyncio.run(self._consume(result))
        return self.finish(result)

    async def pending(self) -> int:
        """Messages the consumer has not been given yet, or was given and did not acknowledge (the source
        sensor's question; nothing is read). Before the first run: 1 (the stream may hold readings)."""
        import nats
        from nats.js.errors import NotFoundError

        nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=1)
        try:
            info = await nc.jetstream().consumer_info(self.spec.stream, self.durable)
            return int(info.num_pending) + int(info.num_ack_pending)
        except NotFoundError:
            return 1
        finally:
            await nc.close()

    async def _consume(self, result: CollectResult) -> None:
        import nats
        from nats.js.api import AckPolicy, ConsumerConfig, StorageType, StreamConfig
        from nats.js.errors import NotFoundError

        nc = await nats.connect(self.url, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream()
            try:
                await js.stream_info(self.spec.stream)
            except NotFoundError:  # the first run declares where readings are kept: on disk
                await js.add_stream(
                    StreamConfig(name=self.spec.stream, subjects=list(self.spec.subjects), storage=StorageType.FILE)
                )
            sub = await js.pull_subscribe(
                "",
                durable=self.durable,
                stream=self.spec.stream,
                config=ConsumerConfig(
                    ack_policy=AckPolicy.ALL, ack_wait=self.spec.ack_wait_seconds, max_ack_pending=-1
                ),
            )
            started = asyncio.get_running_loop().time()
            while asyncio.get_running_loop().time() - started < self.spec.max_seconds:
                try:
                    messages = await sub.fetch(self.spec.batch_messages, timeout=FETCH_WAIT)
                except TimeoutError:  # nats raises its own subclass, or asyncio's when the fetch's deadline ran out
                    break
                if not messages:
                    break
                outcome = self._land_messages(messages)
                if outcome is not None:
                    result.outcomes.append(outcome)
                # acknowledged only now, after the Delta commit (and the dead letters') — never before; the
                # consumer acknowledges all: the batch's last message stands for every one before it
                await messages[-1].ack_sync()
                # a short batch is not proof of an empty stream (a fetch returns what the server had at
                # hand): ask the consumer what still waits for it
                if len(messages) < self.spec.batch_messages and (await sub.consumer_info()).num_pending == 0:
                    break
            await nc.flush()
        finally:
            await nc.close()

    def _parse_all(self, messages) -> tuple[pl.DataFrame, list, list]:
        """The batch's readings (registered columns and key, as text) and its dead letters ((message,
        reason)). The batch is parsed at once as JSON lines (polars) and checked column-wise — one way for
        every reading, so the same reading is the same text whatever batch it comes in; messages that are
        not one JSON object are found one by one first when the batch does not parse."""
        fields = list(dict.fromkeys([self.dataset.db_column(c.name) for c in self.dataset.columns] + self.spec.key))
        schema = {f: pl.String for f in fields}
        kept, dead = list(messages), []
        frame = None
        if not any(b"\n" in m.data for m in kept):
            try:
                frame = pl.read_ndjson(io.BytesIO(b"\n".join(m.data for m in kept)), schema=schema)
            except (pl.exceptions.ComputeError, pl.exceptions.SchemaError, ValueError):
                frame = None
        if frame is None or frame.height != len(kept):
            kept, lines = [], []
            for m in messages:
                try:
                    item = json.loads(m.data)
                except (ValueError, UnicodeDecodeError) as exc:
                    dead.append((m, f"not JSON: {exc}"))
                    continue
                if not isinstance(item, dict):
                    dead.append((m, f"not a JSON object but {type(item).__name__}"))
                    continue
                kept.append(m)
                # one line per reading (a message written over several lines is written on one)
                lines.append(m.data if b"\n" not in m.data else json.dumps(item, ensure_ascii=False).encode())
            frame = (
                pl.read_ndjson(io.BytesIO(b"\n".join(lines)), schema=schema) if lines else pl.DataFrame(schema=schema)
            )
        messages = kept
        # when the broker stored each reading: the source's account of its arrival
        frame = frame.with_columns(
            pl.Series("__received", [m.metadata.timestamp for m in kept], dtype=pl.Datetime("us", "UTC"))
        )
        period = self.dataset.period.column if self.dataset.period is not None else None
        reasons = [
            *(pl.when(pl.col(k).is_null()).then(pl.lit(f"no {k} (the key of a reading)")) for k in self.spec.key),
            *(
                pl.when(pl.col(f).str.starts_with("{") | pl.col(f).str.starts_with("[")).then(
                    pl.lit(f"nested value in {f} (a reading is flat)")
                )
                for f in fields
            ),
        ]
        if period is not None:
            column = self.dataset.db_column(period)
            reasons += [
                pl.when(pl.col(column).is_null()).then(pl.lit(f"no {column} (the time of the reading)")),
                # the std zone's reading of a time (ISO 8601 with its offset): what it cannot place, no day holds
                pl.when(parse_timestamp(pl.col(column)).is_null() & pl.col(column).is_not_null()).then(
                    pl.concat_str([pl.lit(f"{column} '"), pl.col(column), pl.lit("' is not a time")])
                ),
            ]
        checked = frame.with_columns(pl.coalesce(reasons).alias("__reason"))
        dead += [(messages[i], r) for i, r in enumerate(checked["__reason"].to_list()) if r is not None]
        good = checked.with_row_index("__msg").filter(pl.col("__reason").is_null())
        rows = good.select(
            *(pl.col(self.dataset.db_column(c.name)).alias(c.name) for c in self.dataset.columns),
            *(pl.col(k).alias(f"__k{i}") for i, k in enumerate(self.spec.key)),
            pl.lit("upsert").alias("_change"),
            pl.col("__received").alias("_changed_at"),
            pl.col("__msg"),  # the reading's message in the messages kept (the unreadable ones gone)
        )
        return rows, dead, messages

    def _land_messages(self, messages) -> object:
        frame, dead, kept = self._parse_all(messages)
        if dead:
            self._dead_letters(dead)
        if frame.is_empty():
            return None
        nkeys = len(self.spec.key)
        keys = [f"__k{i}" for i in range(nkeys)]
        values = [c.name for c in self.dataset.columns]
        frame = frame.with_columns(pl.select(_key_json([frame[k] for k in keys])).to_series().alias("_source_key"))
        # a reading twice in the batch: the same values again is a resend; other values under the same key is
        # a conflict — the first stays, the other is a dead letter with the columns that differ (never dropped)
        first = frame.unique("_source_key", keep="first", maintain_order=True)
        again = frame.join(first.select("__msg"), on="__msg", how="anti")
        conflicts = _conflicts(again, first, values, "came before in this batch")
        fresh, landed_conflicts = self._not_landed(first, values)
        conflicts += landed_conflicts
        if conflicts:
            self._dead_letters([(kept[i], reason) for i, reason in conflicts])
        self.duplicates += frame.height - fresh.height - len(conflicts)
        fresh = fresh.drop("__msg", "_source_key")
        if fresh.is_empty():
            return None
        first, last = messages[0].metadata.sequence.stream, messages[-1].metadata.sequence.stream
        position = {"stream_sequence": max(first, last)}
        span = f"stream sequence {first} … {last}"
        return self._land(fresh, nkeys, position, {}, span)

    def _not_landed(self, candidates: pl.DataFrame, values: list[str]):
        """The readings of ``candidates`` not yet in raw, judged in the partitions (days) they fall in, and those
        whose key landed before with other values (conflicts: (message index, reason))."""
        if not self.lake.row_count("raw", self.dataset.id):
            return candidates, []
        scan = pl.scan_delta(self.lake.uri("raw", self.dataset.id), storage_options=self.lake.storage_options or None)
        period = self.dataset.period
        if period is not None and period.column is not None:
            # the days they fall in, as ``_period`` places them (VersionedLanding._land)
            days = with_row_period(candidates, self.dataset, "__day")["__day"].drop_nulls().unique().to_list()
            scan = scan.filter(pl.col("_period").is_in(days))
        landed = (
            scan.select("_source_key", *values)
            .join(candidates.lazy().select("_source_key"), on="_source_key", how="semi")
            .unique("_source_key", keep="first")
            .collect()
        )
        conflicts = _conflicts(candidates, landed, values, "landed before")
        return candidates.join(landed, on="_source_key", how="anti"), conflicts

    def _dead_letters(self, dead: list) -> None:
        now = dt.datetime.now(dt.UTC)
        table = self.lake.table(DEAD_LETTERS.zone, DEAD_LETTERS.name)
        known: set[int] = set()
        if table is not None:  # a redelivered dead letter is recorded once
            seqs = [m.metadata.sequence.stream for m, _ in dead]
            known = set(
                self.lake.read(DEAD_LETTERS.zone, DEAD_LETTERS.name, columns=["dataset", "stream", "stream_sequence"])
                .filter(
                    (pl.col("dataset") == self.dataset.id)
                    & (pl.col("stream") == self.spec.stream)
                    & pl.col("stream_sequence").is_in(seqs)
                )["stream_sequence"]
                .to_list()
            )
        records = [
            {
                "dataset": self.dataset.id,
                "stream": self.spec.stream,
                "stream_sequence": m.metadata.sequence.stream,
                "subject": m.subject,
                "payload": m.data.decode("utf-8", errors="replace"),
                "reason": reason,
                "received_at": now,
                "batch_id": self.batch_id,
            }
            for m, reason in dead
            if m.metadata.sequence.stream not in known
        ]
        self.dead_letters += len(records)
        if records:
            self.dead_letter_version = self.lake.append(
                DEAD_LETTERS.zone,
                DEAD_LETTERS.name,
                pa.Table.from_pylist(records, schema=DEAD_LETTER_SCHEMA),
                ["dataset"],
                {"batch_id": self.batch_id},
            )
