"""The Query DSL of every kind of query the plugins issue, built by the plugins' own code where it exists.

Fluid Topics retrieve and count requests are parsed by the plugin (`parse_retrieve`/`parse_count`) and
their `Query` translated; the Behavioral Analytics collection calls (create, get, list, delete) are run
against `es_fake` and the bodies the real client sent are checked; AppDynamics ADQL reaches a backend as
core queries (the ADQL engine builds them: a group-by is ``terms``, ``series`` a ``date_histogram``, ...),
written here one per ADQL form. What the Query DSL cannot express (``stats``, ``histogram``, regex, an
aggregation's ``where``) is evaluated by the core over ``scan``, whose request is checked too.
"""

from __future__ import annotations

from typing import Any

import pytest
from es_fake import fake_cluster

from backends.elasticsearch import (
    CARDINALITY_PRECISION,
    ElasticsearchBackend,
    aggs_dsl,
    query_filter_dsl,
    search_request,
)
from gateway.events import Stream
from gateway.query import Aggregation, Filter, Query, Sort
from plugins.fluid_topics.service import parse_count, parse_retrieve

INDEX = "event-gateway-events"
NOW = 1_765_000_000_000  # 2025-12-06
NOV_1, DEC_1 = 1_761_955_200_000, 1_764_547_200_000
SCOPE = [{"term": {"tenant": "acme"}}, {"term": {"plugin": "fluid_topics"}}, {"terms": {"stream": ["events"]}},
         {"range": {"timestamp": {"gte": NOV_1, "lt": DEC_1}}}]


def _filters(request: dict[str, Any]) -> list[dict[str, Any]]:
    return request["query"]["bool"]["filter"]


# -- Fluid Topics -------------------------------------------------------------------------------------------
def test_fluid_topics_retrieve_page_with_every_filter() -> None:
    body = {"startDate": "2025-11-01", "endDate": "2025-12-01", "sortOrder": "OldestFirst",
            "paging": {"page": 3, "perPage": 50},
            "filters": {"name": ["khub.search", "topic.display"],
                        "user": {"id": ["u1"], "realm": ["internal", "Keycloak"], "group": ["g"], "role": ["ADMIN"]}}}
    request = search_request(parse_retrieve(body, now=NOW, retention_days=365).query("acme"), INDEX)
    assert request["routing"] == "acme"  # one tenant's shard
    assert _filters(request) == [
        *SCOPE,
        {"terms": {"type": ["khub.search", "topic.display"]}},
        {"term": {"user_id": "u1"}},
        {"terms": {"data_str.user.realm": ["internal", "Keycloak"]}},  # any of the values (array fields too)
        {"term": {"data_str.user.groups": "g"}},
        {"term": {"data_str.user.roles": "ADMIN"}},
    ]
    assert request["from_"] == 100 and request["size"] == 51  # page 3 of 50, one more to know the last page
    assert request["track_total_hits"] is True  # totalCount
    assert [next(iter(key)) for key in request["sort"]] == ["timestamp", "seq", "uid"]
    assert all(next(iter(key.values()))["order"] == "asc" for key in request["sort"])


def test_fluid_topics_retrieve_latest_first_without_filters() -> None:
    body = {"startDate": "2025-11-01", "endDate": "2025-12-01"}
    request = search_request(parse_retrieve(body, now=NOW, retention_days=365).query("acme"), INDEX)
    assert _filters(request) == SCOPE
    assert request["size"] == 1001 and request.get("from_", 0) == 0  # the first 1000 events
    assert [next(iter(key.values()))["order"] for key in request["sort"]] == ["desc", "desc", "desc"]


@pytest.mark.parametrize(("period", "interval"), [("day", "1d"), ("week", "1w"), ("month", "1M")])
def test_fluid_topics_count_per_name_and_calendar_period(period: str, interval: str) -> None:
    body = {"startDate": "2025-11-01", "endDate": "2025-12-01", "groupByPeriod": period,
            "filters": {"name": ["b", "a"]}}
    request = search_request(parse_count(body, now=NOW, retention_days=365).query("acme"), INDEX)
    assert request["size"] == 0 and request["track_total_hits"] is False  # no events are loaded
    assert _filters(request) == [*SCOPE, {"terms": {"type": ["b", "a"]}}]  # counted within the range only
    assert request["aggs"] == {"g0": {
        "terms": {"field": "type", "size": 2, "order": [{"_count": "desc"}, {"_key": "asc"}]},
        "aggs": {"g0": {"date_histogram": {"field": "timestamp", "min_doc_count": 1, "time_zone": "UTC",
                                           "calendar_interval": interval}}},
    }}


