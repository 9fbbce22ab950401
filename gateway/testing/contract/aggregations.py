"""The backend contract, part 3: metric and bucket aggregations, date histograms."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from gateway.events import Stream
from gateway.query import Aggregation, Filter
from gateway.storage import Backend

from .base import ContractBase, P, T, agg, buckets, ev, ms, q


# -- aggregations ------------------------------------------------------------------------------------
def _numpy_linear(values: list[float], percent: float) -> float:
    """numpy.percentile(values, percent) with the default 'linear' method, written out."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * percent / 100
    lower = int(rank)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (rank - lower)


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


class AggregationContract(ContractBase):
    """Aggregations over every matching event, with the reference semantics."""

    def test_metric_aggregations(self, sample: Backend) -> None:
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

    def test_metrics_respect_filters_and_range(self, sample: Backend) -> None:
        result = agg(sample, Aggregation("sum", "sum", field="data.score"), Aggregation("n", "count"),
                     filters=(Filter("type", "eq", "click"),), start=1000, end=6000)
        assert result == {"sum": 3, "n": 2}  # e1 (3) and e3 (none); e6 is outside the range

    def test_aggregations_over_nothing(self, sample: Backend) -> None:
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

    def test_percentiles(self, sample: Backend, backend: Backend) -> None:
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

    def test_terms(self, sample: Backend) -> None:
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

    def test_terms_count_events_not_values(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        backend.append([ev("a", "s", 1, data={"tags": ["x", "x", "y"]}), ev("b", "s", 2, data={"tags": ["x"]})])
        assert agg(backend, Aggregation("t", "terms", field="data.tags"),
                   Aggregation("d", "distinct_count", field="data.tags")) == {
            "t": [{"key": "x", "count": 2}, {"key": "y", "count": 1}], "d": 2}

    def test_terms_with_sub_aggregations(self, sample: Backend) -> None:
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

    @pytest.fixture
    def dated(self, backend: Backend) -> Backend:
        """Events on both sides of day, week, month and year boundaries."""
        backend.create_stream(Stream(T, P, "d"))
        backend.append([ev(i, "d", ts, TYPES[i], {"n": n, "at": ts}) for n, (i, ts) in enumerate(STAMPS.items(), 1)])
        return backend

    def test_date_histogram_calendar(self, dated: Backend) -> None:
        result = agg(dated, *(Aggregation(i, "date_histogram", interval=i) for i in ("day", "week", "month", "year")))
        assert result["day"] == buckets([(ms(2023, 12, 31), 1), (ms(2024, 1, 1), 2), (ms(2024, 1, 7), 1),
                                          (ms(2024, 1, 8), 1), (ms(2024, 2, 29), 1), (ms(2024, 3, 1), 1),
                                          (ms(2025, 1, 1), 1)])
        # ISO weeks start on Monday
        assert result["week"] == buckets([(ms(2023, 12, 25), 1), (ms(2024, 1, 1), 3), (ms(2024, 1, 8), 1),
                                           (ms(2024, 2, 26), 2), (ms(2024, 12, 30), 1)])
        assert result["month"] == buckets([(ms(2023, 12, 1), 1), (ms(2024, 1, 1), 4), (ms(2024, 2, 1), 1),
                                            (ms(2024, 3, 1), 1), (ms(2025, 1, 1), 1)])
        assert result["year"] == buckets([(ms(2023, 1, 1), 1), (ms(2024, 1, 1), 6), (ms(2025, 1, 1), 1)])

    def test_date_histogram_minute_hour_and_fixed(self, dated: Backend) -> None:
        step = 6 * 3600 * 1000
        result = agg(dated, Aggregation("h", "date_histogram", interval="hour"),
                     Aggregation("m", "date_histogram", interval="minute"),
                     Aggregation("f", "date_histogram", interval=step))

        def reference(width: int) -> list[dict[str, int]]:
            counts: dict[int, int] = {}
            for ts in STAMPS.values():
                counts[ts - ts % width] = counts.get(ts - ts % width, 0) + 1
            return buckets(sorted(counts.items()))

        assert result["h"] == reference(3600 * 1000)
        assert result["m"] == reference(60 * 1000)
        assert result["f"] == reference(step)
        assert result["h"][0] == {"key": ms(2023, 12, 31, 23), "count": 1}
        assert result["f"][1] == {"key": ms(2024, 1, 1), "count": 1}  # h3 at 12:30 falls in the 12:00 bucket

    def test_date_histogram_on_data_field_and_before_epoch(self, backend: Backend) -> None:
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
        assert result["d"] == buckets([(-day, 1), (ms(2024, 5, 1), 1)])
        assert result["w"] == buckets([(-3 * day, 1), (ms(2024, 4, 29), 1)])
        assert result["m"] == buckets([(-31 * day, 1), (ms(2024, 5, 1), 1)])
        assert result["y"] == buckets([(-365 * day, 1), (ms(2024, 1, 1), 1)])
        assert result["at"] == buckets([(ms(2024, 5, 1), 2)])

    def test_date_histogram_with_sub_aggregations(self, dated: Backend) -> None:
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

    def test_terms_then_date_histogram(self, dated: Backend) -> None:
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

    def test_histogram_reference_over_random_events(self, backend: Backend) -> None:
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
            assert got == buckets(sorted(counts.items())), interval

    def test_results_follow_appends_made_after_queries(self, backend: Backend) -> None:
        """A backend that keeps state between queries (caches, decoded columns) answers appends made after
        a query: in time order, a few out of order, many out of order, and a value that is an array."""
        backend.create_stream(Stream(T, P, "s"))
        stored: list[tuple[int, Any]] = []
        numbers: list[int] = []  # data.n of each stored event

        def add(batch: list[tuple[int, Any]]) -> None:
            backend.append([ev(f"x{len(stored) + i}", "s", ts, data={"k": k, "n": i % 4})
                            for i, (ts, k) in enumerate(batch)])
            stored.extend((ts, k) for ts, k in batch)
            numbers.extend(i % 4 for i in range(len(batch)))

        def check() -> None:
            counts: dict[Any, int] = {}
            for _, k in stored:  # naive reference: array values count once per distinct element
                for key in dict.fromkeys(k if isinstance(k, list) else [k]):
                    counts[key] = counts.get(key, 0) + 1
            expected = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
            sums: dict[Any, int] = {}
            for i, (_, k) in enumerate(stored):
                for key in dict.fromkeys(k if isinstance(k, list) else [k]):
                    sums[key] = sums.get(key, 0) + numbers[i]
            found = agg(backend, Aggregation("k", "terms", field="data.k", size=3),
                        Aggregation("n", "count", field="data.k"), Aggregation("d", "distinct_count", field="data.k"),
                        Aggregation("t", "terms", field="data.k", size=2,
                                    aggs=(Aggregation("s", "sum", field="data.n"), Aggregation("c", "count"))))
            with_sums = [{**b, "s": sums[b["key"]], "c": b["count"]} for b in buckets(expected[:2])]
            assert found == {"k": buckets(expected), "n": len(stored), "d": len(counts), "t": with_sums}
            hits = sum(1 for _, k in stored if k == "b" or (isinstance(k, list) and "b" in k))
            assert backend.query(q(limit=0, filters=(Filter("data.k", "eq", "b"),))).total == hits
            later = sum(1 for ts, _ in stored if ts >= 500)
            assert backend.query(q(limit=0, start=500, filters=(Filter("data.k", "exists"),))).total == later

        add([(100 + i, "abc"[i % 3]) for i in range(10)])
        check()
        add([(300 + i, "ab"[i % 2]) for i in range(5)])  # in time order
        check()
        add([(150, "c"), (50, "c"), (700, "d")])  # a few out of order
        check()
        add([(1000 - i, "cd"[i % 2]) for i in range(80)])  # many out of order
        check()
        add([(600, ["b", "e", "b"])])  # an array value
        check()
