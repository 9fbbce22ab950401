"""The core evaluator: answers, over a backend's scan, any query the backend cannot answer natively.

A backend answers natively what `Backend.native` accepts (by default `is_native`: the model every built-in
backend compiles to Python, SQL or DSL). Anything else (condition trees, computed fields, ``regex``,
``where``/``order``/``having``, ``stats``/``stdev``/``histogram``) is evaluated here with the reference
semantics, so the result is the same on every backend:

1. the query's top-level filters are split into the ones the backend pushes down (`Backend.pushable`)
   and the residual, evaluated here on each scanned event;
2. `Backend.scan` streams ``(seq, event)`` for the query's streams and time range that match the pushed
   filters (``seq`` orders events by insertion and breaks sort ties, as in the native answers);
3. the total is counted, the page is kept in a bounded heap (offset + limit + 1 positions) and, when the
   query aggregates, the matching events are collected and aggregated by `gateway.query.aggregate`.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..events import Event
from .aggregate import aggregate
from .cursor import decode_position, encode_position
from .model import AllOf, AnyOf, Condition, Filter, Not, Query, QueryResult, Sort
from .semantics import compare_positions, field_raw, make_predicate, sort_value

#: Aggregation kinds of the native model (what every built-in backend compiles itself).
NATIVE_KINDS = frozenset({"count", "sum", "avg", "min", "max", "distinct_count", "percentiles", "terms",
                          "date_histogram"})
#: Filter operators of the native model.
NATIVE_OPS = frozenset({"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "exists", "prefix", "contains"})

#: A scan: ``(seq, event)`` of every event of the query's streams and time range matching its filters.
Scan = Callable[[Query], Iterable[tuple[int, Event]]]


def native_filter(flt: Filter) -> bool:
    """A filter every built-in backend compiles: a named field and a native operator."""
    return isinstance(flt.field, str) and flt.op in NATIVE_OPS


def native_tree(condition: Condition) -> bool:
    """A condition tree (AllOf/AnyOf/Not) of native filters (SQL and DSL backends compile these)."""
    if isinstance(condition, Filter):
        return native_filter(condition)
    if isinstance(condition, Not):
        return native_tree(condition.condition)
    if isinstance(condition, AllOf | AnyOf):
        return all(native_tree(c) for c in condition.conditions)
    return False


def native_aggregation(agg: Any) -> bool:
    """An aggregation of the native model (no where/order/having, named fields, native kinds)."""
    return (agg.kind in NATIVE_KINDS and agg.where is None and agg.order is None and agg.descending is None
            and agg.having is None and (agg.field is None or isinstance(agg.field, str))
            and all(native_aggregation(sub) for sub in agg.aggs))


def is_native(query: Query, condition_ok: Callable[[Condition], bool] = lambda c: isinstance(c, Filter)
              and native_filter(c)) -> bool:
    """Whether a query stays within the native model, its filters accepted by `condition_ok`."""
    return (all(condition_ok(c) for c in query.filters) and all(isinstance(s.field, str) for s in query.sort)
            and all(native_aggregation(a) for a in query.aggregations))


class _Position:
    """A page candidate ordered by (sort values, seq) in the query's order (for the bounded heap)."""

    __slots__ = ("event", "seq", "sorts", "values")

    def __init__(self, values: list[Any], seq: int, event: Event, sorts: Sequence[Sort]) -> None:
        self.values, self.seq, self.event, self.sorts = values, seq, event, sorts

    def __lt__(self, other: _Position) -> bool:
        return compare_positions((self.values, self.seq), (other.values, other.seq), self.sorts) < 0


def evaluate(query: Query, scan: Scan, pushable: Callable[[Condition], bool]) -> QueryResult:
    """Answer `query` from `scan` with the reference semantics (see the module docstring)."""
    cursor = decode_position(query.cursor, len(query.sort)) if query.cursor is not None else None
    pushed = tuple(c for c in query.filters if pushable(c))
    residual = make_predicate([c for c in query.filters if not pushable(c)])
    scanned = Query(tenant=query.tenant, plugin=query.plugin, streams=query.streams, start=query.start,
                    end=query.end, filters=pushed, sort=(), limit=0, count_total=False)
    sorts = query.sort
    wanted = query.offset + query.limit + 1 if query.limit else 0
    heap: list[Any] = []  # the `wanted` smallest positions, as a max-heap of inverted positions
    matched: list[Event] = []
    total = 0
    for seq, event in scan(scanned):
        if residual is not None and not residual(event):
            continue
        total += 1
        if query.aggregations:
            matched.append(event)
        if not wanted:
            continue
        values = [sort_value(field_raw(event, s.field), s.descending) for s in sorts]
        if cursor is not None and compare_positions((values, seq), cursor, sorts) <= 0:
            continue
        position = _Position(values, seq, event, sorts)
        if len(heap) < wanted:
            heapq.heappush(heap, _Inverted(position))
        elif position < heap[0].position:
            heapq.heapreplace(heap, _Inverted(position))
    result = QueryResult(total=total if query.count_total else None)
    if query.aggregations:
        result.aggregations = aggregate(matched, query.aggregations)
    if wanted:
        page = sorted(item.position for item in heap)[query.offset:]
        if len(page) > query.limit:
            page = page[: query.limit]
            result.next_cursor = encode_position(page[-1].values, page[-1].seq)
        result.events = [position.event for position in page]
    return result


class _Inverted:
    """Reverses a position's order, so that `heapq` (a min-heap) keeps the smallest positions."""

    __slots__ = ("position",)

    def __init__(self, position: _Position) -> None:
        self.position = position

    def __lt__(self, other: _Inverted) -> bool:
        return other.position < self.position

