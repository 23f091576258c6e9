"""Identifier validation: 统一社会信用代码 (GB 32100), 身份号码 (GB 11643), mobiles, region and industry codes.

Each validator maps a column to a reason code per row (null = valid), vectorised where the standard
allows. USCC is checked here rather than with python-stdnum, which rejects valid codes whose
registration-authority code is a letter (e.g. Y); resident IDs use python-stdnum, wrapped.
"""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import polars as pl
from stdnum import exceptions as stdnum_errors
from stdnum.cn import ric

CODES = Path(__file__).with_name("codes")
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_VALUE = {c: i for i, c in enumerate(USCC_ALPHABET)}
_USCC_WEIGHTS = [pow(3, i, 31) for i in range(17)]
_ORG_VALUE = {c: (int(c) if c.isdigit() else ord(c) - 55) for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
_ORG_WEIGHTS = [3, 7, 9, 10, 5, 8, 4, 2]


@functools.cache
def _table(name: str) -> list[dict]:
    with (CODES / name).open(encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def authority_categories() -> list[str]:
    return [r["authority"] + r["category"] for r in _table("gb32100_authorities.csv")]


def region_codes(year: int | None = None) -> list[str]:
    """GB/T 2260 codes in force in ``year`` (any year when None)."""
    rows = _table("gbt2260.csv")
    if year is None:
        return sorted({r["code"] for r in rows})
    return sorted(
        {
            r["code"]
            for r in rows
            if (not r["valid_from"] or int(r["valid_from"]) <= year)
            and (not r["valid_to"] or year <= int(r["valid_to"]))
        }
    )


def region_history() -> list[tuple[str, int | None, int | None]]:
    """GB/T 2260 codes with the first and last year each was in force (None: open)."""
    return [
        (r["code"], int(r["valid_from"]) if r["valid_from"] else None, int(r["valid_to"]) if r["valid_to"] else None)
        for r in _table("gbt2260.csv")
    ]


def industry_codes() -> list[str]:
    return [r["code"] for r in _table("gbt4754_2017.csv")]


def _weighted_sum(code: pl.Expr, values: dict[str, int], weights: list[int], start: int = 0) -> pl.Expr:
    return pl.sum_horizontal(
        code.str.slice(start + i, 1).replace_strict(values, default=None, return_dtype=pl.Int64) * w
        for i, w in enumerate(weights)
    )


def uscc_problem(code: pl.Expr) -> pl.Expr:
    """Reason code for a cleaned USCC, or null when valid: the first failing of length, alphabet,
    authority/category, region, organisation-code check (GB 11714), check character (mod 31)."""
    org_sum = _weighted_sum(code, _ORG_VALUE, _ORG_WEIGHTS, start=8)
    org_check = (11 - org_sum % 11).replace_strict({10: "X", 11: "0"}, default=None, return_dtype=pl.String)
    org_check = pl.coalesce(org_check, (11 - org_sum % 11).cast(pl.String))
    check = ((31 - _weighted_sum(code, _USCC_VALUE, _USCC_WEIGHTS) % 31) % 31).replace_strict(
        dict(enumerate(USCC_ALPHABET)), default=None, return_dtype=pl.String
    )
    return (
        pl.when(code.is_null())
        .then(None)
        .when(code.str.len_chars() != 18)
        .then(pl.lit("uscc_length"))
        .when(~code.str.contains(f"^[{USCC_ALPHABET}]{{18}}$"))
        .then(pl.lit("uscc_alphabet"))
        .when(~code.str.slice(0, 2).is_in(authority_categories()))
        .then(pl.lit("uscc_authority_category"))
        .when(~code.str.slice(2, 6).is_in(region_codes()))
        .then(pl.lit("uscc_region"))
        .when(code.str.slice(16, 1) != org_check)
        .then(pl.lit("uscc_org_check"))
        .when(code.str.slice(17, 1) != check)
        .then(pl.lit("uscc_check"))
        .otherwise(None)
    )


_RIC_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]


def _place_reason(area: str, year: int) -> str | None:
    """python-stdnum's birth-place rule (area code known and assigned in the birth year), for one pair."""
    try:
        ric.get_birth_place(f"{area}{year:04d}01010000")
    except stdnum_errors.InvalidComponent:
        return "ric_birth_date_or_area"
    except KeyError:  # python-stdnum's region lookup can raise for codes it half-knows (e.g. 620201)
        return "ric_area_unknown"
    return None


def _place_reasons(pairs: pl.Series) -> pl.Series:
    frame = pairs.struct.unnest()
    distinct = frame.drop_nulls().unique()
    lookup = distinct.with_columns(
        pl.Series("reason", [_place_reason(a, y) for a, y in distinct.iter_rows()], dtype=pl.String)
    )
    return frame.join(lookup, on=["area", "year"], how="left", maintain_order="left")["reason"]


def ric_problem(number: pl.Expr) -> pl.Expr:
    """Reason code for a cleaned resident ID, or null when valid — GB 11643 as python-stdnum checks it, in
    its order: length, format, MOD 11-2 check character, birth date, birth place (area code assigned in
    the birth year, from python-stdnum's GB/T 2260 history). Vectorised; python-stdnum is asked once per
    distinct (area, birth year)."""
    total = pl.sum_horizontal(
        number.str.slice(i, 1).cast(pl.Int64, strict=False) * w for i, w in enumerate(_RIC_WEIGHTS)
    )
    check = ((12 - total % 11) % 11).cast(pl.String).replace("10", "X")
    born = number.str.slice(6, 8).str.to_date("%Y%m%d", strict=False)
    place = pl.struct(number.str.slice(0, 6).alias("area"), born.dt.year().cast(pl.Int64).alias("year"))
    return (
        pl.when(number.is_null())
        .then(None)
        .when(number.str.len_chars() != 18)
        .then(pl.lit("ric_length"))
        .when(~number.str.contains(r"^\d{17}"))
        .then(pl.lit("ric_format"))
        .when(number.str.slice(17, 1) != check)
        .then(pl.lit("ric_check"))
        .when(born.is_null())
        .then(pl.lit("ric_birth_date_or_area"))
        .otherwise(place.map_batches(_place_reasons, return_dtype=pl.String, is_elementwise=True))
    )


def mobile_problem(number: pl.Expr) -> pl.Expr:
    plain = number.str.replace(r"^(\+?86)", "")
    return pl.when(number.is_null() | plain.str.contains(r"^1[3-9]\d{9}$")).then(None).otherwise(pl.lit("mobile"))
