"""The backend contract: every storage backend must pass these tests identically.

They pin down the semantics documented in `gateway.query` and `gateway.storage`, so a plugin gets the same
answers whatever storage an operator configures. Expected values are worked out by hand (see the
comments) or by the small, deliberately naive reference functions in this file, never taken from a
backend's output.
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.events import Event, FieldSpec, Stream
from gateway.query import Aggregation, Filter, Query, QueryError, Sort
from gateway.storage import Backend, StreamExists, StreamNotFound

T, P = "acme", "analytics"


def ev(id: str, stream: str = "web", ts: int = 0, type: str = "click", data: dict[str, Any] | None = None,
       user: str | None = None, session: str | None = None, tenant: str = T, plugin: str = P) -> Event:
    """A test event with explicit id and time."""
    return Event(tenant=tenant, plugin=plugin, stream=stream, type=type, data=data or {}, timestamp=ts,
                 received_at=ts + 5, id=id, user_id=user, session_id=session)


def q(**kwargs: Any) -> Query:
    """A query of the test tenant and plugin."""
    return Query(tenant=T, plugin=P, **kwargs)


def ids(backend: Backend, limit: int = 1000, **kwargs: Any) -> list[str]:
    """Ids of a query's page, in order."""
    return [e.id for e in backend.query(q(limit=limit, **kwargs)).events]


