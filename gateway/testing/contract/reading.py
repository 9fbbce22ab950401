"""The backend contract, part 2: time ranges, filters, sorting and paging (offset and cursor)."""

from __future__ import annotations

import random
from typing import Any

import pytest

from gateway.events import Event, Stream
from gateway.query import Aggregation, Filter, Query, QueryError, Sort
from gateway.storage import Backend

from .base import ContractBase, P, T, cursor_walk, ev, ids, q

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


def _expected_order(events: list[Event], key: Any, descending: bool) -> list[str]:
    """Reference order: by key, ties by insertion (list position), all in one direction."""
    order = sorted(range(len(events)), key=lambda i: (key(events[i]), i), reverse=descending)
    return [events[i].id for i in order]


class ReadingContract(ContractBase):
    """Which events a query selects and in which order, page by page."""

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
    def test_time_range(self, sample: Backend, start: int | None, end: int | None, expected: list[str]) -> None:
        result = sample.query(q(start=start, end=end))
        assert [e.id for e in result.events] == expected
        assert result.total == len(expected)

    @pytest.mark.parametrize(("flt", "expected"), FILTER_CASES, ids=[f"{f.field}-{f.op}-{f.value}" for f, _ in
                                                                       FILTER_CASES])
    def test_filter(self, sample: Backend, flt: Filter, expected: str) -> None:
        want = [f"e{n}" for n in expected.split()]
        result = sample.query(q(filters=(flt,)))
        assert [e.id for e in result.events] == want
        assert result.total == len(want)

    def test_filters_combine_with_and(self, sample: Backend) -> None:
        assert ids(sample, filters=(Filter("type", "eq", "click"), Filter("data.tags", "eq", "a"))) == ["e1"]
        assert ids(sample, filters=(Filter("timestamp", "gte", 2000), Filter("timestamp", "lt", 5000),
                                    Filter("user_id", "exists"))) == ["e2", "e4"]
        assert ids(sample, start=2000, filters=(Filter("type", "in", ["click", "view"]),)) == ["e2", "e3", "e4", "e6"]

    def test_range_compares_within_type(self, backend: Backend) -> None:
        """Numbers compare with numbers and strings with strings; equality never crosses types."""
        backend.create_stream(Stream(T, P, "s"))
        backend.append([ev("n5", "s", 1, data={"n": 5}), ev("s7", "s", 2, data={"n": "7"}),
                        ev("n10", "s", 3, data={"n": 10}), ev("s10", "s", 4, data={"n": "10"})])
        assert ids(backend, filters=(Filter("data.n", "gt", 6),)) == ["n10"]
        assert ids(backend, filters=(Filter("data.n", "gt", "6"),)) == ["s7"]  # "10" < "6" as strings
        assert ids(backend, filters=(Filter("data.n", "eq", 7),)) == []
        assert ids(backend, filters=(Filter("data.n", "eq", "7"),)) == ["s7"]
        assert ids(backend, filters=(Filter("data.n", "in", [5, "10"]),)) == ["n5", "s10"]

    def test_streams_selection(self, sample: Backend) -> None:
        assert ids(sample, streams=("app",)) == ["e4", "e5", "e6"]
        assert ids(sample, streams=("web", "app")) == ["e1", "e2", "e3", "e4", "e5", "e6"]
        result = sample.query(q(streams=("missing",)))
        assert result.events == [] and result.total == 0

    def test_tenant_and_plugin_isolation(self, sample: Backend) -> None:
        sample.create_stream(Stream("other", P, "web"))
        sample.create_stream(Stream(T, "otherplugin", "web"))
        sample.append([ev("x1", "web", 1500, tenant="other"), ev("x2", "web", 1500, plugin="otherplugin")])
        assert ids(sample) == ["e1", "e2", "e3", "e4", "e5", "e6"]
        assert ids(sample, streams=("web",)) == ["e1", "e2", "e3"]
        assert [e.id for e in sample.query(Query(tenant="other", plugin=P)).events] == ["x1"]
        assert [e.id for e in sample.query(Query(tenant=T, plugin="otherplugin")).events] == ["x2"]
        agg = sample.query(q(limit=0, aggregations=(Aggregation("n", "count"),))).aggregations
        assert agg == {"n": 6}

    @pytest.mark.parametrize(("sort", "expected"), SORT_CASES, ids=[_sort_id(c) for c, _ in SORT_CASES])
    def test_sort(self, sample: Backend, sort: tuple[Sort, ...], expected: str) -> None:
        assert ids(sample, sort=sort) == [f"e{n}" for n in expected.split()]

    def test_sort_pages_with_cursor_and_offset(self, sample: Backend) -> None:
        for sort, expected in SORT_CASES:
            want = [f"e{n}" for n in expected.split()]
            assert cursor_walk(sample, q(sort=sort, limit=4)) == want
            pages = [ids(sample, sort=sort, limit=2, offset=o) for o in (0, 2, 4)]
            assert [i for page in pages for i in page] == want

    # -- paging over many events -------------------------------------------------------------------------
    @pytest.fixture
    def many(self, backend: Backend) -> tuple[Backend, list[Event]]:
        """3000 events over two streams, with many equal timestamps, appended out of time order."""
        backend.create_stream(Stream(T, P, "a"))
        backend.create_stream(Stream(T, P, "b"))
        rng = random.Random(7)
        events = []
        for i in range(3000):
            data: dict[str, Any] = {"i": i}
            if i % 5:
                data["bucket"] = rng.randrange(20)
            events.append(ev(f"m{i:04d}", rng.choice("ab"), rng.randrange(400) * 1000, rng.choice(["x", "y", "z"]),
                             data))
        for chunk in range(0, 3000, 500):
            assert backend.append(events[chunk:chunk + 500]) == 500
        return backend, events

    @pytest.mark.parametrize("descending", [False, True])
    def test_cursor_paging_by_time(self, many: tuple[Backend, list[Event]], descending: bool) -> None:
        backend, events = many
        want = _expected_order(events, lambda e: e.timestamp, descending)
        assert cursor_walk(backend, q(sort=(Sort("timestamp", descending),), limit=97, count_total=False)) == want
        # offset paging gives the same sequence
        got = []
        for offset in range(0, 3000, 250):
            got.extend(ids(backend, sort=(Sort("timestamp", descending),), limit=250, offset=offset))
        assert got == want

    @pytest.mark.parametrize("descending", [False, True])
    def test_cursor_paging_with_filter_and_range(self, many: tuple[Backend, list[Event]], descending: bool) -> None:
        backend, events = many
        chosen = [e for e in events if e.type == "y" and 50_000 <= e.timestamp < 300_000 and e.stream == "b"]
        want = _expected_order(chosen, lambda e: e.timestamp, descending)
        query = q(streams=("b",), start=50_000, end=300_000, filters=(Filter("type", "eq", "y"),),
                  sort=(Sort("timestamp", descending),), limit=33)
        assert cursor_walk(backend, query) == want
        assert backend.query(query).total == len(want)

    @pytest.mark.parametrize("descending", [False, True])
    def test_cursor_paging_by_data_field(self, many: tuple[Backend, list[Event]], descending: bool) -> None:
        backend, events = many
        # missing values (every fifth event) come first ascending and last descending
        want = _expected_order(events, lambda e: (1, e.data["bucket"]) if "bucket" in e.data else (0, 0), descending)
        assert cursor_walk(backend, q(sort=(Sort("data.bucket", descending),), limit=101)) == want

    def test_cursor_paging_two_keys(self, many: tuple[Backend, list[Event]]) -> None:
        backend, events = many
        order = sorted(range(len(events)), key=lambda i: (events[i].type, -events[i].timestamp, -i))
        want = [events[i].id for i in order]
        assert cursor_walk(backend, q(sort=(Sort("type"), Sort("timestamp", True)), limit=128)) == want

    def test_limit_zero_and_total(self, many: tuple[Backend, list[Event]]) -> None:
        backend, _ = many
        result = backend.query(q(limit=0, aggregations=(Aggregation("n", "count"),)))
        assert result.events == [] and result.next_cursor is None
        assert result.total == 3000 and result.aggregations == {"n": 3000}
        assert backend.query(q(limit=10, count_total=False)).total is None
        last = backend.query(q(limit=10, offset=2995))
        assert len(last.events) == 5 and last.next_cursor is None and last.total == 3000
        exact = backend.query(q(limit=3000))
        assert len(exact.events) == 3000 and exact.next_cursor is None

    def test_iter_events(self, many: tuple[Backend, list[Event]]) -> None:
        backend, events = many
        want = _expected_order(events, lambda e: e.timestamp, False)
        assert [e.id for e in backend.iter_events(T, P, batch_size=333)] == want
        ranged = [e for e in events if e.stream == "a" and 10_000 <= e.timestamp < 20_000]
        got = backend.iter_events(T, P, streams=("a",), start=10_000, end=20_000, batch_size=7)
        assert [e.id for e in got] == _expected_order(ranged, lambda e: e.timestamp, False)
        assert list(backend.iter_events("nobody", P)) == []

    def test_bad_cursor_is_a_query_error(self, sample: Backend) -> None:
        with pytest.raises(QueryError):
            sample.query(q(cursor="not-a-cursor"))
