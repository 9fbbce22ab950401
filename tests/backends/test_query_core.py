"""The core's own pieces: the streaming `Accumulator` must give exactly what the list-based reference
`aggregate` gives (the evaluator uses the first, the memory backend the second), and the rewrites the
evaluator asks a backend for (`relax`/`refine`) must not change a result.

Events and aggregations are drawn at random (fixed seeds) from every kind the model has.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from backends.memory import MemoryBackend
from gateway.events import Event, Stream
from gateway.query import Aggregation, AnyOf, Filter, Having, Not, Query
from gateway.query.aggregate import Accumulator, aggregate
from gateway.query.cursor import decode_cursor, decode_position, encode_cursor, encode_position
from gateway.query.evaluate import evaluate_scan, refine, relax

FIELDS = ["data.n", "data.s", "data.mixed", "type", "timestamp"]


def _value(rng: random.Random) -> Any:
    return rng.choice([rng.randrange(-5, 20), rng.random() * 10, rng.choice("abcd"), None, True,
                       [rng.randrange(5), rng.choice("xy")], {"k": 1}])


def _events(rng: random.Random, n: int) -> list[Event]:
    out = []
    for i in range(n):
        data = {key: _value(rng) for key in ("n", "s", "mixed") if rng.random() < 0.8}
        out.append(Event(tenant="t", plugin="p", stream="s", type=rng.choice(["a", "b", "c"]), data=data,
                         timestamp=rng.randrange(0, 10 * 86_400_000), received_at=0, id=f"e{i}"))
    return out


def _metric(rng: random.Random, name: str) -> Aggregation:
    kind = rng.choice(["count", "sum", "avg", "min", "max", "distinct_count", "percentiles", "stats", "stdev"])
    either = AnyOf((Filter("data.n", "gt", 3), Not(Filter("data.s", "exists"))))
    where = rng.choice([None, Filter("type", "ne", "a"), either])
    field = None if kind == "count" and rng.random() < 0.5 else rng.choice(FIELDS)
    return Aggregation(name, kind, field, percents=(10.0, 50.0, 90.0), where=where)


def _bucket(rng: random.Random, name: str, depth: int) -> Aggregation:
    kind = rng.choice(["terms", "date_histogram", "histogram"])
    subs = tuple(_metric(rng, f"{name}m{i}") for i in range(rng.randrange(3)))
    if depth < 2 and rng.random() < 0.5:
        subs += (_bucket(rng, f"{name}b", depth + 1),)
    metric_names = [s.name for s in subs if s.kind in ("count", "sum", "avg", "min", "max", "distinct_count")]
    order = rng.choice([None, "_count", "_key", *metric_names])
    having = rng.choice([None, Having("_count", "gt", 1), *(Having(m, "gte", 2) for m in metric_names)])
    if kind == "terms":
        return Aggregation(name, kind, rng.choice(["data.s", "data.mixed", "type", "data.n"]), size=rng.randrange(1, 5),
                           aggs=subs, order=order, descending=rng.choice([None, True, False]), having=having)
    if kind == "date_histogram":
        return Aggregation(name, kind, interval=rng.choice(["day", "week", 3 * 3_600_000]), aggs=subs,
                           having=having)
    return Aggregation(name, kind, "data.n", interval=rng.choice([2, 2.5, 7]), aggs=subs, order=order, having=having)


@pytest.mark.parametrize("seed", range(40))
def test_accumulator_matches_the_list_reference(seed: int) -> None:
    rng = random.Random(seed)
    events = _events(rng, rng.randrange(0, 120))
    aggs = tuple(_metric(rng, f"m{i}") for i in range(3)) + tuple(_bucket(rng, f"b{i}", 0) for i in range(3))
    accumulator = Accumulator(aggs)
    for event in events:
        accumulator.add(event)
    assert accumulator.result() == aggregate(events, aggs)


@pytest.mark.parametrize("seed", range(40))
def test_relaxed_then_refined_buckets_equal_the_reference(seed: int) -> None:
    rng = random.Random(100 + seed)
    events = _events(rng, rng.randrange(1, 120))
    for i in range(3):
        agg = _bucket(rng, f"b{i}", 0)
        relaxed = relax(agg)
        assert relaxed.order is None and relaxed.having is None
        assert refine(agg, aggregate(events, (relaxed,))[agg.name]) == aggregate(events, (agg,))[agg.name]


def test_scan_evaluation_equals_the_native_answer() -> None:
    rng = random.Random(7)
    backend = MemoryBackend()
    backend.create_stream(Stream("t", "p", "s"))
    backend.append(_events(rng, 300))
    for query in (Query("t", "p", limit=7, offset=3, filters=(Filter("data.n", "gte", 2),)),
                  Query("t", "p", limit=50, start=86_400_000, aggregations=(Aggregation("t", "terms", "type"),))):
        assert evaluate_scan(query, backend) == backend.answer(query)


def test_one_cursor_encoding() -> None:
    assert decode_position(encode_position([1.5, "x", None], 42), 3) == ([1.5, "x", None], 42)
    assert decode_cursor(encode_cursor([7, "a"]), 2) == [7, "a"]
