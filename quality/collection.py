"""归集 monitoring: for every periodic dataset, the deliveries its agreement expects, and what came.

A periodic dataset (``period`` in the source registry) owes one delivery per period — a day, a month or a
year — due ``due_days`` after the period ends. From the collection log (``ops/collect_log``), each expected
delivery is on time, late, rejected (only refused files arrived), missing (nothing, and the deadline has
passed) or pending (not yet due). A file's delivery time is when its upload finished (its modification
time in the landing folder), never later than its collection. Rows landed for a period are set against
the dataset's typical period (the median of the others), so a short delivery shows.

The monthly 归集率 of a department is the share of its deliveries due that month that arrived on time.
Snapshot datasets (no period) owe no scheduled file: their timeliness is the freshness check's.

Plain polars over the log; the ``ops/collection_status`` asset writes and plots what this returns.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass

import polars as pl

from lakehouse.registry import Dataset, Registry, registry
from lakehouse.tables import COLLECTION_STATUS

CST = dt.timezone(dt.timedelta(hours=8))  # deadlines are calendar days in China Standard Time
SHORT_RATIO = 0.5  # a period holding under half the dataset's typical rows is short

STATUS_SCHEMA = {
    "department": pl.String,
    "department_name": pl.String,
    "dataset": pl.String,
    "dataset_name": pl.String,
    "period": pl.String,
    "due_on": pl.Date,
    "expected": pl.Boolean,
    "state": pl.String,  # on_time | late | rejected | missing | pending | unexpected
    "files_landed": pl.Int64,
    "files_rejected": pl.Int64,
    "delivered_at": pl.Datetime("us", "UTC"),  # the first landed file
    "days_late": pl.Int64,
    "rows_landed": pl.Int64,
    "rows_typical": pl.Float64,
    "rows_short": pl.Boolean,
    "reasons": pl.String,  # why files were refused
    "as_of": pl.Datetime("us", "UTC"),
}
RATE_SCHEMA = {
    "department": pl.String,
    "department_name": pl.String,
    "month": pl.String,  # the month the deliveries were due
    "expected": pl.Int64,
    "on_time": pl.Int64,
    "late": pl.Int64,
    "rejected": pl.Int64,
    "missing": pl.Int64,
    "rate": pl.Float64,  # 归集率: on_time / expected
}


@dataclass(frozen=True)
class CollectionStatus:
    status: pl.DataFrame  # one row per (dataset, period)
    rates: pl.DataFrame  # one row per (department, month)

    def overdue(self) -> pl.DataFrame:
        """Expected deliveries past their deadline and not received (missing or only rejected)."""
        return self.status.filter(pl.col("expected") & pl.col("state").is_in(["missing", "rejected"]))


def ensure(lake) -> None:
    """The status table, created empty the first time (the 亩均 completeness reads it as a dbt source: an empty
    status says nothing about any delivery, so no month counts as undelivered)."""
    lake.ensure(COLLECTION_STATUS.zone, COLLECTION_STATUS.name, pl.DataFrame(schema=STATUS_SCHEMA).to_arrow().schema)


def _end(granularity: str, period: str) -> dt.date:
    y = int(period[:4])
    if granularity == "year":
        return dt.date(y, 12, 31)
    m = int(period[5:7])
    if granularity == "month":
        return dt.date(y, m, calendar.monthrange(y, m)[1])
    return dt.date(y, m, int(period[8:10]))


def _next(granularity: str, period: str) -> str:
    following = _end(granularity, period) + dt.timedelta(days=1)
    return {"year": f"{following:%Y}", "month": f"{following:%Y-%m}", "day": following.isoformat()}[granularity]


def due_on(ds: Dataset, period: str) -> dt.date:
    assert ds.period is not None
    return _end(ds.period.granularity, period) + dt.timedelta(days=ds.period.deadline_days)


def expected_periods(ds: Dataset, received: list[str], today: dt.date) -> list[str]:
    """The periods the agreement expects by ``today``: from ``since`` (else the first received) through
    ``until``, stopping at the last period whose deadline has come (a period not yet due is listed only when
    something arrived for it)."""
    assert ds.period is not None
    start = ds.period.since or (min(received) if received else None)
    if start is None:
        return []
    out, p, last = [], start, max(received, default=start)
    while (ds.period.until is None or p <= ds.period.until) and (due_on(ds, p) <= today or p <= last):
        if due_on(ds, p) <= today or p in received:
            out.append(p)
        p = _next(ds.period.granularity, p)
    return out


def _files(reg: Registry, log: pl.DataFrame | None) -> pl.DataFrame:
    """One row per distinct delivered file (its last outcome), with dataset, period and delivery time."""
    schema = {"dataset": pl.String, "file": pl.String, "status": pl.String, "period": pl.String}
    if log is None or log.is_empty():
        return pl.DataFrame(schema={**schema, "delivered_at": pl.Datetime("us", "UTC"), "rows_landed": pl.Int64})
    periodic = {d.id: d for d in reg.datasets if d.period is not None}
    files = (
        log.filter(pl.col("dataset").is_in(list(periodic)) & pl.col("status").is_in(["landed", "rejected"]))
        .sort("at")
        .group_by("dataset", "file", maintain_order=True)
        .agg(
            pl.col("status").last(),
            pl.col("rows_landed").last().fill_null(0),
            pl.col("detail").last(),
            pl.col("reason_zh").last(),
            pl.min_horizontal(
                pl.from_epoch(pl.col("mtime_ns").first(), time_unit="ns").dt.replace_time_zone("UTC"),
                pl.col("at").first(),
            )
            .dt.cast_time_unit("us")
            .alias("delivered_at"),
        )
    )
    return files.with_columns(
        pl.struct("dataset", "file")
        .map_elements(lambda r: periodic[r["dataset"]].period_of(r["file"].rsplit("/", 1)[-1]), return_dtype=pl.String)
        .alias("period")
    )


def versioned_deliveries(reg: Registry, lake) -> pl.DataFrame | None:
    """What the periodic sources that are not files (a database table, an interface, a stream) delivered, in
    the shape of ``_files``: one row per dataset, period and collection batch, delivered when the source
    changed its first row of that period in the batch (``_changed_at``; when the source states no time, when
    it was collected). A file's period is in its name; a version's is its period column's (``_period``)."""
    out = []
    for ds in reg.datasets:
        if ds.period is None or not ds.versioned or lake.table("raw", ds.id) is None:
            continue
        raw = lake.scan("raw", ds.id)
        if "_changed_at" not in raw.collect_schema().names():  # a raw table from before the column
            raw = raw.with_columns(pl.lit(None, pl.Datetime("us", "UTC")).alias("_changed_at"))
        out.append(
            raw.filter(pl.col("_period").is_not_null() & (pl.col("_change") != "delete"))
            .group_by("_period", "_batch_id", "_source_file")
            .agg(
                pl.len().cast(pl.Int64).alias("rows_landed"),
                pl.coalesce("_changed_at", "_ingested_at").min().dt.cast_time_unit("us").alias("delivered_at"),
            )
            .select(
                pl.lit(ds.id).alias("dataset"),
                pl.concat_str([pl.col("_source_file"), pl.lit(" (batch "), pl.col("_batch_id"), pl.lit(")")]).alias(
                    "file"
                ),
                pl.lit("landed").alias("status"),
                "rows_landed",
                pl.lit(None, pl.String).alias("detail"),
                pl.lit(None, pl.String).alias("reason_zh"),
                "delivered_at",
                pl.col("_period").alias("period"),
            )
            .collect()
        )
    return pl.concat(out) if out else None


