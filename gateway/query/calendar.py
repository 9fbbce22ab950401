"""UTC calendar arithmetic of date histograms: the one definition of minute/hour/day/week/month/year buckets.

Every backend and plugin that buckets time by calendar periods uses these constants and functions, so an
ISO week starts on the same Monday everywhere and a month bucket has the same first millisecond.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .model import QueryError

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
#: 1969-12-29T00:00Z, the Monday before the epoch: ISO weeks are aligned on it.
WEEK_ORIGIN_MS = -3 * DAY_MS
#: Calendar intervals of constant length (month and year are not).
FIXED_INTERVALS_MS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS, "week": WEEK_MS}
#: The latest bucket end a month/year bucket can report (past what `datetime` represents).
MAX_MS = 2**63
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def bucket_start(value: int | float, interval: str | int) -> int:
    """The start (epoch ms, UTC) of the date-histogram bucket holding `value` (truncated to whole ms)."""
    ms = int(value)
    if isinstance(interval, int):
        return ms - ms % interval
    if interval == "week":
        return ms - (ms - WEEK_ORIGIN_MS) % WEEK_MS
    if interval in FIXED_INTERVALS_MS:
        step = FIXED_INTERVALS_MS[interval]
        return ms - ms % step
    moment = EPOCH + timedelta(milliseconds=ms - ms % 1000)
    if interval == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif interval == "year":
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise QueryError(f"unknown date_histogram interval [{interval}]")
    return (start - EPOCH) // timedelta(milliseconds=1)


def bucket_end(start: int, interval: str | int) -> int:
    """The end (exclusive, epoch ms) of the date-histogram bucket starting at `start`."""
    if isinstance(interval, int):
        return start + interval
    if interval in FIXED_INTERVALS_MS:
        return start + FIXED_INTERVALS_MS[interval]
    if interval not in ("month", "year"):
        raise QueryError(f"unknown date_histogram interval [{interval}]")
    moment = EPOCH + timedelta(milliseconds=start)
    try:
        if interval == "month":
            following = (moment + timedelta(days=32)).replace(day=1)
        else:
            following = moment.replace(year=moment.year + 1)
    except (OverflowError, ValueError):  # the last month or year datetime can represent
        return MAX_MS
    return (following - EPOCH) // timedelta(milliseconds=1)


def fixed_step(interval: str | int) -> tuple[int, int] | None:
    """(length, origin) in ms of an interval of constant length, or None for month and year."""
    if isinstance(interval, int):
        return interval, 0
    if interval in FIXED_INTERVALS_MS:
        return FIXED_INTERVALS_MS[interval], WEEK_ORIGIN_MS if interval == "week" else 0
    return None


def day_aligned(interval: str | int) -> bool:
    """Whether every bucket of the interval is a whole number of UTC days (day counts determine it)."""
    return interval in ("day", "week", "month", "year") or (isinstance(interval, int) and interval % DAY_MS == 0)
