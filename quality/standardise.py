"""The std build (raw → std) for one dataset: conform, audit, then write — or write nothing.

Write-audit-publish in one Delta commit: the raw table is conformed in key buckets (one bucket when it is
small), each bucket's std rows stream into the commit after its audit; when any bucket fails an ERROR rule,
or the whole batch fails the share rule or row conservation, the stream raises and nothing is committed.
A written batch then replaces its dataset's partitions of ``quarantine/findings`` and
``quarantine/duplicates`` and appends its GB/T 36344 scores to ``quality/scores``.

std and its quarantine rows are one fact, recoverable by build id: before the std commit completes, the
build's quarantine rows are staged in ``ops/std_pending/<dataset>/<build>.*.parquet``; the std commit
carries the build id; the quarantine and score writes follow, and the staging is removed. A crash between
the std commit and those writes leaves the staging behind, and the next std build of the dataset
(``complete_pending``) writes it before anything else — so std, quarantine and duplicates always
reconcile with raw once a run has started. Staging whose build never committed std is discarded.

Plain code over the lake, free of Dagster; the std assets call ``standardise`` and report what it returns.
What the std zone does to identifiers is the caller's ``transform`` (the privacy policy), applied to each
bucket's std rows before they are written.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import io
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from lakehouse.lake import Lake
from lakehouse.provenance import PROVENANCE, raw_table_schema
from lakehouse.registry import Dataset
from lakehouse.tables import BY_LABEL, COLLECT_LOG, DUPLICATES, FINDINGS, SCORES
from quality.conform import Conformed, Totals, conform, with_bucket
from quality.gate import STD_TYPES
from quality.rulebook import RULES_DIR, RuleSet
from quality.scores import SCHEMA as SCORE_SCHEMA
from quality.scores import dataset_scores
from quality.scores import row as score_row

PART_ROWS = 1_000_000  # rows per key bucket when a raw table is conformed in parts

Transform = Callable[[pl.DataFrame], pl.DataFrame]


@dataclass(frozen=True)
class StdOutcome:
    """What one std build did. ``version`` is None when the batch was withheld (nothing written)."""

    result: Conformed
    version: int | None
    scores: dict[str, float]
    side_versions: dict[str, int]  # own table label (quarantine/findings, …) → the version this build wrote
    recovered: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)  # builds completed first

    @property
    def withheld(self) -> bool:
        return self.version is None

    def reasons(self) -> str:
        """Why a withheld batch was not written."""
        return "; ".join(f"{g.rule_id} ({g.count})" for g in self.result.gate) or "rows do not reconcile"


def std_arrow_schema(ds: Dataset) -> pa.Schema:
    provenance = pl.from_arrow(PROVENANCE.empty_table()).schema
    frame = pl.DataFrame(schema={**{c.name: STD_TYPES[c.type] for c in ds.columns}, **provenance})
    return frame.to_arrow().schema


def fingerprint(rules: RuleSet, raw_version: int) -> str:
    """What the std table was computed from: the raw version and the rule book."""
    text = (RULES_DIR / f"{rules.dataset}.yaml").read_text(encoding="utf-8")
    return f"raw@{raw_version}:rules@{hashlib.sha256(text.encode()).hexdigest()[:12]}"


class _Withheld(Exception):
    """Raised inside the std write stream to abort its commit."""


@contextmanager
def _buckets(lake: Lake, ds: Dataset, rules: RuleSet, has_raw: bool) -> Iterator[list[Callable[[], pl.DataFrame]]]:
    """The raw table as key buckets of about PART_ROWS rows (one bucket when it is small), so memory
    follows the bucket, not the table. Everything that reads Delta happens here, before the std write
    starts: the write stream must not call into deltalake."""
    if not has_raw:
        yield [lambda: pl.DataFrame(schema=raw_table_schema(ds))]
        return
    rows = lake.row_count("raw", ds.id)
    if rows <= PART_ROWS:
        frame = lake.read("raw", ds.id)
        yield [lambda: frame]
        return
    scan = pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None)
    with tempfile.TemporaryDirectory(prefix=f"shucang-std-{ds.id}-") as tmp:
        with_bucket(scan, ds, rules, -(-rows // PART_ROWS)).sink_parquet(
            pl.PartitionBy(tmp, key="__bucket", include_key=False), compression="lz4"
        )
        yield [functools.partial(pl.read_parquet, part) for part in sorted(Path(tmp).iterdir())]


def conform_and_write(
    lake: Lake,
    ds: Dataset,
    rules: RuleSet,
    refs: dict,
    has_raw: bool,
    computed_from: str,
    transform: Transform | None = None,
    build_id: str | None = None,
    before_commit: Callable[[Conformed], None] | None = None,
) -> tuple[Conformed, int | None]:
    """Conform the raw table and write std in one commit, or nothing. Returns the totals and the new version
    (None: withheld because a bucket failed an ERROR batch rule, the share rule, or conservation).
    ``before_commit`` gets the totals of a batch that will be written, before its commit completes; the
    commit carries ``build_id``."""
    totals = Totals(rules)
    schema = std_arrow_schema(ds)
    finished: list[Conformed] = []

    def batches(buckets):
        for load in buckets:
            part = conform(ds, rules, load(), refs, whole=False)
            totals.add(part)
            if not totals.total.blocked:
                std = transform(part.std) if transform is not None else part.std
                yield from std.to_arrow().cast(schema).to_batches()
        finished.append(totals.finish())
        if finished[0].blocked or not finished[0].conserved:
            raise _Withheld(ds.id)
        if before_commit is not None:
            before_commit(finished[0])

    with _buckets(lake, ds, rules, has_raw) as buckets:
        try:
            reader = pa.RecordBatchReader.from_batches(schema, batches(buckets))
            metadata = {"computed_from": computed_from, **({"build_id": build_id} if build_id else {})}
            version = lake.overwrite("std", ds.id, reader, metadata=metadata)
        except Exception:
            if finished and (finished[0].blocked or not finished[0].conserved):
                return finished[0], None
            raise
    return finished[0], version


PENDING = "std_pending"  # ops/std_pending/<dataset>/<build>.<part>.parquet
_PARTS = (FINDINGS.label, DUPLICATES.label, SCORES.label)


def _part_name(ds: Dataset, build: str, label: str) -> str:
    return f"{PENDING}/{ds.id}/{build}.{label.replace('/', '.')}.parquet"


def _stage(lake: Lake, ds: Dataset, build: str, label: str, frame: pl.DataFrame) -> None:
    buffer = io.BytesIO()
    frame.write_parquet(buffer)
    lake.write_bytes("ops", _part_name(ds, build, label), buffer.getvalue())


def set_aside_frames(ds: Dataset, result: Conformed, mask: Transform | None = None) -> dict[str, pl.DataFrame]:
    """This dataset's rows of the quarantine tables: the findings (their delivered values through ``mask``,
    the caller's privacy policy), and the duplicates merged away."""
    return {
        FINDINGS.label: mask(result.findings) if mask is not None else result.findings,
        DUPLICATES.label: result.duplicates.select(pl.lit(ds.id).alias("dataset"), pl.all()),
    }


