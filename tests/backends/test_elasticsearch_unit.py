"""Unit tests of the Elasticsearch backend that need no cluster.

Why: Elasticsearch cannot run in every test environment, yet the translation of streams, events and
queries into mappings, bulk bodies and DSL (and of responses back into `QueryResult`s) is where the
backend's semantics live. Responses below are written by hand after the Elasticsearch reference. The
connection-failure tests use a real closed local port, not a mock.
"""

from __future__ import annotations

import socket
from typing import Any

import elastic_transport
import pluggy
import pytest

import backends.elasticsearch as es_backend
from backends.elasticsearch import (
    CARDINALITY_PRECISION,
    MATCH_ALL,
    MATCH_NONE,
    MISSING_NUMBER,
    NUM_COLUMN,
    PATHS_FIELD,
    STR_COLUMN,
    ElasticsearchBackend,
    agg_results,
    aggs_dsl,
    bulk_operations,
    condition_dsl,
    event_doc_id,
    event_document,
    events_index_body,
    filter_dsl,
    parse_bulk_response,
    parse_settings,
    parse_version,
    query_filter_dsl,
    query_result,
    search_request,
    sort_dsl,
    stream_doc_id,
    stream_document,
    stream_from_document,
    streams_index_body,
    translate_errors,
    typed_leaves,
)
from gateway import hookspecs
from gateway.events import Event, FieldSpec, Stream
from gateway.query import Aggregation, AllOf, AnyOf, Filter, Not, Query, QueryError, Sort, semantics
from gateway.query.aggregate import aggregate
from gateway.query.checks import check_event
from gateway.query.cursor import decode_cursor, encode_cursor
from gateway.storage import BackendUnavailable, StorageError, StreamExists, StreamNotFound, backend_from_url

INDEX = "event-gateway-events"


def event(**kwargs: Any) -> Event:
    """A fixed event, so document ids and bodies are predictable."""
    base = {"tenant": "acme", "plugin": "elastic_analytics", "stream": "clicks", "type": "click",
            "data": {"page": "home"}, "timestamp": 1_700_000_000_000, "received_at": 1_700_000_000_500,
            "id": "e1"}
    base.update(kwargs)
    return Event(**base)


def query(**kwargs: Any) -> Query:
    """A query of the fixed tenant and plugin."""
    return Query(tenant="acme", plugin="elastic_analytics", **kwargs)


def clauses(q: Query) -> list[dict[str, Any]]:
    """The filter clauses a query adds after tenant and plugin."""
    return query_filter_dsl(q)["bool"]["filter"][2:]


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# -- URL and options -----------------------------------------------------------------------------------
def test_plain_url_means_http_on_the_default_port() -> None:
    settings = parse_settings("elasticsearch://es.local")
    assert settings.hosts == ("http://es.local:9200",)
    assert settings.index_prefix == "event-gateway"
    assert settings.events_index == "event-gateway-events"
    assert settings.streams_index == "event-gateway-streams"
    assert settings.refresh == "wait_for"
    assert settings.client_kwargs == {}


def test_https_scheme_port_path_and_several_nodes() -> None:
    settings = parse_settings("elasticsearch+https://a:9201,b:9202/proxy/")
    assert settings.hosts == ("https://a:9201/proxy", "https://b:9202/proxy")


def test_ipv6_host() -> None:
    assert parse_settings("elasticsearch://[::1]:9200").hosts == ("http://[::1]:9200",)


def test_http_urls_are_accepted_too() -> None:
    assert parse_settings("http://localhost:9200").hosts == ("http://localhost:9200",)
    assert parse_settings("https://localhost:9200").hosts == ("https://localhost:9200",)


def test_credentials_in_url_become_basic_auth_and_leave_the_hosts() -> None:
    settings = parse_settings("elasticsearch://elastic:p%40ss@es:9200")
    assert settings.client_kwargs["basic_auth"] == ("elastic", "p@ss")
    assert settings.hosts == ("http://es:9200",)


def test_options_are_parsed() -> None:
    settings = parse_settings("elasticsearch+https://es:9200", {
        "basic_auth": "user:pa:ss", "ca_certs": "/etc/ca.pem", "verify_certs": "false",
        "index_prefix": "eg-test", "refresh": "false", "request_timeout": "2.5"})
    assert settings.client_kwargs == {"basic_auth": ("user", "pa:ss"), "ca_certs": "/etc/ca.pem",
                                      "verify_certs": False, "request_timeout": 2.5}
    assert settings.index_prefix == "eg-test"
    assert settings.events_index == "eg-test-events"
    assert settings.refresh is False
    assert settings.request_timeout == 2.5


def test_secrets_stay_out_of_reprs_and_hosts() -> None:
    settings = parse_settings("elasticsearch://u:url-secret@es", {"api_key": "key-secret"})
    assert "secret" not in repr(settings)
    assert "secret" not in " ".join(settings.hosts)


@pytest.mark.parametrize(("raw", "expected"), [("wait_for", "wait_for"), ("true", True), (True, True),
                                               (False, False), ("false", False)])
def test_refresh_values(raw: Any, expected: Any) -> None:
    assert parse_settings("elasticsearch://es", {"refresh": raw}).refresh == expected


def test_api_key_encoded_or_id_and_key() -> None:
    assert parse_settings("elasticsearch://es", {"api_key": "Zm9vOmJhcg=="}).client_kwargs["api_key"] \
        == "Zm9vOmJhcg=="
    assert parse_settings("elasticsearch://es", {"api_key": "id:key"}).client_kwargs["api_key"] == ("id", "key")


def test_options_override_the_query_string() -> None:
    settings = parse_settings("elasticsearch://es?index_prefix=from-url&refresh=false",
                              {"index_prefix": "from-options"})
    assert settings.index_prefix == "from-options"
    assert settings.refresh is False


@pytest.mark.parametrize("options", [{"index_prefx": "typo"}, {"index_prefix": "Upper"},
                                     {"index_prefix": "a/b"}, {"index_prefix": "_x"}, {"index_prefix": ""},
                                     {"verify_certs": "maybe"}, {"request_timeout": 0},
                                     {"basic_auth": "no-colon"}])
