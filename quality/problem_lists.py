"""Problem lists (问题清单) per source department, the problem ledger, and department scores.

From the current quarantine (``quarantine/findings``) and the reconciliation mismatches: the problems each
department must fix or verify, exported as XLSX and CSV under ``quarantine/problem_lists/<department>/``;
the ledger ``quarantine/problems`` of every problem ever raised and whether a later delivery fixed it; and
the GB/T 36344 score of each department, appended to ``quality/scores``.

Plain code over the lake, free of Dagster; the problem_lists asset calls ``build`` and reports the result.
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import polars as pl

from lakehouse.lake import Lake
from lakehouse.registry import Registry
from lakehouse.tables import FINDINGS, PROBLEMS, SCORES
from quality import problems as pb
from quality.conform import record_key
from quality.rulebook import rules_for
from quality.scores import department_scores

EXPORT_FOLDER = "problem_lists"  # in the quarantine zone


@dataclass(frozen=True)
class DepartmentList:
    department: str
    name_zh: str
    exports: tuple[str, ...]  # URIs of the XLSX and CSV files
    by_handling: dict[str, int]  # 退回整改 rejected / 请核实 verify / 对账核实 reconcile → problems now
    by_status: dict[str, int]  # open / fixed → problems in the ledger


@dataclass(frozen=True)
class ProblemLists:
    lists: list[DepartmentList]
    ledger: pl.DataFrame
    department_scores: pl.DataFrame
    ledger_version: int
    scores_version: int
    export_root: str


def _std_keys(lake: Lake, reg: Registry, datasets: set[str]) -> pl.DataFrame:
    """The dataset, business key and source file of every std row of ``datasets`` (those with problems a
    later delivery may fix): a problem whose record is back in std from a later file is fixed. Only the key
    and provenance columns are read."""
    frames = []
    for ds in reg.datasets:
        if ds.id not in datasets:
            continue
        key = rules_for(ds.id).key
        frame = lake.read("std", ds.id, columns=[*key, "_source_file"])
        if frame is not None:
            frames.append(
                frame.select(
                    pl.lit(ds.id).alias("dataset"),
                    record_key(key).alias("record_key"),
                    pl.col("_source_file").alias("source_file"),
                )
            )
    return pl.concat(frames) if frames else pl.DataFrame(schema=_KEYS)


_KEYS = {"dataset": pl.String, "record_key": pl.String, "source_file": pl.String}


def _spreadsheets(sheet: pl.DataFrame) -> tuple[tuple[str, bytes], ...]:
    xlsx = io.BytesIO()
    sheet.write_excel(xlsx, worksheet="问题清单")
    return ((".xlsx", xlsx.getvalue()), (".csv", sheet.write_csv().encode("utf-8-sig")))


def _export(lake: Lake, stem: str, sheet: pl.DataFrame) -> tuple[str, ...]:
    """The department's list as XLSX and CSV — written only when it changed: the CSV, written last, is the
    witness that the XLSX beside it holds the same list."""
    csv = sheet.write_csv().encode("utf-8-sig")
    if lake.read_bytes("quarantine", stem + ".csv") == csv:
        return (lake.uri("quarantine", stem + ".xlsx"), lake.uri("quarantine", stem + ".csv"))
    return tuple(lake.write_bytes("quarantine", stem + suffix, data) for suffix, data in _spreadsheets(sheet))


def build(lake: Lake, reg: Registry, at: dt.datetime | None = None) -> ProblemLists:
    at = at or dt.datetime.now(dt.UTC)
    findings = lake.read(FINDINGS.zone, FINDINGS.name)
    recon = lake.read("quality", "reconciliation")
    now = pb.current(findings, recon.filter(pl.col("status") == "mismatch"))
    previous = lake.read(PROBLEMS.zone, PROBLEMS.name)
    # only a rejected record can be fixed by a later delivery: the std keys of the datasets with such problems
    open_rejected = [now.filter(pl.col("handling").str.starts_with("退回"))]
    if previous is not None:
        open_rejected.append(previous.filter((pl.col("status") == "open") & pl.col("handling").str.starts_with("退回")))
    fixable = set().union(*(set(f["dataset"].to_list()) for f in open_rejected))
    ledger = pb.update_ledger(previous, now, _std_keys(lake, reg, fixable), at)
    ledger_version = lake.overwrite(PROBLEMS.zone, PROBLEMS.name, ledger.to_arrow())
    lists = []
    for dept, info in reg.departments.items():
        mine = now.filter(pl.col("department") == dept)
        stem = f"{EXPORT_FOLDER}/{dept}/问题清单_{info.name_zh}"
        exports = _export(lake, stem, pb.export_frame(mine))
        lists.append(
            DepartmentList(
                dept,
                info.name_zh,
                exports,
                dict(mine.group_by("handling").len().iter_rows()),
                dict(ledger.filter(pl.col("department") == dept).group_by("status").len().iter_rows()),
            )
        )
    scores = lake.read(SCORES.zone, SCORES.name)
    latest = scores.filter(pl.col("level") == "dataset").sort("scored_at").group_by("subject").last()
    dept_scores = department_scores(latest, at)
    version = lake.append(SCORES.zone, SCORES.name, dept_scores.to_arrow())
    return ProblemLists(lists, ledger, dept_scores, ledger_version, version, lake.uri("quarantine", EXPORT_FOLDER))
