"""Collect one source dataset: every new landing file either lands whole in raw, or is refused whole.

For each file: hash and detect the encoding, check the layout, stream rows into one Delta commit with
provenance columns. A file that turns out bad mid-stream aborts its commit, moves to the rejected area
with a reason record, and the next file goes on. Content hashes make re-collection a no-op.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty, Full, Queue
from typing import TypeVar

import numpy as np
import polars as pl
import pyarrow as pa

from assets.ingest.encoding import sniff
from assets.ingest.landing import entries
from assets.ingest.readers import read
from assets.ingest.rejection import FileRejected, Rejection
from lakehouse.lake import Lake
from lakehouse.provenance import PROVENANCE, raw_table_schema
from lakehouse.registry import Dataset
from lakehouse.tables import COLLECT_LOG
from privacy.audit import owner_only

T = TypeVar("T")

LOG_SCHEMA = pa.schema(
    [
        ("dataset", pa.string()),
        ("department", pa.string()),
        ("batch_id", pa.string()),
        ("run_id", pa.string()),
        ("file", pa.string()),
        ("sha256", pa.string()),
        ("bytes", pa.int64()),
        ("mtime_ns", pa.int64()),
        ("ctime_ns", pa.int64()),
        ("inode", pa.int64()),
        ("format", pa.string()),
        ("encoding", pa.string()),
        ("status", pa.string()),
        ("reason_code", pa.string()),
        ("reason_zh", pa.string()),
        ("reason_en", pa.string()),
        ("detail", pa.string()),
        ("position", pa.string()),
        ("rejected_to", pa.string()),
        ("rows_read", pa.int64()),
        ("rows_landed", pa.int64()),
        ("delta_version", pa.int64()),
        ("at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass
class FileOutcome:
    file: str
    status: str  # landed | rejected | ignored | waiting | skipped (already recorded: not logged again)
    sha256: str | None = None
    bytes: int = 0
    mtime_ns: int = 0
    ctime_ns: int = 0
    inode: int = 0
    encoding: str | None = None
    rows_read: int | None = 0
    rows_landed: int = 0
    rejection: Rejection | None = None
    rejected_to: str | None = None
    delta_version: int | None = None
    note: str | None = None  # e.g. how an outcome was recovered after a crash
    batch_id: str | None = None  # the batch that produced it, when not this run's (recovered outcomes)


@dataclass
class CollectResult:
    dataset: Dataset
    batch_id: str
    outcomes: list[FileOutcome] = field(default_factory=list)
    table_version: int | None = None
    log_version: int | None = None  # the version of ops/collect_log this run wrote (None: nothing to log)

    def _of(self, status: str) -> list[FileOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def landed(self) -> list[FileOutcome]:
        return self._of("landed")

    @property
    def rejected(self) -> list[FileOutcome]:
        return self._of("rejected")

    @property
    def skipped(self) -> list[FileOutcome]:
        return self._of("skipped")

    @property
    def rows_landed(self) -> int:
        return sum(o.rows_landed for o in self.landed)

    @property
    def rows_in_rejected_files(self) -> int:
        return sum(o.rows_read or 0 for o in self.rejected)

    @property
    def rows_read(self) -> int:
        return self.rows_landed + self.rows_in_rejected_files


def landing_files(dataset: Dataset, landing_root: Path) -> list[Path]:
    """The files collection reads (see ``landing.entries`` for everything else in the folder)."""
    return [e.path for e in entries(dataset, landing_root) if e.disposition == "collect"]


def repeated_text(value: str | None, n: int) -> pa.StringArray:
    """``value`` ``n`` times as an Arrow string array, built from its buffers: ``pa.repeat`` takes ~20 ms per
    100k rows for a non-ASCII text (a Chinese file name), which added up to seconds per dataset."""
    if value is None:
        return pa.nulls(n, pa.string())
    data = value.encode("utf-8")
    if (n + 1) * len(data) >= 2**31:  # beyond 32-bit offsets: not a batch collection makes
        return pa.repeat(pa.scalar(value, pa.string()), n)
    offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int32) if data else np.zeros(n + 1, np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def _provenance(batch: pa.RecordBatch, first_row: int, const: dict, ingested_at: dt.datetime) -> pa.RecordBatch:
    """Append the provenance columns in Arrow: constants repeated, row numbers as a range (no copy of the
    delivered columns)."""
    n = batch.num_rows
    values = {
        **{k: repeated_text(v, n) for k, v in const.items()},
        "_row_number": pa.array(np.arange(first_row, first_row + n, dtype=np.int64)),
        "_ingested_at": pa.repeat(pa.scalar(ingested_at, PROVENANCE.field("_ingested_at").type), n),
    }
    return pa.RecordBatch.from_arrays(
        [*batch.columns, *(values[f.name] for f in PROVENANCE)], schema=pa.schema(list(batch.schema) + list(PROVENANCE))
    )


# What identifies a file on disk without reading it: size, modification time, inode change time and inode.
# The change time cannot be set from user space: a file rewritten in place with its old size and mtime
# restored (cp -p, rsync -t, touch -r) still gets a new ctime, so it is read and hashed again.
FINGERPRINT = ("bytes", "mtime_ns", "ctime_ns", "inode")
Fingerprint = tuple[int, int, int, int]
_HISTORY = {
    "dataset": pl.String,
    "batch_id": pl.String,
    "file": pl.String,
    "sha256": pl.String,
    "status": pl.String,
    "delta_version": pl.Int64,
}


def fingerprint(st: os.stat_result) -> Fingerprint:
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def collect_history(lake: Lake, dataset_id: str) -> pl.DataFrame:
    """Every file outcome logged for a dataset (empty before its first collection). A log written before
    the change time and inode were recorded has them null: such files are hashed again, once."""
    schema = {**_HISTORY, **dict.fromkeys(FINGERPRINT, pl.Int64)}
    table = lake.table(COLLECT_LOG.zone, COLLECT_LOG.name)
    if table is None:
        return pl.DataFrame(schema=schema)
    present = set(table.schema().to_arrow().names)
    log = lake.read(COLLECT_LOG.zone, COLLECT_LOG.name, columns=[c for c in schema if c in present])
    log = log.with_columns(pl.lit(None, dtype).alias(c) for c, dtype in schema.items() if c not in present)
    return log.filter(pl.col("dataset") == dataset_id).select(list(schema))


def recorded_fingerprints(history: pl.DataFrame) -> set[tuple]:
    """(file, status, bytes, mtime_ns, ctime_ns, inode) of entries recorded as waiting or ignored."""
    kept = history.filter(pl.col("status").is_in(["waiting", "ignored"])).drop_nulls(list(FINGERPRINT))
    return set(kept.select("file", "status", *FINGERPRINT).iter_rows())


def landed_fingerprints(history: pl.DataFrame) -> set[tuple[str, int, int, int, int]]:
    """(file, bytes, mtime_ns, ctime_ns, inode) of files that landed: that very file, unchanged, need not be
    read again. Anything else is hashed, and its content hash decides."""
    landed = history.filter(pl.col("status") == "landed").drop_nulls(list(FINGERPRINT))
    return set(landed.select("file", *FINGERPRINT).iter_rows())


def prefetched(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Run ``items`` one step ahead in a thread: the reader parses the next block (polars and Arrow release
    the GIL) while the Delta writer encodes the last. Errors reach the consumer in order; a consumer that
    stops early stops the producer."""
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put((item, None), timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put((done, None))
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put((done, exc))

    worker = threading.Thread(target=produce, name="reader-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item, error = queue.get()
            if item is done:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                queue.get_nowait()
            except Empty:
                worker.join(0.05)


def _reason_path(target: Path) -> Path:
    """``<file>.reason.json`` beside the rejected file; for a name too long to take the suffix (a file system
    allows 255 bytes), a short name derived from it — the record inside names the file."""
    name = os.fsencode(target.name) + b".reason.json"
    if len(name) <= 255:
        return target.with_name(os.fsdecode(name))
    return target.with_name(f"{hashlib.sha256(os.fsencode(target.name)).hexdigest()[:16]}.reason.json")


class Collector:
    def __init__(
        self,
        dataset: Dataset,
        lake: Lake,
        landing_root: Path,
        rejected_root: Path,
        batch_id: str,
        run_id: str = "",
        now: dt.datetime | None = None,
        settle_seconds: float = 0.0,
    ):
        self.dataset, self.lake = dataset, lake
        self.landing_root, self.rejected_root = landing_root, rejected_root
        self.batch_id, self.run_id = batch_id, run_id
        self.now = now or dt.datetime.now(dt.UTC)
        self.settle_seconds = settle_seconds  # a file modified more recently than this waits (landing.py)
        self.partition_by = ["_period"] if dataset.period else None

    def ensure_raw(self) -> None:
        # Raw values are text as delivered: statistics pay off only on provenance, which audits filter by.
        self.lake.ensure(
            "raw",
            self.dataset.id,
            raw_table_schema(self.dataset),
            self.partition_by,
            stats_columns=["_source_file", "_row_number", "_batch_id", "_ingested_at"],
        )

    def run(self) -> CollectResult:
        result = CollectResult(self.dataset, self.batch_id)
        self.ensure_raw()
        history = collect_history(self.lake, self.dataset.id)
        landed = history.filter(pl.col("status") == "landed")
        fingerprints = landed_fingerprints(history)
        landed_shas = set(landed["sha256"].to_list())
        rejected_shas = set(history.filter(pl.col("status") == "rejected")["sha256"].to_list())
        recorded = recorded_fingerprints(history)
        # Exactly once across crashes: a file's commit to raw carries its content hash, so a file committed
        # by a run that died before writing its log is recognised here and recorded, never landed twice;
        # a file moved to the rejected area by such a run is recorded from its reason file.
        committed = self._committed_but_unlogged(landed)
        result.outcomes += self._rejected_but_unlogged(history)
        for entry in entries(self.dataset, self.landing_root, self.settle_seconds):
            path, rel = entry.path, entry.name
            fp = fingerprint(entry.lstat())
            if (rel, *fp) in fingerprints:
                result.outcomes.append(FileOutcome(rel, "skipped", bytes=fp[0], rows_read=None))
                continue
            outcome = FileOutcome(rel, "landed", **dict(zip(FINGERPRINT, fp, strict=True)))
            if entry.disposition in ("wait", "ignore"):
                status = "waiting" if entry.disposition == "wait" else "ignored"
                if (rel, status, *fp) not in recorded:  # recorded once while it stays as it is
                    outcome.status, outcome.rejection, outcome.rows_read = status, entry.reason, None
                    result.outcomes.append(outcome)
                continue
            if entry.disposition == "refuse":
                self._reject(path, outcome, entry.reason)
                result.outcomes.append(outcome)
                continue
            try:
                s = sniff(path, text=self.dataset.format != "xlsx", encodings=tuple(self.dataset.encodings))
                outcome.sha256, outcome.encoding = s.sha256, s.encoding
                if s.sha256 in landed_shas:
                    outcome.status, outcome.rows_read = "skipped", None
                elif s.sha256 in committed:
                    version, rows, batch = committed.pop(s.sha256)
                    outcome.delta_version, outcome.rows_read, outcome.rows_landed = version, rows, rows
                    outcome.note = f"committed by batch {batch} (raw version {version}) before a crash; recorded now"
                    landed_shas.add(s.sha256)
                elif s.sha256 in rejected_shas:
                    raise FileRejected(Rejection("duplicate_of_rejected", f"sha256 {s.sha256[:12]}…", "file", None))
                else:
                    self._land(path, rel, s, outcome)
                    landed_shas.add(s.sha256)
            except FileRejected as exc:
                self._reject(path, outcome, exc.rejection)
            result.outcomes.append(outcome)
        result.log_version = self._log(result)
        result.table_version = self.lake.table("raw", self.dataset.id).version()
        return result

    def _committed_but_unlogged(self, landed: pl.DataFrame) -> dict[str, tuple[int, int, str]]:
        """content hash → (raw version, rows, batch) of files committed to raw after the last logged one."""
        table = self.lake.table("raw", self.dataset.id)
        last_logged = landed["delta_version"].max()
        since = table.version() - (last_logged if last_logged is not None else -1)
        if since <= 0:
            return {}
        known = set(landed["sha256"].to_list())
        out = {}
        for commit in table.history(since):
            sha = commit.get("file_sha256")
            if sha and sha not in known and commit.get("operation") == "WRITE":
                rows = (commit.get("operationMetrics") or {}).get("num_added_rows")
                out[sha] = (commit["version"], int(rows or 0), commit.get("batch_id", "?"))
        return out

    def _rejected_but_unlogged(self, history: pl.DataFrame) -> list[FileOutcome]:
        """Files a crashed run moved to the rejected area (with their reason file) but never logged."""
        folder = self.rejected_root / self.dataset.id
        if not folder.is_dir():
            return []
        logged = set(history.filter(pl.col("status") == "rejected").select("batch_id", "file").iter_rows())
        out = []
        for reason_file in sorted(folder.glob("*/*.reason.json")):
            try:
                record = json.loads(reason_file.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if (record.get("batch_id"), record.get("file")) in logged or record.get("dataset") != self.dataset.id:
                continue
            rejection = Rejection(record["code"], record["detail"], record["position"], record.get("rows_read"))
            out.append(
                FileOutcome(
                    record["file"],
                    "rejected",
                    sha256=record.get("sha256"),
                    rejection=rejection,
                    rows_read=record.get("rows_read"),
                    rejected_to=reason_file.with_name(reason_file.name.removesuffix(".reason.json")).as_posix(),
                    note=f"rejected by batch {record.get('batch_id')} before a crash; recorded now",
                    batch_id=record.get("batch_id"),
                )
            )
        return out

    def _land(self, path: Path, rel: str, s, outcome: FileOutcome) -> None:
        const = {
            "_source_department": self.dataset.department,
            "_source_file": rel,
            "_file_sha256": s.sha256,
            "_batch_id": self.batch_id,
            "_period": self.dataset.period_of(path.name),
        }
        failure: list[FileRejected] = []
        counted = [0]

        def batches():
            try:
                for batch, first in prefetched(read(path, self.dataset, s)):
                    counted[0] += batch.num_rows
                    yield _provenance(batch, first, const, self.now)
            except FileRejected as exc:
                failure.append(exc)
                raise

        reader = pa.RecordBatchReader.from_batches(raw_table_schema(self.dataset), batches())
        try:
            outcome.delta_version = self.lake.append(
                "raw",
                self.dataset.id,
                reader,
                self.partition_by,
                {"batch_id": self.batch_id, "source_file": rel, "file_sha256": s.sha256},
            )
        except Exception:
            if failure:  # the reader refused the file mid-stream: the commit was aborted, nothing landed
                raise failure[0] from None
            raise
        outcome.rows_read = outcome.rows_landed = counted[0]

    def _reject(self, path: Path, outcome: FileOutcome, rejection: Rejection) -> None:
        owner_only(self.rejected_root)  # refused deliveries are data as delivered: no other account reads them
        target_dir = self.rejected_root / self.dataset.id / self.batch_id
        target_dir.mkdir(parents=True, exist_ok=True)
        target = target_dir / path.name
        shutil.move(path, target)
        reason = {
            "dataset": self.dataset.id,
            "file": outcome.file,
            "sha256": outcome.sha256,
            "batch_id": self.batch_id,
            "rejected_at": self.now.isoformat(),
            **rejection.record(),
        }
        _reason_path(target).write_text(json.dumps(reason, ensure_ascii=False, indent=1), encoding="utf-8")
        outcome.status, outcome.rejection = "rejected", rejection
        outcome.rows_read, outcome.rows_landed = rejection.rows_read, 0
        outcome.rejected_to = target.as_posix()

    def _log(self, result: CollectResult) -> int | None:
        rows = [o for o in result.outcomes if o.status != "skipped"]
        if not rows:
            return None
        r = lambda o, a: getattr(o.rejection, a) if o.rejection else None  # noqa: E731
        table = pa.Table.from_pylist(
            [
                {
                    "dataset": self.dataset.id,
                    "department": self.dataset.department,
                    "batch_id": o.batch_id or self.batch_id,
                    "run_id": self.run_id,
                    "file": o.file,
                    "sha256": o.sha256,
                    "bytes": o.bytes,
                    "mtime_ns": o.mtime_ns,
                    "ctime_ns": o.ctime_ns,
                    "inode": o.inode,
                    "format": self.dataset.format,
                    "encoding": o.encoding,
                    "status": o.status,
                    "reason_code": r(o, "code"),
                    "reason_zh": r(o, "reason_zh"),
                    "reason_en": r(o, "reason_en"),
                    "detail": r(o, "detail") or o.note,
                    "position": r(o, "position"),
                    "rejected_to": o.rejected_to,
                    "rows_read": o.rows_read,
                    "rows_landed": o.rows_landed,
                    "delta_version": o.delta_version,
                    "at": self.now,
                }
                for o in rows
            ],
            schema=LOG_SCHEMA,
        )
        return self.lake.append(
            COLLECT_LOG.zone, COLLECT_LOG.name, table, metadata={"batch_id": self.batch_id}, schema_mode="merge"
        )
