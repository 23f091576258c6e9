"""Classification and grading (分类分级): the vocabulary, the crosswalk, and each column's declaration.

Columns declare ``classification``, ``grade`` (DB33/T 2351 level L1–L4) and ``role`` in the source registry;
``privacy/grading.yaml`` holds the vocabulary and the crosswalk to 核心/重要/一般 and the MIIT levels.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from lakehouse import config
from lakehouse.config import ConfigError, Strict
from lakehouse.registry import Column, Dataset

GRADING_PATH = Path(__file__).with_name("grading.yaml")
UNCLASSIFIED = "unclassified"


class _Level(Strict):
    zh: str
    en: str
    grade: Literal["general", "important", "core"]
    miit: Literal[1, 2, 3]


class _Named(Strict):
    zh: str
    en: str | None = None


class _Classification(Strict):
    zh: str
    subject: Literal["personal", "mixed", "organisation", "none"]


class Vocabulary(Strict):
    levels: dict[Literal["L1", "L2", "L3", "L4"], _Level]
    grades: dict[Literal["general", "important", "core"], _Named]
    roles: dict[Literal["direct", "quasi", "sensitive", "none"], _Named]
    classifications: dict[str, _Classification]


@functools.cache
def vocabulary() -> dict:
    return config.load(GRADING_PATH, Vocabulary, "grading vocabulary").model_dump()


def level_rank(level: str) -> int:
    """L1 → 1 … L4 → 4."""
    if level not in vocabulary()["levels"]:
        raise ValueError(f"{GRADING_PATH}: unknown level {level!r}; levels are {sorted(vocabulary()['levels'])}")
    return int(level[1:])


def highest(levels) -> str:
    """就高从严: the highest of the levels."""
    return max(levels, key=level_rank)


@dataclass(frozen=True)
class Grading:
    """One column's classification, its level and the levels that follow from it."""

    classification: str
    level: str  # DB33/T 2351: L1–L4
    role: str  # direct | quasi | sensitive | none

    @property
    def grade(self) -> str:  # 核心/重要/一般 as core / important / general
        return vocabulary()["levels"][self.level]["grade"]

    @property
    def grade_zh(self) -> str:
        return vocabulary()["grades"][self.grade]["zh"]

    @property
    def miit(self) -> int:
        return vocabulary()["levels"][self.level]["miit"]

    @property
    def personal(self) -> bool:
        return vocabulary()["classifications"][self.classification]["subject"] in ("personal", "mixed")


def unclassified(ds: Dataset) -> list[str]:
    """Columns a steward has not classified yet: their dataset stays in raw."""
    return [
        c.name
        for c in ds.columns
        if UNCLASSIFIED in (c.classification, c.grade, c.role) or None in (c.classification, c.grade, c.role)
    ]


def grading(ds: Dataset, column: Column | str) -> Grading:
    c = next(x for x in ds.columns if x.name == column) if isinstance(column, str) else column
    voc = vocabulary()
    where = f"lakehouse/sources.yaml: datasets.{ds.id}.columns.{c.name}"
    if c.classification not in voc["classifications"]:
        raise ConfigError(f"{where}: classification {c.classification!r} is not in {GRADING_PATH.name}")
    if c.grade not in voc["levels"]:
        raise ConfigError(f"{where}: grade {c.grade!r} is not a level L1–L4")
    if c.role not in voc["roles"]:
        raise ConfigError(f"{where}: role {c.role!r} is not one of {sorted(voc['roles'])}")
    return Grading(c.classification, c.grade, c.role)


def dataset_level(ds: Dataset) -> str:
    """A dataset is graded at its highest column (就高从严)."""
    return highest(grading(ds, c).level for c in ds.columns)


def direct_identifiers(ds: Dataset) -> list[str]:
    """Columns that identify a natural person on their own."""
    return [c.name for c in ds.columns if c.role == "direct"]
