"""Text standardisation: full-width → half-width, invisible characters, whitespace, enterprise names.

The ``*_of`` functions take text that ``clean_text`` already cleaned, so a pipeline cleans each column
once and derives codes, names, dates and numbers from that.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

# zero-width and formatting characters, soft hyphen, BOM, C0 controls other than tab/newline
INVISIBLE = r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def empty_to_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e == "").then(None).otherwise(e)


def clean_text(e: pl.Expr, needs: TextNeeds | None = None) -> pl.Expr:
    """NFKC (full-width letters, digits and the ideographic space become half-width), invisible characters
    removed, runs of white space folded to one space, trimmed; empty becomes null.

    ``needs`` (from ``text_needs`` on the same values) skips the passes that would change nothing."""
    needs = needs or TextNeeds()
    if needs.nfkc:
        e = e.map_batches(nfkc, return_dtype=pl.String, is_elementwise=True)
    if needs.invisible:
        e = e.str.replace_all(INVISIBLE, "")
    if needs.space:
        e = e.str.replace_all(r"\s+", " ").str.strip_chars()
    return empty_to_null(e)


# NFKC leaves ASCII and the CJK Unified Ideographs alone; only values with another character need it
_NFKC_CANDIDATE = r"[^\x00-\x7f\u4e00-\u9fff]"


def patch(values: pl.Series, where: pl.Series, fix: Callable[[pl.Series], pl.Series], base=None) -> pl.Series:
    """``base`` (default: ``values``) with the rows in ``where`` replaced by ``fix`` of those values only:
    the costly path runs on the rows that need it, not on the whole column."""
    base = values if base is None else base
    where = where.fill_null(False)
    if not where.any():
        return base
    return base.scatter(where.arg_true(), fix(values.filter(where)).cast(base.dtype))


def on_distinct(e: pl.Expr, fn: Callable[[pl.Expr], pl.Expr], dtype: pl.DataType) -> pl.Expr:
    """``fn`` (an elementwise expression) computed once per distinct value and joined back: codes, names,
    periods and units repeat across millions of rows, so this is the cheap way for them."""

    def run(values: pl.Series) -> pl.Series:
        apply = lambda v: v.to_frame("k").select(fn(pl.col("k")).alias("v")).to_series()  # noqa: E731
        if values.len() < 10_000:
            return apply(values)
        distinct = values.unique()
        if distinct.len() * 2 > values.len():
            return apply(values)
        lookup = pl.DataFrame({"k": distinct, "v": apply(distinct)}, schema={"k": values.dtype, "v": dtype})
        joined = values.to_frame("k").join(lookup, on="k", how="left", nulls_equal=True, maintain_order="left")
        return joined["v"]

    return e.map_batches(run, return_dtype=dtype, is_elementwise=True)


def nfkc(values: pl.Series) -> pl.Series:
    """NFKC of the values that can change under it."""
    return patch(values, values.str.contains(_NFKC_CANDIDATE), lambda v: v.str.normalize("NFKC"))


@dataclass(frozen=True)
class TextNeeds:
    """Which cleaning passes a column's values need (all, unless measured)."""

    nfkc: bool = True
    invisible: bool = True
    space: bool = True


def text_needs(frame: pl.DataFrame, columns: list[str]) -> dict[str, TextNeeds]:
    """Measures, in one pass over ``frame``, which passes of ``clean_text`` each column needs: NFKC only
    with a non-ASCII value (NFKC is the identity on ASCII), the others only where a value has an invisible
    character or white space (NFKC can make white space out of e.g. U+3000, so non-ASCII implies space)."""
    row = frame.select(
        pl.struct(
            (pl.col(c).str.len_bytes() != pl.col(c).str.len_chars()).any().alias("nfkc"),
            pl.col(c).str.contains(INVISIBLE).any().alias("invisible"),
            pl.col(c).str.contains(r"\s").any().alias("space"),
        ).alias(c)
        for c in columns
    ).row(0, named=True)
    return {
        c: TextNeeds(bool(v["nfkc"]), bool(v["invisible"] or v["nfkc"]), bool(v["space"] or v["nfkc"]))
        for c, v in row.items()
    }


def code_of(t: pl.Expr) -> pl.Expr:
    """Identifiers from cleaned text: no inner spaces, upper case."""
    return empty_to_null(t.str.replace_all(" ", "", literal=True).str.to_uppercase())


def name_of(t: pl.Expr) -> pl.Expr:
    """Registered names from cleaned text: no spaces, Chinese full-width brackets (as names are registered),
    有限责任公司 and 有限公司 kept apart (they are different legal forms)."""
    return empty_to_null(
        t.str.replace_all(" ", "", literal=True)
        .str.replace_all("(", "（", literal=True)
        .str.replace_all(")", "）", literal=True)
    )


def clean_code(e: pl.Expr) -> pl.Expr:
    return code_of(clean_text(e))


def enterprise_name(e: pl.Expr) -> pl.Expr:
    return name_of(clean_text(e))