def collection_status(
    reg: Registry, log: pl.DataFrame | None, as_of: dt.datetime, versions: pl.DataFrame | None = None
) -> CollectionStatus:
    """``versions``: what sources that are not files delivered (``versioned_deliveries``)."""
    today = as_of.astimezone(CST).date()
    files = _files(reg, log)
    if versions is not None and not versions.is_empty():
        files = pl.concat([files, versions.select(files.columns)])
    rows = []
    for ds in (d for d in reg.datasets if d.period is not None):
        dept = reg.departments[ds.department]
        mine = files.filter(pl.col("dataset") == ds.id)
        received = sorted({p for p in mine["period"].to_list() if p})
        expected = expected_periods(ds, received, today)
        landed = mine.filter(pl.col("status") == "landed")
        per_period = {p: landed.filter(pl.col("period") == p)["rows_landed"].sum() for p in received if p is not None}
        for period in sorted(set(expected) | set(received)):
            got = mine.filter(pl.col("period") == period)
            ok = got.filter(pl.col("status") == "landed")
            refused = got.filter(pl.col("status") == "rejected")
            due = due_on(ds, period)
            first = ok["delivered_at"].min() if ok.height else None
            days_late = (first.astimezone(CST).date() - due).days if first is not None else None
            if period not in expected:
                state = "unexpected"
            elif first is not None:
                state = "on_time" if days_late <= 0 else "late"
            elif due > today:
                state = "pending"
            else:
                state = "rejected" if refused.height else "missing"
            others = [v for p, v in per_period.items() if p != period and v]
            typical = float(pl.Series(others).median()) if others else None
            landed_rows = int(per_period.get(period, 0))
            rows.append(
                {
                    "department": ds.department,
                    "department_name": dept.name_zh,
                    "dataset": ds.id,
                    "dataset_name": ds.name_zh,
                    "period": period,
                    "due_on": due,
                    "expected": period in expected,
                    "state": state,
                    "files_landed": ok.height,
                    "files_rejected": refused.height,
                    "delivered_at": first,
                    "days_late": max(days_late, 0) if days_late is not None else None,
                    "rows_landed": landed_rows,
                    "rows_typical": typical,
                    "rows_short": bool(ok.height and typical and landed_rows < SHORT_RATIO * typical),
                    "reasons": "; ".join(
                        f"{f}: {z or ''} {d or ''}".strip()
                        for f, z, d in refused.select("file", "reason_zh", "detail").iter_rows()
                    )
                    or None,
                    "as_of": as_of,
                }
            )
    status = pl.DataFrame(rows, schema=STATUS_SCHEMA)
    return CollectionStatus(status, rates(reg, status))