def ms(*args: int) -> int:
    """Epoch milliseconds of a UTC date-time."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


# -- the main data set -------------------------------------------------------------------------------
# Six events over two streams, chosen so each filter/sort/aggregation case below can be checked by hand.
SAMPLE = [
    ev("e1", "web", 1000, "click", {"name": "alpha", "score": 3, "tags": ["a", "b"], "nested": {"k": "x", "v": 1},
                                     "flag": True}, user="u1", session="s1"),
    ev("e2", "web", 2000, "view", {"name": "beta", "score": 1, "tags": ["b"], "nested": {"k": "y", "v": 2}},
       user="u2", session="s1"),
    ev("e3", "web", 3000, "click", {"name": "gamma", "tags": [], "nested": {"k": "x"}}),
    ev("e4", "app", 4000, "view", {"name": "alphabet", "score": [2, 9], "tags": "a"}, user="u1", session="s2"),
    ev("e5", "app", 5000, "buy", {"name": None, "score": 5, "tags": ["c", "d"]}, user="u3", session="s3"),
    ev("e6", "app", 6000, "click", {"name": "Alpha", "score": 1, "nested": {"v": 3}}, user="u2", session="s2"),
]


@pytest.fixture
def sample(backend: Backend) -> Backend:
    """The backend holding SAMPLE (streams "web" and "app")."""
    backend.create_stream(Stream(T, P, "web"))
    backend.create_stream(Stream(T, P, "app"))
    assert backend.append(SAMPLE) == 6
    return backend


# -- catalog -----------------------------------------------------------------------------------------
def test_create_and_get_stream(backend: Backend) -> None:
    schema = (FieldSpec("price", "float"), FieldSpec("sku", "string"))
    created = backend.create_stream(Stream(T, P, "orders", created_at=1234, schema=schema))
    assert (created.tenant, created.plugin, created.name, created.created_at, created.schema) == \
        (T, P, "orders", 1234, schema)
    got = backend.get_stream(T, P, "orders")
    assert got is not None
    assert (got.tenant, got.plugin, got.name, got.created_at, got.schema) == (T, P, "orders", 1234, schema)
    plain = backend.create_stream(Stream(T, P, "plain", created_at=99))
    assert plain.schema is None
    assert backend.get_stream(T, P, "plain").schema is None


def test_create_existing_stream_raises(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    with pytest.raises(StreamExists):
        backend.create_stream(Stream(T, P, "s"))
    # the same name is free for another tenant and another plugin
    backend.create_stream(Stream("other", P, "s"))
    backend.create_stream(Stream(T, "other", "s"))


def test_get_missing_stream(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    assert backend.get_stream(T, P, "nope") is None
    assert backend.get_stream("other", P, "s") is None
    assert backend.get_stream(T, "other", "s") is None


def test_list_streams_ordered_and_isolated(backend: Backend) -> None:
    for name in ["zeta", "alpha", "mid"]:
        backend.create_stream(Stream(T, P, name))
    backend.create_stream(Stream("other", P, "beta"))
    backend.create_stream(Stream(T, "other", "gamma"))
    assert [s.name for s in backend.list_streams(T, P)] == ["alpha", "mid", "zeta"]
    assert [s.name for s in backend.list_streams("other", P)] == ["beta"]
    assert [s.name for s in backend.list_streams(T, "other")] == ["gamma"]
    assert backend.list_streams("nobody", P) == []


def test_delete_stream_removes_events(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    backend.create_stream(Stream(T, P, "keep"))
    backend.append([ev("a", "s", 1), ev("b", "keep", 2)])
    assert backend.delete_stream(T, P, "s") is True
    assert backend.delete_stream(T, P, "s") is False
    assert backend.delete_stream("other", P, "keep") is False
    assert backend.get_stream(T, P, "s") is None
    assert ids(backend) == ["b"]
    backend.create_stream(Stream(T, P, "s"))
    assert ids(backend, streams=("s",)) == []
    # the old events' ids are free again in the recreated stream
    assert backend.append([ev("a", "s", 1)]) == 1


def test_ensure_stream(backend: Backend) -> None:
    first = backend.ensure_stream(Stream(T, P, "s", created_at=10))
    again = backend.ensure_stream(Stream(T, P, "s", created_at=20))
    assert first.created_at == again.created_at == 10
    assert [s.name for s in backend.list_streams(T, P)] == ["s"]


def test_plugins_of(backend: Backend) -> None:
    assert backend.plugins_of(T) == []
    backend.create_stream(Stream(T, "zz", "s"))
    backend.create_stream(Stream(T, "aa", "s"))
    backend.create_stream(Stream(T, "aa", "t"))
    backend.create_stream(Stream("other", "mm", "s"))
    assert sorted(backend.plugins_of(T)) == ["aa", "zz"]
    assert backend.plugins_of("other") == ["mm"]


# -- append ------------------------------------------------------------------------------------------
def test_append_reads_back_every_field(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    data = {"text": "héllo ✓", "int": -3, "float": 2.5, "bool": False, "null": None, "list": [1, "two", None],
            "obj": {"deep": {"er": [{"x": 1}]}}}
    event = Event(tenant=T, plugin=P, stream="s", type="custom.type", data=data, timestamp=1_700_000_000_123,
                  received_at=1_700_000_000_456, id="evt-1", user_id="user-9", session_id="sess-7")
    assert backend.append([event]) == 1
    (got,) = backend.query(q()).events
    assert got.to_dict() == event.to_dict()
    bare = Event(tenant=T, plugin=P, stream="s", type="t", data={}, timestamp=5, received_at=6, id="evt-2")
    backend.append([bare])
    got = backend.query(q(filters=(Filter("id", "eq", "evt-2"),))).events[0]
    assert got.to_dict() == bare.to_dict()


def test_append_empty_batch(backend: Backend) -> None:
    assert backend.append([]) == 0


def test_duplicates_skipped_sequentially(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    assert backend.append([ev("a", "s", 1, data={"v": 1}), ev("b", "s", 2)]) == 2
    assert backend.append([ev("a", "s", 9, data={"v": 2})]) == 0
    assert backend.append([ev("b", "s", 3), ev("c", "s", 4)]) == 1
    events = backend.query(q()).events
    assert [e.id for e in events] == ["a", "b", "c"]
    assert events[0].data == {"v": 1} and events[0].timestamp == 1  # the first copy wins


def test_duplicates_within_batch(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    assert backend.append([ev("a", "s", 1), ev("a", "s", 2), ev("b", "s", 3), ev("a", "s", 4)]) == 2
    assert ids(backend) == ["a", "b"]
    assert backend.query(q()).total == 2


def test_same_id_in_other_stream_or_tenant_is_new(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    backend.create_stream(Stream(T, P, "t"))
    backend.create_stream(Stream("other", P, "s"))
    assert backend.append([ev("a", "s", 1), ev("a", "t", 2), ev("a", "s", 3, tenant="other")]) == 3


def test_failing_batch_stores_nothing(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    batch = [ev("a", "s", 1), ev("b", "s", 2), ev("c", "missing", 3), ev("d", "s", 4)]
    with pytest.raises(StreamNotFound):
        backend.append(batch)
    assert backend.query(q()).total == 0
    # a stream of another tenant does not count either
    backend.create_stream(Stream("other", P, "x"))
    with pytest.raises(StreamNotFound):
        backend.append([ev("a", "s", 1), ev("b", "x", 2)])
    assert backend.query(q()).total == 0
    assert backend.append(batch[:2]) == 2  # nothing of the failed batches was kept, not even the ids


# -- time ranges -------------------------------------------------------------------------------------
@pytest.mark.parametrize(("start", "end", "expected"), [
    (None, None, ["e1", "e2", "e3", "e4", "e5", "e6"]),
    (2000, 5000, ["e2", "e3", "e4"]),  # start inclusive, end exclusive
    (2001, 5001, ["e3", "e4", "e5"]),
    (None, 3000, ["e1", "e2"]),
    (4000, None, ["e4", "e5", "e6"]),
    (3000, 3000, []),
    (7000, None, []),
])
def test_time_range(sample: Backend, start: int | None, end: int | None, expected: list[str]) -> None:
    result = sample.query(q(start=start, end=end))
    assert [e.id for e in result.events] == expected
    assert result.total == len(expected)


# -- filters -----------------------------------------------------------------------------------------
FILTER_CASES = [
    (Filter("type", "eq", "click"), "1 3 6"),
    (Filter("type", "ne", "click"), "2 4 5"),
    (Filter("type", "in", ["view", "buy"]), "2 4 5"),
    (Filter("type", "not_in", ["view", "buy"]), "1 3 6"),
    (Filter("type", "eq", "nope"), ""),
    (Filter("user_id", "eq", "u1"), "1 4"),
    (Filter("user_id", "ne", "u1"), "2 3 5 6"),  # a missing value is "not equal"
    (Filter("user_id", "exists"), "1 2 4 5 6"),
    (Filter("session_id", "in", ["s2", "s3"]), "4 5 6"),
    (Filter("id", "eq", "e2"), "2"),
    (Filter("id", "in", ["e2", "e5", "zz"]), "2 5"),
    (Filter("id", "prefix", "e"), "1 2 3 4 5 6"),
    (Filter("stream", "eq", "app"), "4 5 6"),
    (Filter("stream", "ne", "app"), "1 2 3"),
    (Filter("timestamp", "eq", 3000), "3"),
    (Filter("timestamp", "gte", 3000), "3 4 5 6"),
    (Filter("timestamp", "lt", 3000), "1 2"),
    (Filter("received_at", "gt", 5005), "6"),
    # arrays match when any element matches
    (Filter("data.tags", "eq", "b"), "1 2"),
    (Filter("data.tags", "eq", "a"), "1 4"),  # e4 holds the scalar "a"
    (Filter("data.tags", "ne", "b"), "3 4 5 6"),
    (Filter("data.tags", "in", ["c", "a"]), "1 4 5"),
    (Filter("data.tags", "not_in", ["c", "a"]), "2 3 6"),
    (Filter("data.tags", "prefix", "c"), "5"),
    (Filter("data.tags", "exists"), "1 2 4 5"),  # e3's empty array and e6's missing field do not exist
    (Filter("data.name", "exists"), "1 2 3 4 6"),  # e5's null does not exist
    (Filter("data.score", "gt", 2), "1 4 5"),  # e4 [2, 9] through its 9
    (Filter("data.score", "gte", 3), "1 4 5"),
    (Filter("data.score", "lt", 2), "2 6"),
    (Filter("data.score", "lte", 2), "2 4 6"),
    (Filter("data.score", "gt", 9), ""),
    (Filter("data.score", "eq", 9), "4"),
    (Filter("data.score", "eq", 3.0), "1"),
    (Filter("data.name", "lt", "alpha"), "6"),  # "Alpha" < "alpha" (code point order)
    (Filter("data.name", "gte", "b"), "2 3"),
    (Filter("data.name", "prefix", "alpha"), "1 4"),  # case-sensitive
    (Filter("data.name", "contains", "ph"), "1 4 6"),
    (Filter("data.name", "contains", "et"), "2 4"),
    (Filter("data.flag", "eq", True), "1"),
    # nested paths
    (Filter("data.nested.k", "eq", "x"), "1 3"),
    (Filter("data.nested.v", "exists"), "1 2 6"),
    (Filter("data.nested.v", "gt", 1), "2 6"),
    (Filter("data.nested", "exists"), "1 2 3 6"),
    (Filter("data.nested.k.deeper", "eq", "x"), ""),
    (Filter("data.nope", "eq", 1), ""),
    (Filter("data.nope", "ne", 1), "1 2 3 4 5 6"),
]


@pytest.mark.parametrize(("flt", "expected"), FILTER_CASES, ids=[f"{f.field}-{f.op}-{f.value}" for f, _ in
                                                                   FILTER_CASES])
def test_filter(sample: Backend, flt: Filter, expected: str) -> None:
    want = [f"e{n}" for n in expected.split()]
    result = sample.query(q(filters=(flt,)))
    assert [e.id for e in result.events] == want
    assert result.total == len(want)


def test_filters_combine_with_and(sample: Backend) -> None:
    assert ids(sample, filters=(Filter("type", "eq", "click"), Filter("data.tags", "eq", "a"))) == ["e1"]
    assert ids(sample, filters=(Filter("timestamp", "gte", 2000), Filter("timestamp", "lt", 5000),
                                Filter("user_id", "exists"))) == ["e2", "e4"]
    assert ids(sample, start=2000, filters=(Filter("type", "in", ["click", "view"]),)) == ["e2", "e3", "e4", "e6"]


def test_range_compares_within_type(backend: Backend) -> None:
    """Numbers compare with numbers and strings with strings; equality never crosses types."""
    backend.create_stream(Stream(T, P, "s"))
    backend.append([ev("n5", "s", 1, data={"n": 5}), ev("s7", "s", 2, data={"n": "7"}),
                    ev("n10", "s", 3, data={"n": 10}), ev("s10", "s", 4, data={"n": "10"})])
    assert ids(backend, filters=(Filter("data.n", "gt", 6),)) == ["n10"]
    assert ids(backend, filters=(Filter("data.n", "gt", "6"),)) == ["s7"]  # "10" < "6" as strings
    assert ids(backend, filters=(Filter("data.n", "eq", 7),)) == []
    assert ids(backend, filters=(Filter("data.n", "eq", "7"),)) == ["s7"]
    assert ids(backend, filters=(Filter("data.n", "in", [5, "10"]),)) == ["n5", "s10"]


def test_streams_selection(sample: Backend) -> None:
    assert ids(sample, streams=("app",)) == ["e4", "e5", "e6"]
    assert ids(sample, streams=("web", "app")) == ["e1", "e2", "e3", "e4", "e5", "e6"]
    result = sample.query(q(streams=("missing",)))
    assert result.events == [] and result.total == 0


def test_tenant_and_plugin_isolation(sample: Backend) -> None:
    sample.create_stream(Stream("other", P, "web"))
    sample.create_stream(Stream(T, "otherplugin", "web"))
    sample.append([ev("x1", "web", 1500, tenant="other"), ev("x2", "web", 1500, plugin="otherplugin")])
    assert ids(sample) == ["e1", "e2", "e3", "e4", "e5", "e6"]
    assert ids(sample, streams=("web",)) == ["e1", "e2", "e3"]
    assert [e.id for e in sample.query(Query(tenant="other", plugin=P)).events] == ["x1"]
    assert [e.id for e in sample.query(Query(tenant=T, plugin="otherplugin")).events] == ["x2"]
    agg = sample.query(q(limit=0, aggregations=(Aggregation("n", "count"),))).aggregations
    assert agg == {"n": 6}


# -- sorting -----------------------------------------------------------------------------------------
SORT_CASES = [
    ((Sort("timestamp"),), "1 2 3 4 5 6"),
    ((Sort("timestamp", descending=True),), "6 5 4 3 2 1"),
    # missing first ascending, last descending; ties by insertion in the last key's direction
    ((Sort("data.name"),), "5 6 1 4 2 3"),
    ((Sort("data.name", descending=True),), "3 2 4 1 6 5"),
    ((Sort("user_id"),), "3 1 4 2 6 5"),
    ((Sort("user_id", descending=True),), "5 6 2 4 1 3"),
    ((Sort("type"), Sort("timestamp", descending=True)), "5 6 3 1 4 2"),
    ((Sort("type", descending=True), Sort("id")), "2 4 1 3 6 5"),
    # arrays sort by their smallest element ascending and their largest descending
    ((Sort("data.score"),), "3 2 6 4 1 5"),
    ((Sort("data.score", descending=True),), "4 5 1 6 2 3"),
    ((Sort("data.nested.v", descending=True),), "6 2 1 5 4 3"),
    ((Sort("stream"), Sort("timestamp")), "4 5 6 1 2 3"),
    ((), "1 2 3 4 5 6"),  # no sort key: everything ties, so insertion order
]


def _sort_id(sort: tuple[Sort, ...]) -> str:
    return ",".join(f"{s.field}{'-' if s.descending else '+'}" for s in sort) or "none"


@pytest.mark.parametrize(("sort", "expected"), SORT_CASES, ids=[_sort_id(c) for c, _ in SORT_CASES])
def test_sort(sample: Backend, sort: tuple[Sort, ...], expected: str) -> None:
    assert ids(sample, sort=sort) == [f"e{n}" for n in expected.split()]


def test_sort_pages_with_cursor_and_offset(sample: Backend) -> None:
    for sort, expected in SORT_CASES:
        want = [f"e{n}" for n in expected.split()]
        assert _cursor_walk(sample, q(sort=sort, limit=4)) == want
        pages = [ids(sample, sort=sort, limit=2, offset=o) for o in (0, 2, 4)]
        assert [i for page in pages for i in page] == want


def _cursor_walk(backend: Backend, first: Query) -> list[str]:
    """Every id of a query, following next_cursor page by page."""
    seen: list[str] = []
    query, pages = first, 0
    while True:
        result = backend.query(query)
        assert len(result.events) <= query.limit
        seen.extend(e.id for e in result.events)
        pages += 1
        assert pages < 10_000
        if result.next_cursor is None:
            return seen
        assert len(result.events) == query.limit
        query = Query(**{**{f: getattr(query, f) for f in query.__dataclass_fields__}, "cursor": result.next_cursor,
                         "offset": 0})


# -- paging over many events -------------------------------------------------------------------------
@pytest.fixture
def many(backend: Backend) -> tuple[Backend, list[Event]]:
    """3000 events over two streams, with many equal timestamps, appended out of time order."""
    backend.create_stream(Stream(T, P, "a"))
    backend.create_stream(Stream(T, P, "b"))
    rng = random.Random(7)
    events = []
    for i in range(3000):
        data: dict[str, Any] = {"i": i}
        if i % 5:
            data["bucket"] = rng.randrange(20)
        events.append(ev(f"m{i:04d}", rng.choice("ab"), rng.randrange(400) * 1000, rng.choice(["x", "y", "z"]), data))
    for chunk in range(0, 3000, 500):
        assert backend.append(events[chunk:chunk + 500]) == 500
    return backend, events


def _expected_order(events: list[Event], key: Any, descending: bool) -> list[str]:
    """Reference order: by key, ties by insertion (list position), all in one direction."""
    order = sorted(range(len(events)), key=lambda i: (key(events[i]), i), reverse=descending)
    return [events[i].id for i in order]


@pytest.mark.parametrize("descending", [False, True])
def test_cursor_paging_by_time(many: tuple[Backend, list[Event]], descending: bool) -> None:
    backend, events = many
    want = _expected_order(events, lambda e: e.timestamp, descending)
    assert _cursor_walk(backend, q(sort=(Sort("timestamp", descending),), limit=97, count_total=False)) == want
    # offset paging gives the same sequence
    got = []
    for offset in range(0, 3000, 250):
        got.extend(ids(backend, sort=(Sort("timestamp", descending),), limit=250, offset=offset))
    assert got == want


@pytest.mark.parametrize("descending", [False, True])
def test_cursor_paging_with_filter_and_range(many: tuple[Backend, list[Event]], descending: bool) -> None:
    backend, events = many
    chosen = [e for e in events if e.type == "y" and 50_000 <= e.timestamp < 300_000 and e.stream == "b"]
    want = _expected_order(chosen, lambda e: e.timestamp, descending)
    query = q(streams=("b",), start=50_000, end=300_000, filters=(Filter("type", "eq", "y"),),
              sort=(Sort("timestamp", descending),), limit=33)
    assert _cursor_walk(backend, query) == want
    assert backend.query(query).total == len(want)


@pytest.mark.parametrize("descending", [False, True])
def test_cursor_paging_by_data_field(many: tuple[Backend, list[Event]], descending: bool) -> None:
    backend, events = many
    # missing values (every fifth event) come first ascending and last descending
    want = _expected_order(events, lambda e: (1, e.data["bucket"]) if "bucket" in e.data else (0, 0), descending)
    assert _cursor_walk(backend, q(sort=(Sort("data.bucket", descending),), limit=101)) == want


def test_cursor_paging_two_keys(many: tuple[Backend, list[Event]]) -> None:
    backend, events = many
    order = sorted(range(len(events)), key=lambda i: (events[i].type, -events[i].timestamp, -i))
    want = [events[i].id for i in order]
    assert _cursor_walk(backend, q(sort=(Sort("type"), Sort("timestamp", True)), limit=128)) == want


def test_limit_zero_and_total(many: tuple[Backend, list[Event]]) -> None:
    backend, _ = many
    result = backend.query(q(limit=0, aggregations=(Aggregation("n", "count"),)))
    assert result.events == [] and result.next_cursor is None
    assert result.total == 3000 and result.aggregations == {"n": 3000}
    assert backend.query(q(limit=10, count_total=False)).total is None
    last = backend.query(q(limit=10, offset=2995))
    assert len(last.events) == 5 and last.next_cursor is None and last.total == 3000
    exact = backend.query(q(limit=3000))
    assert len(exact.events) == 3000 and exact.next_cursor is None


def test_iter_events(many: tuple[Backend, list[Event]]) -> None:
    backend, events = many
    want = _expected_order(events, lambda e: e.timestamp, False)
    assert [e.id for e in backend.iter_events(T, P, batch_size=333)] == want
    ranged = [e for e in events if e.stream == "a" and 10_000 <= e.timestamp < 20_000]
    got = backend.iter_events(T, P, streams=("a",), start=10_000, end=20_000, batch_size=7)
    assert [e.id for e in got] == _expected_order(ranged, lambda e: e.timestamp, False)
    assert list(backend.iter_events("nobody", P)) == []


def test_bad_cursor_is_a_query_error(sample: Backend) -> None:
    with pytest.raises(QueryError):
        sample.query(q(cursor="not-a-cursor"))


# -- aggregations ------------------------------------------------------------------------------------
def agg(backend: Backend, *aggregations: Aggregation, **kwargs: Any) -> dict[str, Any]:
    """Aggregation results of an aggregation-only query."""
    return backend.query(q(limit=0, aggregations=aggregations, **kwargs)).aggregations


def test_metric_aggregations(sample: Backend) -> None:
    # data.score values: e1 3, e2 1, e4 2 and 9, e5 5, e6 1 (e3 has none)
    result = agg(sample,
                 Aggregation("n", "count"),
                 Aggregation("with_score", "count", field="data.score"),
                 Aggregation("with_user", "count", field="user_id"),
                 Aggregation("with_tags", "count", field="data.tags"),
                 Aggregation("sum", "sum", field="data.score"),
                 Aggregation("avg", "avg", field="data.score"),
                 Aggregation("min", "min", field="data.score"),
                 Aggregation("max", "max", field="data.score"),
                 Aggregation("ts_sum", "sum", field="timestamp"),
                 Aggregation("ts_max", "max", field="timestamp"),
                 Aggregation("types", "distinct_count", field="type"),
                 Aggregation("users", "distinct_count", field="user_id"),
                 Aggregation("tags", "distinct_count", field="data.tags"),
                 Aggregation("scores", "distinct_count", field="data.score"),
                 Aggregation("v_avg", "avg", field="data.nested.v"))
    assert result == {"n": 6, "with_score": 5, "with_user": 5, "with_tags": 4, "sum": 21, "avg": pytest.approx(3.5),
                      "min": 1, "max": 9, "ts_sum": 21000, "ts_max": 6000, "types": 3, "users": 3, "tags": 4,
                      "scores": 5, "v_avg": pytest.approx(2.0)}


def test_metrics_respect_filters_and_range(sample: Backend) -> None:
    result = agg(sample, Aggregation("sum", "sum", field="data.score"), Aggregation("n", "count"),
                 filters=(Filter("type", "eq", "click"),), start=1000, end=6000)
    assert result == {"sum": 3, "n": 2}  # e1 (3) and e3 (none); e6 is outside the range


def test_aggregations_over_nothing(sample: Backend) -> None:
    result = agg(sample, Aggregation("n", "count"), Aggregation("c", "count", field="data.score"),
                 Aggregation("s", "sum", field="data.score"), Aggregation("a", "avg", field="data.score"),
                 Aggregation("lo", "min", field="data.score"), Aggregation("hi", "max", field="data.score"),
                 Aggregation("d", "distinct_count", field="type"),
                 Aggregation("p", "percentiles", field="data.score", percents=(50.0,)),
                 Aggregation("t", "terms", field="type"), Aggregation("h", "date_histogram", interval="day"),
                 filters=(Filter("type", "eq", "nothing"),))
    assert result == {"n": 0, "c": 0, "s": None, "a": None, "lo": None, "hi": None, "d": 0, "p": {50.0: None},
                      "t": [], "h": []}
    assert agg(sample, Aggregation("s", "sum", field="data.name")) == {"s": None}  # no numbers at all


def _numpy_linear(values: list[float], percent: float) -> float:
    """numpy.percentile(values, percent) with the default 'linear' method, written out."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * percent / 100
    lower = int(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


def test_percentiles(sample: Backend, backend: Backend) -> None:
    # sorted data.score values [1, 1, 2, 3, 5, 9]: p50 at rank 2.5 -> 2.5, p95 at 4.75 -> 5 + 4 * .75 = 8.0
    result = agg(sample, Aggregation("p", "percentiles", field="data.score", percents=(0, 25, 50, 95, 99, 100)))
    assert result["p"] == pytest.approx({0: 1.0, 25: 1.25, 50: 2.5, 95: 8.0, 99: 8.8, 100: 9.0})
    backend.create_stream(Stream(T, P, "num"))
    rng = random.Random(3)
    values = [round(rng.uniform(-50, 1000), 3) for _ in range(501)]
    backend.append([ev(f"n{i}", "num", i, data={"v": v}) for i, v in enumerate(values)])
    got = agg(backend, Aggregation("p", "percentiles", field="data.v", percents=(1, 33.3, 50, 90, 99.9)),
              streams=("num",))["p"]
    assert got == pytest.approx({p: _numpy_linear(values, p) for p in (1, 33.3, 50, 90, 99.9)})
    default = agg(backend, Aggregation("p", "percentiles", field="data.v"), streams=("num",))["p"]
    assert set(default) == {50.0, 95.0, 99.0}


def test_terms(sample: Backend) -> None:
    result = agg(sample, Aggregation("types", "terms", field="type"),
                 Aggregation("top2", "terms", field="type", size=2),
                 Aggregation("users", "terms", field="user_id"),
                 Aggregation("tags", "terms", field="data.tags"),
                 Aggregation("scores", "terms", field="data.score"),
                 Aggregation("streams", "terms", field="stream"))
    assert result == {
        "types": [{"key": "click", "count": 3}, {"key": "view", "count": 2}, {"key": "buy", "count": 1}],
        "top2": [{"key": "click", "count": 3}, {"key": "view", "count": 2}],
        # equal counts are ordered by key
        "users": [{"key": "u1", "count": 2}, {"key": "u2", "count": 2}, {"key": "u3", "count": 1}],
        "tags": [{"key": "a", "count": 2}, {"key": "b", "count": 2}, {"key": "c", "count": 1},
                 {"key": "d", "count": 1}],
        "scores": [{"key": 1, "count": 2}, {"key": 2, "count": 1}, {"key": 3, "count": 1}, {"key": 5, "count": 1},
                   {"key": 9, "count": 1}],
        "streams": [{"key": "app", "count": 3}, {"key": "web", "count": 3}],
    }


def test_terms_count_events_not_values(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    backend.append([ev("a", "s", 1, data={"tags": ["x", "x", "y"]}), ev("b", "s", 2, data={"tags": ["x"]})])
    assert agg(backend, Aggregation("t", "terms", field="data.tags"),
               Aggregation("d", "distinct_count", field="data.tags")) == {
        "t": [{"key": "x", "count": 2}, {"key": "y", "count": 1}], "d": 2}


def test_terms_with_sub_aggregations(sample: Backend) -> None:
    result = agg(sample, Aggregation("types", "terms", field="type", aggs=(
        Aggregation("sum", "sum", field="data.score"),
        Aggregation("users", "terms", field="user_id"),
        Aggregation("n", "count"),
    )))
    # click: e1 (3, u1), e3 (none, no user), e6 (1, u2); view: e2 (1, u2), e4 (2+9, u1); buy: e5 (5, u3)
    assert result == {"types": [
        {"key": "click", "count": 3, "sum": 4, "n": 3,
         "users": [{"key": "u1", "count": 1}, {"key": "u2", "count": 1}]},
        {"key": "view", "count": 2, "sum": 12, "n": 2,
         "users": [{"key": "u1", "count": 1}, {"key": "u2", "count": 1}]},
        {"key": "buy", "count": 1, "sum": 5, "n": 1, "users": [{"key": "u3", "count": 1}]},
    ]}
    limited = agg(sample, Aggregation("tags", "terms", field="data.tags", size=1, aggs=(
        Aggregation("types", "terms", field="type"),)))
    # tag "a": e1 (click) and e4 (view); ties on count 1 ordered by key
    assert limited == {"tags": [{"key": "a", "count": 2, "types": [{"key": "click", "count": 1},
                                                                    {"key": "view", "count": 1}]}]}


# -- date histograms ---------------------------------------------------------------------------------
STAMPS = {
    "h1": ms(2023, 12, 31, 23, 59, 59) + 999,  # Sunday, last ms of 2023
    "h2": ms(2024, 1, 1),  # Monday
    "h3": ms(2024, 1, 1, 12, 30),
    "h4": ms(2024, 1, 7, 23),  # Sunday
    "h5": ms(2024, 1, 8),  # Monday
    "h6": ms(2024, 2, 29, 10),  # Thursday, leap day
    "h7": ms(2024, 3, 1),  # Friday
    "h8": ms(2025, 1, 1, 0, 0, 30),  # Wednesday
}
TYPES = {"h1": "a", "h2": "b", "h3": "a", "h4": "a", "h5": "b", "h6": "a", "h7": "b", "h8": "a"}


@pytest.fixture
def dated(backend: Backend) -> Backend:
    """Events on both sides of day, week, month and year boundaries."""
    backend.create_stream(Stream(T, P, "d"))
    backend.append([ev(i, "d", ts, TYPES[i], {"n": n, "at": ts}) for n, (i, ts) in enumerate(STAMPS.items(), 1)])
    return backend


def _buckets(pairs: list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"key": key, "count": count} for key, count in pairs]


def test_date_histogram_calendar(dated: Backend) -> None:
    result = agg(dated, *(Aggregation(i, "date_histogram", interval=i) for i in ("day", "week", "month", "year")))
    assert result["day"] == _buckets([(ms(2023, 12, 31), 1), (ms(2024, 1, 1), 2), (ms(2024, 1, 7), 1),
                                      (ms(2024, 1, 8), 1), (ms(2024, 2, 29), 1), (ms(2024, 3, 1), 1),
                                      (ms(2025, 1, 1), 1)])
    # ISO weeks start on Monday
    assert result["week"] == _buckets([(ms(2023, 12, 25), 1), (ms(2024, 1, 1), 3), (ms(2024, 1, 8), 1),
                                       (ms(2024, 2, 26), 2), (ms(2024, 12, 30), 1)])
    assert result["month"] == _buckets([(ms(2023, 12, 1), 1), (ms(2024, 1, 1), 4), (ms(2024, 2, 1), 1),
                                        (ms(2024, 3, 1), 1), (ms(2025, 1, 1), 1)])
    assert result["year"] == _buckets([(ms(2023, 1, 1), 1), (ms(2024, 1, 1), 6), (ms(2025, 1, 1), 1)])


def test_date_histogram_minute_hour_and_fixed(dated: Backend) -> None:
    step = 6 * 3600 * 1000
    result = agg(dated, Aggregation("h", "date_histogram", interval="hour"),
                 Aggregation("m", "date_histogram", interval="minute"),
                 Aggregation("f", "date_histogram", interval=step))

    def reference(width: int) -> list[dict[str, int]]:
        counts: dict[int, int] = {}
        for ts in STAMPS.values():
            counts[ts - ts % width] = counts.get(ts - ts % width, 0) + 1
        return _buckets(sorted(counts.items()))

    assert result["h"] == reference(3600 * 1000)
    assert result["m"] == reference(60 * 1000)
    assert result["f"] == reference(step)
    assert result["h"][0] == {"key": ms(2023, 12, 31, 23), "count": 1}
    assert result["f"][1] == {"key": ms(2024, 1, 1), "count": 1}  # h3 at 12:30 falls in the 12:00 bucket


def test_date_histogram_on_data_field_and_before_epoch(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "d"))
    backend.append([ev("old", "d", -1, data={"at": ms(2024, 5, 17, 8)}),
                    ev("new", "d", ms(2024, 5, 1), data={"at": ms(2024, 5, 31, 23)})])
    day = 86_400_000
    result = agg(backend, Aggregation("d", "date_histogram", interval="day"),
                 Aggregation("w", "date_histogram", interval="week"),
                 Aggregation("m", "date_histogram", interval="month"),
                 Aggregation("y", "date_histogram", interval="year"),
                 Aggregation("at", "date_histogram", field="data.at", interval="month"))
    # -1 ms is 1969-12-31T23:59:59.999Z, a Wednesday; its week started Monday 1969-12-29
    assert result["d"] == _buckets([(-day, 1), (ms(2024, 5, 1), 1)])
    assert result["w"] == _buckets([(-3 * day, 1), (ms(2024, 4, 29), 1)])
    assert result["m"] == _buckets([(-31 * day, 1), (ms(2024, 5, 1), 1)])
    assert result["y"] == _buckets([(-365 * day, 1), (ms(2024, 1, 1), 1)])
    assert result["at"] == _buckets([(ms(2024, 5, 1), 2)])


