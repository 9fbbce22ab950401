"""The core evaluator: answers, over a backend's scan, any query the backend cannot answer natively.

A backend answers natively what `Backend.native` accepts (by default `is_native`: the model every built-in
backend compiles to Python, SQL or DSL). Anything else (condition trees, computed fields, ``regex``,
``where``/``order``/``having``, ``stats``/``stdev``/``histogram``) is evaluated here with the reference
semantics, so the result is the same on every backend:

0. the parts the backend answers natively are asked of it separately: the page and total when only the
   aggregations are beyond it, the native top-level aggregations, each top-level filtered aggregation
   whose `where` it can push down (the same aggregation over a query narrowed by that condition), and
   bucket aggregations whose `order`/`having` are the only non-native parts (the backend returns every
   bucket, up to `RELAXED_SIZE` per terms level, and `refine` orders, filters and cuts them here);
1. the query's top-level filters are split into the ones the backend pushes down (`Backend.pushable`)
   and the residual, evaluated here on each scanned event;
2. `Backend.scan` streams ``(seq, event)`` for the query's streams and time range that match the pushed
   filters (``seq`` orders events by insertion and breaks sort ties, as in the native answers);
3. the total is counted, the page is kept in a bounded heap (offset + limit + 1 positions) and the
   aggregations are computed event by event (`gateway.query.aggregate.Accumulator`: no event is kept,
   only counts, distinct sets and the numbers a metric needs).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any, Protocol

from ..events import Event
from .aggregate import Accumulator, default_buckets, finish_buckets
from .cursor import decode_position, encode_position
from .deadline import Ticker
from .model import BUCKET_KINDS, Aggregation, AllOf, AnyOf, Condition, Filter, Not, Query, QueryError, QueryResult, Sort
from .semantics import compare_positions, field_raw, make_predicate, sort_value

#: Aggregation kinds of the native model (what every built-in backend compiles itself).
NATIVE_KINDS = frozenset({"count", "sum", "avg", "min", "max", "distinct_count", "percentiles", "terms",
                          "date_histogram"})
#: Buckets a backend returns for a terms level whose order/having the core applies (more: scanned instead).
RELAXED_SIZE = 10_000
#: Filter operators of the native model.
NATIVE_OPS = frozenset({"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "exists", "prefix", "contains"})

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


class Answering(Protocol):
    """What the evaluator asks of a backend (`gateway.storage.Backend` has all four)."""

    def native(self, query: Query) -> bool: ...
    def answer(self, query: Query) -> QueryResult: ...
    def scan(self, query: Query) -> Iterable[tuple[int, Event]]: ...
    def pushable(self, condition: Condition) -> bool: ...


def evaluate(query: Query, backend: Answering) -> QueryResult:
    """Answer a query the backend does not take whole: the parts it takes natively by `answer`, the rest
    over one `scan` (see the module docstring)."""
    plain = replace(query, aggregations=())
    page_native = backend.native(plain)
    alone = replace(plain, limit=0, offset=0, cursor=None, count_total=False)
    found: dict[str, Any] = {}
    native = [agg for agg in query.aggregations if backend.native(replace(alone, aggregations=(agg,)))]
    if native:
        found.update(backend.answer(replace(alone, aggregations=tuple(native))).aggregations)
    scanned: list[Aggregation] = []
    for agg in query.aggregations:
        if agg.name not in found and not _answer_rewritten(agg, alone, backend, found):
            scanned.append(agg)
    if page_native:
        result = backend.answer(plain)
        if scanned:
            found.update(evaluate_scan(replace(alone, aggregations=tuple(scanned)), backend).aggregations)
    else:
        result = evaluate_scan(replace(query, aggregations=tuple(scanned)), backend)
        found.update(result.aggregations)
    result.aggregations = {agg.name: found[agg.name] for agg in query.aggregations}
    return result


def _answer_rewritten(agg: Aggregation, alone: Query, backend: Answering, found: dict[str, Any]) -> bool:
    """Answer one aggregation natively after rewriting it (a `where` becomes a filter of a narrower query;
    bucket `order`/`having` are applied here to every bucket the backend returns); False if it cannot."""
    filters, target = alone.filters, agg
    if agg.where is not None:
        filters, target = (*filters, agg.where), replace(agg, where=None)
    relaxed = relax(target)
    candidate = replace(alone, filters=filters, aggregations=(relaxed,))
    if not backend.native(candidate):
        return False
    try:
        value = backend.answer(candidate).aggregations[agg.name]
    except QueryError:  # e.g. a store's own bucket limit on the relaxed form: the scan answers instead
        return False
    if relaxed is not target:
        value = refine(target, value)
        if value is None:
            return False
    found[agg.name] = value
    return True


def relax(agg: Aggregation) -> Aggregation:
    """The aggregation without bucket `order`/`having` (terms levels that had them return up to
    `RELAXED_SIZE` buckets), for a backend to compute and `refine` to finish; itself if nothing changes."""
    subs = tuple(relax(sub) for sub in agg.aggs)
    ordered = agg.kind in BUCKET_KINDS and not default_buckets(agg)
    if not ordered and all(new is old for new, old in zip(subs, agg.aggs, strict=True)):
        return agg
    if not ordered:
        return replace(agg, aggs=subs)
    size = RELAXED_SIZE if agg.kind == "terms" else agg.size
    return replace(agg, aggs=subs, order=None, descending=None, having=None, size=size)


def refine(agg: Aggregation, buckets: Any) -> Any:
    """Finish what `relax` left out on a backend's result (None when a relaxed level may miss buckets)."""
    if agg.kind not in BUCKET_KINDS:
        return buckets
    rows = []
    for bucket in buckets:
        row = dict(bucket)
        for sub in agg.aggs:
            value = refine(sub, row[sub.name])
            if value is None and sub.kind in BUCKET_KINDS:
                return None
            row[sub.name] = value
        rows.append(row)
    if default_buckets(agg):
        return rows
    if agg.kind == "terms" and len(rows) >= RELAXED_SIZE:
        return None
    return finish_buckets(agg, rows)


def evaluate_scan(query: Query, backend: Answering) -> QueryResult:
    """Answer `query` wholly from the backend's scan with the reference semantics."""
    scan, pushable = backend.scan, backend.pushable
    cursor = decode_position(query.cursor, len(query.sort)) if query.cursor is not None else None
    pushed = tuple(c for c in query.filters if pushable(c))
    residual = make_predicate([c for c in query.filters if not pushable(c)])
    scanned = Query(tenant=query.tenant, plugin=query.plugin, streams=query.streams, start=query.start,
                    end=query.end, filters=pushed, sort=(), limit=0, count_total=False)
    sorts = query.sort
    wanted = query.offset + query.limit + 1 if query.limit else 0
    heap: list[Any] = []  # the `wanted` smallest positions, as a max-heap of inverted positions
    accumulator = Accumulator(query.aggregations) if query.aggregations else None
    total = 0
    ticker = Ticker()
    for seq, event in scan(scanned):
        ticker.tick()  # the query's deadline (gateway.query.deadline), read every CHECK_EVERY events
        if residual is not None and not residual(event):
            continue
        total += 1
        if accumulator is not None:
            accumulator.add(event)
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
    if accumulator is not None:
        result.aggregations = accumulator.result()
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

