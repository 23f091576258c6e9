"""Text standardisation: full-width → half-width, invisible characters, whitespace, enterprise names."""

from __future__ import annotations

import polars as pl

# zero-width and formatting characters, soft hyphen, BOM, C0 controls other than tab/newline
INVISIBLE = r"[\u200b-\u200f\u2060-\u2064\ufeff\u00ad\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"


def empty_to_null(e: pl.Expr) -> pl.Expr:
    return pl.when(e == "").then(None).otherwise(e)


def clean_text(e: pl.Expr) -> pl.Expr:
    """NFKC (full-width letters, digits and the ideographic space become half-width), invisible characters
    removed, runs of white space folded to one space, trimmed; empty becomes null."""
    return empty_to_null(
        e.str.normalize("NFKC").str.replace_all(INVISIBLE, "").str.replace_all(r"\s+", " ").str.strip_chars()
    )


def clean_code(e: pl.Expr) -> pl.Expr:
    """Identifiers: cleaned, no inner spaces, upper case."""
    return empty_to_null(clean_text(e).str.replace_all(" ", "").str.to_uppercase())


def enterprise_name(e: pl.Expr) -> pl.Expr:
    """Registered names: no spaces, Chinese full-width brackets (as names are registered), 有限责任公司
    and 有限公司 kept apart (they are different legal forms)."""
    return empty_to_null(
        clean_text(e).str.replace_all(" ", "").str.replace_all(r"\(", "（").str.replace_all(r"\)", "）")
    )