def test_date_histogram_with_sub_aggregations(dated: Backend) -> None:
    result = agg(dated, Aggregation("m", "date_histogram", interval="month", aggs=(
        Aggregation("types", "terms", field="type"),
        Aggregation("sum", "sum", field="data.n"),
        Aggregation("hi", "max", field="data.n"),
    )))
    # n is 1..8 in STAMPS order; types a b a a b a b a
    assert result["m"] == [
        {"key": ms(2023, 12, 1), "count": 1, "types": [{"key": "a", "count": 1}], "sum": 1, "hi": 1},
        {"key": ms(2024, 1, 1), "count": 4, "types": [{"key": "a", "count": 2}, {"key": "b", "count": 2}],
         "sum": 2 + 3 + 4 + 5, "hi": 5},
        {"key": ms(2024, 2, 1), "count": 1, "types": [{"key": "a", "count": 1}], "sum": 6, "hi": 6},
        {"key": ms(2024, 3, 1), "count": 1, "types": [{"key": "b", "count": 1}], "sum": 7, "hi": 7},
        {"key": ms(2025, 1, 1), "count": 1, "types": [{"key": "a", "count": 1}], "sum": 8, "hi": 8},
    ]


def test_terms_then_date_histogram(dated: Backend) -> None:
    result = agg(dated, Aggregation("types", "terms", field="type", aggs=(
        Aggregation("y", "date_histogram", interval="year", aggs=(Aggregation("p", "percentiles", field="data.n",
                                                                              percents=(50.0,)),)),)))
    # a: h1 (2023, n1), h3 h4 h6 (2024, n 3 4 6), h8 (2025, n8); b: h2 h5 h7 (2024, n 2 5 7)
    assert result == {"types": [
        {"key": "a", "count": 5, "y": [
            {"key": ms(2023, 1, 1), "count": 1, "p": {50.0: 1.0}},
            {"key": ms(2024, 1, 1), "count": 3, "p": {50.0: 4.0}},
            {"key": ms(2025, 1, 1), "count": 1, "p": {50.0: 8.0}}]},
        {"key": "b", "count": 3, "y": [{"key": ms(2024, 1, 1), "count": 3, "p": {50.0: 5.0}}]},
    ]}


