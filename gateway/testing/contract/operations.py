"""The backend contract, part 4: health, escapes, concurrency, and counts by type and period (the fast paths
backends take for them must agree with the general path)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.events import Event, Stream
from gateway.query import Aggregation, Filter, Query, Sort
from gateway.storage import Backend

from .base import ContractBase, P, T, agg, buckets, cursor_walk, ev, ids, ms, q

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
    return buckets(sorted(counts.items()))


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


class OperationsContract(ContractBase):
    """Health, string escapes, threads, and the day-summary/type-index fast paths."""

    # -- operations --------------------------------------------------------------------------------------
    def test_health(self, sample: Backend) -> None:
        facts = sample.health()
        assert isinstance(facts, dict) and facts
        json.dumps(facts)  # safe to show as JSON

    def test_string_filters_with_escapes_and_unicode(self, backend: Backend) -> None:
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

    def test_concurrent_threads(self, backend: Backend) -> None:
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

    @pytest.fixture
    def typed(self, backend: Backend) -> tuple[Backend, list[Event]]:
        """1500 events of four types over two streams and about two years (2023-11 .. 2025-11), out of order,
        some on exact day, month and year boundaries."""
        backend.create_stream(Stream(T, P, "a"))
        backend.create_stream(Stream(T, P, "b"))
        rng = random.Random(29)
        lo, hi = ms(2023, 11, 20), ms(2025, 11, 10)
        stamps = [rng.randrange(lo, hi) for _ in range(1450)]
        stamps += [ms(2024, 1, 1), ms(2024, 12, 31, 23, 59, 59) + 999, ms(2025, 1, 1), ms(2024, 3, 1),
                   ms(2024, 2, 29)] * 10
        events = [ev(f"k{i:04d}", rng.choice("ab"), ts, rng.choice(["click", "view", "buy", "cart"]), {"k": i % 7})
                  for i, ts in enumerate(stamps)]
        rng.shuffle(events)
        for chunk in range(0, len(events), 300):
            assert backend.append(events[chunk:chunk + 300]) == 300
        assert backend.append(events[:50]) == 0  # duplicates count nowhere
        return backend, events

    @pytest.mark.parametrize("start,end", RANGES)
    def test_totals_by_type_and_range_match_general_path(self, typed: tuple[Backend, list[Event]], start: int | None,
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
    def test_counts_by_type_and_period_match_general_path(self, typed: tuple[Backend, list[Event]], interval: str | int,
                                                          start: int | None, end: int | None) -> None:
        backend, events = typed
        for filters in TYPE_FILTERS[:4] + TYPE_FILTERS[6:]:
            chosen = _reference(events, start, end, filters)
            fast = backend.query(_count_query(interval, start=start, end=end, filters=filters)).aggregations
            general = backend.query(_count_query(interval, start=start, end=end, filters=(*filters, NOOP))).aggregations
            assert fast == general, (filters, interval)
            assert fast == {"n": len(chosen), "nt": len(chosen), "t": _ref_terms(chosen, interval),
                            "h": _ref_histogram(chosen, interval)}, (filters, interval)

    def test_period_rollups_across_year_boundaries(self, backend: Backend) -> None:
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
            assert result["week"] == buckets([(ms(2020, 12, 21), 1), (ms(2020, 12, 28), 2), (ms(2024, 12, 23), 1),
                                               (ms(2024, 12, 30), 4), (ms(2025, 1, 6), 1)]), filters
            assert result["month"] == buckets([(ms(2020, 12, 1), 2), (ms(2021, 1, 1), 1), (ms(2024, 12, 1), 3),
                                                (ms(2025, 1, 1), 3)]), filters
            assert result["year"] == buckets([(ms(2020, 1, 1), 2), (ms(2021, 1, 1), 1), (ms(2024, 1, 1), 3),
                                               (ms(2025, 1, 1), 3)]), filters
        # a range starting inside the week of 2024-12-30 counts only the part it covers
        part = agg(backend, Aggregation("w", "date_histogram", interval="week"), start=ms(2024, 12, 31, 12),
                   end=ms(2025, 1, 5, 23, 30), filters=(Filter("type", "in", ["x"]),))
        assert part["w"] == buckets([(ms(2024, 12, 30), 3)])  # c, d, e

    def test_counts_forget_deleted_streams(self, typed: tuple[Backend, list[Event]]) -> None:
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
                   filters=filters) == {"d": buckets([(ms(2024, 6, 1), 1)])}

    @pytest.mark.parametrize("descending", [False, True])
    def test_type_filtered_pages_with_totals(self, typed: tuple[Backend, list[Event]], descending: bool) -> None:
        backend, events = typed
        start, end = ms(2024, 3, 10, 5), ms(2025, 6, 1, 17)
        order = {e.id: i for i, e in enumerate(events)}  # appended in list order (duplicates were skipped)
        for filters in [(Filter("type", "in", ["buy", "cart"]),),
                        (Filter("type", "eq", "view"), Filter("data.k", "lt", 3)),
                        (Filter("type", "ne", "buy"),)]:
            chosen = [e for e in events if start <= e.timestamp < end and _type_ok(e.type, filters[:1])
                      and (len(filters) == 1 or e.data["k"] < 3)]
            want = [e.id for e in sorted(chosen, key=lambda e: (e.timestamp, order[e.id]), reverse=descending)]
            query = q(start=start, end=end, filters=filters, sort=(Sort("timestamp", descending),), limit=50)
            first = backend.query(query)
            assert first.total == len(want)
            assert [e.id for e in first.events] == want[:50]
            assert cursor_walk(backend, query) == want
            offset = backend.query(q(start=start, end=end, filters=filters, sort=(Sort("timestamp", descending),),
                                     limit=40, offset=75))
            assert [e.id for e in offset.events] == want[75:115]

    def test_counts_with_non_string_types(self, backend: Backend) -> None:
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
            assert backend.query(q(limit=0, start=day, end=day + DAY,
                                   filters=(Filter("type", "eq", 7), *extra))).total == 1
            assert backend.query(q(limit=0, filters=(Filter("type", "exists"), *extra))).total == 4
            result = agg(backend, Aggregation("t", "terms", field="type"), Aggregation("nt", "count", field="type"),
                         Aggregation("d", "date_histogram", interval="day"), filters=extra)
            # equal counts: numbers order before strings
            assert result == {"t": [{"key": 7, "count": 2}, {"key": "x", "count": 2}], "nt": 4,
                              "d": buckets([(day - DAY, 1), (day, 5), (day + DAY, 1)])}
            page = backend.query(q(filters=(Filter("type", "in", ["x", 7]), *extra), sort=(Sort("timestamp", True),)))
            assert [e.id for e in page.events] == ["i1", "s2", "s1", "i2"] and page.total == 4
        backend.delete_stream(T, P, "o")
        assert backend.query(q(limit=0)).total == 0
