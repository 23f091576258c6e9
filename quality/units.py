"""Units to one canonical unit per measure (元, kWh, m², …), from ``units.yaml``."""

from __future__ import annotations

import functools
from pathlib import Path

import polars as pl

from lakehouse import config
from lakehouse.config import Strict

UNITS_PATH = Path(__file__).with_name("units.yaml")


class Measure(Strict):
    canonical: str
    factors: dict[str, float]


class Units(Strict):
    measures: dict[str, Measure]


@functools.cache
def _measures() -> dict[str, dict]:
    return config.load(UNITS_PATH, Units, "unit table").model_dump()["measures"]


@functools.cache
def factors() -> dict[str, tuple[str, str, float]]:
    """unit → (measure, canonical unit, factor to canonical)."""
    out = {}
    for measure, spec in _measures().items():
        for unit, factor in spec["factors"].items():
            if unit in out:
                raise ValueError(f"{UNITS_PATH}: unit {unit!r} appears under two measures")
            out[unit] = (measure, spec["canonical"], float(factor))
    return out


def canonical(unit: str) -> str:
    try:
        return factors()[unit][1]
    except KeyError:
        raise ValueError(f"{UNITS_PATH}: unknown unit {unit!r}") from None


def factor_of(unit: pl.Expr, measure: str) -> pl.Expr:
    """Factor to the canonical unit for each row's unit; null when the unit is unknown for that measure."""
    table = {u: f for u, (m, _, f) in factors().items() if m == measure}
    return unit.replace_strict(table, default=None, return_dtype=pl.Float64)


def measure_of(unit: str) -> str:
    try:
        return factors()[unit][0]
    except KeyError:
        raise ValueError(f"{UNITS_PATH}: unknown unit {unit!r}") from None


def canonical_of_measure(measure: str) -> str:
    try:
        return _measures()[measure]["canonical"]
    except KeyError:
        raise ValueError(f"{UNITS_PATH}: unknown measure {measure!r}") from None