def _write_staged(lake: Lake, ds: Dataset, build: str) -> dict[str, int]:
    """Write a build's staged quarantine partitions and score row, then drop the staging. Idempotent:
    partitions are replaced, and a score row already appended for the build is not appended again."""
    versions = {}
    for label in _PARTS:
        name = _part_name(ds, build, label)
        data = lake.read_bytes("ops", name)
        if data is None:
            continue
        frame, table = pl.read_parquet(io.BytesIO(data)), BY_LABEL[label]
        metadata = {"build_id": build, "dataset": ds.id}
        if label != SCORES.label:
            versions[label] = lake.replace_where(table.zone, table.name, frame.to_arrow(), "dataset", ds.id, metadata)
        elif not _score_recorded(lake, frame):
            versions[label] = lake.append(table.zone, table.name, frame.to_arrow(), metadata=metadata)
    for label in _PARTS:
        lake.delete("ops", _part_name(ds, build, label))
    return versions


def _score_recorded(lake: Lake, row: pl.DataFrame) -> bool:
    scores = lake.read(SCORES.zone, SCORES.name, columns=["scored_at", "level", "subject"])
    if scores is None:
        return False
    return scores.join(row.select("scored_at", "level", "subject"), on=["scored_at", "level", "subject"]).height > 0


