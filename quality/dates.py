"""Dates as departments write them → ISO: 2023-05-01, 2023/5/1, 2023.5.1, 20230501, 2023年5月1日."""

from __future__ import annotations

import polars as pl

from quality.text import clean_text

_DAY = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$"
_DAY_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"
_MONTH = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$"
_MONTH_COMPACT = r"^(\d{4})(\d{2})$"


def _part(text: pl.Expr, patterns: list[str], group: int) -> pl.Expr:
    return pl.coalesce([text.str.extract(p, group) for p in patterns]).str.zfill(2)


def parse_date(e: pl.Expr) -> pl.Expr:
    """A Date, or null when the text is no date (including impossible ones such as 2023-02-30)."""
    t = clean_text(e)
    pats = [_DAY, _DAY_COMPACT]
    iso = pl.concat_str([_part(t, pats, 1), _part(t, pats, 2), _part(t, pats, 3)], separator="-")
    return iso.str.to_date("%Y-%m-%d", strict=False)


def parse_month(e: pl.Expr) -> pl.Expr:
    """A period as 'YYYY-MM' text, or null when the text is no month."""
    t = clean_text(e)
    pats = [_MONTH, _MONTH_COMPACT]
    year, month = _part(t, pats, 1), _part(t, pats, 2)
    ok = month.cast(pl.Int32, strict=False).is_between(1, 12)
    return pl.when(ok).then(pl.concat_str([year, month], separator="-")).otherwise(None)


def parse_timestamp(e: pl.Expr) -> pl.Expr:
    """ISO 8601 with offset → UTC; null when unparseable."""
    return clean_text(e).str.to_datetime("%Y-%m-%dT%H:%M:%S%z", time_zone="UTC", strict=False, time_unit="us")