def test_histogram_reference_over_random_events(backend: Backend) -> None:
    """Day/week/month buckets of random times against a datetime-based reference."""
    backend.create_stream(Stream(T, P, "r"))
    rng = random.Random(11)
    stamps = [rng.randrange(ms(2023, 11, 1), ms(2024, 3, 15)) for _ in range(400)]
    backend.append([ev(f"r{i}", "r", ts) for i, ts in enumerate(stamps)])

    def start(ts: int, interval: str) -> int:
        moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts)
        day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        if interval == "week":
            day -= timedelta(days=day.weekday())
        elif interval == "month":
            day = day.replace(day=1)
        return int(day.timestamp() * 1000)

    for interval in ("day", "week", "month"):
        counts: dict[int, int] = {}
        for ts in stamps:
            counts[start(ts, interval)] = counts.get(start(ts, interval), 0) + 1
        got = agg(backend, Aggregation("h", "date_histogram", interval=interval))["h"]
        assert got == _buckets(sorted(counts.items())), interval


# -- operations --------------------------------------------------------------------------------------
def test_health(sample: Backend) -> None:
    facts = sample.health()
    assert isinstance(facts, dict) and facts
    json.dumps(facts)  # safe to show as JSON


def test_string_filters_with_escapes_and_unicode(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "s"))
    odd = 'héllo "q" \\ ✓ 😀'
    backend.append([ev("a", "s", 1, data={"s": odd, "k": ["x\ny", "z"]}), ev("b", "s", 2, data={"s": "hello"})])
    assert ids(backend, filters=(Filter("data.s", "eq", odd),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "in", [odd, "nope"]),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "prefix", "hé"),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "prefix", "h"),)) == ["a", "b"]
    assert ids(backend, filters=(Filter("data.s", "contains", '"q" \\'),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "contains", "😀"),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "contains", "llo"),)) == ["a", "b"]
    assert ids(backend, filters=(Filter("data.k", "eq", "x\ny"),)) == ["a"]
    assert ids(backend, filters=(Filter("data.s", "ne", odd),)) == ["b"]