def test_bad_options_fail_at_construction(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        ElasticsearchBackend("elasticsearch://es", options)


def test_not_an_elasticsearch_url() -> None:
    with pytest.raises(ValueError):
        parse_settings("sqlite:///x.db")


def test_construction_does_not_touch_the_cluster() -> None:
    backend = ElasticsearchBackend(f"elasticsearch://127.0.0.1:{closed_port()}")
    assert backend._client is None


def test_registered_through_the_storage_backends_hook() -> None:
    pm = pluggy.PluginManager("event_gateway")
    pm.add_hookspecs(hookspecs)
    pm.register(es_backend)
    classes = [cls for result in pm.hook.storage_backends() for cls in result]
    assert ElasticsearchBackend in classes
    assert set(ElasticsearchBackend.schemes) == {"elasticsearch", "elasticsearch+https"}
    # What the contract suite's fixture does with ELASTICSEARCH_URL=http://localhost:9200.
    backend = backend_from_url("elasticsearch://localhost:9200", {"index_prefix": "eg-contract-1"}, classes)
    assert isinstance(backend, ElasticsearchBackend)
    assert backend.settings.events_index == "eg-contract-1-events"
    https = backend_from_url("elasticsearch+https://localhost:9200", {}, classes)
    assert https.settings.hosts == ("https://localhost:9200",)


# -- mappings ------------------------------------------------------------------------------------------
def test_events_mapping_types_top_level_attributes() -> None:
    mappings = events_index_body()["mappings"]
    props = mappings["properties"]
    for name in ("id", "tenant", "plugin", "stream", "type", "user_id", "session_id"):
        assert props[name]["type"] == "keyword"
        assert props[name]["ignore_above"] == 8191
    for name in ("timestamp", "received_at"):
        assert props[name] == {"type": "date", "format": "epoch_millis"}
    assert props["seq"] == {"type": "long"}
    assert props["uid"] == {"type": "keyword"}


def test_events_mapping_keeps_data_in_source_and_indexes_typed_columns() -> None:
    mappings = events_index_body()["mappings"]
    props = mappings["properties"]
    assert props["data"] == {"type": "object", "enabled": False}
    for column in (STR_COLUMN, NUM_COLUMN):
        assert props[column] == {"type": "object", "subobjects": False, "dynamic": True}
    templates = {next(iter(t)): next(iter(t.values())) for t in mappings["dynamic_templates"]}
    assert templates["vendor_strings"] == {"path_match": "data_str.*",
                                           "mapping": {"type": "keyword", "ignore_above": 8191}}
    assert templates["vendor_numbers"] == {"path_match": "data_num.*", "mapping": {"type": "double"}}
    assert set(templates) == {"vendor_strings", "vendor_numbers"}
    assert props[PATHS_FIELD]["type"] == "keyword"
    assert mappings["_source"] == {"excludes": [STR_COLUMN, NUM_COLUMN, PATHS_FIELD]}
    assert mappings["_routing"] == {"required": True}
    assert mappings["dynamic"] == "strict"
    assert mappings["date_detection"] is False


def test_events_index_settings() -> None:
    settings = events_index_body()["settings"]["index"]
    assert settings["auto_expand_replicas"] == "0-1"
    assert settings["mapping"]["total_fields"] == {"limit": 10000}
    recent = events_index_body((8, 15))["settings"]["index"]["mapping"]["total_fields"]
    assert recent == {"limit": 10000, "ignore_dynamic_beyond_limit": True}
    assert events_index_body((9, 0))["mappings"] == events_index_body()["mappings"]


@pytest.mark.parametrize(("number", "expected"), [("8.11.3", (8, 11)), ("8.13.0", (8, 13)),
                                                  ("9.0.0-SNAPSHOT", (9, 0)), ("8", (8, 0))])
def test_parse_version(number: str, expected: tuple[int, int]) -> None:
    assert parse_version(number) == expected


def test_streams_mapping() -> None:
    body = streams_index_body()
    props = body["mappings"]["properties"]
    assert props["tenant"] == props["plugin"] == props["name"] == {"type": "keyword"}
    assert props["created_at"]["type"] == "date"
    assert props["schema"] == {"type": "object", "enabled": False}


# -- documents -------------------------------------------------------------------------------------------
def test_ids_are_deterministic_urlsafe_and_distinct() -> None:
    assert event_doc_id(event()) == event_doc_id(event(data={"other": 1}))
    ids = {event_doc_id(event()), event_doc_id(event(stream="views")), event_doc_id(event(tenant="other")),
           event_doc_id(event(plugin="appd")), event_doc_id(event(id="e2"))}
    assert len(ids) == 5
    for doc_id in ids | {stream_doc_id("acme", "p", "s")}:
        assert len(doc_id) == 43
        assert set(doc_id) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    # Separators inside names cannot make two different streams collide.
    assert stream_doc_id("a/b", "c", "d") != stream_doc_id("a", "b/c", "d")
    assert stream_doc_id("acme", "p", "s") != stream_doc_id("acme", "p", "t")


def test_stream_document_round_trip() -> None:
    stream = Stream("acme", "appd", "orders", created_at=123,
                    schema=(FieldSpec("amount", "float"), FieldSpec("sku", "string")))
    assert stream_from_document(stream_document(stream)) == stream
    renamed = Stream("acme", "appd", "orders", created_at=123,
                     schema=(FieldSpec("cost", "float", "amount"), FieldSpec("sku", "string")))
    assert stream_document(renamed)["schema"] == [{"name": "cost", "type": "float", "path": "amount"},
                                                  {"name": "sku", "type": "string"}]
    assert stream_from_document(stream_document(renamed)) == renamed
    plain = Stream("acme", "appd", "logs", created_at=5)
    assert stream_document(plain)["schema"] is None
    assert stream_from_document(stream_document(plain)) == plain


def test_typed_leaves_split_by_json_type_with_booleans_as_numbers() -> None:
    leaves = typed_leaves({"s": "x", "i": 3, "f": 1.5, "b": True, "n": None,
                           "o": {"deep": {"k": "v"}}, "mixed": [1, "one", False, None]})
    assert leaves.strings == {"s": ["x"], "o.deep.k": ["v"], "mixed": ["one"]}
    assert leaves.numbers == {"i": [3], "f": [1.5], "b": [1], "mixed": [1, 0]}
    assert leaves.paths == ["s", "i", "f", "b", "o", "o.deep", "o.deep.k", "mixed"]
    assert type(leaves.numbers["b"][0]) is int


def test_typed_leaves_walk_objects_only_like_the_reference_backend() -> None:
    leaves = typed_leaves({"items": [{"sku": "a", "qty": 1}, "loose", [2]], "tags": [], "nulls": [None],
                           "meta": {}, "one": [None, 4]})
    assert leaves.strings == {"items": ["loose"]}
    assert leaves.numbers == {"one": [4]}
    # Present and not null; an array only with a non-null element; an empty object is present.
    assert leaves.paths == ["items", "meta", "one"]


def test_typed_leaves_skip_unaddressable_keys_and_numbers() -> None:
    leaves = typed_leaves({"": 1, " ": 2, "a.b": 3, "ok": {"": 4, "x": float("nan")},
                           "inf": float("inf"), "huge": 10**400, "big": 2**60, "fine": "v"})
    assert leaves.numbers == {"big": [float(2**60)]}
    assert leaves.strings == {"fine": ["v"]}
    assert leaves.paths == ["ok", "ok.x", "inf", "huge", "big", "fine"]


def test_event_document_is_the_event_plus_index_only_fields() -> None:
    e = event(data={"page": "home", "ms": 12}, user_id="u1")
    doc = event_document(e, seq=42)
    for key, value in e.to_dict().items():
        assert doc[key] == value
    assert doc["seq"] == 42
    assert doc["uid"] == event_doc_id(e)
    assert doc[STR_COLUMN] == {"page": ["home"]}
    assert doc[NUM_COLUMN] == {"ms": [12]}
    assert doc[PATHS_FIELD] == ["page", "ms"]
    assert Event.from_dict(doc) == e


@pytest.mark.parametrize("bad", [event(timestamp=1.5), event(received_at=True), event(id=7),
                                 event(data={"x": float("nan")}), event(data={"x": object()})])
def test_events_no_backend_stores_are_rejected(bad: Event) -> None:
    with pytest.raises(ValueError):
        check_event(bad)


def test_bulk_body_is_create_with_deterministic_id_and_tenant_routing() -> None:
    events = [event(), event(id="e2", tenant="globex")]
    ops = bulk_operations(events, INDEX, [10, 11])
    assert len(ops) == 4
    assert ops[0] == {"create": {"_index": INDEX, "_id": event_doc_id(events[0]), "routing": "acme"}}
    assert ops[1]["id"] == "e1" and ops[1]["seq"] == 10
    assert ops[2] == {"create": {"_index": INDEX, "_id": event_doc_id(events[1]), "routing": "globex"}}
    assert ops[3]["tenant"] == "globex" and ops[3]["seq"] == 11


BULK_RESPONSE = {
    "took": 30, "errors": True,
    "items": [
        {"create": {"_index": INDEX, "_id": "id1", "_version": 1, "result": "created",
                    "_shards": {"total": 2, "successful": 1, "failed": 0}, "_seq_no": 0, "_primary_term": 1,
                    "status": 201}},
        {"create": {"_index": INDEX, "_id": "id2", "status": 409,
                    "error": {"type": "version_conflict_engine_exception",
                              "reason": "[id2]: version conflict, document already exists (current version [1])",
                              "index_uuid": "aAsFqTI0Tc2W0LCWgPNrOA", "shard": "0", "index": INDEX}}},
        {"create": {"_index": INDEX, "_id": "id3", "status": 400,
                    "error": {"type": "document_parsing_exception",
                              "reason": "[1:42] failed to parse field [seq] of type [long]"}}},
    ],
}


def test_bulk_response_separates_created_duplicates_and_failures() -> None:
    outcome = parse_bulk_response(BULK_RESPONSE)
    assert outcome.created == ["id1"]
    assert outcome.duplicates == 1
    assert [f["_id"] for f in outcome.failures] == ["id3"]
    assert outcome.transient is False


def test_bulk_rejections_for_load_are_transient() -> None:
    response = {"errors": True, "items": [
        {"create": {"_index": INDEX, "_id": "a", "status": 429,
                    "error": {"type": "es_rejected_execution_exception", "reason": "rejected execution"}}},
        {"create": {"_index": INDEX, "_id": "b", "status": 503,
                    "error": {"type": "unavailable_shards_exception", "reason": "primary shard is not active"}}},
    ]}
    assert parse_bulk_response(response).transient is True


# -- filters -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("flt", "expected"), [
    (Filter("type", "eq", "click"), {"term": {"type": "click"}}),
    (Filter("type", "ne", "click"), {"bool": {"must_not": [{"term": {"type": "click"}}]}}),
    (Filter("type", "in", ["a", "b"]), {"terms": {"type": ["a", "b"]}}),
    (Filter("type", "not_in", ["a", "b"]), {"bool": {"must_not": [{"terms": {"type": ["a", "b"]}}]}}),
    (Filter("type", "lt", "m"), {"range": {"type": {"lt": "m"}}}),
    (Filter("user_id", "exists"), {"exists": {"field": "user_id"}}),
    (Filter("session_id", "prefix", "ab"), {"prefix": {"session_id": {"value": "ab"}}}),
    (Filter("type", "contains", "li"), {"wildcard": {"type": {"value": "*li*"}}}),
    (Filter("timestamp", "gte", 5), {"range": {"timestamp": {"gte": 5}}}),
    (Filter("received_at", "eq", 7), {"term": {"received_at": 7}}),
    (Filter("data.page", "eq", "home"), {"term": {"data_str.page": "home"}}),
    (Filter("data.ms", "eq", 12), {"term": {"data_num.ms": 12}}),
    (Filter("data.ok", "eq", True), {"term": {"data_num.ok": 1}}),
    (Filter("data.ok", "ne", False), {"bool": {"must_not": [{"term": {"data_num.ok": 0}}]}}),
    (Filter("data.n", "gte", True), {"range": {"data_num.n": {"gte": 1}}}),
    (Filter("data.a.b", "gt", 2.5), {"range": {"data_num.a.b": {"gt": 2.5}}}),
    (Filter("data.a.b", "lte", "x"), {"range": {"data_str.a.b": {"lte": "x"}}}),
    (Filter("data.a", "exists"), {"term": {PATHS_FIELD: "a"}}),
    (Filter("data.url", "prefix", "https://"), {"prefix": {"data_str.url": {"value": "https://"}}}),
    (Filter("data.q", "contains", "a*b?c\\"), {"wildcard": {"data_str.q": {"value": "*a\\*b\\?c\\\\*"}}}),
])
def test_filter_translation(flt: Filter, expected: dict[str, Any]) -> None:
    assert filter_dsl(flt) == expected


