"""Update cycles (更新周期, DB33/T 2426): how often a dataset is expected to change, and when it is late.

Each cycle maps to a warn window and a fail window on the time since the dataset was last updated: a
monthly filing is due once a month, with the departments' 15-day filing grace before it is overdue. The
Dagster freshness policies and checks of every raw and published dataset come from here.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Cycle = Literal["实时", "每日", "每周", "每月", "每季", "每年"]

# cycle → (warn after, fail after) without an update
WINDOWS: dict[str, tuple[dt.timedelta, dt.timedelta]] = {
    "实时": (dt.timedelta(hours=1), dt.timedelta(hours=6)),
    "每日": (dt.timedelta(days=1, hours=6), dt.timedelta(days=2)),
    "每周": (dt.timedelta(days=8), dt.timedelta(days=10)),
    "每月": (dt.timedelta(days=35), dt.timedelta(days=46)),
    "每季": (dt.timedelta(days=95), dt.timedelta(days=106)),
    "每年": (dt.timedelta(days=380), dt.timedelta(days=411)),
}


def windows(cycle: str, where: str = "") -> tuple[dt.timedelta, dt.timedelta]:
    """(warn, fail) windows of a cycle; a clear error for one that is not known."""
    try:
        return WINDOWS[cycle]
    except KeyError:
        raise ValueError(f"{where}update_cycle {cycle!r} is not one of {list(WINDOWS)}") from None


@dataclass(frozen=True)
class Freshness:
    state: str  # fresh | late (past the warn window) | overdue (past the fail window) | never (not updated yet)
    age_seconds: float | None
    late_seconds: float | None  # past the window it is late by (None when fresh or never)


def assess(cycle: str, updated: float | None, now: float) -> Freshness:
    """How fresh a dataset last updated at ``updated`` (a Unix time; None: never) is at ``now``."""
    warn, fail = windows(cycle)
    if updated is None:
        return Freshness("never", None, None)
    age = now - updated
    if age <= warn.total_seconds():
        return Freshness("fresh", age, None)
    overdue = age > fail.total_seconds()
    return Freshness("overdue" if overdue else "late", age, age - (fail if overdue else warn).total_seconds())


def words(seconds: float) -> str:
    """A duration as a steward reads it: ``3 d 4 h`` or ``5 h 12 min``."""
    days, rest = divmod(int(seconds), 86400)
    hours = rest // 3600
    return f"{days} d {hours} h" if days else f"{hours} h {rest % 3600 // 60} min"


def months_between(start: str, end: str) -> list[str]:
    """The months 'YYYY-MM' from ``start`` through ``end``; a clear error when they are the wrong way round."""
    if end < start:
        raise ValueError(f"{start} is after {end}")
    y, m, out = int(start[:4]), int(start[5:7]), []
    while f"{y:04d}-{m:02d}" <= end:
        out.append(f"{y:04d}-{m:02d}")
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out