def test_concurrent_threads(backend: Backend) -> None:
    """Appends and queries from several threads at once; racing duplicates are stored once."""
    import threading

    backend.create_stream(Stream(T, P, "s"))
    stored: list[int] = []
    errors: list[BaseException] = []

    def work(first: int) -> None:
        try:
            for i in range(first, first + 60, 3):
                stored.append(backend.append([ev(f"t{j}", "s", j) for j in range(i, i + 3)]))
                backend.query(q(limit=5))
        except BaseException as exc:  # reported below: a thread's exception would otherwise be lost
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(first,)) for first in (0, 30, 60, 90)]  # overlapping ids
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sum(stored) == 150  # ids 0..149
    assert backend.query(q(limit=0)).total == 150


# -- counts by type and period (the day-summary and type-index fast paths) ---------------------------
# Backends may answer counts, terms on the type and calendar histograms of the event time from a summary
# or an index when the filters are only on the type: the same query with an extra data filter that holds
# for every event must take the general path and give identical answers, and both must match a naive
# reference computed here from the events themselves.
DAY = 86_400_000
NOOP = Filter("data.k", "exists")  # every event of `typed` has data.k
TYPE_FILTERS: list[tuple[Filter, ...]] = [
    (),
    (Filter("type", "eq", "view"),),
    (Filter("type", "in", ["view", "buy", "view", "missing", 3]),),
    (Filter("type", "ne", "view"),),
    (Filter("type", "not_in", ["view", "click"]),),
    (Filter("type", "prefix", "c"),),
    (Filter("type", "eq", "nothing"),),
    (Filter("type", "in", ["click", "buy"]), Filter("type", "ne", "buy")),
]


