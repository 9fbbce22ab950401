"""Columns of data fields: one field's values for every record of a sorted run, decoded once and kept.

Why: records keep their document as JSON text (cheap for the garbage collector), so a terms aggregation,
a metric or a filter on a ``data.`` field would decode every document on every query. A column is built
the first time a query needs that field of that run (one decoding pass), extended by in-order appends and
dropped when a run is re-sorted. Only *simple* columns (every value a string, number, boolean, null or
missing) answer queries here; a field holding arrays or objects anywhere keeps the reference path, so
results are those of `gateway.query.aggregate` and `gateway.query.semantics` exactly.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

from gateway.query import MISSING, Aggregation, Filter
from gateway.query.aggregate import metric_result, order_buckets
from gateway.query.semantics import compile_filter, normalize_key

_SCALARS = (str, int, float, bool)
#: Metric kinds a simple column answers (the native metrics of the memory backend).
COLUMN_METRICS = frozenset({"count", "sum", "avg", "min", "max", "distinct_count", "percentiles"})


class Column:
    """A field's values aligned with a run's records (`MISSING` where absent); `simple` when every value
    is a scalar, null or missing."""

    __slots__ = ("simple", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.simple = True

    def extend(self, texts: Sequence[str], get: Callable[[Any], Any]) -> None:
        """Append the field's value of each document text (strings of one call are shared)."""
        loads, shared, simple = json.loads, {}, self.simple
        out = self.values
        for text in texts:
            value = get(loads(text))
            cls = value.__class__
            if cls is str:
                value = shared.setdefault(value, value)
            elif value is not MISSING and value is not None and cls not in _SCALARS:
                simple = False
            out.append(value)
        self.simple = simple


    def insert(self, at: int, text: str, get: Callable[[Any], Any]) -> None:
        """Insert the value of one document text at a position."""
        tail = Column()
        tail.extend([text], get)
        self.values.insert(at, tail.values[0])
        self.simple = self.simple and tail.simple


def _present(values: Sequence[Any]) -> list[Any]:
    return [v for v in values if v is not None and v is not MISSING]


def column_aggregate(agg: Aggregation, runs: Sequence[tuple[Any, int, int]]) -> Any:
    """A native metric, or a terms aggregation whose sub-aggregations are such metrics, of data fields, over
    record runs ``(run, lo, hi)`` (a run has ``column(field)``); MISSING when the columns cannot answer it."""
    if agg.where is not None:
        return MISSING
    if agg.kind == "terms":
        return _terms(agg, runs)
    column_of = _columns(agg.field, runs)
    if column_of is None or agg.kind not in COLUMN_METRICS:
        return MISSING
    return _metric(agg, [v for run, lo, hi in runs for v in _present(column_of[id(run)].values[lo:hi])])


def _columns(field: Any, runs: Sequence[tuple[Any, int, int]]) -> dict[int, Column] | None:
    """Each run's simple column of a data field (None if the field is not one or a column is not simple)."""
    if not isinstance(field, str) or not field.startswith("data."):
        return None
    found = {id(run): run.column(field) for run, _, _ in runs}
    return found if all(column.simple for column in found.values()) else None


def _metric(agg: Aggregation, values: list[Any]) -> Any:
    kind = agg.kind
    if kind == "count":
        return len(values)
    if kind == "distinct_count":
        return len({normalize_key(v) for v in values})
    return metric_result(agg, [normalize_key(v) for v in values if v.__class__ is not str])


def _terms(agg: Aggregation, runs: Sequence[tuple[Any, int, int]]) -> Any:
    keys = _columns(agg.field, runs)
    subs: list[tuple[Aggregation, dict[int, Column] | None]] = []
    for sub in agg.aggs:
        if sub.where is not None or sub.kind not in COLUMN_METRICS:
            return MISSING
        columns = None if sub.kind == "count" and sub.field is None else _columns(sub.field, runs)
        if columns is None and not (sub.kind == "count" and sub.field is None):
            return MISSING
        subs.append((sub, columns))
    if keys is None:
        return MISSING
    if not subs:
        counts: Counter[Any] = Counter()
        for run, lo, hi in runs:
            counts.update(_present(keys[id(run)].values[lo:hi]))  # True == 1: merged as normalize_key does
        counts = Counter({normalize_key(key): n for key, n in counts.items()})
        return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
    members: dict[Any, list[tuple[Any, list[int]]]] = {}
    for run, lo, hi in runs:
        values = keys[id(run)].values
        split: dict[Any, list[int]] = {}
        for position in range(lo, hi):
            v = values[position]
            if v is not None and v is not MISSING:
                split.setdefault(normalize_key(v), []).append(position)
        for key, positions in split.items():
            members.setdefault(key, []).append((run, positions))
    counts = Counter({key: sum(len(p) for _, p in parts) for key, parts in members.items()})
    out = []
    for key, count in order_buckets(agg, counts):
        bucket: dict[str, Any] = {"key": key, "count": count}
        for sub, columns in subs:
            if columns is None:
                bucket[sub.name] = count
            else:
                picked = [columns[id(run)].values[p] for run, positions in members[key] for p in positions]
                bucket[sub.name] = _metric(sub, _present(picked))
        out.append(bucket)
    return out


def column_positions(filters: Sequence[Filter], lo: int, hi: int, column_of: Callable[[str], Column | None],
                     record_value: Callable[[str], Callable[[int], Any]]) -> list[int] | None:
    """Positions in ``[lo, hi)`` of the records passing every filter, read from simple columns (top-level
    fields from the records); None when a data filter's column is not simple."""
    checks: list[tuple[Filter, Column | None]] = []
    for flt in filters:
        if flt.field.startswith("data."):
            column = column_of(flt.field)
            if column is None or not column.simple:
                return None
            checks.append((flt, column))
        else:
            checks.append((flt, None))
    positions: Any = range(lo, hi)
    for i, (flt, column) in enumerate(checks):
        if column is not None:
            if i == 0:  # the first test runs over a slice (no per-position indexing)
                keep = map(compile_filter(flt, _identity), column.values[lo:hi])
                positions = list(itertools.compress(positions, keep))
                continue
            check = compile_filter(flt, column.values.__getitem__)
        else:
            check = compile_filter(flt, record_value(flt.field))
        positions = [p for p in positions if check(p)]
    return list(positions)


def _identity(value: Any) -> Any:
    return value
