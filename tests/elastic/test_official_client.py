"""The official `elasticsearch` Python client against a real `event-gateway serve` (2 workers, SQLite).

One server for the module; each test starts and ends with no collections in either tenant. Accepted
events are read back from the SQLite file with `backends.sqlite.SQLiteBackend`, so "202" is checked
against what was really stored. Expected bodies, reasons and enriched documents are written from the
vendor notes (§1-§4) and the seed document, never copied from a gateway response.

The module runs with the 8.x client of the test extra, and again with the 9.x client in a subprocess whose
``PYTHONPATH`` starts with a ``pip --target`` directory (test_official_client_9.py): the same test body for
both majors. ``EVENT_GATEWAY_TEST_ES_CLIENT`` names that directory and the major it must hold; the server
is started without it, so only the client changes.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import elasticsearch
import pytest
import requests
from elasticsearch import (
    AuthenticationException,
    AuthorizationException,
    BadRequestError,
    Elasticsearch,
    NotFoundError,
)
from support import SECRETS, RunningServer, api_key, base_config, start_server, write_config

from backends.sqlite import SQLiteBackend
from gateway.query import Query

#: "<major>:<directory>" when the client comes from a `pip --target` directory (see test_official_client_9.py)
CLIENT_UNDER_TEST = os.environ.get("EVENT_GATEWAY_TEST_ES_CLIENT", "")
PLUGIN = "elastic_analytics"
PREFIX = "behavioral_analytics-events-"
CLIENT_MAJOR = elasticsearch.__versionstr__.split(".")[0]
COMPAT_TYPE = f"application/vnd.elasticsearch+json;compatible-with={CLIENT_MAJOR}"
FORWARDED = {"X-Forwarded-For": "192.23.12.12, 10.0.0.1", "User-Agent": "Mozilla/5.0"}

#: The search_click example of the "Post Event to an Analytics Collection" page, verbatim.
DOC_EXAMPLE_SEARCH_CLICK = {
    "session": {
        "id": "1797ca95-91c9-4e2e-b1bd-9c38e6f386a9"
    },
    "user": {
        "id": "5f26f01a-bbee-4202-9298-81261067abbd"
    },
    "search": {
        "query": "search term",
        "results": {
            "items": [
                {
                    "document": {
                        "id": "123",
                        "index": "products"
                    }
                }
            ],
            "total_results": 10
        },
        "sort": {
            "name": "relevance"
        },
        "search_application": "website"
    },
    "document": {
        "id": "123",
        "index": "products"
    }
}

#: The notes' example bodies (§2.2) and the parts of the stored document expected beyond the payload.
PAGE_VIEW = {"session": {"id": "123"}, "user": {"id": "456"},
             "page": {"url": "https://www.elastic.co", "title": "Elastic - Homepage",
                      "referrer": "http://anotherdomain.com/homepage"},
             "document": {"id": "doc-1", "index": "search-index"}}
SEARCH = {"session": {"id": "123"}, "user": {"id": "456"},
          "search": {"query": "test-query", "search_application": "my-search-application",
                     "sort": {"name": "price", "direction": "desc"},
                     "filters": {"brand": "elastic", "products": ["elasticsearch", "kibana"], "rating": "[3-5]"},
                     "page": {"current": 1, "size": 10},
                     "results": {"total_results": 150, "items": [
                         {"document": {"id": "doc-1"}},
                         {"document": {"id": "doc-2", "index": "my-search-index"}},
                         {"page": {"url": "https://www.elastic.co"}},
                         {"page": {"url": "https://www.elastic.co/doc/getting-stared"},
                          "document": {"id": "getting-started", "index": "elastic-documentation-en"}}]}}}
SEARCH_FILTERS_NORMALISED = {"brand": ["elastic"], "products": ["elasticsearch", "kibana"], "rating": ["[3-5]"]}
SEARCH_CLICK = {"session": {"id": "123"}, "user": {"id": "456"}, "document": {"id": "doc-1"},
                "page": {"url": "https://www.elastic.co"}, "search": {"query": "test-query"}}


# -- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def server_and_db(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    tmp = tmp_path_factory.mktemp("es-client")
    config = base_config(tmp)
    env = None
    if CLIENT_UNDER_TEST:  # the server runs on the gateway's own dependencies, without the client's directory
        client_dir = CLIENT_UNDER_TEST.partition(":")[2]
        kept = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p and p != client_dir]
        env = {"PYTHONPATH": os.pathsep.join(kept)}
    server = start_server(write_config(tmp / "gateway.toml", config), workers=2, env=env)
    try:
        yield server, tmp / "events.db"
    finally:
        server.stop()


@pytest.fixture(scope="module")
def server(server_and_db: tuple[RunningServer, Path]) -> RunningServer:
    return server_and_db[0]


@pytest.fixture(scope="module")
def backend(server_and_db: tuple[RunningServer, Path]) -> Iterator[SQLiteBackend]:
    store = SQLiteBackend(f"sqlite:///{server_and_db[1]}")
    yield store
    store.close()


def make_client(server: RunningServer, **auth: Any) -> Elasticsearch:
    return Elasticsearch(server.url, request_timeout=15, max_retries=0, retry_on_status=(), **auth)


@pytest.fixture(scope="module")
def admin(server: RunningServer) -> Iterator[Elasticsearch]:
    client = make_client(server, api_key=api_key("admin"))
    yield client
    client.close()


@pytest.fixture(scope="module")
def other(server: RunningServer) -> Iterator[Elasticsearch]:
    """Credential `other` of tenant globex."""
    client = make_client(server, api_key=("other", SECRETS["other"]))
    yield client
    client.close()


def _drop_all(client: Elasticsearch) -> None:
    for name in client.search_application.get_behavioral_analytics().body:
        client.search_application.delete_behavioral_analytics(name=name)


@pytest.fixture(autouse=True)
def clean(admin: Elasticsearch, other: Elasticsearch) -> Iterator[None]:
    """No collections in either tenant before and after each test."""
    _drop_all(admin)
    _drop_all(other)
    yield
    _drop_all(admin)
    _drop_all(other)


def stored(backend: SQLiteBackend, collection: str | None = None, tenant: str = "acme") -> list[Any]:
    streams = None if collection is None else (collection,)
    return backend.query(Query(tenant=tenant, plugin=PLUGIN, streams=streams, limit=10_000)).events


def data_stream(name: str) -> dict[str, Any]:
    return {"event_data_stream": {"name": PREFIX + name}}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def test_the_client_is_the_one_asked_for() -> None:
    """8.x from the test extra, or the major the 9.x run asked for (so that run cannot silently test 8.x)."""
    wanted = CLIENT_UNDER_TEST.partition(":")[0] or "8"
    assert wanted == CLIENT_MAJOR
    if CLIENT_UNDER_TEST:
        assert elasticsearch.__file__.startswith(CLIENT_UNDER_TEST.partition(":")[2])


# -- Elasticsearch's root ----------------------------------------------------------------------------------
def test_info_and_ping(admin: Elasticsearch) -> None:
    """`es.info()` is `GET /`, `es.ping()` is `HEAD /` (issue 10 item 9: both were 404s)."""
    info = admin.info()
    assert info.meta.status == 200
    assert info.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert info.meta.headers["Content-Type"] == COMPAT_TYPE
    assert info["tagline"] == "You Know, for Search"
    assert info["version"]["number"].split(".")[0] == "9"
    assert info["version"]["build_flavor"] == "default"
    assert {"name", "cluster_name", "cluster_uuid"} <= set(info.body)
    assert admin.ping() is True


def test_info_needs_credentials_and_the_monitor_grant(server: RunningServer) -> None:
    with pytest.raises(AuthenticationException) as missing:
        make_client(server).info()
    assert missing.value.body["error"]["reason"] == "missing authentication credentials for REST request [/]"
    with pytest.raises(AuthorizationException) as forbidden:
        make_client(server, api_key=api_key("tracker")).info()
    assert forbidden.value.body["error"]["reason"] == ("action [cluster:monitor/main] is unauthorized for "
                                                       "API key id [tracker]")
    assert make_client(server).ping() is False  # the client's ping() is False on any error


def test_api_key_without_id_is_invalid(server: RunningServer) -> None:
    import base64

    client = make_client(server, api_key=base64.b64encode(SECRETS["admin"].encode()).decode())
    with pytest.raises(AuthenticationException) as info:
        client.search_application.get_behavioral_analytics()
    assert info.value.body["error"]["reason"] == "error attempting to authenticate request"
    assert info.value.body["error"]["caused_by"] == {"type": "illegal_argument_exception",
                                                     "reason": "invalid ApiKey value"}


# -- collections ---------------------------------------------------------------------------------------
def test_put_collection_is_201_acknowledged(admin: Elasticsearch, backend: SQLiteBackend) -> None:
    response = admin.search_application.put_behavioral_analytics(name="shop")
    assert response.meta.status == 201
    assert response.body == {"acknowledged": True, "name": "shop"}
    assert response.meta.headers["Location"] == "/_application/analytics/shop"
    assert response.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert [s.name for s in backend.list_streams("acme", PLUGIN)] == ["shop"]


def test_put_existing_collection_is_bad_request(admin: Elasticsearch) -> None:
    admin.search_application.put_behavioral_analytics(name="shop")
    with pytest.raises(BadRequestError) as info:
        admin.search_application.put_behavioral_analytics(name="shop")
    error = info.value
    assert error.status_code == 400
    assert error.body["error"]["type"] == "resource_already_exists_exception"
    assert error.body["error"]["reason"] == "analytics collection [shop] already exists"
    assert error.message == "resource_already_exists_exception"


def test_get_with_no_collections_is_empty_object(admin: Elasticsearch) -> None:
    response = admin.search_application.get_behavioral_analytics()
    assert response.meta.status == 200
    assert response.body == {}


def test_get_collections(admin: Elasticsearch) -> None:
    names = ["shop-books", "shop-music", "blog"]
    for name in names:
        admin.search_application.put_behavioral_analytics(name=name)
    get = admin.search_application.get_behavioral_analytics
    assert get().body == {name: data_stream(name) for name in names}
    assert get(name="*").body == {name: data_stream(name) for name in names}
    assert get(name="blog").body == {"blog": data_stream("blog")}
    assert get(name=["blog", "shop-music"]).body == {"blog": data_stream("blog"),
                                                     "shop-music": data_stream("shop-music")}
    assert get(name="shop-*").body == {"shop-books": data_stream("shop-books"),
                                       "shop-music": data_stream("shop-music")}
    assert get(name=["shop-b*", "blog"]).body == {"shop-books": data_stream("shop-books"),
                                                  "blog": data_stream("blog")}
    assert get(name="nothing-*").body == {}  # a wildcard matching nothing is not an error


@pytest.mark.parametrize("name", ["ghost", ["blog", "ghost"]])
def test_get_missing_exact_name_is_not_found(admin: Elasticsearch, name: Any) -> None:
    admin.search_application.put_behavioral_analytics(name="blog")
    with pytest.raises(NotFoundError) as info:
        admin.search_application.get_behavioral_analytics(name=name)
    assert info.value.status_code == 404
    assert info.value.body["error"]["type"] == "resource_not_found_exception"
    assert info.value.body["error"]["reason"] == "no such analytics collection [ghost] "  # ES's trailing space
    assert info.value.meta.headers["X-Elastic-Product"] == "Elasticsearch"


def test_delete_collection(admin: Elasticsearch, backend: SQLiteBackend) -> None:
    search_app = admin.search_application
    search_app.put_behavioral_analytics(name="shop")
    search_app.put_behavioral_analytics(name="blog")
    search_app.post_behavioral_analytics_event(collection_name="shop", event_type="page_view",
                                               payload=PAGE_VIEW)
    assert len(stored(backend, "shop")) == 1
    response = search_app.delete_behavioral_analytics(name="shop")
    assert response.meta.status == 200
    assert response.body == {"acknowledged": True}
    assert search_app.get_behavioral_analytics().body == {"blog": data_stream("blog")}
    with pytest.raises(NotFoundError):
        search_app.get_behavioral_analytics(name="shop")
    with pytest.raises(NotFoundError) as info:
        search_app.delete_behavioral_analytics(name="shop")
    assert info.value.body["error"]["type"] == "resource_not_found_exception"
    assert info.value.body["error"]["reason"] == "analytics collection [shop] does not exists"
    search_app.put_behavioral_analytics(name="shop")  # a new collection of the same name starts empty
    assert stored(backend, "shop") == []


# -- events --------------------------------------------------------------------------------------------
def _expected_document(event_type: str, collection: str, payload: dict[str, Any]) -> dict[str, Any]:
    """The enriched document of notes §2.3, without @timestamp (checked against the clock)."""
    doc = copy.deepcopy(payload)
    if "filters" in doc.get("search", {}):
        doc["search"]["filters"] = {k: [v] if isinstance(v, str) else v for k, v in doc["search"]["filters"].items()}
    doc["session"] = {**doc["session"], "ip": "192.23.12.12", "user_agent": "Mozilla/5.0"}
    doc["event"] = {"action": event_type}
    doc["data_stream"] = {"type": "behavioral_analytics", "dataset": "events", "namespace": collection}
    return doc


@pytest.mark.parametrize("event_type, payload", [
    ("page_view", PAGE_VIEW),
    ("search", SEARCH),
    ("search_click", SEARCH_CLICK),
    ("search_click", DOC_EXAMPLE_SEARCH_CLICK),
], ids=["page_view", "search", "search_click", "doc-example-search_click"])
def test_post_event_with_debug(admin: Elasticsearch, backend: SQLiteBackend, event_type: str,
                               payload: dict[str, Any]) -> None:
    admin.search_application.put_behavioral_analytics(name="my_analytics_collection")
    before = now_ms()
    response = admin.options(headers=FORWARDED).search_application.post_behavioral_analytics_event(
        collection_name="my_analytics_collection", event_type=event_type, payload=payload, debug=True)
    after = now_ms()
    assert response.meta.status == 202
    assert response.body["accepted"] is True
    event = dict(response.body["event"])
    timestamp = event.pop("@timestamp")
    assert isinstance(timestamp, int) and not isinstance(timestamp, bool)
    assert before - 1000 <= timestamp <= after + 1000  # epoch millis of receipt (allow clock granularity)
    assert event == _expected_document(event_type, "my_analytics_collection", payload)
    if event_type == "search":
        assert event["search"]["filters"] == SEARCH_FILTERS_NORMALISED

    [row] = stored(backend, "my_analytics_collection")
    assert row.type == event_type
    assert row.stream == "my_analytics_collection"
    assert row.user_id == payload["user"]["id"]
    assert row.session_id == payload["session"]["id"]
    assert row.timestamp == timestamp
    assert row.data == response.body["event"]


def test_post_event_without_debug(admin: Elasticsearch, backend: SQLiteBackend) -> None:
    admin.search_application.put_behavioral_analytics(name="shop")
    for n in range(3):
        response = admin.search_application.post_behavioral_analytics_event(
            collection_name="shop", event_type="search", payload={**SEARCH, "user": {"id": f"u{n}"}})
        assert response.meta.status == 202
        assert response.body == {"accepted": True}
    rows = stored(backend, "shop")
    assert sorted(row.user_id for row in rows) == ["u0", "u1", "u2"]
    assert {row.type for row in rows} == {"search"}
    # without X-Forwarded-For the peer address is used, and the client's own User-Agent
    assert {row.data["session"]["ip"] for row in rows} == {"127.0.0.1"}
    assert all(row.data["session"]["user_agent"].startswith(f"elasticsearch-py/{elasticsearch.__versionstr__}")
               for row in rows)


def test_post_event_with_body_parameter(admin: Elasticsearch, backend: SQLiteBackend) -> None:
    """`body=` is the other spelling of `payload=` in the client."""
    admin.search_application.put_behavioral_analytics(name="shop")
    admin.search_application.post_behavioral_analytics_event(collection_name="shop", event_type="search_click",
                                                             body=DOC_EXAMPLE_SEARCH_CLICK)
    [row] = stored(backend, "shop")
    assert row.user_id == "5f26f01a-bbee-4202-9298-81261067abbd"


def test_post_event_to_missing_collection_is_not_found(admin: Elasticsearch, backend: SQLiteBackend) -> None:
    with pytest.raises(NotFoundError) as info:
        admin.search_application.post_behavioral_analytics_event(
            collection_name="ghost", event_type="page_view", payload=PAGE_VIEW)
    assert info.value.body["error"]["type"] == "resource_not_found_exception"
    assert info.value.body["error"]["reason"] == "no such analytics collection [ghost]"
    assert stored(backend) == []


def _without(body: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != key}


BAD_EVENTS = [
    ("invalid-event-type", "nonexistent-event-type", PAGE_VIEW, "action_request_validation_exception"),
    ("missing-page", "page_view", _without(PAGE_VIEW, "page"), "illegal_argument_exception"),
    ("missing-session", "search", _without(SEARCH, "session"), "illegal_argument_exception"),
    ("click-without-document-or-page", "search_click", _without(_without(SEARCH_CLICK, "document"), "page"),
     "illegal_argument_exception"),
    ("blank-session-id", "page_view", {**PAGE_VIEW, "session": {"id": "  "}}, "x_content_parse_exception"),
    ("blank-user-id", "search", {**SEARCH, "user": {"id": ""}}, "x_content_parse_exception"),
    ("unknown-top-level-field", "page_view", {**PAGE_VIEW, "unknown_field": 1}, "x_content_parse_exception"),
    ("unknown-nested-field", "page_view", {**PAGE_VIEW, "page": {"url": "u", "color": "red"}},
     "x_content_parse_exception"),
    ("bad-filter-value", "search", {**SEARCH, "search": {"query": "q", "filters": {"brand": 5}}},
     "x_content_parse_exception"),
    ("negative-page", "search", {**SEARCH, "search": {"query": "q", "page": {"current": -1, "size": 10}}},
     "x_content_parse_exception"),
    ("wrong-value-type", "page_view", {**PAGE_VIEW, "user": {"id": 456}}, "x_content_parse_exception"),
    ("search-with-page", "search", {**SEARCH, "page": {"url": "u"}}, "x_content_parse_exception"),
    ("array-for-object", "page_view", {**PAGE_VIEW, "user": ["456"]}, "x_content_parse_exception"),
]
XFAIL_CASES: dict = {}


@pytest.mark.parametrize("event_type, payload, es_type", [
    pytest.param(*case[1:], id=case[0], marks=[XFAIL_CASES[case[0]]] if case[0] in XFAIL_CASES else [])
    for case in BAD_EVENTS
])
def test_bad_event_is_bad_request(admin: Elasticsearch, backend: SQLiteBackend, event_type: str,
                                  payload: dict[str, Any], es_type: str) -> None:
    admin.search_application.put_behavioral_analytics(name="shop")
    with pytest.raises(BadRequestError) as info:
        admin.search_application.post_behavioral_analytics_event(collection_name="shop", event_type=event_type,
                                                                 payload=payload)
    error = info.value
    assert error.status_code == 400
    assert error.body["status"] == 400
    assert error.body["error"]["type"] == es_type
    assert error.message == es_type
    assert error.meta.headers["X-Elastic-Product"] == "Elasticsearch"
    assert stored(backend) == []


# -- authentication, authorization, tenants -----------------------------------------------------------------
@pytest.mark.parametrize("auth", [
    {},
    {"api_key": ("admin", "not-the-secret")},
    {"api_key": ("nobody", "whatever-secret")},
    {"basic_auth": ("admin", "wrong-password")},
    {"bearer_auth": "not-a-known-token"},
], ids=["none", "wrong-secret", "unknown-id", "wrong-basic", "wrong-bearer"])
def test_missing_or_wrong_credentials(server: RunningServer, admin: Elasticsearch, backend: SQLiteBackend,
                                      auth: dict[str, Any]) -> None:
    admin.search_application.put_behavioral_analytics(name="shop")
    client = make_client(server, **auth)
    calls = [
        lambda: client.search_application.put_behavioral_analytics(name="new"),
        lambda: client.search_application.get_behavioral_analytics(),
        lambda: client.search_application.delete_behavioral_analytics(name="shop"),
        lambda: client.search_application.post_behavioral_analytics_event(
            collection_name="shop", event_type="page_view", payload=PAGE_VIEW),
    ]
    for call in calls:
        with pytest.raises(AuthenticationException) as info:
            call()
        assert info.value.status_code == 401
        assert info.value.body["error"]["type"] == "security_exception"
        assert "WWW-Authenticate" in info.value.meta.headers
    assert admin.search_application.get_behavioral_analytics().body == {"shop": data_stream("shop")}
    assert stored(backend) == []


def test_credential_without_grant_is_forbidden(server: RunningServer, admin: Elasticsearch,
                                               backend: SQLiteBackend) -> None:
    admin.search_application.put_behavioral_analytics(name="shop")
    tracker = make_client(server, api_key=api_key("tracker"))  # post_event only
    reader = make_client(server, api_key=api_key("reader"))  # manage of collection "nothing" only
    forbidden = [
        lambda: tracker.search_application.put_behavioral_analytics(name="new"),
        lambda: tracker.search_application.get_behavioral_analytics(),
        lambda: tracker.search_application.delete_behavioral_analytics(name="shop"),
        lambda: reader.search_application.post_behavioral_analytics_event(
            collection_name="shop", event_type="page_view", payload=PAGE_VIEW),
        lambda: reader.search_application.put_behavioral_analytics(name="shop2"),
        lambda: reader.search_application.delete_behavioral_analytics(name="shop"),
    ]
    for call in forbidden:
        with pytest.raises(AuthorizationException) as info:
            call()
        assert info.value.status_code == 403
        assert info.value.body["error"]["type"] == "security_exception"
    assert admin.search_application.get_behavioral_analytics().body == {"shop": data_stream("shop")}
    assert stored(backend) == []
    # the tracker may post events
    response = tracker.search_application.post_behavioral_analytics_event(
        collection_name="shop", event_type="page_view", payload=PAGE_VIEW)
    assert response.meta.status == 202
    assert len(stored(backend, "shop")) == 1


@pytest.mark.parametrize("auth", [
    {"api_key": api_key("admin")},
    {"api_key": ("admin", SECRETS["admin"])},
    {"basic_auth": ("admin", SECRETS["admin"])},
    {"bearer_auth": SECRETS["admin"]},
], ids=["api_key-encoded", "api_key-tuple", "basic_auth", "bearer_auth"])
def test_auth_variants(server: RunningServer, backend: SQLiteBackend, auth: dict[str, Any]) -> None:
    client = make_client(server, **auth)
    assert client.search_application.put_behavioral_analytics(name="shop").meta.status == 201
    assert client.search_application.get_behavioral_analytics(name="shop").body == {"shop": data_stream("shop")}
    response = client.search_application.post_behavioral_analytics_event(
        collection_name="shop", event_type="search_click", payload=SEARCH_CLICK)
    assert response.meta.status == 202
    [row] = stored(backend, "shop")
    assert (row.tenant, row.type, row.user_id, row.session_id) == ("acme", "search_click", "456", "123")
    assert client.search_application.delete_behavioral_analytics(name="shop").body == {"acknowledged": True}


def test_tenant_isolation(admin: Elasticsearch, other: Elasticsearch, backend: SQLiteBackend) -> None:
    admin.search_application.put_behavioral_analytics(name="acme-only")
    admin.search_application.put_behavioral_analytics(name="shared")
    assert other.search_application.get_behavioral_analytics().body == {}
    assert other.search_application.get_behavioral_analytics(name="*").body == {}
    for call in (
        lambda: other.search_application.get_behavioral_analytics(name="acme-only"),
        lambda: other.search_application.delete_behavioral_analytics(name="acme-only"),
        lambda: other.search_application.post_behavioral_analytics_event(
            collection_name="acme-only", event_type="page_view", payload=PAGE_VIEW),
    ):
        with pytest.raises(NotFoundError):
            call()
    # the same name in another tenant is another collection
    assert other.search_application.put_behavioral_analytics(name="shared").meta.status == 201
    other.search_application.post_behavioral_analytics_event(
        collection_name="shared", event_type="page_view", payload={**PAGE_VIEW, "user": {"id": "globex-user"}})
    assert other.search_application.get_behavioral_analytics().body == {"shared": data_stream("shared")}
    assert admin.search_application.get_behavioral_analytics().body == {
        "acme-only": data_stream("acme-only"), "shared": data_stream("shared")}
    assert stored(backend, tenant="acme") == []
    [row] = stored(backend, "shared", tenant="globex")
    assert row.user_id == "globex-user"
    other.search_application.delete_behavioral_analytics(name="shared")
    assert admin.search_application.get_behavioral_analytics(name="shared").body == {"shared": data_stream("shared")}


# -- media types ---------------------------------------------------------------------------------------
def test_compatible_media_type_round_trip(admin: Elasticsearch, server: RunningServer) -> None:
    """The client sends compatible-with=<major> in Accept and Content-Type; the gateway answers in kind."""
    response = admin.search_application.put_behavioral_analytics(name="shop")
    assert response.meta.headers["Content-Type"] == COMPAT_TYPE
    response = admin.search_application.post_behavioral_analytics_event(
        collection_name="shop", event_type="page_view", payload=PAGE_VIEW)
    assert response.meta.headers["Content-Type"] == COMPAT_TYPE
    with pytest.raises(NotFoundError) as info:
        admin.search_application.get_behavioral_analytics(name="ghost")
    assert info.value.meta.headers["Content-Type"] == COMPAT_TYPE

    headers = {"Authorization": f"ApiKey {api_key('admin')}"}
    url = f"{server.url}/_application/analytics/shop/event/page_view"
    plain = requests.post(url, json=PAGE_VIEW, headers={**headers, "Accept": "application/json"}, timeout=10)
    assert plain.status_code == 202
    assert plain.headers["Content-Type"] == "application/json"
    compat = f"application/vnd.elasticsearch+json; compatible-with={CLIENT_MAJOR}"
    raw = requests.post(url, data=json.dumps(PAGE_VIEW),
                        headers={**headers, "Accept": compat, "Content-Type": compat}, timeout=10)
    assert raw.status_code == 202
    assert raw.headers["Content-Type"] == COMPAT_TYPE
    assert raw.json() == {"accepted": True}