def test_fluid_topics_count_of_every_name() -> None:
    body = {"startDate": "2025-11-01", "endDate": "2025-12-01", "groupByPeriod": "day"}
    request = search_request(parse_count(body, now=NOW, retention_days=365).query("acme"), INDEX)
    assert not [f for f in _filters(request) if "type" in str(f)]
    assert request["aggs"]["g0"]["terms"]["size"] >= 1000  # every name seen in the range (MAX_NAMES)


# -- Behavioral Analytics collections (the stream catalog) ------------------------------------------------
def test_elastic_collection_calls_send_tenant_scoped_catalog_requests() -> None:
    with fake_cluster() as (cluster, port):
        store = ElasticsearchBackend(f"elasticsearch://127.0.0.1:{port}", {"retries": 0})
        try:
            store.create_stream(Stream(tenant="acme", plugin="elastic_analytics", name="shop"))
            assert store.get_stream("acme", "elastic_analytics", "shop") is not None
            store.list_streams("acme", "elastic_analytics")
            store.plugins_of("acme")
        finally:
            store.close()
        searches = [(path, body) for method, path, body in cluster.bodies if path.endswith("_search")]
    created = [body for method, path, body in cluster.bodies if "_create" in path]
    assert created == [{"tenant": "acme", "plugin": "elastic_analytics", "name": "shop", "schema": None,
                        **{k: v for k, v in created[0].items() if k not in ("tenant", "plugin", "name", "schema")}}]
    listing, plugins = searches
    assert listing[0] == "/event-gateway-streams/_search"
    assert listing[1]["query"] == {"bool": {"filter": [{"term": {"tenant": "acme"}},
                                                       {"term": {"plugin": "elastic_analytics"}}]}}
    assert listing[1]["sort"] == [{"name": {"order": "asc"}}] and listing[1]["size"] == 1000
    assert plugins[1]["query"] == {"term": {"tenant": "acme"}} and plugins[1]["size"] == 0
    assert plugins[1]["aggs"]["plugins"]["terms"]["field"] == "plugin"


# -- AppDynamics ADQL, as core queries --------------------------------------------------------------------
def _adql(**kwargs: Any) -> Query:
    return Query(tenant="acme", plugin="appdynamics", streams=("myProducts",), limit=0, **kwargs)


def test_adql_group_by_with_metrics() -> None:
    # SELECT productBrand, count(*), avg(price) FROM myProducts
    query = _adql(aggregations=(Aggregation("g", "terms", "data.productBrand", size=100,
                                            aggs=(Aggregation("c", "count"), Aggregation("a", "avg", "data.price"))),))
    aggs = search_request(query, INDEX)["aggs"]
    assert sorted(aggs) == ["g0n", "g0s"]  # the brand's string and number columns, merged by the translation
    assert aggs["g0s"] == {"terms": {"field": "data_str.productBrand", "size": 100,
                                     "order": [{"_count": "desc"}, {"_key": "asc"}]},
                           "aggs": {"g0": {"filter": {"match_all": {}}}, "g1": {"stats": {"field": "data_num.price"}}}}
    assert aggs["g0n"]["terms"]["field"] == "data_num.productBrand"


def test_adql_where_clause_filters() -> None:
    # SELECT count(*) FROM myProducts WHERE productBrand = 'Brand 7' AND userRating >= 4
    #   AND productName NOT IN ('a', 'b') AND description IS NOT NULL AND productName LIKE 'P1*'
    #   AND productName LIKE '*x*'
    query = _adql(filters=(Filter("data.productBrand", "eq", "Brand 7"), Filter("data.userRating", "gte", 4),
                           Filter("data.productName", "not_in", ["a", "b"]), Filter("data.description", "exists"),
                           Filter("data.productName", "prefix", "P1"), Filter("data.productName", "contains", "x")),
                  aggregations=(Aggregation("n", "count"),))
    assert query_filter_dsl(query) == {"bool": {"filter": [
        {"term": {"tenant": "acme"}}, {"term": {"plugin": "appdynamics"}}, {"terms": {"stream": ["myProducts"]}},
        {"term": {"data_str.productBrand": "Brand 7"}},
        {"range": {"data_num.userRating": {"gte": 4}}},
        {"bool": {"must_not": [{"terms": {"data_str.productName": ["a", "b"]}}]}},
        {"term": {"data_paths": "description"}},
        {"prefix": {"data_str.productName": {"value": "P1"}}},
        {"wildcard": {"data_str.productName": {"value": "*x*"}}},
    ]}}