def test_booleans_are_sent_as_json_numbers() -> None:
    # True == 1 in Python, so the table above cannot tell them apart; Elasticsearch can.
    assert type(filter_dsl(Filter("data.ok", "eq", True))["term"]["data_num.ok"]) is int
    assert type(filter_dsl(Filter("data.n", "gte", True))["range"]["data_num.n"]["gte"]) is int
    in_dsl = filter_dsl(Filter("data.v", "in", [True, False]))
    assert [type(v) for v in in_dsl["terms"]["data_num.v"]] == [int, int]
    assert type(typed_leaves({"b": False}).numbers["b"][0]) is int


def test_in_with_mixed_types_picks_one_column_per_type() -> None:
    assert filter_dsl(Filter("data.v", "in", [1, "1", True, 2, "1", False, None])) == {"bool": {"should": [
        {"terms": {"data_num.v": [1, 2, 0]}}, {"term": {"data_str.v": "1"}},
    ], "minimum_should_match": 1}}


def test_values_of_a_type_the_field_cannot_hold_match_nothing() -> None:
    assert filter_dsl(Filter("type", "eq", 5)) == MATCH_NONE
    assert filter_dsl(Filter("timestamp", "eq", "yesterday")) == MATCH_NONE
    assert filter_dsl(Filter("type", "ne", 5)) == MATCH_ALL
    assert filter_dsl(Filter("type", "in", [1, 2])) == MATCH_NONE
    assert filter_dsl(Filter("type", "not_in", [1, 2])) == MATCH_ALL
    assert filter_dsl(Filter("data.v", "lt", None)) == MATCH_NONE
    assert filter_dsl(Filter("data.v", "eq", {"a": 1})) == MATCH_NONE
    assert filter_dsl(Filter("data.v", "prefix", 1)) == MATCH_NONE
    assert filter_dsl(Filter("timestamp", "contains", "17")) == MATCH_NONE


def test_null_is_no_value() -> None:
    # As in the reference backend: eq/in None never match, ne/not_in None always do.
    assert filter_dsl(Filter("user_id", "eq", None)) == MATCH_NONE
    assert filter_dsl(Filter("user_id", "ne", None)) == MATCH_ALL
    assert filter_dsl(Filter("data.x", "in", [None])) == MATCH_NONE
    assert filter_dsl(Filter("data.x", "not_in", [None, "a"])) == {"bool": {"must_not": [
        {"term": {"data_str.x": "a"}}]}}


def test_query_scope_tenant_plugin_streams_and_time_range() -> None:
    dsl = query_filter_dsl(query(streams=("a", "b"), start=10, end=20, filters=(Filter("type", "eq", "x"),)))
    assert dsl == {"bool": {"filter": [
        {"term": {"tenant": "acme"}}, {"term": {"plugin": "elastic_analytics"}},
        {"terms": {"stream": ["a", "b"]}}, {"range": {"timestamp": {"gte": 10, "lt": 20}}},
        {"term": {"type": "x"}},
    ]}}


