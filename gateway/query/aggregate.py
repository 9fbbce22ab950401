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
from .model import BUCKET_KINDS, Aggregation, QueryError
from .semantics import (
    compile_condition,
    field_exists,
    field_getter,
    field_raw,
    having_matches,
    is_scalar,
    normalize_key,
    numeric_values,
    rank,
    scalar_values,
)


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
    if agg.kind == "stats":
        return {"count": 0, "min": None, "max": None, "avg": None, "sum": None}
    return None


def histogram_key(value: int | float, interval: int | float) -> int | float:
    """The start of the numeric-histogram bucket holding `value`: ``floor(value / interval) * interval``
    (an int when both are ints)."""
    if isinstance(value, int) and isinstance(interval, int):
        return value - value % interval
    return math.floor(value / interval) * interval


def bucket_keys(event: Event, agg: Aggregation) -> set[Any]:
    """The distinct bucket keys an event falls into for a bucket aggregation."""
    raw = field_raw(event, agg.source)
    if agg.kind == "terms":
        return {normalize_key(v) for v in scalar_values(raw)}
    assert agg.interval is not None
    if agg.kind == "histogram":
        return {histogram_key(v, agg.interval) for v in numeric_values(raw)}
    return {bucket_start(v, agg.interval) for v in numeric_values(raw)}


def single_key(agg: Aggregation, get: Callable[[Any], Any] | None = None) -> Callable[[Any], Any] | None:
    """For buckets over an integer event time or a scalar top-level attribute: the one key of an event
    (None for no bucket); None when events may fall into several buckets (data fields). `get` reads the
    field from what the returned callable is given (default: the attribute of an event)."""
    field = agg.source
    if not isinstance(field, str) or field.startswith("data.") or agg.kind == "histogram":
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
    """One aggregation over events (its `where` first narrows them)."""
    if agg.where is not None:
        keep = compile_condition(agg.where)
        events = [event for event in events if keep(event)]
    kind = agg.kind
    if kind == "count" and agg.field is None:
        return len(events)
    if kind in BUCKET_KINDS:
        return _buckets(events, agg)
    assert agg.field is not None
    raws = [field_raw(event, agg.field) for event in events]
    if kind == "count":
        return sum(1 for raw in raws if field_exists(raw))
    if kind == "distinct_count":
        return len({normalize_key(v) for raw in raws for v in scalar_values(raw)})
    return metric_result(agg, [n for raw in raws for n in numeric_values(raw)])


def metric_result(agg: Aggregation, numbers: list[int | float]) -> Any:
    """The result of a numeric metric (sum, avg, min, max, stats, stdev, percentiles) over its values."""
    kind = agg.kind
    if kind == "percentiles":
        return percentiles(sorted(numbers), agg.percents)
    if not numbers:
        return empty_metric(agg)
    if kind == "sum":
        return sum(numbers)
    if kind == "avg":
        return sum(numbers) / len(numbers)
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    if kind == "stats":
        total = sum(numbers)
        return {"count": len(numbers), "min": min(numbers), "max": max(numbers), "avg": total / len(numbers),
                "sum": total}
    if kind == "stdev":
        return stdev(numbers)
    raise QueryError(f"unknown aggregation kind [{kind}]")


def stdev(numbers: Sequence[int | float]) -> float:
    """Population standard deviation (two passes: the mean, then the squared deviations)."""
    mean = sum(numbers) / len(numbers)
    return math.sqrt(sum((x - mean) ** 2 for x in numbers) / len(numbers))


def _buckets(events: Sequence[Event], agg: Aggregation) -> list[dict[str, Any]]:
    key_of = single_key(agg)
    if key_of is not None and not agg.aggs and default_buckets(agg):
        counts = Counter(map(key_of, events))
        counts.pop(None, None)
        return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
    members: dict[Any, list[Event]] = {}
    for event in events:
        for key in ((key_of(event),) if key_of is not None else bucket_keys(event, agg)):
            if key is not None:
                members.setdefault(key, []).append(event)
    if default_buckets(agg):
        ordered = order_buckets(agg, {key: len(group) for key, group in members.items()})
        return [{"key": key, "count": count, **aggregate(members[key], agg.aggs)} for key, count in ordered]
    rows = [{"key": key, "count": len(group), **aggregate(group, agg.aggs)} for key, group in members.items()]
    return finish_buckets(agg, rows)


def default_buckets(agg: Aggregation) -> bool:
    """Whether a bucket aggregation keeps its kind's default order and every bucket (no order, having)."""
    return agg.order is None and agg.descending is None and agg.having is None