def _type_ok(kind: str, filters: tuple[Filter, ...]) -> bool:
    """The type filters used above, written out for string types."""
    for f in filters:
        if f.op == "eq":
            ok = kind == f.value
        elif f.op == "ne":
            ok = kind != f.value
        elif f.op == "in":
            ok = kind in [v for v in f.value if isinstance(v, str)]
        elif f.op == "not_in":
            ok = kind not in f.value
        else:
            assert f.op == "prefix"
            ok = kind.startswith(f.value)
        if not ok:
            return False
    return True


def _period_start(ts: int, interval: str | int) -> int:
    """Bucket start by datetime arithmetic (independent of the backends' helpers)."""
    if isinstance(interval, int):
        return ts - ts % interval
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts)
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if interval == "week":
        day -= timedelta(days=day.weekday())
    elif interval == "month":
        day = day.replace(day=1)
    elif interval == "year":
        day = day.replace(month=1, day=1)
    return int(day.timestamp() * 1000)


def _reference(events: list[Event], start: int | None, end: int | None, filters: tuple[Filter, ...],
               streams: tuple[str, ...] | None = None) -> list[Event]:
    return [e for e in events if (start is None or e.timestamp >= start) and (end is None or e.timestamp < end)
            and _type_ok(e.type, filters) and (streams is None or e.stream in streams)]


