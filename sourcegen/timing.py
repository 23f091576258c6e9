"""When each delivery arrives: the departments' filing calendar, with some files late.

A file for a period is due a fixed number of days after the period ends (the 归集 agreement: daily device
files the next day, monthly filings by the 15th of the following month, annual returns within 90 days).
Most files arrive before their deadline; about ``LATE_RATE`` of the periodic ones after it. A re-sent file
(``_重报``, after a rejection) arrives a few days after the file it replaces. The time is written as the
file's modification time, as an upload leaves it; the truth manifest records it with the deadline.

Timing draws from its own random stream, so the delivered data stays identical with or without it.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re

import numpy as np

DEADLINE_DAYS = {"day": 1, "month": 15, "year": 90}
LATE_RATE = 0.1
CST = dt.timezone(dt.timedelta(hours=8), "Asia/Shanghai")
_PERIOD = re.compile(r"(\d{4})(?:-(\d{2}))?(?:-(\d{2}))?")


def period_in(path: str) -> tuple[str, str] | None:
    """(granularity, period) of the date a file name carries, or None."""
    m = _PERIOD.search(path.rsplit("/", 1)[-1])
    if not m:
        return None
    granularity = "day" if m.group(3) else "month" if m.group(2) else "year"
    return granularity, m.group(0)


def period_end(granularity: str, period: str) -> dt.date:
    y = int(period[:4])
    if granularity == "year":
        return dt.date(y, 12, 31)
    m = int(period[5:7])
    if granularity == "month":
        return dt.date(y, m, calendar.monthrange(y, m)[1])
    return dt.date(y, m, int(period[8:10]))


def schedule(paths: list[str], rng: np.random.Generator, undated_on: dt.date) -> list[dict]:
    """Delivery time, deadline and lateness of each file, in order. Undated files (a register sent once)
    arrive on ``undated_on``."""
    out: list[dict] = []
    previous: dict[str, dt.datetime] = {}
    for path in paths:
        hour = dt.time(int(rng.integers(8, 19)), int(rng.integers(0, 60)))
        found = period_in(path)
        if found is None:
            at = dt.datetime.combine(undated_on, hour, CST)
            out.append({"delivered_at": at.isoformat(), "due_on": None, "late": None})
            continue
        granularity, period = found
        end = period_end(granularity, period)
        due = end + dt.timedelta(days=DEADLINE_DAYS[granularity])
        base = path.split("_重报")[0]
        if "_重报" in path and base in previous:
            at = previous[base] + dt.timedelta(days=int(rng.integers(2, 6)))
        elif granularity != "day" and rng.random() < LATE_RATE:
            at = dt.datetime.combine(due + dt.timedelta(days=int(rng.integers(2, 25))), hour, CST)
        else:
            days = (due - end).days
            at = dt.datetime.combine(end + dt.timedelta(days=int(rng.integers(1, days + 1))), hour, CST)
        previous[path.rsplit(".", 1)[0]] = at
        out.append({"delivered_at": at.isoformat(), "due_on": due.isoformat(), "late": at.date() > due})
    return out
