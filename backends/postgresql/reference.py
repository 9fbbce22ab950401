"""The core's reference semantics this backend reuses, imported in one place.

Where SQL cannot answer exactly (and for cursors, bucket ordering, calendar months and percentile
interpolation), the backend calls the executable reference of `gateway.query` rather than re-reading the
rules. Every name the package needs from it is imported here, so following a move of the reference is
an edit to this file only.
"""

from __future__ import annotations

# TEMPORARY until the core redesign (issue 8) lands gateway/query/: the reference still lives in
# backends.memory. After the merge these come from gateway.query.{semantics,aggregate,calendar,cursor,checks}.
from backends.memory import (  # noqa: F401 - re-exported
    DAY_MS,
    FIXED_INTERVALS_MS,
    WEEK_ORIGIN_MS,
    aggregate,
    bucket_end,
    bucket_start,
    check_event,
    decode_cursor,
    empty_metric,
    encode_cursor,
    normalize_key,
    order_buckets,
    percentile,
    rank,
    value_class,
    value_matches,
)


def decode_position(cursor: str, n_sorts: int) -> tuple[list, int]:
    """The (sort values, seq) position a cursor names (`QueryError` when it was made for another query)."""
    return decode_cursor(cursor, n_sorts)


def encode_position(values: list, seq: int) -> str:
    """The opaque cursor of a position."""
    return encode_cursor(values, seq)