def test_open_time_bounds_and_all_streams() -> None:
    assert clauses(query()) == []
    assert clauses(query(start=10)) == [{"range": {"timestamp": {"gte": 10}}}]
    assert clauses(query(end=20)) == [{"range": {"timestamp": {"lt": 20}}}]
    assert clauses(query(streams=())) == [{"terms": {"stream": []}}]


# -- sort and cursor -------------------------------------------------------------------------------------
def test_default_sort_is_timestamp_then_insertion_order() -> None:
    assert sort_dsl((Sort("timestamp"),)) == [
        {"timestamp": {"order": "asc", "missing": "_first"}},
        {"seq": {"order": "asc"}}, {"uid": {"order": "asc"}},
    ]


def test_tiebreak_follows_the_last_key() -> None:
    keys = sort_dsl((Sort("timestamp"), Sort("user_id", descending=True)))
    assert keys == [
        {"timestamp": {"order": "asc", "missing": "_first"}},
        {"user_id": {"order": "desc", "missing": ""}},
        {"seq": {"order": "desc"}}, {"uid": {"order": "desc"}},
    ]
    assert sort_dsl(()) == [{"seq": {"order": "asc"}}, {"uid": {"order": "asc"}}]


def test_vendor_field_sorts_on_every_typed_column_with_missing_as_the_smallest() -> None:
    for descending, order in ((False, "asc"), (True, "desc")):
        keys = sort_dsl((Sort("data.price", descending),))
        assert keys[:2] == [
            {"data_str.price": {"order": order, "missing": "", "unmapped_type": "keyword"}},
            {"data_num.price": {"order": order, "missing": MISSING_NUMBER, "unmapped_type": "double"}},
        ]
        assert keys[2] == {"seq": {"order": order}}


def test_cursor_round_trip_is_opaque_and_urlsafe() -> None:
    values = [1_700_000_000_000, "é/+", MISSING_NUMBER, 1.5, False, 1_795_357_463_453_000_000, "uid"]
    cursor = encode_cursor(values)
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert decode_cursor(cursor, len(values)) == values


@pytest.mark.parametrize("cursor", ["", "!!!", "bm90IGpzb24", encode_cursor([1, 2])])
def test_bad_cursors_are_query_errors(cursor: str) -> None:
    with pytest.raises(QueryError):
        decode_cursor(cursor, 3)


def test_search_request_with_offset() -> None:
    request = search_request(query(limit=10, offset=20), INDEX)
    assert request["index"] == INDEX
    assert request["routing"] == "acme"
    assert request["size"] == 11
    assert request["from_"] == 20
    assert request["track_total_hits"] is True
    assert request["sort"] == sort_dsl((Sort("timestamp"),))
    assert "search_after" not in request and "aggs" not in request


def test_search_request_with_cursor() -> None:
    after = [1_700_000_000_000, 5, "uid"]
    request = search_request(query(limit=2, cursor=encode_cursor(after), count_total=False), INDEX)
    assert request["search_after"] == after
    assert "from_" not in request
    assert request["track_total_hits"] is False


def test_search_request_for_aggregations_only() -> None:
    request = search_request(query(limit=0, aggregations=(Aggregation("n", "count"),)), INDEX)
    assert request["size"] == 0
    assert "sort" not in request
    assert request["aggs"] == {"g0": {"filter": {"match_all": {}}}}


# -- aggregations -> DSL -------------------------------------------------------------------------------
def test_metric_aggregations_dsl() -> None:
    dsl = aggs_dsl((
        Aggregation("events", "count"),
        Aggregation("with_user", "count", "user_id"),
        Aggregation("with_ms", "count", "data.ms"),
        Aggregation("total", "sum", "data.ms"),
        Aggregation("mean", "avg", "data.ms"),
        Aggregation("low", "min", "timestamp"),
        Aggregation("high", "max", "data.ms"),
        Aggregation("p", "percentiles", "data.ms", percents=(50, 99.9)),
    ))
    assert dsl == {
        "g0": {"filter": {"match_all": {}}},
        "g1": {"filter": {"exists": {"field": "user_id"}}},
        "g2": {"filter": {"term": {PATHS_FIELD: "ms"}}},
        "g3": {"stats": {"field": "data_num.ms"}},
        "g4": {"stats": {"field": "data_num.ms"}},
        "g5": {"stats": {"field": "timestamp"}},
        "g6": {"stats": {"field": "data_num.ms"}},
        "g7": {"percentiles": {"field": "data_num.ms", "percents": [50.0, 99.9], "keyed": False}},
    }


def test_distinct_count_dsl() -> None:
    assert aggs_dsl((Aggregation("users", "distinct_count", "user_id"),)) == {
        "g0": {"cardinality": {"field": "user_id", "precision_threshold": CARDINALITY_PRECISION}}}
    dsl = aggs_dsl((Aggregation("pages", "distinct_count", "data.page"),))
    assert {name: body["cardinality"]["field"] for name, body in dsl.items()} == {
        "g0s": "data_str.page", "g0n": "data_num.page"}
    assert CARDINALITY_PRECISION == 40000


def test_numeric_metrics_on_keyword_attributes_ask_nothing() -> None:
    assert aggs_dsl((Aggregation("s", "sum", "user_id"), Aggregation("p", "percentiles", "type"),
                     Aggregation("h", "date_histogram", "type", interval="day"))) == {}


def test_terms_dsl_with_sub_aggregations() -> None:
    sub = (Aggregation("spent", "sum", "data.amount"),)
    dsl = aggs_dsl((Aggregation("types", "terms", "type", size=5, aggs=sub),))
    assert dsl == {"g0": {
        "terms": {"field": "type", "size": 5, "order": [{"_count": "desc"}, {"_key": "asc"}]},
        "aggs": {"g0": {"stats": {"field": "data_num.amount"}}},
    }}
    vendor = aggs_dsl((Aggregation("pages", "terms", "data.page", size=3),))
    assert sorted(vendor) == ["g0n", "g0s"]
    assert vendor["g0n"]["terms"]["field"] == "data_num.page"
    assert all(body["terms"]["size"] == 3 and "aggs" not in body for body in vendor.values())


@pytest.mark.parametrize(("interval", "expected"), [
    ("minute", {"calendar_interval": "1m"}), ("hour", {"calendar_interval": "1h"}),
    ("day", {"calendar_interval": "1d"}), ("week", {"calendar_interval": "1w"}),
    ("month", {"calendar_interval": "1M"}), ("year", {"calendar_interval": "1y"}),
    (90_000, {"fixed_interval": "90000ms"}),
])
def test_date_histogram_dsl(interval: str | int, expected: dict[str, str]) -> None:
    dsl = aggs_dsl((Aggregation("h", "date_histogram", interval=interval),))
    assert dsl == {"g0": {"date_histogram": {"field": "timestamp", "min_doc_count": 1, "time_zone": "UTC",
                                             **expected}}}


def test_date_histogram_on_a_vendor_field_with_nested_terms() -> None:
    agg = Aggregation("h", "date_histogram", "data.shipped_at", interval="day",
                      aggs=(Aggregation("t", "terms", "type", aggs=(Aggregation("n", "count"),)),))
    dsl = aggs_dsl((agg,))
    assert dsl["g0"]["date_histogram"] == {"field": "data_num.shipped_at", "min_doc_count": 1,
                                           "calendar_interval": "1d"}  # no time_zone on a number field
    assert dsl["g0"]["aggs"] == {"g0": {
        "terms": {"field": "type", "size": 10, "order": [{"_count": "desc"}, {"_key": "asc"}]},
        "aggs": {"g0": {"filter": {"match_all": {}}}},
    }}


