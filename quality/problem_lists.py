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


def _std_keys(lake: Lake, reg: Registry) -> pl.DataFrame:
    """Every std row's dataset, business key and source file: a problem whose record is back in std from a
    later file is fixed."""
    return pl.concat(
        [
            lake.read("std", ds.id).select(
                pl.lit(ds.id).alias("dataset"),
                record_key(rules_for(ds.id).key).alias("record_key"),
                pl.col("_source_file").alias("source_file"),
            )
            for ds in reg.datasets
        ]
    )


def _spreadsheets(sheet: pl.DataFrame) -> tuple[tuple[str, bytes], ...]:
    xlsx = io.BytesIO()
    sheet.write_excel(xlsx, worksheet="问题清单")
    return ((".xlsx", xlsx.getvalue()), (".csv", sheet.write_csv().encode("utf-8-sig")))


def build(lake: Lake, reg: Registry, at: dt.datetime | None = None) -> ProblemLists:
    at = at or dt.datetime.now(dt.UTC)
    findings = lake.read(FINDINGS.zone, FINDINGS.name)
    recon = lake.read("quality", "reconciliation")
    now = pb.current(findings, recon.filter(pl.col("status") == "mismatch"))
    ledger = pb.update_ledger(lake.read(PROBLEMS.zone, PROBLEMS.name), now, _std_keys(lake, reg), at)
    ledger_version = lake.overwrite(PROBLEMS.zone, PROBLEMS.name, ledger.to_arrow())
    lists = []
    for dept, info in reg.departments.items():
        mine = now.filter(pl.col("department") == dept)
        stem = f"{EXPORT_FOLDER}/{dept}/问题清单_{info.name_zh}"
        exports = tuple(
            lake.write_bytes("quarantine", stem + suffix, data) for suffix, data in _spreadsheets(pb.export_frame(mine))
        )
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