def rates(reg: Registry, status: pl.DataFrame) -> pl.DataFrame:
    """归集率 per department and month a delivery fell due (deliveries not yet due are not counted)."""
    due = status.filter(pl.col("expected") & (pl.col("state") != "pending"))
    out = (
        due.group_by("department", pl.col("due_on").dt.strftime("%Y-%m").alias("month"))
        .agg(
            pl.len().cast(pl.Int64).alias("expected"),
            *((pl.col("state") == s).sum().cast(pl.Int64).alias(s) for s in ("on_time", "late", "rejected", "missing")),
        )
        .with_columns(
            (pl.col("on_time") / pl.col("expected")).alias("rate"),
            pl.col("department")
            .replace_strict({k: v.name_zh for k, v in reg.departments.items()})
            .alias("department_name"),
        )
        .sort("department", "month")
    )
    return out.select(list(RATE_SCHEMA)).cast(RATE_SCHEMA)  # type: ignore[arg-type]


def _year_over(reg: Registry, dataset: str, year: str, periods: set[str]) -> bool:
    """Whether the agreement expects the period that closes ``year`` (its last month, day or the year itself —
    or the agreement's last period, ending within it): the year's deliveries are all due."""
    ds = reg.dataset(dataset)
    assert ds.period is not None
    last = {"year": year, "month": f"{year}-12", "day": f"{year}-12-31"}[ds.period.granularity]
    if ds.period.until is not None and ds.period.until[:4] == year:
        last = min(last, ds.period.until)
    return last in periods


def year_completeness(status: pl.DataFrame, datasets: list[str], reg: Registry | None = None) -> pl.DataFrame:
    """For the latest year that is over — every one of the periodic ``datasets`` owes the period that closes it
    — per dataset, the deliveries expected in that year and those not received (refused or missing). A year
    still under way is not the one judged: January's filings of a new year do not hold back the evaluation of
    the year before (or a correction of it). Before any year is over, the year under way."""
    reg = reg or registry()
    mine = status.filter(pl.col("dataset").is_in(datasets) & pl.col("expected"))
    schema = {
        "year": pl.String,
        "dataset": pl.String,
        "expected": pl.Int64,
        "received": pl.Int64,
        "not_received": pl.String,
    }
    if mine.is_empty():
        return pl.DataFrame(schema=schema)
    periods = {ds: set(mine.filter(pl.col("dataset") == ds)["period"]) for ds in set(mine["dataset"])}
    years = sorted(set(mine["period"].str.slice(0, 4)), reverse=True)
    over = [
        y for y in years if all(_year_over(reg, ds, y, p) for ds, p in periods.items() if any(x[:4] == y for x in p))
    ]
    year = over[0] if over else years[0]
    rows = []
    for ds in sorted(set(mine["dataset"])):
        periods = mine.filter((pl.col("dataset") == ds) & (pl.col("period").str.slice(0, 4) == year))
        if periods.is_empty():
            continue
        got = periods.filter(pl.col("state").is_in(["on_time", "late"]))
        gaps = periods.filter(~pl.col("state").is_in(["on_time", "late"]))
        rows.append(
            {
                "year": year,
                "dataset": ds,
                "expected": periods.height,
                "received": got.height,
                "not_received": ", ".join(f"{p} ({s})" for p, s in gaps.select("period", "state").iter_rows()) or None,
            }
        )
    return pl.DataFrame(rows, schema=schema)