# -- responses -> results --------------------------------------------------------------------------------
def test_metric_results() -> None:
    aggs = (Aggregation("events", "count"), Aggregation("total", "sum", "data.ms"),
            Aggregation("mean", "avg", "data.ms"), Aggregation("none", "max", "data.nothing"),
            Aggregation("users", "distinct_count", "user_id"), Aggregation("pages", "distinct_count", "data.page"),
            Aggregation("p", "percentiles", "data.ms", percents=(50, 95.0)),
            Aggregation("p_empty", "percentiles", "data.nothing"), Aggregation("kw", "sum", "user_id"))
    response = {
        "g0": {"doc_count": 4},
        "g1": {"count": 3, "min": 1.0, "max": 3.0, "avg": 2.0, "sum": 6.0},
        "g2": {"count": 3, "min": 1.0, "max": 3.0, "avg": 2.0, "sum": 6.0},
        "g3": {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0},
        "g4": {"value": 2},
        "g5s": {"value": 3}, "g5n": {"value": 1},
        "g6": {"values": [{"key": 50.0, "value": 2.0}, {"key": 95.0, "value": 2.9}]},
        "g7": {"values": [{"key": 50.0, "value": None}, {"key": 95.0, "value": None},
                          {"key": 99.0, "value": None}]},
    }
    assert agg_results(aggs, response) == {
        "events": 4, "total": 6.0, "mean": 2.0, "none": None, "users": 2, "pages": 4,
        "p": {50: 2.0, 95.0: 2.9}, "p_empty": {50.0: None, 95.0: None, 99.0: None}, "kw": None,
    }


def test_terms_results_merge_typed_columns_in_contract_order() -> None:
    agg = Aggregation("v", "terms", "data.v", size=4, aggs=(Aggregation("n", "count"),))
    response = {
        "g0s": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
            {"key": "b", "doc_count": 3, "g0": {"doc_count": 3}},
            {"key": "a", "doc_count": 1, "g0": {"doc_count": 1}},
        ]},
        "g0n": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
            {"key": 5.0, "doc_count": 3, "g0": {"doc_count": 3}},
            {"key": 1.0, "doc_count": 1, "g0": {"doc_count": 1}},
            {"key": 2.5, "doc_count": 1, "g0": {"doc_count": 1}},
        ]},
    }
    result = agg_results((agg,), response)["v"]
    # Count descending, then numbers before strings, then by key; the first `size` of the merge.
    assert result == [
        {"key": 5, "count": 3, "n": 3},
        {"key": "b", "count": 3, "n": 3},
        {"key": 1, "count": 1, "n": 1},
        {"key": 2.5, "count": 1, "n": 1},
    ]
    assert type(result[0]["key"]) is int and type(result[3]["key"]) is float


def test_terms_results_on_attributes() -> None:
    agg = Aggregation("types", "terms", "type")
    response = {"g0": {"doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
        {"key": "view", "doc_count": 5}, {"key": "click", "doc_count": 2}]}}
    assert agg_results((agg,), response) == {"types": [{"key": "view", "count": 5},
                                                       {"key": "click", "count": 2}]}
    when = Aggregation("when", "terms", "timestamp")
    response = {"g0": {"buckets": [{"key": 1_700_000_000_000, "key_as_string": "1700000000000", "doc_count": 2}]}}
    assert agg_results((when,), response) == {"when": [{"key": 1_700_000_000_000, "count": 2}]}


def test_date_histogram_results_with_nested_buckets() -> None:
    agg = Aggregation("per_day", "date_histogram", interval="day",
                      aggs=(Aggregation("types", "terms", "type", aggs=(Aggregation("ms", "avg", "data.ms"),)),))
    response = {"g0": {"buckets": [
        {"key_as_string": "1699920000000", "key": 1_699_920_000_000, "doc_count": 2, "g0": {
            "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
                {"key": "click", "doc_count": 2,
                 "g0": {"count": 1, "min": 4.0, "max": 4.0, "avg": 4.0, "sum": 4.0}}]}},
        {"key_as_string": "1700006400000", "key": 1_700_006_400_000, "doc_count": 1, "g0": {
            "doc_count_error_upper_bound": 0, "sum_other_doc_count": 0, "buckets": [
                {"key": "view", "doc_count": 1,
                 "g0": {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0}}]}},
    ]}}
    assert agg_results((agg,), response) == {"per_day": [
        {"key": 1_699_920_000_000, "count": 2, "types": [{"key": "click", "count": 2, "ms": 4.0}]},
        {"key": 1_700_006_400_000, "count": 1, "types": [{"key": "view", "count": 1, "ms": None}]},
    ]}


def test_aggregations_with_nothing_asked_of_elasticsearch() -> None:
    aggs = (Aggregation("h", "date_histogram", "type", interval="day"), Aggregation("p", "percentiles", "type"))
    assert agg_results(aggs, {}) == {"h": [], "p": {50.0: None, 95.0: None, 99.0: None}}


def hit(e: Event, sort: list[Any]) -> dict[str, Any]:
    """A search hit as Elasticsearch returns it (``_source`` without the excluded typed columns)."""
    source = {k: v for k, v in event_document(e, 1).items() if k not in (STR_COLUMN, NUM_COLUMN, PATHS_FIELD)}
    return {"_index": INDEX, "_id": event_doc_id(e), "_score": None, "_routing": e.tenant,
            "_source": source, "sort": sort}


