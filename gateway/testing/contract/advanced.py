"""The backend contract, part 5: the query model beyond the native one (condition trees, computed fields,
``regex``, filtered metrics, ``stats``/``stdev``, numeric histograms, bucket order by a metric, having).

A backend answers these natively or through the core evaluator over its scan (`gateway.query.evaluate`);
either way the answers below, worked out by hand from `SAMPLE`, must come out.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from gateway.query import (
    MISSING,
    Aggregation,
    AllOf,
    AnyOf,
    Computed,
    Filter,
    Having,
    Not,
    QueryError,
    Sort,
)
from gateway.storage import Backend

from .base import ContractBase, agg, cursor_walk, ids, q


def _name_length(event: Any) -> Any:
    name = event.data.get("name")
    return len(name) if isinstance(name, str) else MISSING


#: data.name's length: e1 5, e2 4, e3 5, e4 8, e5 missing (null), e6 5.
NAME_LENGTH = Computed("length(name)", _name_length)

CONDITION_CASES = [
    # e4 (score [2, 9]) and e5 (buy, 5)
    ((AnyOf((Filter("type", "eq", "buy"), Filter("data.score", "gt", 4))),), "e4 e5"),
    # every event but e1; e5's null name is not "alpha", so NOT holds for it
    ((Not(Filter("data.name", "eq", "alpha")),), "e2 e3 e4 e5 e6"),
    # clicks and views without a score: e3 only
    ((AllOf((AnyOf((Filter("type", "eq", "click"), Filter("type", "eq", "view"))),
             Not(Filter("data.score", "exists")))),), "e3"),
    # neither in "web" nor by u3: e4 and e6
    ((Not(AnyOf((Filter("stream", "eq", "web"), Filter("user_id", "eq", "u3")))),), "e4 e6"),
    ((AnyOf(()),), ""),
    ((AllOf(()),), "e1 e2 e3 e4 e5 e6"),
    # a tree beside a plain filter: not a purchase, and tagged "a" or nested.v >= 2 (range starts at 1500)
    ((Filter("type", "ne", "buy"), AnyOf((Filter("data.tags", "eq", "a"), Filter("data.nested.v", "gte", 2)))),
     "e2 e4 e6"),
    ((Filter("data.name", "regex", "alpha.*"),), "e1 e4"),
    ((Filter("data.tags", "regex", "[bc]"),), "e1 e2 e5"),
    ((Not(Filter("data.name", "regex", "(?i)alpha")),), "e2 e3 e4 e5"),
    ((Filter(NAME_LENGTH, "eq", 5),), "e1 e3 e6"),
    ((AnyOf((Filter(NAME_LENGTH, "gt", 6), Not(Filter(NAME_LENGTH, "exists")))),), "e4 e5"),
]


class QueryModelContract(ContractBase):
    """Condition trees, computed fields, regex, filtered metrics, stats/stdev, numeric histograms, bucket
    order, size and having: the parts of the model a vendor query language (ADQL) compiles to."""

    @pytest.mark.parametrize(("filters", "expected"), CONDITION_CASES,
                             ids=[f"case{i}" for i in range(len(CONDITION_CASES))])
    def test_conditions(self, sample: Backend, filters: tuple[Any, ...], expected: str) -> None:
        start = 1500 if len(filters) == 2 else None
        assert ids(sample, filters=filters, start=start) == expected.split()
        assert sample.query(q(limit=0, filters=filters, start=start)).total == len(expected.split())

    def test_residual_filters_page_with_cursor_and_offset(self, sample: Backend) -> None:
        # scores (max of an array when descending): e2 1, e3 missing, e4 9, e5 5, e6 1; the tie e2/e6 goes
        # by insertion order in the direction of the last key (e6 first), missing values last.
        filters = (Not(Filter("data.name", "eq", "alpha")),)
        sort = (Sort("data.score", descending=True),)
        assert ids(sample, filters=filters, sort=sort) == ["e4", "e5", "e6", "e2", "e3"]
        assert ids(sample, filters=filters, sort=sort, limit=2, offset=1) == ["e5", "e6"]
        assert cursor_walk(sample, q(filters=filters, sort=sort, limit=2)) == ["e4", "e5", "e6", "e2", "e3"]
        page = sample.query(q(filters=filters, sort=sort, limit=5))
        assert page.total == 5 and page.next_cursor is None

    def test_sort_and_terms_on_a_computed_field(self, sample: Backend) -> None:
        assert ids(sample, sort=(Sort(NAME_LENGTH, descending=True),)) == ["e4", "e6", "e3", "e1", "e2", "e5"]
        assert agg(sample, Aggregation("len", "terms", NAME_LENGTH)) == {
            "len": [{"key": 5, "count": 3}, {"key": 4, "count": 1}, {"key": 8, "count": 1}]}

    def test_aggregations_after_residual_filters(self, sample: Backend) -> None:
        result = sample.query(q(limit=0, filters=(Not(Filter("type", "eq", "click")),),
                                aggregations=(Aggregation("streams", "terms", "stream"),)))
        assert result.total == 3
        assert result.aggregations == {"streams": [{"key": "app", "count": 2}, {"key": "web", "count": 1}]}

    def test_filtered_metrics(self, sample: Backend) -> None:
        clicks, views = Filter("type", "eq", "click"), Filter("type", "eq", "view")
        result = agg(sample,
                     Aggregation("clicks", "count", where=clicks),
                     Aggregation("view_score", "sum", "data.score", where=views),  # e2 1 + e4 2 + 9
                     Aggregation("none", "avg", "data.score", where=AnyOf(())),
                     Aggregation("types", "terms", "type",
                                 aggs=(Aggregation("high", "count", where=Filter("data.score", "gt", 2)),)))
        assert result == {"clicks": 3, "view_score": 12, "none": None,
                          "types": [{"key": "click", "count": 3, "high": 1}, {"key": "view", "count": 2, "high": 1},
                                    {"key": "buy", "count": 1, "high": 1}]}

    def test_stats_and_stdev(self, sample: Backend) -> None:
        # data.score values 3, 1, 2, 9, 5, 1: mean 3.5, squared deviations sum to 47.5
        result = agg(sample, Aggregation("s", "stats", "data.score"), Aggregation("sd", "stdev", "data.score"),
                     Aggregation("none", "stats", "data.name"), Aggregation("sd0", "stdev", "data.name"))
        assert result["s"] == {"count": 6, "min": 1, "max": 9, "avg": pytest.approx(3.5), "sum": 21}
        assert result["sd"] == pytest.approx(math.sqrt(47.5 / 6))
        assert result["none"] == {"count": 0, "min": None, "max": None, "avg": None, "sum": None}
        assert result["sd0"] is None
        by_stream = agg(sample, Aggregation("st", "terms", "stream", aggs=(Aggregation("sd", "stdev", "data.score"),)))
        # app: 2, 9, 5, 1 (mean 4.25); web: 3, 1 (mean 2)
        assert [(b["key"], b["sd"]) for b in by_stream["st"]] == [
            ("app", pytest.approx(math.sqrt((2.25**2 + 4.75**2 + 0.75**2 + 3.25**2) / 4))), ("web", 1.0)]

    def test_numeric_histogram(self, sample: Backend) -> None:
        # buckets of 2: e1 {2}, e2 {0}, e4 {2, 8}, e5 {4}, e6 {0}; of 2.5: e1 {2.5}, e2 {0}, e4 {0, 7.5} ...
        result = agg(sample, Aggregation("h", "histogram", "data.score", interval=2),
                     Aggregation("f", "histogram", "data.score", interval=2.5,
                                 aggs=(Aggregation("n", "count", "data.name"),)),
                     Aggregation("t", "histogram", "timestamp", interval=2500))
        assert result["h"] == [{"key": 0, "count": 2}, {"key": 2, "count": 2}, {"key": 4, "count": 1},
                               {"key": 8, "count": 1}]
        assert result["f"] == [{"key": 0, "count": 3, "n": 3}, {"key": 2.5, "count": 1, "n": 1},
                               {"key": 5, "count": 1, "n": 0}, {"key": 7.5, "count": 1, "n": 1}]
        assert result["t"] == [{"key": 0, "count": 2}, {"key": 2500, "count": 2}, {"key": 5000, "count": 2}]

    def test_terms_ordered_by_a_metric(self, sample: Backend) -> None:
        # sum of data.score per type: click 3 + 1 = 4, view 1 + 2 + 9 = 12, buy 5
        score = (Aggregation("s", "sum", "data.score"),)
        ascending = agg(sample, Aggregation("t", "terms", "type", aggs=score, order="s", descending=False))
        assert [(b["key"], b["s"]) for b in ascending["t"]] == [("click", 4), ("buy", 5), ("view", 12)]
        top = agg(sample, Aggregation("t", "terms", "type", aggs=score, order="s", size=2))
        assert [(b["key"], b["count"], b["s"]) for b in top["t"]] == [("view", 2, 12), ("buy", 1, 5)]
        # avg of data.nested.v: click (1, 3) 2.0, view (2) 2.0, buy none: ties by key, no value last
        nested = (Aggregation("v", "avg", "data.nested.v"),)
        for descending in (False, True):
            result = agg(sample, Aggregation("t", "terms", "type", aggs=nested, order="v", descending=descending))
            assert [b["key"] for b in result["t"]] == ["click", "view", "buy"]
        by_key = agg(sample, Aggregation("t", "terms", "type", order="_key", descending=True))
        assert [b["key"] for b in by_key["t"]] == ["view", "click", "buy"]

    def test_nested_terms_with_a_size_per_level(self, sample: Backend) -> None:
        inner = Aggregation("t", "terms", "type", size=2, order="_key", descending=False)
        # streams tie at 3 events: by key, "app" first; its types buy, click, view cut to two
        result = agg(sample, Aggregation("s", "terms", "stream", size=1, aggs=(inner,)))
        assert result == {"s": [{"key": "app", "count": 3,
                                 "t": [{"key": "buy", "count": 1}, {"key": "click", "count": 1}]}]}

    def test_having(self, sample: Backend) -> None:
        score = (Aggregation("s", "sum", "data.score"), Aggregation("st", "stats", "data.score"))

        def terms(having: Any, **kwargs: Any) -> list[Any]:
            result = agg(sample, Aggregation("t", "terms", "type", aggs=score, having=having, **kwargs))
            return [b["key"] for b in result["t"]]

        assert terms(Having("_count", "gte", 2)) == ["click", "view"]
        assert terms(Having("s", "gt", 4)) == ["view", "buy"]
        assert terms(AnyOf((Having("_count", "eq", 1), Having("s", "gte", 12)))) == ["view", "buy"]
        assert terms(Not(Having("_key", "in", ["click", "buy"]))) == ["view"]
        assert terms(Having("st.max", "gte", 9)) == ["view"]
        assert terms(Having("s", "gt", 4), size=1) == ["view"]  # having drops buckets before size keeps one
        per_2s = agg(sample, Aggregation("h", "date_histogram", interval=2000, having=Having("_count", "gt", 1)))
        assert per_2s == {"h": [{"key": 2000, "count": 2}, {"key": 4000, "count": 2}]}

    def test_native_and_evaluated_parts_in_one_query(self, sample: Backend) -> None:
        # not purchases: e1..e4 and e6; scores 3, 1, 2, 9, 1 (mean 3.2, squared deviations sum to 44.8)
        result = sample.query(q(limit=2, filters=(Filter("type", "ne", "buy"),), aggregations=(
            Aggregation("n", "count"),
            Aggregation("sd", "stdev", "data.score"),
            Aggregation("clicks", "count", where=Filter("type", "eq", "click")),
            Aggregation("hist", "histogram", "data.score", interval=5, where=Filter("stream", "eq", "app")))))
        assert [e.id for e in result.events] == ["e1", "e2"] and result.total == 5
        assert result.next_cursor is not None
        assert list(result.aggregations) == ["n", "sd", "clicks", "hist"]
        assert result.aggregations["n"] == 5 and result.aggregations["clicks"] == 3
        assert result.aggregations["sd"] == pytest.approx(math.sqrt(44.8 / 5))
        assert result.aggregations["hist"] == [{"key": 0, "count": 2}, {"key": 5, "count": 1}]
        rest = sample.query(q(limit=2, filters=(Filter("type", "ne", "buy"),), cursor=result.next_cursor))
        assert [e.id for e in rest.events] == ["e3", "e4"]

    def test_model_rejects_what_it_cannot_mean(self) -> None:
        with pytest.raises(QueryError):
            Aggregation("t", "terms", "type", order="nope")
        with pytest.raises(QueryError):
            Aggregation("t", "terms", "type", having=Having("nope", "gt", 1))
        with pytest.raises(QueryError):
            Aggregation("m", "sum", "data.x", having=Having("_count", "gt", 1))
        with pytest.raises(QueryError):
            Aggregation("h", "histogram", "data.x", interval=0)
        with pytest.raises(QueryError):
            Aggregation("t", "terms", "type", where=Having("_count", "gt", 1))
        with pytest.raises(QueryError):
            Filter("data.x", "regex", "(")
        with pytest.raises(QueryError):
            q(filters=(AnyOf(("type",)),))  # type: ignore[arg-type]
