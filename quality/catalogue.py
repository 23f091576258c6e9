"""Rule catalogues (``rules/<dataset>.yaml``) loaded into validated specs. Adding a rule is editing YAML."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from quality import yamlfile

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


class CatalogueError(ValueError):
    """A rule file that does not validate; the message names the file and the key."""


class _Rule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
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


class RuleSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dataset: str
    key: list[str]
    names: list[str] = []
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
    try:
        rules = RuleSet.model_validate(yamlfile.load(path))
    except (OSError, yaml.YAMLError) as exc:
        raise CatalogueError(f"{path}: cannot read the rule catalogue: {exc}") from exc
    except ValidationError as exc:
        where = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise CatalogueError(f"{path}: invalid rule catalogue: {where}") from exc
    if columns is not None:
        used = [
            *rules.key,
            *rules.names,
            *(r.column for r in rules.rules),
            *(c for b in rules.batch for c in b.columns or []),
        ]
        unknown = sorted({c for c in used if c not in columns})
        if unknown:
            raise CatalogueError(f"{path}: columns not in dataset {rules.dataset!r}: {unknown}")
    return rules


@functools.cache
def rules_for(dataset_id: str) -> RuleSet:
    from assets.registry import registry

    ds = registry().dataset(dataset_id)
    return load_rules(RULES_DIR / f"{dataset_id}.yaml", {c.name for c in ds.columns})
