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
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pyarrow as pa
from deltalake import DeltaTable

from lakehouse.cycles import months_between
from lakehouse.lake import Lake
from lakehouse.provenance import PROVENANCE, raw_table_schema
from lakehouse.registry import Dataset
from lakehouse.tables import BY_LABEL, COLLECT_LOG, DUPLICATES, FINDINGS, SCORES, STD_PARTITIONS
from quality.conform import (
    CURRENT,
    DELETED,
    FINDING_SCHEMA,
    NO_PERIOD,
    PARTITION,
    STATS_SCHEMA,
    Conformed,
    Totals,
    conform,
    partitioned,
    with_bucket,
    with_partition,
)
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
    partitions: list[str] | None = None  # the periods rebuilt (None: the whole table)
    plan: str = ""  # why those
    whole: Conformed | None = None  # the dataset's totals after the build (the batch, when it rebuilt all)

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


def current_versions(lake: Lake, ds: Dataset) -> pl.LazyFrame | None:
    """For a versioned source (a database table, an interface): per source row (``_source_key``) its latest change over the whole raw table —
    later run, then later in the run — and whether that change deleted it; None for a file source. A row
    of raw is current when it is that change and the change is no delete (``mark_current``)."""
    if not ds.versioned or lake.table("raw", ds.id) is None:
        return None
    versions = pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None)
    return (
        versions.select("_source_key", "_ingested_at", "_row_number", "_change")
        .sort("_ingested_at", "_row_number")
        .group_by("_source_key")
        .agg(
            pl.col("_ingested_at").last().alias("__last_at"),
            pl.col("_row_number").last().alias("__last_row"),
            (pl.col("_change").last() == "delete").alias(DELETED),
        )
    )


def mark_current(frame, latest: pl.LazyFrame | None):
    """``frame`` (eager or lazy raw rows) with CURRENT and DELETED (see ``current_versions``); unchanged for
    a file source."""
    if latest is None:
        return frame
    lazy = frame.lazy() if isinstance(frame, pl.DataFrame) else frame
    out = (
        lazy.join(latest, on="_source_key", how="left")
        .with_columns(
            (
                (pl.col("_ingested_at") == pl.col("__last_at"))
                & (pl.col("_row_number") == pl.col("__last_row"))
                & ~pl.col(DELETED)
            ).alias(CURRENT)
        )
        .drop("__last_at", "__last_row")
    )
    return out.collect() if isinstance(frame, pl.DataFrame) else out


@contextmanager
def _buckets(
    lake: Lake, ds: Dataset, rules: RuleSet, has_raw: bool, partitions: list[str] | None = None
) -> Iterator[list[Callable[[], pl.DataFrame]]]:
    """The raw rows to conform — the whole table, or only the rows of ``partitions`` — as key buckets of
    about PART_ROWS rows (one bucket when they are few), so memory follows the bucket, not the table.
    Everything that reads Delta happens here, before the std write starts: the write stream must not call
    into deltalake."""
    if not has_raw:
        yield [lambda: pl.from_arrow(raw_table_schema(ds).empty_table())]
        return
    latest = current_versions(lake, ds)
    if partitions is None:
        rows = lake.row_count("raw", ds.id)
        if rows <= PART_ROWS:
            frame = mark_current(lake.read("raw", ds.id), latest)
            yield [lambda: frame]
            return
        scan = mark_current(pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None), latest)
    else:
        scan = with_partition(
            pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None), ds, rules
        ).filter(pl.col(PARTITION).is_in(partitions))
        frame = mark_current(scan, latest).collect()
        if frame.height <= PART_ROWS:
            yield [lambda: frame]
            return
        rows, scan = frame.height, frame.lazy()
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
    partitions: list[str] | None = None,
    metadata: dict[str, str] | None = None,
    baseline: tuple[int, int] = (0, 0),
) -> tuple[Conformed, int | None]:
    """Conform the raw table and write std in one commit, or nothing. Returns the totals and the new version
    (None: withheld because a bucket failed an ERROR batch rule, the share rule, or conservation).
    ``before_commit`` gets the totals of a batch that will be written, before its commit completes; the
    commit carries ``build_id`` and ``metadata``. With ``partitions``, only the raw rows of those periods
    are conformed, and they replace exactly those periods' rows of std; ``baseline`` (rows in, quarantined)
    of the periods left alone joins the batch's counts for the share rule, which judges the dataset."""
    totals = Totals(rules, baseline)
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

    with _buckets(lake, ds, rules, has_raw, partitions) as buckets:
        try:
            reader = pa.RecordBatchReader.from_batches(schema, batches(buckets))
            commit = {
                "computed_from": computed_from,
                **(metadata or {}),
                **({"build_id": build_id} if build_id else {}),
            }
            if partitions is None:
                version = lake.overwrite("std", ds.id, reader, metadata=commit, partition_by=disk_partitions(ds))
            else:
                version = lake.overwrite_where("std", ds.id, reader, std_predicate(ds, partitions), metadata=commit)
        except Exception:
            if finished and (finished[0].blocked or not finished[0].conserved):
                return finished[0], None
            raise
    return finished[0], version


