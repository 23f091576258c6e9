"""Dates as departments write them → ISO: 2023-05-01, 2023/5/1, 2023.5.1, 20230501, 2023年5月1日.

``parse_*`` take delivered text; ``*_of`` take text that ``clean_text`` already cleaned.
"""

from __future__ import annotations

import polars as pl

from quality.text import clean_text, patch

_DAY = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$"
_DAY_COMPACT = r"^(\d{4})(\d{2})(\d{2})$"
_MONTH = r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*月?$"
_MONTH_COMPACT = r"^(\d{4})(\d{2})$"


def _part(text: pl.Expr, patterns: list[str], group: int) -> pl.Expr:
    return pl.coalesce([text.str.extract(p, group) for p in patterns]).str.zfill(2)


def _date_slow(t: pl.Series) -> pl.Series:
    pats = [_DAY, _DAY_COMPACT]
    frame = t.to_frame("t")
    iso = pl.concat_str([_part(pl.col("t"), pats, g) for g in (1, 2, 3)], separator="-")
    return frame.select(iso.str.to_date("%Y-%m-%d", strict=False)).to_series()


def _month_slow(t: pl.Series) -> pl.Series:
    pats = [_MONTH, _MONTH_COMPACT]
    year, month = _part(pl.col("t"), pats, 1), _part(pl.col("t"), pats, 2)
    ok = month.cast(pl.Int32, strict=False).is_between(1, 12)
    return t.to_frame("t").select(pl.when(ok).then(pl.concat_str([year, month], separator="-"))).to_series()


def _dates(t: pl.Series) -> pl.Series:
    fast = t.str.to_date("%Y-%m-%d", strict=False)  # ISO, the common case; the others by pattern
    return patch(t, fast.is_null() & t.is_not_null(), _date_slow, base=fast)


def _months(t: pl.Series) -> pl.Series:
    iso = t.str.contains(r"^\d{4}-(0[1-9]|1[0-2])$")
    return patch(
        t,
        ~iso & t.is_not_null(),
        _month_slow,
        base=t.zip_with(iso.fill_null(False), pl.Series([None], dtype=pl.String)),
    )


def date_of(t: pl.Expr) -> pl.Expr:
    """A Date, or null when the text is no date (including impossible ones such as 2023-02-30)."""
    return t.map_batches(_dates, return_dtype=pl.Date, is_elementwise=True)


def month_of(t: pl.Expr) -> pl.Expr:
    """A period as 'YYYY-MM' text, or null when the text is no month."""
    return t.map_batches(_months, return_dtype=pl.String, is_elementwise=True)


def timestamp_of(t: pl.Expr) -> pl.Expr:
    """ISO 8601 with offset → UTC; null when unparseable."""
    return t.str.to_datetime("%Y-%m-%dT%H:%M:%S%z", time_zone="UTC", strict=False, time_unit="us")


def parse_date(e: pl.Expr) -> pl.Expr:
    return date_of(clean_text(e))


def parse_month(e: pl.Expr) -> pl.Expr:
    return month_of(clean_text(e))


def parse_timestamp(e: pl.Expr) -> pl.Expr:
    return timestamp_of(clean_text(e))
