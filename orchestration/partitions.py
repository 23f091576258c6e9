"""Time partitions (分区): a periodic dataset's raw and std are partitioned by its period — monthly filings by
month, annual statistics by year, device telemetry by day — so the UI shows which periods were delivered and
built, automation rebuilds exactly the periods a delivery touched, and a steward backfills a range of them.

One partitions definition per granularity, shared by every dataset of it (Dagster runs one definition per
run: datasets of the same granularity build together), starting at the earliest period the 归集 agreements
expect (``period.since`` in the registry) and running to the current period (China time). Partition keys
are the period texts std already uses ('2023', '2023-05', '2023-12-01').

A dataset is partitioned when std rebuilds it by period (``quality.conform.partitioned``: its period column
is part of the business key, so a row and its corrections always fall in the same period).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable

import dagster as dg

from lakehouse.registry import Dataset, Registry, registry
from quality.conform import partitioned
from quality.rulebook import rules_for

TIMEZONE = "Asia/Shanghai"
_FMT = {"year": "%Y", "month": "%Y-%m", "day": "%Y-%m-%d"}
_CRON = {"year": "0 0 1 1 *", "month": "0 0 1 * *", "day": "0 0 * * *"}
_DEFAULT_START = {"year": "2023", "month": "2023-01", "day": "2023-01-01"}


@functools.cache
def _definition(granularity: str, start: str) -> dg.TimeWindowPartitionsDefinition:
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=_CRON[granularity],
        start=start,
        fmt=_FMT[granularity],
        timezone=TIMEZONE,
        end_offset=1,  # the current period is a partition too (a day's telemetry arrives during the day)
    )


def by_granularity(reg: Registry | None = None) -> dict[str, dg.TimeWindowPartitionsDefinition]:
    """The partitions of each granularity: from the earliest period any dataset of it expects."""
    reg = reg or registry()
    starts: dict[str, list[str]] = {}
    for ds in reg.datasets:
        if ds.period is not None and ds.period.since:
            starts.setdefault(ds.period.granularity, []).append(ds.period.since)
    return {g: _definition(g, min(starts.get(g, [_DEFAULT_START[g]]))) for g in _FMT}


def for_dataset(ds: Dataset, reg: Registry | None = None) -> dg.TimeWindowPartitionsDefinition | None:
    """The partitions of a dataset's raw and std, or None when std does not rebuild it by period."""
    if ds.period is None or not partitioned(ds, rules_for(ds.id)):
        return None
    return by_granularity(reg)[ds.period.granularity]


def keys(pdef: dg.PartitionsDefinition) -> list[str]:
    return list(pdef.get_partition_keys())


def valid(pdef: dg.PartitionsDefinition, periods: Iterable[str]) -> tuple[list[str], list[str]]:
    """``periods`` split into partition keys of ``pdef`` and the rest (a period before the first partition,
    in the future, or not a period at all)."""
    known = set(keys(pdef))
    inside = sorted({p for p in periods if p in known})
    return inside, sorted({p for p in periods if p not in known})


def named_range(pdef: dg.PartitionsDefinition, ds: Dataset, files: Iterable[str]) -> dg.PartitionKeyRange:
    """The range a collection run names: from the first to the last period the files' names state (the
    rows decide which partitions it materialises), or the current period when none states one."""
    named, _ = valid(pdef, filter(None, (ds.period_of(f.rsplit("/", 1)[-1]) for f in files)))
    named = named or keys(pdef)[-1:]
    return dg.PartitionKeyRange(named[0], named[-1])


def ranges(pdef: dg.PartitionsDefinition, partition_keys: Iterable[str]) -> list[dg.PartitionKeyRange]:
    """Contiguous runs of ``partition_keys``, in order: one single-run backfill each."""
    order = keys(pdef)
    index = {k: i for i, k in enumerate(order)}
    picked = sorted({index[k] for k in partition_keys if k in index})
    out: list[dg.PartitionKeyRange] = []
    for i in picked:
        if out and index[out[-1].end] == i - 1:
            out[-1] = dg.PartitionKeyRange(out[-1].start, order[i])
        else:
            out.append(dg.PartitionKeyRange(order[i], order[i]))
    return out


def range_tags(r: dg.PartitionKeyRange) -> dict[str, str]:
    """The run tags of a single run over a partition range (what Dagster's backfills set)."""
    return {"dagster/asset_partition_range_start": r.start, "dagster/asset_partition_range_end": r.end}


def landed(lake, ds: Dataset, pdef: dg.PartitionsDefinition, since: int | None) -> tuple[dict[str, int], int]:
    """The partitions the raw rows appended after raw version ``since`` fall in, with their row counts, and
    the rows that fall in none. A row falls in the period its period column states (corrections of an
    earlier month in a later file go to that month); a row whose period cannot be read, or is not a
    partition (before the first, in the future), counts for the period its file's name states."""
    import polars as pl

    from quality.conform import PARTITION, with_partition
    from quality.standardise import delivered_since, earlier_versions

    assert ds.period is not None and ds.period.column is not None
    wanted = [ds.period.column, "_period"] + (["_source_key"] if ds.versioned else [])
    added = delivered_since(lake, ds, since, wanted)
    if added is None:
        return {}, 0
    known = keys(pdef)
    # each distinct period text is read once (a month's filings write their period a handful of ways)
    distinct = added.group_by(ds.period.column, "_period").len().collect()
    if ds.versioned:
        # a database row's earlier versions may lie in other periods (an update that moved its period, a
        # delete): those periods lose the row, so they are materialised too (with no row landed in them)
        earlier = (
            earlier_versions(lake, ds, added)
            .group_by(ds.period.column, "_period")
            .len()
            .with_columns(pl.lit(0, pl.UInt32).alias("len"))
            .collect()
        )
        distinct = pl.concat([distinct, earlier.cast(distinct.schema)])
    frame = with_partition(distinct, ds, rules_for(ds.id)).select(
        pl.when(pl.col(PARTITION).is_in(known))
        .then(pl.col(PARTITION))
        .when(pl.col("_period").is_in(known))
        .then(pl.col("_period"))
        .alias("partition"),
        "len",
    )
    counts = frame.group_by("partition").agg(pl.col("len").sum())
    placed = {p: n for p, n in counts.iter_rows() if p is not None}
    return dict(sorted(placed.items())), sum(n for p, n in counts.iter_rows() if p is None)