def bucket_value(bucket: Mapping[str, Any], name: str) -> Any:
    """What `order`/`Having` name in a bucket: ``_count``, ``_key``, a sub-aggregation's result, or one
    value of a ``stats``/``percentiles`` result (``name.key``)."""
    if name == "_count":
        return bucket["count"]
    if name == "_key":
        return bucket["key"]
    if name in bucket:
        return bucket[name]
    head, _, tail = name.partition(".")
    found = bucket.get(head)
    if isinstance(found, dict):
        if tail in found:
            return found[tail]
        try:
            return found.get(float(tail))
        except ValueError:
            return None
    return None


def finish_buckets(agg: Aggregation, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Buckets with their sub-results: drop those failing `having`, order them (the metric's missing
    values last, ties by key ascending), keep the first `size` of a terms aggregation."""
    if agg.having is not None:
        having = agg.having
        rows = [row for row in rows if having_matches(having, lambda name, row=row: bucket_value(row, name))]
    by = agg.order or ("_count" if agg.kind == "terms" else "_key")
    descending = agg.descending if agg.descending is not None else by != "_key"
    present, absent = [], []
    for row in rows:
        value = bucket_value(row, by)
        if is_scalar(value):
            present.append((rank(normalize_key(value)), row))
        else:  # no value (or not a single one): last, whatever the direction
            absent.append(row)
    present.sort(key=lambda pair: rank(pair[1]["key"]))
    present.sort(key=lambda pair: pair[0], reverse=descending)
    absent.sort(key=lambda row: rank(row["key"]))
    ordered = [row for _, row in present] + absent
    return ordered[: agg.size] if agg.kind == "terms" else ordered


def fill(aggs: Sequence[Aggregation], found: Mapping[str, Any]) -> dict[str, Any]:
    """Every aggregation's result, with the empty result for those that saw no rows."""
    return {a.name: found.get(a.name, [] if a.kind in BUCKET_KINDS else empty_metric(a)) for a in aggs}


class Accumulator:
    """The same aggregations computed one event at a time (the core evaluator's scan keeps no events):
    metrics keep a count, a set or their numbers, bucket kinds an accumulator per bucket."""

    __slots__ = ("nodes",)

    def __init__(self, aggs: Sequence[Aggregation]) -> None:
        self.nodes = [_Buckets(agg) if agg.kind in BUCKET_KINDS else _Metric(agg) for agg in aggs]

    def add(self, event: Any) -> None:
        """Take one event into every aggregation."""
        for node in self.nodes:
            node.add(event)

    def result(self) -> dict[str, Any]:
        """The results, as `aggregate` gives them for the same events."""
        return {node.agg.name: node.result() for node in self.nodes}


class _Metric:
    __slots__ = ("agg", "get", "n", "values", "where")

    def __init__(self, agg: Aggregation) -> None:
        self.agg = agg
        self.where = None if agg.where is None else compile_condition(agg.where)
        self.get = None if agg.field is None else field_getter(agg.field)
        self.n = 0
        self.values: Any = set() if agg.kind == "distinct_count" else []

    def add(self, event: Any) -> None:
        if self.where is not None and not self.where(event):
            return
        if self.get is None:
            self.n += 1
            return
        raw = self.get(event)
        kind = self.agg.kind
        if kind == "count":
            self.n += field_exists(raw)
        elif kind == "distinct_count":
            self.values.update(normalize_key(v) for v in scalar_values(raw))
        else:
            self.values.extend(numeric_values(raw))

    def result(self) -> Any:
        kind = self.agg.kind
        if kind == "count":
            return self.n
        if kind == "distinct_count":
            return len(self.values)
        return metric_result(self.agg, self.values)


class _Buckets:
    __slots__ = ("agg", "buckets", "key_of", "where")

    def __init__(self, agg: Aggregation) -> None:
        self.agg = agg
        self.where = None if agg.where is None else compile_condition(agg.where)
        self.key_of = single_key(agg)
        self.buckets: dict[Any, list[Any]] = {}

    def add(self, event: Any) -> None:
        if self.where is not None and not self.where(event):
            return
        key_of = self.key_of
        for key in ((key_of(event),) if key_of is not None else bucket_keys(event, self.agg)):
            if key is None:
                continue
            entry = self.buckets.get(key)
            if entry is None:
                entry = self.buckets[key] = [0, Accumulator(self.agg.aggs)]
            entry[0] += 1
            entry[1].add(event)

    def result(self) -> list[dict[str, Any]]:
        agg, buckets = self.agg, self.buckets
        if default_buckets(agg):
            ordered = order_buckets(agg, {key: entry[0] for key, entry in buckets.items()})
            return [{"key": key, "count": count, **buckets[key][1].result()} for key, count in ordered]
        return finish_buckets(agg, [{"key": key, "count": entry[0], **entry[1].result()}
                                    for key, entry in buckets.items()])