def pending_builds(lake: Lake, ds: Dataset) -> list[str]:
    """Builds of this dataset with staged quarantine rows not yet written (a crash, or a run under way)."""
    names = lake.list_files("ops", f"{PENDING}/{ds.id}", ".parquet")
    return sorted({n.rsplit("/", 1)[-1].split(".", 1)[0] for n in names})


def complete_pending(lake: Lake, ds: Dataset) -> dict[str, dict[str, int]]:
    """Finish what a crashed std build left: the build that wrote the current std version gets its
    quarantine partitions and score row written from its staging; staging of builds that never committed
    std is discarded. Returns build id → versions written, for the builds completed."""
    builds = pending_builds(lake, ds)
    if not builds:
        return {}
    current = next(iter(lake.commits("std", ds.id, 1)), {}).get("build_id")
    done = {}
    for build in builds:
        if build == current:
            done[build] = _write_staged(lake, ds, build)
        else:
            for label in _PARTS:
                lake.delete("ops", _part_name(ds, build, label))
    return done


def score(
    lake: Lake, ds: Dataset, rules: RuleSet, result: Conformed, at: dt.datetime
) -> tuple[dict[str, float], pl.DataFrame]:
    """This run's GB/T 36344 scores and the row for the history in quality/scores."""
    log = lake.read(COLLECT_LOG.zone, COLLECT_LOG.name, columns=["dataset", "status"])
    files = log.filter(pl.col("dataset") == ds.id) if log is not None else pl.DataFrame({"status": []})
    scores = dataset_scores(
        rules,
        result.rule_failures,
        result.rows_in - result.exact_duplicates,
        result.rows_in,
        result.exact_duplicates,
        files.height,
        files.filter(pl.col("status") == "landed").height,
        result.repaired,
    )
    row = score_row("dataset", ds.id, ds.department, result.rows_in, scores, at)
    return scores, pl.DataFrame([row], schema=SCORE_SCHEMA)


def new_build_id(at: dt.datetime) -> str:
    return f"{at:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:8]}"


def standardise(
    lake: Lake,
    ds: Dataset,
    rules: RuleSet,
    transform: Transform | None = None,
    at: dt.datetime | None = None,
    build_id: str | None = None,
    mask: Transform | None = None,
) -> StdOutcome:
    """Build std for one dataset from its current raw table: the whole stage for one dataset. A build an
    earlier run left half-written is completed first (``complete_pending``). ``transform`` is what the
    privacy policy does to std rows, ``mask`` what it does to the delivered values kept in findings."""
    recovered = complete_pending(lake, ds)
    at = at or dt.datetime.now(dt.UTC)
    build = build_id or new_build_id(at)
    raw = lake.table("raw", ds.id)
    refs = {f"{t}.uscc": lake.read("std", t, columns=["uscc"])["uscc"] for t in sorted(rules.references)}
    computed_from = fingerprint(rules, raw.version() if raw is not None else -1)

    def stage(result: Conformed) -> None:  # inside the std write stream: plain file writes, no Delta
        for label, frame in set_aside_frames(ds, result, mask).items():
            _stage(lake, ds, build, label, frame)

    result, version = conform_and_write(lake, ds, rules, refs, raw is not None, computed_from, transform, build, stage)
    if version is None:
        return StdOutcome(result, None, {}, {}, recovered)
    scores, row = score(lake, ds, rules, result, at)
    _stage(lake, ds, build, SCORES.label, row)
    side = _write_staged(lake, ds, build)
    return StdOutcome(result, version, scores, side, recovered)
