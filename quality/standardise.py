"""The std build (raw → std) for one dataset: conform, audit, then write — or write nothing.

Write-audit-publish in one Delta commit: the raw table is conformed in key buckets (one bucket when it is
small), each bucket's std rows stream into the commit after its audit; when any bucket fails an ERROR rule,
or the whole batch fails the share rule or row conservation, the stream raises and nothing is committed.
A written batch then replaces its dataset's partitions of ``quarantine/findings`` and
``quarantine/duplicates`` and appends its GB/T 36344 scores to ``quality/scores``.

Plain code over the lake, free of Dagster; the std assets call ``standardise`` and report what it returns.
What the std zone does to identifiers is the caller's ``transform`` (the privacy policy), applied to each
bucket's std rows before they are written.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa

from lakehouse.lake import Lake
from lakehouse.provenance import PROVENANCE, raw_table_schema
from lakehouse.registry import Dataset
from lakehouse.tables import COLLECT_LOG, DUPLICATES, FINDINGS, SCORES
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
) -> tuple[Conformed, int | None]:
    """Conform the raw table and write std in one commit, or nothing. Returns the totals and the new version
    (None: withheld because a bucket failed an ERROR batch rule, the share rule, or conservation)."""
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

    with _buckets(lake, ds, rules, has_raw) as buckets:
        try:
            reader = pa.RecordBatchReader.from_batches(schema, batches(buckets))
            version = lake.overwrite("std", ds.id, reader, metadata={"computed_from": computed_from})
        except Exception:
            if finished and (finished[0].blocked or not finished[0].conserved):
                return finished[0], None
            raise
    return finished[0], version


def record_rows_set_aside(lake: Lake, ds: Dataset, result: Conformed) -> dict[str, int]:
    """This dataset's partitions of the quarantine tables: the findings, and the duplicates merged away.
    Returns the version written of each."""
    merged = result.duplicates.select(pl.lit(ds.id).alias("dataset"), pl.all())
    return {
        t.label: lake.replace_where(t.zone, t.name, frame.to_arrow(), "dataset", ds.id)
        for t, frame in ((FINDINGS, result.findings), (DUPLICATES, merged))
    }


def score(lake: Lake, ds: Dataset, rules: RuleSet, result: Conformed, at: dt.datetime) -> tuple[dict[str, float], int]:
    """This run's GB/T 36344 scores, appended to the history in quality/scores (and that table's version)."""
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
    version = lake.append(SCORES.zone, SCORES.name, pl.DataFrame([row], schema=SCORE_SCHEMA).to_arrow())
    return scores, version


def standardise(
    lake: Lake, ds: Dataset, rules: RuleSet, transform: Transform | None = None, at: dt.datetime | None = None
) -> StdOutcome:
    """Build std for one dataset from its current raw table: the whole stage for one dataset."""
    raw = lake.table("raw", ds.id)
    refs = {f"{t}.uscc": lake.read("std", t, columns=["uscc"])["uscc"] for t in sorted(rules.references)}
    computed_from = fingerprint(rules, raw.version() if raw is not None else -1)
    result, version = conform_and_write(lake, ds, rules, refs, raw is not None, computed_from, transform)
    if version is None:
        return StdOutcome(result, None, {}, {})
    side = record_rows_set_aside(lake, ds, result)
    scores, side[SCORES.label] = score(lake, ds, rules, result, at or dt.datetime.now(dt.UTC))
    return StdOutcome(result, version, scores, side)
