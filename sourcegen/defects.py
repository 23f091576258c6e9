"""Defect injection at declared rates. Every injected row is marked so the truth manifest can list it.

A frame carries marker columns ``__d_<defect>`` (boolean) while defects are applied; ``split_markers``
turns them into (defect → row numbers) once the file's final row order is known.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from sourcegen import remarks
from sourcegen.codes import wrong_uscc_check

# Declared rates: the share of eligible rows that receive each defect.
RATES: dict[str, float] = {
    "invalid_uscc_check": 0.01,
    "fullwidth_or_spaces": 0.03,
    "nonstandard_date": 0.5,
    "exact_duplicate": 0.01,
    "near_duplicate": 0.005,
    "missing_mandatory": 0.01,
    "late_correction": 0.02,
    "pii_in_remarks": 0.02,
    "telemetry_duplicate": 0.001,
    # cross-source inconsistencies the reconciliation must flag
    "revenue_mismatch": 0.03,  # of 规上 firms: 统计 revenue far from the 税务 revenue
    "electricity_mismatch": 0.02,  # of firm-months: reported electricity far from the metered
}
UNIT_VARIANT_RATES = {"tax_monthly": 0.3, "power_monthly": 0.2, "land_parcels": 0.5}

MARK = "__d_"


def marker(name: str) -> str:
    return MARK + name


def pick(rng: np.random.Generator, n: int, rate: float, eligible: np.ndarray | None = None) -> np.ndarray:
    mask = rng.random(n) < rate
    return mask if eligible is None else mask & eligible


def _set(df: pl.DataFrame, col: str, mask: np.ndarray, values: list[str], defect: str) -> pl.DataFrame:
    series = df[col].to_list()
    it = iter(values)
    for i in np.flatnonzero(mask):
        series[i] = next(it)
    flag = pl.Series(marker(defect), mask)
    if marker(defect) in df.columns:
        flag = flag | df[marker(defect)]
    return df.with_columns(pl.Series(col, series, dtype=pl.String), flag)


def clean_mask(df: pl.DataFrame) -> np.ndarray:
    """Rows no defect has touched yet, so defects on one column never stack."""
    marks = [c for c in df.columns if c.startswith(MARK)]
    if not marks:
        return np.ones(df.height, dtype=bool)
    return ~df.select(pl.any_horizontal(marks)).to_series().to_numpy()


def invalid_check(df: pl.DataFrame, col: str, rng: np.random.Generator) -> pl.DataFrame:
    mask = pick(rng, df.height, RATES["invalid_uscc_check"], clean_mask(df))
    vals = [wrong_uscc_check(v, rng) for v in df[col].filter(pl.Series(mask))]
    return _set(df, col, mask, vals, "invalid_uscc_check")


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def fullwidth_or_spaces(df: pl.DataFrame, cols: list[str], rng: np.random.Generator) -> pl.DataFrame:
    """Full-width letters/digits, stray blanks, ideographic spaces and zero-width characters."""
    mask = pick(rng, df.height, RATES["fullwidth_or_spaces"], clean_mask(df))
    col = cols[0]
    variants = [
        _fullwidth,
        lambda s: f" {s} ",
        lambda s: s[:4] + "\u3000" + s[4:],
        lambda s: s + "\u200b",
    ]
    vals = [variants[int(rng.integers(len(variants)))](v) for v in df[col].filter(pl.Series(mask))]
    return _set(df, col, mask, vals, "fullwidth_or_spaces")


def date_variant(d: dt.date, k: int, month_only: bool) -> str:
    if month_only:
        return [f"{d.year}年{d.month}月", f"{d.year}/{d.month}", f"{d.year}{d.month:02d}", f"{d.year}.{d.month}"][k]
    return [
        f"{d.year}年{d.month}月{d.day}日",
        f"{d.year}/{d.month}/{d.day}",
        d.strftime("%Y%m%d"),
        f"{d.year}.{d.month}.{d.day}",
    ][k]


def nonstandard_dates(df: pl.DataFrame, col: str, rng: np.random.Generator, month_only: bool = False) -> pl.DataFrame:
    """Rewrite ISO dates (YYYY-MM-DD, or YYYY-MM for periods) in the formats departments really use."""
    mask = pick(rng, df.height, RATES["nonstandard_date"])
    fmt = "%Y-%m" if month_only else "%Y-%m-%d"
    vals = []
    for v in df[col].filter(pl.Series(mask)):
        d = dt.datetime.strptime(v, fmt).date()
        vals.append(date_variant(d, int(rng.integers(4)), month_only))
    return _set(df, col, mask, vals, "nonstandard_date")


def missing(df: pl.DataFrame, col: str, rng: np.random.Generator) -> pl.DataFrame:
    mask = pick(rng, df.height, RATES["missing_mandatory"], clean_mask(df))
    return _set(df, col, mask, [""] * int(mask.sum()), "missing_mandatory")


def missing_where(df: pl.DataFrame, col: str, mask: np.ndarray) -> pl.DataFrame:
    """A mandatory field left empty on the rows of ``mask`` (chosen by the caller)."""
    return _set(df, col, mask, [""] * int(mask.sum()), "missing_mandatory")


# The remarks with personal information written in this generation, with their labelled spans (the truth
# manifest's ``pii_remarks``); ``generate`` empties it first.
LABELLED_REMARKS: list[dict] = []


def pii_remarks(df: pl.DataFrame, col: str, rng: np.random.Generator) -> pl.DataFrame:
    """Personal information typed into free text, as clerks do (sourcegen/remarks.py), spans labelled."""
    mask = pick(rng, df.height, RATES["pii_in_remarks"])
    made = remarks.labelled(rng, int(mask.sum()))
    LABELLED_REMARKS.extend({"text": text, "spans": spans} for text, spans in made)
    return _set(df, col, mask, [text for text, _ in made], "pii_in_remarks")


def _append_copies(
    df: pl.DataFrame, mask: np.ndarray, defect: str, rng: np.random.Generator, alter=None
) -> pl.DataFrame:
    copies = df.filter(pl.Series(mask))
    if alter is not None:
        copies = alter(copies)
    base = df.with_columns(pl.lit(False).alias(marker(defect))) if marker(defect) not in df.columns else df
    # a copy's defect is being a copy; what else is wrong with it is its original's, listed there
    copies = copies.with_columns(
        *(pl.lit(False).alias(c) for c in copies.columns if c.startswith(MARK)), pl.lit(True).alias(marker(defect))
    )
    out = pl.concat([base, copies.select(base.columns)])
    # Copies land at random positions after their original, as re-sent rows do.
    originals = np.flatnonzero(mask)
    positions = originals + 0.5 + rng.uniform(0, 1, copies.height) * (df.height - originals - 0.5)
    order = np.argsort(np.concatenate([np.arange(df.height), positions]), kind="stable")
    return out[order]


def exact_duplicates(df: pl.DataFrame, rng: np.random.Generator, rate_key: str = "exact_duplicate") -> pl.DataFrame:
    return _append_copies(df, pick(rng, df.height, RATES[rate_key]), rate_key, rng)


def near_duplicates(df: pl.DataFrame, col: str, rng: np.random.Generator) -> pl.DataFrame:
    """The same record again with a cosmetic difference in one text column."""

    def alter(c: pl.DataFrame) -> pl.DataFrame:
        return c.with_columns(pl.col(col).str.replace_all(r"\(", "（").str.replace_all(r"\)", "）") + pl.lit(" "))

    return _append_copies(
        df, pick(rng, df.height, RATES["near_duplicate"], clean_mask(df)), "near_duplicate", rng, alter
    )


def split_markers(df: pl.DataFrame) -> tuple[pl.DataFrame, dict[str, list[int]]]:
    """Drop marker columns; return defect → 1-based data-row numbers in the final order."""
    marks = [c for c in df.columns if c.startswith(MARK)]
    rows = {c[len(MARK) :]: (np.flatnonzero(df[c].fill_null(False).to_numpy()) + 1).tolist() for c in marks}
    return df.drop(marks), {k: v for k, v in rows.items() if v}