PENDING = "std_pending"  # ops/std_pending/<dataset>/<build>.<part>.parquet
_PARTS = (FINDINGS.label, DUPLICATES.label, STD_PARTITIONS.label, SCORES.label)
_REPLACED = (FINDINGS.label, DUPLICATES.label, STD_PARTITIONS.label)  # replaced per dataset (and period)


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
        STD_PARTITIONS.label: (result.stats if result.stats is not None else pl.DataFrame(schema=STATS_SCHEMA)).select(
            pl.lit(ds.id).alias("dataset"), pl.all()
        ),
    }


def _quote(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _in(column: str, values: list[str]) -> str:
    return f"{column} IN ({', '.join(_quote(v) for v in values)})"


def disk_partitions(ds: Dataset) -> list[str] | None:
    """The std table's partition columns on disk: its period column where that holds the period itself (a
    month text, a year number), so rebuilding a period rewrites that period's files only — a correction of
    March does not rewrite the other months. None for the rest (a timestamp, no period)."""
    if ds.period is None or ds.period.column is None:
        return None
    column = next(c for c in ds.columns if c.name == ds.period.column)
    if (column.type, ds.period.granularity) in (("month", "month"), ("integer", "year")):
        return [column.name]
    return None


def std_predicate(ds: Dataset, partitions: list[str]) -> str:
    """The std rows of these periods, as a Delta predicate on the period column's standard value (``∅``:
    the rows without one)."""
    assert ds.period is not None and ds.period.column is not None
    column = next(c for c in ds.columns if c.name == ds.period.column)
    name = column.name
    real = sorted(p for p in partitions if p != NO_PERIOD)
    terms = []
    if real:
        if column.type == "integer":
            terms.append(f"{name} IN ({', '.join(str(int(p)) for p in real)})")
        elif column.type == "month" and ds.period.granularity == "month":
            terms.append(_in(name, real))
        else:  # dates and timestamps: the period's span in China Standard Time
            for p in real:
                start, end = _span(ds.period.granularity, p)
                if column.type == "date":
                    terms.append(f"({name} >= '{start:%Y-%m-%d}' AND {name} < '{end:%Y-%m-%d}')")
                else:
                    terms.append(f"({name} >= '{start.isoformat()}' AND {name} < '{end.isoformat()}')")
    if NO_PERIOD in partitions:
        terms.append(f"{name} IS NULL")
    return " OR ".join(terms) if terms else "false"


def _span(granularity: str, period: str) -> tuple[dt.datetime, dt.datetime]:
    cst = dt.timezone(dt.timedelta(hours=8))
    y = int(period[:4])
    if granularity == "year":
        return dt.datetime(y, 1, 1, tzinfo=cst), dt.datetime(y + 1, 1, 1, tzinfo=cst)
    m = int(period[5:7])
    if granularity == "month":
        return dt.datetime(y, m, 1, tzinfo=cst), dt.datetime(y + m // 12, m % 12 + 1, 1, tzinfo=cst)
    start = dt.datetime(y, m, int(period[8:10]), tzinfo=cst)
    return start, start + dt.timedelta(days=1)


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
        if label in _REPLACED:
            periods = _staged_partitions(lake, ds, build)
            if periods is None:
                versions[label] = lake.replace_where(
                    table.zone, table.name, frame.to_arrow(), "dataset", ds.id, metadata
                )
            else:
                where = f"dataset = {_quote(ds.id)} AND " + (_in("partition", periods) if periods else "false")
                versions[label] = lake.overwrite_where(table.zone, table.name, frame.to_arrow(), where, metadata)
        elif not _score_recorded(lake, frame):
            versions[label] = lake.append(table.zone, table.name, frame.to_arrow(), metadata=metadata)
    for label in _PARTS:
        lake.delete("ops", _part_name(ds, build, label))
    lake.delete("ops", _periods_name(ds, build))
    return versions


def _periods_name(ds: Dataset, build: str) -> str:
    return f"{PENDING}/{ds.id}/{build}.periods.json"


def _staged_partitions(lake: Lake, ds: Dataset, build: str) -> list[str] | None:
    """The periods a staged build rebuilt (None: the whole dataset)."""
    data = lake.read_bytes("ops", _periods_name(ds, build))
    return None if data is None else json.loads(data)


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
            lake.delete("ops", _periods_name(ds, build))
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


def _rules_sha(rules: RuleSet) -> str:
    return hashlib.sha256((RULES_DIR / f"{rules.dataset}.yaml").read_bytes()).hexdigest()[:12]


def delivered_since(lake: Lake, ds: Dataset, since: int | None, columns: list[str]) -> pl.LazyFrame | None:
    """``columns`` of the raw rows appended after raw version ``since`` (None: every row), read from the data
    files added since — never the whole table — or None when there are none."""
    raw = lake.table("raw", ds.id)
    if raw is None:
        return None
    known: set[str] = set()
    if since is not None and since >= 0:
        before = DeltaTable(lake.uri("raw", ds.id), version=since, storage_options=lake.storage_options or None)
        known = set(pa.table(before.get_add_actions(flatten=True)).column("path").to_pylist())
    adds = pl.from_arrow(pa.table(raw.get_add_actions(flatten=True)))
    root = lake.uri("raw", ds.id).rstrip("/")
    # a partition column (the file's period, ``_period``) is in the Delta log, not in the data files
    hive = [c for c in columns if f"partition.{c}" in adds.columns]
    new = [
        pl.scan_parquet(f"{root}/{a['path']}", storage_options=lake.storage_options or None)
        .select([c for c in columns if c not in hive])
        .with_columns(pl.lit(a[f"partition.{c}"], pl.String).alias(c) for c in hive)
        .select(columns)
        for a in adds.iter_rows(named=True)
        if a["path"] not in known
    ]
    return pl.concat(new) if new else None


def earlier_versions(lake: Lake, ds: Dataset, added: pl.LazyFrame) -> pl.LazyFrame:
    """The period columns (the period column, ``_period``) of every raw row of a database source that is a
    version of a source row among ``added``: an update that moved a row's period, or deleted it, changes
    the period its earlier version lies in too, which is rebuilt with the others."""
    assert ds.period is not None and ds.period.column is not None
    return (
        pl.scan_delta(lake.uri("raw", ds.id), storage_options=lake.storage_options or None)
        .join(added.select("_source_key").unique(), on="_source_key", how="semi")
        .select(ds.period.column, "_period")
    )


def plan(lake: Lake, ds: Dataset, rules: RuleSet, inputs: dict[str, str]) -> tuple[list[str] | None, str]:
    """Which periods of std this build must rebuild: None for all of it, else the periods (partitions) that
    raw rows added since the last build fall in — a new month, a late file, a correction of an old month
    in a later file. The whole table is rebuilt when std is not periodic, was never built, its rule book
    or a table its rules read changed, or raw was rewritten rather than appended to. ``inputs``: what
    this build reads (raw version, rule book, referenced std versions, pseudonym key), as recorded on std
    commits. Nothing is rebuilt ([]) when none of them changed."""
    last = next(iter(lake.commits("std", ds.id, 1)), None)
    if last is None:
        return None, "first build"
    changed = [k for k in ("rules", "refs", "transform") if last.get(k, "") != inputs.get(k, "")]
    if changed or "raw_version" not in last:
        return None, f"{' and '.join(changed) or 'the inputs of the last build'} changed"
    raw = lake.table("raw", ds.id)
    since = int(last["raw_version"])
    if raw is not None and raw.version() == since:
        return [], "nothing delivered since the last build"
    if not partitioned(ds, rules):
        return None, "not rebuilt by period (no period column in the business key)"
    if raw is None or raw.version() < since:
        return None, "raw is older than the last build"
    appended = [
        h
        for h in raw.history(raw.version() - since)  # the commits since the last build, no further back
        if h["version"] > since
        and not (h.get("operation") == "WRITE" and str(h.get("operationParameters", {}).get("mode")) == "Append")
    ]
    if appended:
        return None, f"raw rewritten since the last build (version {appended[0]['version']})"
    added = delivered_since(lake, ds, since, [ds.period.column] + (["_source_key"] if ds.versioned else []))
    if added is not None and ds.versioned:
        added = pl.concat([added.drop("_source_key"), earlier_versions(lake, ds, added).drop("_period")])
    touched = (
        with_partition(added, ds, rules).select(pl.col(PARTITION).unique()).collect()[PARTITION].to_list()
        if added is not None
        else []
    )
    return sorted(touched), f"{len(touched)} period(s) with rows delivered since raw version {since}"


def _nothing() -> Conformed:
    return Conformed(None, pl.DataFrame(schema=FINDING_SCHEMA), 0, 0, 0, 0, stats=pl.DataFrame(schema=STATS_SCHEMA))


def _whole(lake: Lake, ds: Dataset, rules: RuleSet, batch: Conformed, partitions: list[str] | None) -> Conformed:
    """The dataset's totals after a build: the batch itself when it rebuilt everything, else the periods it
    rebuilt added to the recorded statistics (``quality/std_partitions``) of the periods it left alone."""
    if partitions is None:
        return batch
    kept = ~pl.col("partition").is_in(partitions).fill_null(False) & (pl.col("dataset") == ds.id)
    old_stats = lake.read(STD_PARTITIONS.zone, STD_PARTITIONS.name)
    old_stats = old_stats.filter(kept).select(list(STATS_SCHEMA)) if old_stats is not None else None
    stats = (
        pl.concat([s for s in (old_stats, batch.stats) if s is not None]).group_by("measure").agg(pl.col("value").sum())
    )
    total = dict(stats.iter_rows())
    return Conformed(
        None,
        pl.DataFrame(schema=FINDING_SCHEMA),
        total.get("rows_in", 0),
        total.get("exact_duplicates", 0),
        total.get("key_duplicates", 0),
        total.get("quarantined", 0),
        {r.id: total.get(f"fail:{r.id}", 0) for r in rules.rules},
        rows_written=total.get("rows_out", 0),
        repaired={c.name: total.get(f"repaired:{c.name}", 0) for c in ds.columns if c.type in ("date", "month")},
    )


def standardise(
    lake: Lake,
    ds: Dataset,
    rules: RuleSet,
    transform: Transform | None = None,
    at: dt.datetime | None = None,
    build_id: str | None = None,
    mask: Transform | None = None,
    full: bool = False,
    transform_version: str = "",
    periods: list[str] | None = None,
) -> StdOutcome:
    """Build std for one dataset from its current raw table: the whole stage for one dataset. A build an
    earlier run left half-written is completed first (``complete_pending``). A periodic dataset rebuilds
    only the periods raw rows were delivered for since the last build (``plan``; ``full`` rebuilds all).
    ``transform`` is what the privacy policy does to std rows, ``mask`` what it does to the delivered
    values kept in findings; ``transform_version`` names it (the pseudonym key version): when it changes,
    every period is rebuilt. ``periods`` rebuilds exactly those periods (a backfill) of a periodic dataset."""
    recovered = complete_pending(lake, ds)
    at = at or dt.datetime.now(dt.UTC)
    build = build_id or new_build_id(at)
    raw = lake.table("raw", ds.id)
    inputs = {
        "raw_version": str(raw.version() if raw is not None else -1),
        "rules": _rules_sha(rules),
        "refs": json.dumps({t: lake.table("std", t).version() for t in sorted(rules.references)}, sort_keys=True),
        "transform": transform_version,
    }
    if full:
        partitions, why = None, "full rebuild requested"
    else:
        partitions, why = plan(lake, ds, rules, inputs)
        if periods is not None and partitions is not None and partitioned(ds, rules):
            # a backfill: the periods asked for, and whatever was delivered since (never fewer — and when
            # the plan needs everything rebuilt, a changed rule book say, everything is)
            partitions, why = sorted(set(periods) | set(partitions)), f"backfill of the periods requested; {why}"
    if partitions == []:  # nothing new: std stays as it is
        whole = _whole(lake, ds, rules, _nothing(), [])
        scores, _ = score(lake, ds, rules, whole, at)
        version = lake.table("std", ds.id).version()
        return StdOutcome(whole, version, scores, {}, recovered, partitions=[], plan=why, whole=whole)
    refs = {f"{t}.uscc": lake.read("std", t, columns=["uscc"])["uscc"] for t in sorted(rules.references)}
    computed_from = fingerprint(rules, raw.version() if raw is not None else -1)
    metadata = {**inputs, "partitions": json.dumps(partitions) if partitions is not None else "all"}
    rest = _whole(lake, ds, rules, _nothing(), partitions) if partitions else None  # the periods left alone

    def stage(result: Conformed) -> None:  # inside the std write stream: plain file writes, no Delta
        if partitions is not None:
            lake.write_bytes("ops", _periods_name(ds, build), json.dumps(partitions).encode())
        for label, frame in set_aside_frames(ds, result, mask).items():
            _stage(lake, ds, build, label, frame)

    result, version = conform_and_write(
        lake,
        ds,
        rules,
        refs,
        raw is not None,
        computed_from,
        transform,
        build,
        stage,
        partitions,
        metadata,
        (rest.rows_in, rest.quarantined) if rest is not None else (0, 0),
    )
    if version is None:
        return StdOutcome(result, None, {}, {}, recovered, partitions=partitions, plan=why, whole=result)
    whole = _whole(lake, ds, rules, result, partitions)
    scores, row = score(lake, ds, rules, whole, at)
    _stage(lake, ds, build, SCORES.label, row)
    side = _write_staged(lake, ds, build)
    return StdOutcome(result, version, scores, side, recovered, partitions=partitions, plan=why, whole=whole)


def periods_between(ds: Dataset, start: str, end: str) -> list[str]:
    """The periods of a periodic dataset's granularity that overlap ``start``..``end`` (months 'YYYY-MM')."""
    assert ds.period is not None
    try:
        months = months_between(start, end)
    except ValueError as exc:
        raise ValueError(f"backfill: {exc}") from None
    if ds.period.granularity == "year":
        return sorted({m[:4] for m in months})
    if ds.period.granularity == "month":
        return months
    first = dt.date.fromisoformat(f"{months[0]}-01")
    last = dt.date.fromisoformat(f"{months[-1]}-01")
    after = dt.date(last.year + (last.month == 12), last.month % 12 + 1, 1)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((after - first).days)]