def _ref_histogram(events: list[Event], interval: str | int) -> list[dict[str, int]]:
    counts: dict[int, int] = {}
    for e in events:
        key = _period_start(e.timestamp, interval)
        counts[key] = counts.get(key, 0) + 1
    return _buckets(sorted(counts.items()))


def _ref_terms(events: list[Event], interval: str | int) -> list[dict[str, Any]]:
    by_type: dict[str, list[Event]] = {}
    for e in events:
        by_type.setdefault(e.type, []).append(e)
    ordered = sorted(by_type.items(), key=lambda kv: (-len(kv[1]), kv[0]))
    return [{"key": kind, "count": len(group), "h": _ref_histogram(group, interval)} for kind, group in ordered]


def _count_query(interval: str | int, **kwargs: Any) -> Query:
    return q(limit=0, aggregations=(
        Aggregation("n", "count"), Aggregation("nt", "count", field="type"),
        Aggregation("t", "terms", field="type", aggs=(Aggregation("h", "date_histogram", interval=interval),)),
        Aggregation("h", "date_histogram", interval=interval)), **kwargs)


@pytest.fixture
def typed(backend: Backend) -> tuple[Backend, list[Event]]:
    """1500 events of four types over two streams and about two years (2023-11 .. 2025-11), out of order,
    some on exact day, month and year boundaries."""
    backend.create_stream(Stream(T, P, "a"))
    backend.create_stream(Stream(T, P, "b"))
    rng = random.Random(29)
    lo, hi = ms(2023, 11, 20), ms(2025, 11, 10)
    stamps = [rng.randrange(lo, hi) for _ in range(1450)]
    stamps += [ms(2024, 1, 1), ms(2024, 12, 31, 23, 59, 59) + 999, ms(2025, 1, 1), ms(2024, 3, 1), ms(2024, 2, 29)] * 10
    events = [ev(f"k{i:04d}", rng.choice("ab"), ts, rng.choice(["click", "view", "buy", "cart"]), {"k": i % 7})
              for i, ts in enumerate(stamps)]
    rng.shuffle(events)
    for chunk in range(0, len(events), 300):
        assert backend.append(events[chunk:chunk + 300]) == 300
    assert backend.append(events[:50]) == 0  # duplicates count nowhere
    return backend, events


RANGES = [
    (None, None),
    (ms(2024, 1, 1), ms(2025, 1, 1)),  # whole days only
    (ms(2024, 1, 1, 13, 5), ms(2025, 3, 2, 7)),  # partial edge days on both sides
    (ms(2024, 5, 3, 1), ms(2024, 5, 3, 22)),  # both bounds inside one day
    (ms(2024, 5, 3, 1), ms(2024, 5, 4, 22)),  # two partial days, no whole day
    (ms(2024, 12, 31, 23, 59, 59) + 999, ms(2025, 1, 1) + 1),  # two single milliseconds
    (None, ms(2024, 7, 1, 12)),
    (ms(2024, 7, 1, 12), None),
    (ms(2025, 1, 1), ms(2024, 1, 1)),  # empty: start after end
]


@pytest.mark.parametrize("start,end", RANGES)
def test_totals_by_type_and_range_match_general_path(typed: tuple[Backend, list[Event]], start: int | None,
                                                     end: int | None) -> None:
    backend, events = typed
    for filters in TYPE_FILTERS:
        want = len(_reference(events, start, end, filters))
        fast = backend.query(q(limit=0, start=start, end=end, filters=filters)).total
        general = backend.query(q(limit=0, start=start, end=end, filters=(*filters, NOOP))).total
        assert fast == general == want, (filters, start, end)
        one = backend.query(q(limit=0, start=start, end=end, filters=filters, streams=("b",))).total
        assert one == len(_reference(events, start, end, filters, ("b",)))


@pytest.mark.parametrize("interval", ["day", "week", "month", "year", 2 * DAY, 7 * DAY])
@pytest.mark.parametrize("start,end", [RANGES[0], RANGES[2], RANGES[4], RANGES[5], RANGES[8]])
def test_counts_by_type_and_period_match_general_path(typed: tuple[Backend, list[Event]], interval: str | int,
                                                      start: int | None, end: int | None) -> None:
    backend, events = typed
    for filters in TYPE_FILTERS[:4] + TYPE_FILTERS[6:]:
        chosen = _reference(events, start, end, filters)
        fast = backend.query(_count_query(interval, start=start, end=end, filters=filters)).aggregations
        general = backend.query(_count_query(interval, start=start, end=end, filters=(*filters, NOOP))).aggregations
        assert fast == general, (filters, interval)
        assert fast == {"n": len(chosen), "nt": len(chosen), "t": _ref_terms(chosen, interval),
                        "h": _ref_histogram(chosen, interval)}, (filters, interval)


