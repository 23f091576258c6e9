"""Rule books (``rules/<dataset>.yaml``): the quality rules of each dataset, loaded into validated specs.

A rule book is not the data catalogue (``assets/catalogue.py``, 数据目录): it says what std checks, not what
the warehouse holds. Adding a rule is editing YAML.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

from pydantic import model_validator

from lakehouse import config
from lakehouse.config import ConfigError, Strict
from lakehouse.registry import Dataset

RULES_DIR = Path(__file__).with_name("rules")
Dimension = Literal["completeness", "validity", "accuracy", "uniqueness", "consistency", "timeliness", "referential"]
RowCheck = Literal[
    "required",
    "uscc",
    "ric",
    "mobile",
    "region_code",
    "industry_code",
    "pattern",
    "parsed",
    "in",
    "range",
    "unit_known",
    "references",
    "not_after_ingest",
    "no_private_use",
]
BatchCheck = Literal["unique", "max_quarantine_share"]
# GB/T 36344 dimensions the rule dimensions score into
GBT36344 = {
    "completeness": "完整性",
    "validity": "规范性",
    "accuracy": "准确性",
    "uniqueness": "一致性",
    "consistency": "一致性",
    "referential": "一致性",
    "timeliness": "时效性",
}


class _Rule(Strict):
    id: str
    dimension: Dimension
    severity: Literal["ERROR", "WARN"]
    zh: str
    en: str


class RowRule(_Rule):
    check: RowCheck
    column: str
    values: list[str] | None = None
    pattern: str | None = None
    min: float | None = None
    max: float | None = None
    measure: str | None = None
    table: str | None = None
    table_column: str | None = None

    @model_validator(mode="after")
    def _params(self) -> RowRule:
        needs = {
            "in": ["values"],
            "pattern": ["pattern"],
            "unit_known": ["measure"],
            "references": ["table", "table_column"],
        }.get(self.check, [])
        missing = [p for p in needs if getattr(self, p) is None]
        if missing:
            raise ValueError(f"check {self.check!r} needs {missing}")
        if self.check == "range" and self.min is None and self.max is None:
            raise ValueError("check 'range' needs min or max")
        return self


class BatchRule(_Rule):
    check: BatchCheck
    columns: list[str] | None = None
    max: float | None = None


class RuleSet(Strict):
    dataset: str
    key: list[str]
    names: list[str] = []
    former_names: list[str] = []  # columns listing earlier registered names, separated by ；
    rules: list[RowRule]
    batch: list[BatchRule] = []

    @model_validator(mode="after")
    def _unique_ids(self) -> RuleSet:
        ids = [r.id for r in [*self.rules, *self.batch]]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"duplicate rule ids {dupes}")
        return self

    @property
    def references(self) -> set[str]:
        return {r.table for r in self.rules if r.check == "references"}


def load_rules(path: Path, columns: set[str] | None = None) -> RuleSet:
    rules = config.load(path, RuleSet, "rule book")
    if columns is not None:
        used = [
            *rules.key,
            *rules.names,
            *rules.former_names,
            *(r.column for r in rules.rules),
            *(c for b in rules.batch for c in b.columns or []),
        ]
        unknown = sorted({c for c in used if c not in columns})
        if unknown:
            raise ConfigError(f"{path}: columns not in dataset {rules.dataset!r}: {unknown}")
    return rules


TYPED = ("date", "month", "timestamp", "decimal", "integer")


def with_parse_rules(rules: RuleSet, ds: Dataset) -> RuleSet:
    """Rules every dataset gets from the registry, unless its rule book declares them: a ``parsed`` rule on
    every typed column (a value delivered but not readable as the column's type is quarantined with the
    delivered text, never nulled silently), and a ``no_private_use`` flag on every text column (a private-use
    character is a finding, never silent). A rule book may declare its own, with its own severity and words."""
    declared = {(r.check, r.column) for r in rules.rules}
    implicit = []
    for c in ds.columns:
        if c.type in TYPED:
            check, suffix, severity = "parsed", "parsed", "ERROR"
            zh, en = f"{c.description}无法识别（应为{_TYPE_ZH[c.type]}）", f"{c.name} unreadable as {c.type}"
        elif c.type in ("string", "code"):  # flagged, WARN: the row stays
            check, suffix, severity = "no_private_use", "private_use", "WARN"
            zh = f"{c.description}含私用区字符（字符编码或字库问题）"
            en = f"{c.name} holds a private-use character (an encoding or font problem)"
        else:
            continue
        if (check, c.name) not in declared:
            implicit.append(
                RowRule(
                    id=f"{c.name}_{suffix}",
                    dimension="validity",
                    check=check,
                    column=c.name,
                    severity=severity,
                    zh=zh,
                    en=en,
                )
            )
    return rules.model_copy(update={"rules": [*rules.rules, *implicit]}) if implicit else rules


_TYPE_ZH = {"date": "日期", "month": "年月", "timestamp": "时间", "decimal": "数值", "integer": "整数"}


@functools.cache
def rules_for(dataset_id: str) -> RuleSet:
    from lakehouse.registry import registry

    ds = registry().dataset(dataset_id)
    return with_parse_rules(load_rules(RULES_DIR / f"{dataset_id}.yaml", {c.name for c in ds.columns}), ds)
