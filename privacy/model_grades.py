"""The grades of dbt models' columns (就高从严), propagated along column lineage from the std zone.

For each model the dbt build rebuilt: every column's inputs from column lineage, each input's grade — a
std column's effective grade (after the std transform), a seed's L1, an own table's declared grade (the
亩均 objections), a model of the same run, or the last
recorded grades of a model the run did not rebuild — and the model's declared column meta, give each
column its level and identifier role (``privacy.propagation.derive``). A model whose lineage could not be
derived is graded as strictly as possible: every column L4.

Plain code, free of Dagster and dbt: the dbt asset hands it lineage and gets grades back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from lakehouse.registry import Registry, registry
from lakehouse.tables import BY_LABEL, RESOLVED_DATASETS, resolved_table
from privacy import policy
from privacy.grading import grading, highest
from privacy.propagation import derive

UNKNOWN = "unknown/lineage"  # the input of every column of a model without column lineage
RESOLVED_LABELS = {resolved_table(d).label: d for d in RESOLVED_DATASETS}
Deps = Mapping[str, Iterable[tuple[str, str]]]  # column → its input (asset key 'zone/name', column)s


class ModelGrades:
    """Grades of one dbt run's models, in dependency order. ``recorded(key)`` returns the grades last
    recorded for a model this run did not rebuild (column → {level, role, …}), or {}."""

    def __init__(self, recorded: Callable[[str], Mapping[str, Mapping]], reg: Registry | None = None):
        self._recorded = recorded
        self._reg = reg
        self.graded: dict[str, dict[str, dict]] = {}  # asset key 'zone/name' → column → grading

    def _std(self, dataset: str, column: str) -> tuple[str, str]:
        ds = (self._reg or registry()).dataset(dataset)
        levels = policy.std_levels(ds)
        if column not in levels:  # provenance columns
            return "L1", "none"
        return levels[column], grading(ds, column).role

    def grading_of(self, key: str, column: str) -> tuple[str, str]:
        """(level, role) of one input column."""
        if key == UNKNOWN:
            return "L4", "none"
        zone, name = key.split("/", 1)
        if zone == "std":
            return self._std(name, column)
        if key in RESOLVED_LABELS:  # a dataset's resolved rows are its std rows: graded as its std columns
            return self._std(RESOLVED_LABELS[key], column)
        if zone == "parameters":
            return "L1", "none"
        if key in BY_LABEL:  # a warehouse's own table read by a model (the 亩均 objections): its declared grade
            return BY_LABEL[key].grade_of(column), "none"
        if key not in self.graded:  # a model not rebuilt in this run: its last materialisation says
            self.graded[key] = dict(self._recorded(key) or {})
        g = self.graded[key].get(column)
        return (g["level"], g["role"]) if g else ("L4", "none")  # unknown: graded as strictly as possible

    def grade(self, key: str, deps: Deps | None, columns: Iterable[str], declared: Mapping[str, Mapping]) -> dict:
        """Grades of one model's columns; ``deps`` None: its lineage is unknown."""
        if deps is None:
            deps = {c: [(UNKNOWN, c)] for c in columns}
        grades = derive(deps, self.grading_of, declared)
        self.graded[key] = grades
        return grades


def highest_level(grades: Mapping[str, Mapping]) -> str:
    return highest(g["level"] for g in grades.values()) if grades else "L1"
