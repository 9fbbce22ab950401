"""The reference aggregation engine: every aggregation kind computed in Python over events.

The memory backend answers aggregations with it; SQL and Elasticsearch backends compute the same results
in the store and use its helpers for the parts they finish in Python (bucket order, percentiles, empty
results), so a bucket list is ordered and truncated the same way everywhere.
"""

from __future__ import annotations

import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ..events import Event
from .calendar import DAY_MS, bucket_start, fixed_step
from .model import Aggregation, QueryError
from .semantics import field_exists, field_raw, is_scalar, normalize_key, numeric_values, rank, scalar_values


def percentile(sorted_values: Sequence[float], percent: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method) over sorted values."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * percent / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    low, high = sorted_values[lower], sorted_values[upper]
    return float(low + (high - low) * fraction)


def percentiles(sorted_values: Sequence[float], percents: Iterable[float]) -> dict[float, float | None]:
    """The ``percentiles`` aggregation result for already sorted values."""
    return {p: percentile(sorted_values, p) for p in percents}


def empty_metric(agg: Aggregation) -> Any:
    """The result of a metric aggregation over no events."""
    if agg.kind in ("count", "distinct_count"):
        return 0
    if agg.kind == "percentiles":
        return {p: None for p in agg.percents}
    return None


def bucket_keys(event: Event, agg: Aggregation) -> set[Any]:
    """The distinct bucket keys an event falls into for a terms or date_histogram aggregation."""
    raw = field_raw(event, agg.source)
    if agg.kind == "terms":
        return {normalize_key(v) for v in scalar_values(raw)}
    assert agg.interval is not None
    return {bucket_start(v, agg.interval) for v in numeric_values(raw)}


def single_key(agg: Aggregation, get: Callable[[Any], Any] | None = None) -> Callable[[Any], Any] | None:
    """For buckets over an integer event time or a scalar top-level attribute: the one key of an event
    (None for no bucket); None when events may fall into several buckets (data fields). `get` reads the
    field from what the returned callable is given (default: the attribute of an event)."""
    field = agg.source
    if field.startswith("data."):
        return None
    if get is None:
        get = operator.attrgetter(field)
    if agg.kind == "terms":
        return lambda event: normalize_key(v) if is_scalar(v := get(event)) else None
    if field not in ("timestamp", "received_at"):
        return None
    interval = agg.interval
    assert interval is not None
    fixed = fixed_step(interval)
    if fixed is not None:
        step, origin = fixed
        return lambda event: (ms := get(event)) - (ms - origin) % step
    by_day: dict[int, int] = {}

    def calendar(event: Event) -> int:
        day = get(event) // DAY_MS
        start = by_day.get(day)
        if start is None:
            start = by_day[day] = bucket_start(day * DAY_MS, interval)
        return start

    return calendar


def order_buckets(agg: Aggregation, counts: Mapping[Any, int]) -> list[tuple[Any, int]]:
    """Terms: most frequent first then by key, the first `size`; histograms: every bucket by key."""
    if agg.kind == "terms":
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], rank(kv[0])))
        return ordered[: agg.size]
    return sorted(counts.items(), key=lambda kv: kv[0])


def aggregate(events: Sequence[Event], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Compute aggregations over events in Python: the reference for every backend."""
    return {agg.name: aggregate_one(events, agg) for agg in aggs}


def aggregate_one(events: Sequence[Event], agg: Aggregation) -> Any:
    kind = agg.kind
    if kind == "count" and agg.field is None:
        return len(events)
    if kind in ("terms", "date_histogram"):
        members: dict[Any, list[Event]] = {}
        key_of = single_key(agg)
        if key_of is not None and not agg.aggs:
            counts = Counter(map(key_of, events))
            counts.pop(None, None)
            return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
        for event in events:
            for key in ((key_of(event),) if key_of is not None else bucket_keys(event, agg)):
                if key is not None:
                    members.setdefault(key, []).append(event)
        ordered = order_buckets(agg, {key: len(group) for key, group in members.items()})
        return [{"key": key, "count": count, **aggregate(members[key], agg.aggs)} for key, count in ordered]
    assert agg.field is not None
    raws = [field_raw(event, agg.field) for event in events]
    if kind == "count":
        return sum(1 for raw in raws if field_exists(raw))
    if kind == "distinct_count":
        return len({normalize_key(v) for raw in raws for v in scalar_values(raw)})
    numbers = [n for raw in raws for n in numeric_values(raw)]
    if kind == "percentiles":
        return percentiles(sorted(numbers), agg.percents)
    if not numbers:
        return None
    if kind == "sum":
        return sum(numbers)
    if kind == "avg":
        return sum(numbers) / len(numbers)
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    raise QueryError(f"unknown aggregation kind [{kind}]")


def fill(aggs: Sequence[Aggregation], found: Mapping[str, Any]) -> dict[str, Any]:
    """Every aggregation's result, with the empty result for those that saw no rows."""
    return {a.name: found.get(a.name, [] if a.kind in ("terms", "date_histogram") else empty_metric(a))
            for a in aggs}