def search_response(hits: list[dict[str, Any]], total: int | None, aggregations: Any = None) -> dict[str, Any]:
    """A search response envelope."""
    body: dict[str, Any] = {"took": 3, "timed_out": False,
                            "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                            "hits": {"max_score": None, "hits": hits}}
    if total is not None:
        body["hits"]["total"] = {"value": total, "relation": "eq"}
    if aggregations is not None:
        body["aggregations"] = aggregations
    return body


def test_query_result_with_a_next_page() -> None:
    events = [event(id=f"e{i}", timestamp=1_700_000_000_000 + i) for i in range(3)]
    hits = [hit(e, [e.timestamp, 100 + i, event_doc_id(e)]) for i, e in enumerate(events)]
    q = query(limit=2, aggregations=(Aggregation("n", "count"),))
    result = query_result(q, search_response(hits, 7, {"g0": {"doc_count": 7}}))
    assert result.events == events[:2]
    assert result.total == 7
    assert result.aggregations == {"n": 7}
    assert decode_cursor(result.next_cursor, 3) == [events[1].timestamp, 101, event_doc_id(events[1])]


def test_query_result_on_the_last_page() -> None:
    e = event()
    result = query_result(query(limit=2, count_total=False), search_response([hit(e, [1, 2, "x"])], None))
    assert result.events == [e]
    assert result.total is None
    assert result.next_cursor is None


def test_query_result_for_aggregation_only_queries() -> None:
    result = query_result(query(limit=0), search_response([], 5))
    assert result.events == [] and result.next_cursor is None and result.total == 5


# -- errors and I/O --------------------------------------------------------------------------------------
def api_error(status: int, error_type: str) -> elastic_transport.ApiError:
    """An ApiError as the client raises it for a response with `status`."""
    import elasticsearch

    meta = elastic_transport.ApiResponseMeta(status=status, http_version="1.1", headers=elastic_transport.HttpHeaders(),
                                             duration=0.01, node=elastic_transport.NodeConfig("http", "es", 9200))
    body = {"error": {"root_cause": [{"type": error_type, "reason": "r"}], "type": error_type, "reason": "r"},
            "status": status}
    cls = elasticsearch.exceptions.HTTP_EXCEPTIONS.get(status, elasticsearch.ApiError)
    return cls(message=error_type, meta=meta, body=body)


@pytest.mark.parametrize(("exc", "expected"), [
    (api_error(503, "cluster_block_exception"), BackendUnavailable),
    (api_error(429, "es_rejected_execution_exception"), BackendUnavailable),
    (api_error(401, "security_exception"), BackendUnavailable),
    (api_error(400, "illegal_argument_exception"), StorageError),
    (elastic_transport.ConnectionTimeout("timed out"), BackendUnavailable),
    (elastic_transport.ConnectionError("refused"), BackendUnavailable),
])
def test_client_errors_map_to_storage_errors(exc: Exception, expected: type[Exception]) -> None:
    with pytest.raises(expected) as caught, translate_errors("test"):
        raise exc
    assert caught.value.__cause__ is exc
    if expected is StorageError:
        assert not isinstance(caught.value, BackendUnavailable)


def test_unreachable_cluster_is_backend_unavailable() -> None:
    backend = ElasticsearchBackend(f"elasticsearch://127.0.0.1:{closed_port()}", {"request_timeout": 2})
    with pytest.raises(BackendUnavailable):
        backend.health()
    with pytest.raises(BackendUnavailable):
        backend.query(query())
    with pytest.raises(BackendUnavailable):
        backend.append([event()])
    with pytest.raises(BackendUnavailable):
        backend.create_stream(Stream("acme", "p", "s"))
    backend.close()


def test_insertion_stamps_increase_strictly() -> None:
    first = ElasticsearchBackend.next_seqs(3)
    second = ElasticsearchBackend.next_seqs(2)
    stamps = first + second
    assert stamps == sorted(stamps) and len(set(stamps)) == 5


class FakeClient:
    """A stand-in client recording calls, for the orchestration of `append` (not for transport errors)."""

    def __init__(self, catalog: set[str], bulk_responses: list[dict[str, Any]]) -> None:
        self.catalog = catalog
        self.bulk_responses = bulk_responses
        self.bulk_calls: list[dict[str, Any]] = []

    def mget(self, index: str, ids: list[str], source: bool) -> dict[str, Any]:
        return {"docs": [{"_index": index, "_id": i, "found": i in self.catalog} for i in ids]}

    def bulk(self, operations: list[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
        self.bulk_calls.append({"operations": operations, **kwargs})
        return self.bulk_responses.pop(0)

    def create(self, index: str, id: str, document: dict[str, Any], refresh: bool) -> dict[str, Any]:
        if id in self.catalog:
            raise api_error(409, "version_conflict_engine_exception")
        self.catalog.add(id)
        return {"result": "created"}


def fake_backend(client: FakeClient, **options: Any) -> ElasticsearchBackend:
    """A backend whose client is `client` and whose indices count as created."""
    backend = ElasticsearchBackend("elasticsearch://es", options)
    backend._client = client  # type: ignore[assignment]
    backend._ready = True
    return backend


def created(*events: Event) -> dict[str, Any]:
    """A bulk response in which every event was created."""
    return {"errors": False, "items": [{"create": {"_index": INDEX, "_id": event_doc_id(e), "result": "created",
                                                   "status": 201}} for e in events]}


def test_append_rejects_unknown_streams_before_writing() -> None:
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")}, [])
    backend = fake_backend(client)
    with pytest.raises(StreamNotFound):
        backend.append([event(), event(stream="missing")])
    assert client.bulk_calls == []


def test_append_rejects_invalid_events_before_any_request() -> None:
    client = FakeClient(set(), [])
    with pytest.raises(ValueError):
        fake_backend(client).append([event(), event(id="e2", timestamp=1.5)])
    assert client.bulk_calls == []


def test_append_counts_new_events_and_dedupes_within_the_batch() -> None:
    e1, e2 = event(), event(id="e2")
    duplicate = {"create": {"_index": INDEX, "_id": event_doc_id(e2), "status": 409,
                            "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}}
    response = {"errors": True, "items": [*created(e1)["items"], duplicate]}
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")}, [response])
    backend = fake_backend(client)
    assert backend.append([e1, e2, event()]) == 1
    (call,) = client.bulk_calls
    assert call["refresh"] == "wait_for"
    assert [op["create"]["_id"] for op in call["operations"][::2]] == [event_doc_id(e1), event_doc_id(e2)]
    seqs = [doc["seq"] for doc in call["operations"][1::2]]
    assert seqs[0] < seqs[1]


def test_append_without_refresh() -> None:
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")}, [created(event())])
    assert fake_backend(client, refresh="false").append([event()]) == 1
    assert "refresh" not in client.bulk_calls[0]


def test_append_rolls_back_created_items_when_one_fails() -> None:
    e1, e2 = event(), event(id="e2")
    failed = {"create": {"_index": INDEX, "_id": event_doc_id(e2), "status": 400,
                         "error": {"type": "document_parsing_exception", "reason": "bad"}}}
    response = {"errors": True, "items": [*created(e1)["items"], failed]}
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")},
                        [response, {"errors": False, "items": []}])
    with pytest.raises(StorageError) as caught:
        fake_backend(client).append([e1, e2])
    assert not isinstance(caught.value, BackendUnavailable)
    rollback = client.bulk_calls[1]
    assert rollback["operations"] == [{"delete": {"_index": INDEX, "_id": event_doc_id(e1), "routing": "acme"}}]
    assert rollback["refresh"] is True


def _rejected(e: Event) -> dict[str, Any]:
    return {"create": {"_index": INDEX, "_id": event_doc_id(e), "status": 429,
                       "error": {"type": "es_rejected_execution_exception", "reason": "queue full"}}}


def test_append_overloaded_cluster_is_unavailable_after_retries() -> None:
    e1 = event()
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")},
                        [{"errors": True, "items": [_rejected(e1)]} for _ in range(3)])
    with pytest.raises(BackendUnavailable, match="429 es_rejected_execution_exception"):
        fake_backend(client, retries=2, retry_wait_ms=1).append([e1])
    assert len(client.bulk_calls) == 3  # first try and two retries; nothing was created, nothing to roll back


def test_append_retries_only_the_items_rejected_for_load() -> None:
    e1, e2, e3 = event(), event(id="e2"), event(id="e3")
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")}, [
        {"errors": True, "items": [*created(e1)["items"], _rejected(e2), *created(e3)["items"]]},
        created(e2),
    ])
    assert fake_backend(client, retries=2, retry_wait_ms=1).append([e1, e2, e3]) == 3
    assert len(client.bulk_calls) == 2
    retried = [op["create"]["_id"] for op in client.bulk_calls[1]["operations"] if "create" in op]
    assert retried == [event_doc_id(e2)]


def test_append_rolls_back_every_attempt_when_the_retries_run_out() -> None:
    e1, e2 = event(), event(id="e2")
    client = FakeClient({stream_doc_id("acme", "elastic_analytics", "clicks")}, [
        {"errors": True, "items": [*created(e1)["items"], _rejected(e2)]},
        {"errors": True, "items": [_rejected(e2)]},
        {"errors": False, "items": []},  # the rollback
    ])
    with pytest.raises(BackendUnavailable):
        fake_backend(client, retries=1, retry_wait_ms=1).append([e1, e2])
    rollback = client.bulk_calls[2]
    assert rollback["operations"] == [{"delete": {"_index": INDEX, "_id": event_doc_id(e1), "routing": "acme"}}]


def test_create_stream_conflict_is_stream_exists() -> None:
    backend = fake_backend(FakeClient(set(), []))
    stream = Stream("acme", "p", "s")
    assert backend.create_stream(stream) == stream
    with pytest.raises(StreamExists):
        backend.create_stream(stream)


# -- agreement with the reference backend ----------------------------------------------------------------
# A small model of how Elasticsearch evaluates the DSL we emit over the document we index (term, terms,
# range, exists, prefix, wildcard, bool; sort with missing values and min/max of arrays). Evaluating our
# translation with it and comparing with `gateway.query.semantics` and `gateway.query.aggregate` (the
# executable contract) checks that the translation means the same thing, without a cluster.
def indexed_values(doc: dict[str, Any], name: str) -> list[Any]:
    """The values Elasticsearch indexed for a field of a document made by `event_document`."""
    for column in (STR_COLUMN, NUM_COLUMN):
        if name.startswith(column + "."):
            return list(doc[column].get(name[len(column) + 1:], []))
    value = doc.get(name)
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def es_matches(doc: dict[str, Any], clause: dict[str, Any]) -> bool:
    """Whether Elasticsearch would match `doc` with `clause` (the subset of the DSL the backend emits)."""
    import fnmatch
    import re

    (kind, body), = clause.items()
    if kind == "match_all":
        return True
    if kind == "match_none":
        return False
    if kind == "bool":
        ok = all(es_matches(doc, c) for c in body.get("filter", []) + body.get("must", []))
        ok = ok and not any(es_matches(doc, c) for c in body.get("must_not", []))
        if "should" in body:
            ok = ok and any(es_matches(doc, c) for c in body["should"])
        return ok
    if kind == "exists":
        return bool(indexed_values(doc, body["field"]))
    (name, arg), = body.items()
    values = indexed_values(doc, name)
    if kind == "term":
        return arg in values
    if kind == "terms":
        return any(v in arg for v in values)
    if kind == "range":
        ops = {"lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
               "gte": lambda a, b: a >= b}
        return any(all(ops[op](v, bound) for op, bound in arg.items()) for v in values)
    if kind == "prefix":
        return any(v.startswith(arg["value"]) for v in values)
    if kind == "wildcard":
        pattern = re.sub(r"\\(.)", lambda m: "[" + m.group(1) + "]" if m.group(1) in "*?" else re.escape(m.group(1)),
                         arg["value"])
        return any(fnmatch.fnmatchcase(v, pattern) for v in values)
    raise AssertionError(f"unexpected clause {clause}")


SAMPLE_DATA: list[dict[str, Any]] = [
    {"page": "home", "ms": 12, "tags": ["a", "b"], "ok": True, "cart": {"total": 9.5, "items": [{"sku": "x"}]}},
    {"page": "pricing", "ms": 3.5, "tags": ["b"], "ok": False, "cart": {"total": 20}},
    {"page": "", "ms": "12", "tags": [], "ok": None, "cart": {}},
    {"ms": [1, 40, "x"], "tags": [None], "page": ["home", 7]},
    {"page": "a*b?c", "ms": None, "odd.key": 1, "cart": None},
    {},
]
SAMPLE_FILTERS = [
    Filter(f, op, v)
    for f in ("data.page", "data.ms", "data.tags", "data.ok", "data.cart", "data.cart.total", "data.cart.items",
              "data.cart.items.sku", "data.nothing", "data.odd.key", "user_id", "type", "timestamp")
    for op, v in (("eq", "home"), ("eq", 12), ("eq", True), ("eq", None), ("eq", ""), ("ne", "home"),
                  ("ne", 12), ("ne", None), ("in", ["b", 7, None]), ("not_in", ["a", 40]), ("lt", 12),
                  ("gte", 12), ("gt", "h"), ("lte", ""), ("lt", None), ("exists", None), ("prefix", "ho"),
                  ("prefix", 1), ("contains", "*b?"), ("contains", "ic"), ("contains", ""), ("gt", False),
                  ("eq", 1_700_000_000_002), ("lt", 1_700_000_000_002), ("in", ["click", "view"]))
]


def sample_events() -> list[Event]:
    """Events covering strings, numbers, booleans, arrays, objects, nulls and missing fields."""
    return [event(id=f"e{i}", data=data, timestamp=1_700_000_000_000 + i, type=("click", "view")[i % 2],
                  user_id=(None, "u1", "u2")[i % 3])
            for i, data in enumerate(SAMPLE_DATA)]


def test_filter_translation_agrees_with_the_reference_backend() -> None:
    docs = [(e, event_document(e, i)) for i, e in enumerate(sample_events())]
    disagreements = []
    for flt in SAMPLE_FILTERS:
        dsl = filter_dsl(flt)
        for e, doc in docs:
            expected = semantics.value_matches(semantics.field_raw(e, flt.field), flt.op, flt.value)
            if es_matches(doc, dsl) != expected:
                disagreements.append((flt, e.id, expected))
    assert disagreements == []


CONDITION_TREES = [
    AnyOf((Filter("data.page", "eq", "home"), Filter("data.ms", "gt", 5))),
    Not(Filter("data.page", "eq", "home")),
    AllOf((Not(Filter("data.ms", "exists")), AnyOf((Filter("type", "eq", "click"), Filter("user_id", "eq", "u1"))))),
    Not(AnyOf((Filter("data.tags", "in", ["a", "b"]), Not(Filter("data.ok", "eq", 1))))),
    AnyOf(()),
    AllOf(()),
    Not(AllOf(())),
    AllOf((Filter("data.page", "eq", 7), Filter("data.nope", "ne", 1))),
]


@pytest.mark.parametrize("tree", CONDITION_TREES, ids=[f"tree{i}" for i in range(len(CONDITION_TREES))])
def test_condition_trees_agree_with_the_reference_semantics(tree: Any) -> None:
    matches = semantics.compile_condition(tree)
    docs = [(e, event_document(e, i)) for i, e in enumerate(sample_events())]
    dsl = condition_dsl(tree)
    assert [e.id for e, doc in docs if es_matches(doc, dsl)] == [e.id for e, _ in docs if matches(e)]
    assert query_filter_dsl(query(filters=(tree,)))["bool"]["filter"][-1] == dsl


def es_sort_key(doc: dict[str, Any], keys: list[dict[str, Any]]) -> list[Any]:
    """What Elasticsearch sorts `doc` by for our sort keys (min/max of arrays, custom missing values)."""
    out = []
    for key in keys:
        (name, spec), = key.items()
        values = indexed_values(doc, name)
        descending = spec["order"] == "desc"
        value = (max if descending else min)(values) if values else spec.get("missing")
        out.append(value)
    return out


def es_order(docs: list[dict[str, Any]], keys: list[dict[str, Any]]) -> list[str]:
    """Document ids in the order Elasticsearch returns them for `keys`."""
    ordered = list(docs)
    for i in range(len(keys) - 1, -1, -1):
        (_name, spec), = keys[i].items()
        ordered.sort(key=lambda d, i=i: es_sort_key(d, keys)[i], reverse=spec["order"] == "desc")
    return [d["id"] for d in ordered]


@pytest.mark.parametrize("sort", [(Sort("data.page"),), (Sort("data.page", True),), (Sort("data.ms"),),
                                  (Sort("data.ms", True),), (Sort("data.cart.total"),), (Sort("user_id"),),
                                  (Sort("user_id", True), Sort("timestamp")), (Sort("type"), Sort("data.ok", True)),
                                  (Sort("timestamp", True),), ()])
def test_sort_translation_agrees_with_the_reference_backend(sort: tuple[Sort, ...]) -> None:
    memory = pytest.importorskip("backends.memory")
    # Mixed string/number arrays and "" values are documented divergences; leave them out here.
    data = [d for d in SAMPLE_DATA if d.get("page") not in ("", ["home", 7])]
    events = [event(id=f"e{i}", data=d, timestamp=1_700_000_000_000 + i % 2, type=("click", "view")[i % 2],
                    user_id=(None, "u1", "u2")[i % 3]) for i, d in enumerate(data * 2)]
    reference = memory.MemoryBackend()
    reference.create_stream(Stream("acme", "elastic_analytics", "clicks"))
    reference.append(events)
    expected = [e.id for e in reference.query(query(sort=sort, limit=100)).events]
    docs = [event_document(e, seq) for seq, e in enumerate(events)]
    assert es_order(docs, sort_dsl(sort)) == expected


def es_aggregate(dsl: dict[str, Any], docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The response Elasticsearch would give for our aggregation DSL over `docs` (values as doubles)."""
    from backends.elasticsearch import CALENDAR
    from gateway.query.aggregate import percentile
    from gateway.query.calendar import bucket_start

    calendar = {v: k for k, v in CALENDAR.items()}
    out: dict[str, Any] = {}
    for name, body in dsl.items():
        kind = next(k for k in body if k != "aggs")
        spec = body[kind]
        if kind == "filter":
            out[name] = {"doc_count": sum(es_matches(d, spec) for d in docs)}
            continue

        def doc_values(d: dict[str, Any], field: str = spec["field"]) -> list[Any]:
            values = indexed_values(d, field)
            return [float(v) for v in values] if field.startswith(NUM_COLUMN) else values

        values = [v for d in docs for v in doc_values(d)]
        if kind == "stats":
            out[name] = ({"count": len(values), "min": min(values), "max": max(values), "sum": sum(values),
                          "avg": sum(values) / len(values)} if values else
                         {"count": 0, "min": None, "max": None, "avg": None, "sum": 0.0})
        elif kind == "cardinality":
            out[name] = {"value": len(set(values))}
        elif kind == "percentiles":
            out[name] = {"values": [{"key": p, "value": percentile(sorted(values), p)} for p in spec["percents"]]}
        else:
            groups: dict[Any, list[dict[str, Any]]] = {}
            for d in docs:
                for v in set(doc_values(d)):
                    if kind == "date_histogram":
                        interval = spec.get("calendar_interval")
                        v = bucket_start(v, calendar[interval] if interval else int(spec["fixed_interval"][:-2]))
                    groups.setdefault(v, []).append(d)
            if kind == "terms":
                keys = sorted(groups, key=lambda k: (-len(groups[k]), k))[: spec["size"]]
            else:
                keys = sorted(groups)
            out[name] = {"buckets": [{"key": k, "doc_count": len(groups[k]),
                                      **es_aggregate(body.get("aggs", {}), groups[k])} for k in keys]}
    return out


def test_aggregation_translation_agrees_with_the_reference_backend() -> None:
    data = [{"page": "home", "ms": 12, "ok": True, "tags": ["a", "b"], "at": 1_700_000_000_000},
            {"page": "home", "ms": 4, "ok": False, "tags": ["b"], "at": 1_700_090_000_000},
            {"page": "pricing", "ms": [1, 2], "tags": [], "at": 1_702_000_000_000},
            {"page": 7, "ms": "12", "ok": True, "at": "soon"},
            {"page": ["home", 7], "ms": None},
            {}]
    events = [event(id=f"e{i}", data=d, timestamp=1_700_000_000_000 + i * 40_000_000, type=("click", "view")[i % 2],
                    user_id=(None, "u1", "u2")[i % 3]) for i, d in enumerate(data)]
    sub = (Aggregation("n", "count"), Aggregation("ms", "sum", "data.ms"), Aggregation("pages", "distinct_count",
                                                                                        "data.page"))
    aggs = (
        Aggregation("events", "count"), Aggregation("with_ms", "count", "data.ms"),
        Aggregation("with_tags", "count", "data.tags"), Aggregation("with_user", "count", "user_id"),
        Aggregation("total", "sum", "data.ms"), Aggregation("mean", "avg", "data.ms"),
        Aggregation("low", "min", "data.ms"), Aggregation("high", "max", "timestamp"),
        Aggregation("oks", "sum", "data.ok"), Aggregation("none", "max", "data.nothing"),
        Aggregation("kw", "avg", "type"),
        Aggregation("users", "distinct_count", "user_id"), Aggregation("pages", "distinct_count", "data.page"),
        Aggregation("p", "percentiles", "data.ms", percents=(0, 25, 50, 90, 100)),
        Aggregation("by_page", "terms", "data.page", size=2, aggs=sub),
        Aggregation("by_page_all", "terms", "data.page", aggs=sub),
        Aggregation("by_ok", "terms", "data.ok"),
        Aggregation("by_type", "terms", "type", aggs=(Aggregation("by_tag", "terms", "data.tags"),)),
        Aggregation("per_hour", "date_histogram", interval="hour", aggs=sub),
        Aggregation("per_day", "date_histogram", interval="day",
                    aggs=(Aggregation("types", "terms", "type", aggs=sub),)),
        Aggregation("per_week", "date_histogram", interval="week"),
        Aggregation("per_month", "date_histogram", "data.at", interval="month"),
        Aggregation("per_15m", "date_histogram", interval=900_000),
        Aggregation("kw_hist", "date_histogram", "type", interval="day"),
    )
    docs = [event_document(e, seq) for seq, e in enumerate(events)]
    translated = agg_results(aggs, es_aggregate(aggs_dsl(aggs), docs))
    expected = aggregate(events, aggs)
    assert translated == expected
    assert translated["by_page"] == [{"key": "home", "count": 3, "n": 3, "ms": 16.0, "pages": 2},
                                     {"key": 7, "count": 2, "n": 2, "ms": None, "pages": 2}]


class ForbiddenAdminClient:
    """A client whose key may read and write documents but not read cluster info nor manage indices."""

    def __init__(self) -> None:
        self.indices = self

    def options(self, **kwargs: Any) -> ForbiddenAdminClient:
        return self

    def info(self) -> dict[str, Any]:
        raise api_error(403, "security_exception")

    def exists(self, index: str) -> bool:
        raise api_error(403, "security_exception")

    def search(self, **kwargs: Any) -> dict[str, Any]:
        return search_response([], 0)


def test_least_privilege_key_works_with_indices_made_by_the_operator(caplog: pytest.LogCaptureFixture) -> None:
    backend = ElasticsearchBackend("elasticsearch://es")
    backend._client = ForbiddenAdminClient()  # type: ignore[assignment]
    assert backend.health() == {"backend": "elasticsearch", "hosts": ["http://es:9200"],
                                "index_prefix": "event-gateway"}
    assert backend.query(query()).events == []
    assert "assuming it exists" in caplog.text