def test_period_rollups_across_year_boundaries(backend: Backend) -> None:
    backend.create_stream(Stream(T, P, "y"))
    # Monday 2024-12-30 starts the ISO week holding 2025-01-01; 2020-12-28 the week holding 2021-01-01.
    stamps = {"a": ms(2024, 12, 29, 23, 59), "b": ms(2024, 12, 30), "c": ms(2024, 12, 31, 23, 59, 59) + 999,
              "d": ms(2025, 1, 1), "e": ms(2025, 1, 5, 23), "f": ms(2025, 1, 6), "g": ms(2021, 1, 1, 8),
              "h": ms(2020, 12, 31, 20), "i": ms(2020, 12, 27, 1)}
    backend.append([ev(i, "y", ts, "x") for i, ts in stamps.items()])
    # (data.k is missing everywhere, so "ne" holds for every event: the last variant takes the general path)
    for filters in ((), (Filter("type", "eq", "x"),), (Filter("type", "eq", "x"), Filter("data.k", "ne", 1))):
        result = agg(backend, *(Aggregation(i, "date_histogram", interval=i) for i in ("week", "month", "year")),
                     filters=filters)
        assert result["week"] == _buckets([(ms(2020, 12, 21), 1), (ms(2020, 12, 28), 2), (ms(2024, 12, 23), 1),
                                           (ms(2024, 12, 30), 4), (ms(2025, 1, 6), 1)]), filters
        assert result["month"] == _buckets([(ms(2020, 12, 1), 2), (ms(2021, 1, 1), 1), (ms(2024, 12, 1), 3),
                                            (ms(2025, 1, 1), 3)]), filters
        assert result["year"] == _buckets([(ms(2020, 1, 1), 2), (ms(2021, 1, 1), 1), (ms(2024, 1, 1), 3),
                                           (ms(2025, 1, 1), 3)]), filters
    # a range starting inside the week of 2024-12-30 counts only the part it covers
    part = agg(backend, Aggregation("w", "date_histogram", interval="week"), start=ms(2024, 12, 31, 12),
               end=ms(2025, 1, 5, 23, 30), filters=(Filter("type", "in", ["x"]),))
    assert part["w"] == _buckets([(ms(2024, 12, 30), 3)])  # c, d, e


def test_counts_forget_deleted_streams(typed: tuple[Backend, list[Event]]) -> None:
    backend, events = typed
    start, end = ms(2024, 2, 1, 6), ms(2025, 2, 1)
    filters = (Filter("type", "in", ["view", "cart"]),)
    assert backend.delete_stream(T, P, "a") is True
    kept = [e for e in events if e.stream == "b"]
    want = _reference(kept, start, end, filters)
    assert backend.query(q(limit=0, start=start, end=end, filters=filters)).total == len(want)
    assert backend.query(q(limit=0)).total == len(kept)
    result = backend.query(_count_query("month", start=start, end=end, filters=filters)).aggregations
    assert result == {"n": len(want), "nt": len(want), "t": _ref_terms(want, "month"),
                      "h": _ref_histogram(want, "month")}
    # a new stream of the same name starts empty, and counts what it gets
    backend.create_stream(Stream(T, P, "a"))
    assert backend.query(q(limit=0, streams=("a",), filters=filters)).total == 0
    assert agg(backend, Aggregation("t", "terms", field="type"), streams=("a",)) == {"t": []}
    backend.append([ev("new1", "a", ms(2024, 6, 1, 12), "view"), ev("new2", "a", ms(2024, 6, 1, 13), "buy")])
    assert backend.query(q(limit=0, streams=("a",), filters=filters)).total == 1
    assert agg(backend, Aggregation("d", "date_histogram", interval="day"), streams=("a",),
               filters=filters) == {"d": _buckets([(ms(2024, 6, 1), 1)])}


@pytest.mark.parametrize("descending", [False, True])
def test_type_filtered_pages_with_totals(typed: tuple[Backend, list[Event]], descending: bool) -> None:
    backend, events = typed
    start, end = ms(2024, 3, 10, 5), ms(2025, 6, 1, 17)
    order = {e.id: i for i, e in enumerate(events)}  # appended in list order (duplicates were skipped)
    for filters in [(Filter("type", "in", ["buy", "cart"]),), (Filter("type", "eq", "view"), Filter("data.k", "lt", 3)),
                    (Filter("type", "ne", "buy"),)]:
        chosen = [e for e in events if start <= e.timestamp < end and _type_ok(e.type, filters[:1])
                  and (len(filters) == 1 or e.data["k"] < 3)]
        want = [e.id for e in sorted(chosen, key=lambda e: (e.timestamp, order[e.id]), reverse=descending)]
        query = q(start=start, end=end, filters=filters, sort=(Sort("timestamp", descending),), limit=50)
        first = backend.query(query)
        assert first.total == len(want)
        assert [e.id for e in first.events] == want[:50]
        assert _cursor_walk(backend, query) == want
        offset = backend.query(q(start=start, end=end, filters=filters, sort=(Sort("timestamp", descending),),
                                 limit=40, offset=75))
        assert [e.id for e in offset.events] == want[75:115]


def test_counts_with_non_string_types(backend: Backend) -> None:
    """Types a plugin should not produce (null, numbers) still count exactly where they can be stored."""
    if type(backend).__name__ == "ElasticsearchBackend":
        pytest.skip("Elasticsearch indexes the type as a keyword")
    backend.create_stream(Stream(T, P, "o"))
    day = ms(2024, 4, 2)
    backend.append([ev("s1", "o", day + 1, "x"), ev("s2", "o", day + 2, "x"), ev("n1", "o", day + 3, None),  # type: ignore[arg-type]
                    ev("n2", "o", day + DAY, None), ev("i1", "o", day + 5, 7), ev("i2", "o", day - 1, 7)])  # type: ignore[arg-type]
    backend.append([ev("n3", "o", day + 4, None)])  # type: ignore[arg-type]
    for extra in ((), (Filter("data.k", "ne", 1),)):
        assert backend.query(q(limit=0, filters=extra)).total == 7
        assert backend.query(q(limit=0, filters=(Filter("type", "eq", "x"), *extra))).total == 2
        assert backend.query(q(limit=0, start=day, end=day + DAY, filters=(Filter("type", "eq", 7), *extra))).total == 1
        assert backend.query(q(limit=0, filters=(Filter("type", "exists"), *extra))).total == 4
        result = agg(backend, Aggregation("t", "terms", field="type"), Aggregation("nt", "count", field="type"),
                     Aggregation("d", "date_histogram", interval="day"), filters=extra)
        # equal counts: numbers order before strings
        assert result == {"t": [{"key": 7, "count": 2}, {"key": "x", "count": 2}], "nt": 4,
                          "d": _buckets([(day - DAY, 1), (day, 5), (day + DAY, 1)])}
        page = backend.query(q(filters=(Filter("type", "in", ["x", 7]), *extra), sort=(Sort("timestamp", True),)))
        assert [e.id for e in page.events] == ["i1", "s2", "s1", "i2"] and page.total == 4
    backend.delete_stream(T, P, "o")
    assert backend.query(q(limit=0)).total == 0