def test_adql_series_and_statistics() -> None:
    # SELECT series(eventTimestamp, '1h'), avg(price), percentile(price, 50, 95), distinctcount(productName),
    #   min(price), max(price), sum(price) FROM myProducts
    series = Aggregation("s", "date_histogram", interval=3_600_000, aggs=(Aggregation("a", "avg", "data.price"),))
    dsl = aggs_dsl((series, Aggregation("p", "percentiles", "data.price", percents=(50, 95)),
                    Aggregation("d", "distinct_count", "data.productName"), Aggregation("lo", "min", "data.price"),
                    Aggregation("hi", "max", "data.price"), Aggregation("sum", "sum", "data.price")))
    assert dsl["g0"] == {"date_histogram": {"field": "timestamp", "min_doc_count": 1, "time_zone": "UTC",
                                            "fixed_interval": "3600000ms"},
                         "aggs": {"g0": {"stats": {"field": "data_num.price"}}}}
    assert dsl["g1"] == {"percentiles": {"field": "data_num.price", "percents": [50.0, 95.0], "keyed": False}}
    assert dsl["g2s"]["cardinality"] == {"field": "data_str.productName", "precision_threshold": CARDINALITY_PRECISION}
    assert dsl["g3"] == dsl["g4"] == dsl["g5"] == {"stats": {"field": "data_num.price"}}


@pytest.mark.parametrize("agg", [
    Aggregation("st", "stats", "data.price"),  # SELECT stats(price)
    Aggregation("r", "histogram", "data.price", interval=10),  # SELECT range_(price, 10)
])
def test_adql_forms_outside_the_dsl_are_evaluated_by_the_core_over_a_scan(agg: Aggregation) -> None:
    query = _adql(filters=(Filter("data.productBrand", "eq", "Brand 7"),), aggregations=(agg,))
    with fake_cluster() as (cluster, port):
        store = ElasticsearchBackend(f"elasticsearch://127.0.0.1:{port}", {"retries": 0})
        try:
            store.create_stream(Stream(tenant="acme", plugin="appdynamics", name="myProducts"))
            assert not store.native(query)
            result = store.query(query)
        finally:
            store.close()
        searches = [body for method, path, body in cluster.bodies if path == f"/{INDEX}/_search"]
    assert agg.name in result.aggregations  # answered (over no events) by the core's reference semantics
    assert searches, "the core evaluator reads the events through the backend's scan"
    scan = searches[-1]
    assert scan["sort"] == [{"seq": {"order": "asc"}}, {"uid": {"order": "asc"}}]  # insertion order
    assert {"term": {"data_str.productBrand": "Brand 7"}} in scan["query"]["bool"]["filter"]  # pushed down
    assert "aggs" not in scan


def test_adql_sort_and_limit_of_raw_events() -> None:
    # SELECT * FROM myProducts ORDER BY price DESC LIMIT 20
    request = search_request(Query(tenant="acme", plugin="appdynamics", streams=("myProducts",), limit=20,
                                   sort=(Sort("data.price", descending=True),)), INDEX)
    assert request["size"] == 21
    assert request["sort"][:2] == [  # strings above numbers above missing (the contract's order), descending
        {"data_str.price": {"order": "desc", "missing": "", "unmapped_type": "keyword"}},
        {"data_num.price": {"order": "desc", "missing": -1.7976931348623157e308, "unmapped_type": "double"}}]
    assert request["sort"][-2:] == [{"seq": {"order": "desc"}}, {"uid": {"order": "desc"}}]


def test_adql_filtered_metric_is_rewritten_by_the_core_into_a_native_query() -> None:
    # SELECT filter(count(*), WHERE userRating >= 4) FROM myProducts WHERE productBrand = 'Brand 7'
    agg = Aggregation("f", "count", where=Filter("data.userRating", "gte", 4))
    query = _adql(filters=(Filter("data.productBrand", "eq", "Brand 7"),), aggregations=(agg,))
    with fake_cluster() as (cluster, port):
        store = ElasticsearchBackend(f"elasticsearch://127.0.0.1:{port}", {"retries": 0})
        try:
            store.create_stream(Stream(tenant="acme", plugin="appdynamics", name="myProducts"))
            assert not store.native(query)
            assert store.query(query).aggregations == {"f": 0}
        finally:
            store.close()
        searches = [body for method, path, body in cluster.bodies if path == f"/{INDEX}/_search"]
    rewritten = searches[0]  # the aggregation's where joins the query's filters; no event leaves the cluster
    assert rewritten["size"] == 0 and rewritten["aggs"] == {"g0": {"filter": {"match_all": {}}}}
    assert rewritten["query"]["bool"]["filter"][-2:] == [{"term": {"data_str.productBrand": "Brand 7"}},
                                                          {"range": {"data_num.userRating": {"gte": 4}}}]
    assert not [body for body in searches if "sort" in body]  # no scan
