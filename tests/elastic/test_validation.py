"""Behavioral Analytics request validation, in-process: every rule and check order of the vendor notes §2.

Each failing request is checked for its HTTP status, the ES ``error.type``, a reason that names the
offending field, and that nothing reached the event store. Expected reasons are written from the notes
(ES's ObjectParser messages), never copied from the gateway. Also covered: the REST-layer checks
(Content-Type, missing body, ``source``, ``?debug``, unknown parameters), collection-name rules, CORS
for the browser tracker, and the tracker's ``Apikey`` scheme spelling.
"""

from __future__ import annotations

import base64
import copy
import json
import time
import urllib.parse
from typing import Any

import pytest
from support import api_key

from gateway.query import Query
from gateway.state import get_state

PLUGIN = "elastic_analytics"
COLLECTION = "shop"
AUTH = {"Authorization": f"ApiKey {api_key('admin')}"}
DELETE = object()  # marks a key to remove in `variant`

VALID: dict[str, dict[str, Any]] = {
    "page_view": {"session": {"id": "sess-1"}, "user": {"id": "user-1"},
                  "page": {"url": "https://shop.example/p/1"}},
    "search": {"session": {"id": "sess-1"}, "user": {"id": "user-1"}, "search": {"query": "shoes"}},
    "search_click": {"session": {"id": "sess-1"}, "user": {"id": "user-1"}, "search": {"query": "shoes"},
                     "document": {"id": "doc-1"}},
}
PARSER = {"page_view": "page_view_event", "search": "search_event", "search_click": "search_click_event"}


# -- helpers -----------------------------------------------------------------------------------------
def variant(event_type: str, changes: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of the valid body of `event_type` with dotted paths set (or removed with DELETE).

    Numeric path segments index lists: ``search.results.items.0.foo``.
    """
    body = copy.deepcopy(VALID[event_type])
    for path, value in changes.items():
        node: Any = body
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        last = parts[-1]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return body


def stored(app: Any, collection: str | None = None, tenant: str = "acme") -> list[Any]:
    """Every event the app's backend holds for the tenant (optionally one collection)."""
    streams = None if collection is None else (collection,)
    return get_state(app).backend.query(Query(tenant=tenant, plugin=PLUGIN, streams=streams, limit=10_000)).events


def post(client: Any, event_type: str, payload: Any = None, *, collection: str = COLLECTION, params: str = "",
         headers: dict[str, str] | None = None, data: bytes | str | None = None,
         content_type: str | None = "application/json") -> Any:
    """POST an event; `payload` is JSON-encoded unless raw `data` is given."""
    if data is None and payload is not None:
        data = json.dumps(payload)
    kwargs: dict[str, Any] = {"headers": {**AUTH, **(headers or {})}}
    if data is not None:
        kwargs["data"] = data
    if content_type is not None:
        kwargs["content_type"] = content_type
    return client.post(f"/_application/analytics/{collection}/event/{event_type}{params}", **kwargs)


def reasons(body: dict[str, Any]) -> str:
    """Every reason of an ES error body (top, caused_by chain, root causes), one per line."""
    error = body["error"]
    out = [cause["reason"] for cause in error.get("root_cause", [])]
    node = error
    while isinstance(node, dict):
        out.append(node.get("reason", ""))
        node = node.get("caused_by")
    return "\n".join(out)


def assert_es_error(response: Any, status: int, es_type: str) -> dict[str, Any]:
    """The response is the ES error body of `status` with top-level `es_type`; returns the body."""
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = json.loads(response.get_data())
    assert body["status"] == status
    assert body["error"]["type"] == es_type, body
    assert body["error"]["root_cause"], body
    return body


def root_reason(body: dict[str, Any]) -> str:
    return body["error"]["root_cause"][0]["reason"]


@pytest.fixture
def es(app: Any, client: Any) -> Any:
    """The in-process test client, with the collection `shop` created for tenant acme."""
    response = client.put(f"/_application/analytics/{COLLECTION}", headers=AUTH)
    assert response.status_code == 201
    return client


# -- success paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", sorted(VALID))
def test_valid_event_is_accepted_and_stored(app: Any, es: Any, event_type: str) -> None:
    response = post(es, event_type, VALID[event_type])
    assert response.status_code == 202
    assert response.get_json() == {"accepted": True}
    [event] = stored(app, COLLECTION)
    assert (event.type, event.stream, event.user_id, event.session_id) == (event_type, COLLECTION, "user-1", "sess-1")
    for key, value in VALID[event_type].items():
        if key != "session":
            assert event.data[key] == value
    assert event.data["session"]["id"] == "sess-1"


@pytest.mark.parametrize("event_type, changes", [
    ("page_view", {"document": {"id": "doc-9", "index": "products"}}),  # document is optional for page_view
    ("page_view", {"page": {"url": "u", "title": "T", "referrer": "https://ref.example"}}),
    ("search_click", {"document": DELETE, "page": {"url": "https://shop.example/p/2"}}),  # page instead
    ("search_click", {"page": {"url": "https://shop.example/p/2"}}),  # both
    ("search", {"search.query": ""}),  # no blank check on search.query
    ("search", {"search.results": {"items": [{}], "total_results": 0}}),  # items need neither key
    ("search", {"search.page": {"current": 0, "size": 0}}),  # 0 is allowed
    ("search", {"search.sort": {"name": "price", "direction": "sideways"}}),  # direction is free text
    ("search", {"search.search_application": "website"}),
    ("page_view", {"session.id": " padded "}),  # not blank
])
def test_optional_and_edge_values_are_accepted(app: Any, es: Any, event_type: str, changes: dict[str, Any]) -> None:
    body = variant(event_type, changes)
    response = post(es, event_type, body)
    assert response.status_code == 202, response.get_data(as_text=True)
    [event] = stored(app, COLLECTION)
    for key, value in body.items():
        if key != "session":
            assert event.data[key] == value


# -- check order: event type -> collection exists -> body ------------------------------------------------
@pytest.mark.parametrize("event_type", ["nonexistent-event-type", "PAGE_VIEW", "Search", "pageview", "click"])
@pytest.mark.parametrize("collection, payload", [
    (COLLECTION, VALID["page_view"]),
    (COLLECTION, {**VALID["page_view"], "unknown_field": 1}),  # the YAML test: type wins over a bad body
    ("missing", VALID["page_view"]),  # validated before the collection lookup
    ("missing", "{not json"),
])
def test_invalid_event_type_is_checked_first(app: Any, es: Any, event_type: str, collection: str,
                                             payload: Any) -> None:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    response = post(es, event_type, collection=collection, data=data)
    body = assert_es_error(response, 400, "action_request_validation_exception")
    assert f"invalid event type: [{event_type}]" in body["error"]["reason"]
    assert body["error"]["reason"].startswith("Validation Failed: 1: ")
    assert stored(app) == []


@pytest.mark.parametrize("event_type", sorted(VALID))
@pytest.mark.parametrize("data", [
    json.dumps({"unknown_field": True}),
    json.dumps({"session": {"id": ""}}),
    "{not json",
    "[1, 2]",
    json.dumps(VALID["page_view"]),
])
def test_missing_collection_is_checked_before_the_body(app: Any, es: Any, event_type: str, data: str) -> None:
    response = post(es, event_type, collection="ghost", data=data)
    body = assert_es_error(response, 404, "resource_not_found_exception")
    assert body["error"]["reason"].startswith("no such analytics collection [ghost]")
    assert stored(app) == []


# -- required objects per event type ---------------------------------------------------------------------
@pytest.mark.parametrize("event_type, removed, missing_set", [
    ("page_view", ["page"], ["page"]),
    ("page_view", ["session"], ["session"]),
    ("page_view", ["user"], ["user"]),
    ("search", ["search"], ["search"]),
    ("search", ["session"], ["session"]),
    ("search", ["user"], ["user"]),
    ("search_click", ["search"], ["search"]),
    ("search_click", ["session"], ["session"]),
    ("search_click", ["user"], ["user"]),
    ("search_click", ["document"], ["document", "page"]),
])
def test_missing_required_object(app: Any, es: Any, event_type: str, removed: list[str],
                                 missing_set: list[str]) -> None:
    body = variant(event_type, dict.fromkeys(removed, DELETE))
    response = post(es, event_type, body)
    error = assert_es_error(response, 400, "illegal_argument_exception")
    expected = f"Required one of fields [{', '.join(missing_set)}], but none were specified. "
    assert error["error"]["reason"] == expected
    assert stored(app) == []


def test_several_missing_sets_are_all_reported(app: Any, es: Any) -> None:
    response = post(es, "search_click", {"search": {"query": "q"}})
    error = assert_es_error(response, 400, "illegal_argument_exception")
    reason = error["error"]["reason"]
    for group in ("session", "user", "document, page"):
        assert f"Required one of fields [{group}], but none were specified. " in reason
    assert stored(app) == []


@pytest.mark.parametrize("event_type", sorted(VALID))
def test_empty_object_body_is_missing_everything(app: Any, es: Any, event_type: str) -> None:
    error = assert_es_error(post(es, event_type, {}), 400, "illegal_argument_exception")
    assert "Required one of fields [session]" in error["error"]["reason"]
    assert stored(app) == []


@pytest.mark.parametrize("event_type, changes, field", [
    ("page_view", {"page": {}}, "url"),
    ("page_view", {"page": {"title": "only a title"}}, "url"),
    ("page_view", {"session": {}}, "id"),
    ("page_view", {"user": {}}, "id"),
    ("page_view", {"document": {"index": "products"}}, "id"),
    ("search", {"search": {}}, "query"),
    ("search", {"search.sort": {"direction": "asc"}}, "name"),
    ("search", {"search.page": {"current": 1}}, "size"),
    ("search", {"search.page": {"size": 10}}, "current"),
    ("search", {"search.results": {"items": [{"document": {}}]}}, "id"),
    ("search", {"search.results": {"items": [{"page": {"title": "t"}}]}}, "url"),
    ("search_click", {"document": {}}, "id"),
])
def test_missing_required_nested_field(app: Any, es: Any, event_type: str, changes: dict[str, Any],
                                       field: str) -> None:
    response = post(es, event_type, variant(event_type, changes))
    error = assert_es_error(response, 400, "x_content_parse_exception")
    top = next(iter(changes)).split(".")[0]
    assert error["error"]["reason"].endswith(f"failed to parse field [{top}]")
    assert f"Required one of fields [{field}], but none were specified." in root_reason(error)
    assert stored(app) == []


# -- the search event allows only session, user and search --------------------------------------------------
@pytest.mark.parametrize("extra", ["page", "document"])
def test_search_event_rejects_page_and_document(app: Any, es: Any, extra: str) -> None:
    body = variant("search", {extra: {"url": "u"} if extra == "page" else {"id": "d"}})
    error = assert_es_error(post(es, "search", body), 400, "x_content_parse_exception")
    assert f"[search_event] unknown field [{extra}]" in error["error"]["reason"]
    assert stored(app) == []


# -- unknown fields at every level ------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", sorted(VALID))
def test_unknown_top_level_field(app: Any, es: Any, event_type: str) -> None:
    body = variant(event_type, {"unknown_field": "x"})
    error = assert_es_error(post(es, event_type, body), 400, "x_content_parse_exception")
    assert f"[{PARSER[event_type]}] unknown field [unknown_field]" in error["error"]["reason"]
    assert stored(app) == []


NESTED_UNKNOWN = [
    ("page_view", "session.foo"),
    ("page_view", "session.ip"),  # the server adds ip and user_agent; a client may not send them
    ("search", "session.user_agent"),
    ("page_view", "user.foo"),
    ("page_view", "page.foo"),
    ("page_view", "document.foo"),
    ("search", "search.foo"),
    ("search", "search.sort.foo"),
    ("search", "search.page.foo"),
    ("search", "search.results.foo"),
    ("search", "search.results.items.0.foo"),
    ("search", "search.results.items.0.document.foo"),
    ("search", "search.results.items.0.page.foo"),
    ("search_click", "document.foo"),
]


def _nested_bodies(event_type: str, path: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A valid body holding every object on `path`, and the same body with the unknown key at `path`."""
    containers = {"document": {"id": "d"}, "page": {"url": "u"}, "search.sort": {"name": "n"},
                  "search.page": {"current": 1, "size": 1},
                  "search.results": {"items": [{"document": {"id": "d"}, "page": {"url": "u"}}]}}
    valid = variant(event_type, {prefix: value for prefix, value in containers.items()
                                 if path.startswith(prefix + ".")})
    invalid = copy.deepcopy(valid)
    node: Any = invalid
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node[part]
    assert parts[-1] not in node
    node[parts[-1]] = "1.2.3.4" if parts[-1] == "ip" else "x"
    return valid, invalid


@pytest.mark.parametrize("event_type, path", NESTED_UNKNOWN)
def test_unknown_nested_field_is_rejected(app: Any, es: Any, event_type: str, path: str) -> None:
    valid, invalid = _nested_bodies(event_type, path)
    assert_es_error(post(es, event_type, invalid), 400, "x_content_parse_exception")
    assert stored(app) == []
    assert post(es, event_type, valid).status_code == 202  # the same body without the key is fine
    assert len(stored(app)) == 1


@pytest.mark.parametrize("event_type, path", NESTED_UNKNOWN)
def test_unknown_nested_field_is_named_in_the_error(app: Any, es: Any, event_type: str, path: str) -> None:
    """ObjectParser wraps the inner '[<parser>] unknown field [foo]' in 'failed to parse field [<parent>]'."""
    error = assert_es_error(post(es, event_type, _nested_bodies(event_type, path)[1]), 400,
                            "x_content_parse_exception")
    top = path.split(".")[0]
    assert error["error"]["reason"] == f"[{PARSER[event_type]}] failed to parse field [{top}]"
    assert f"unknown field [{path.rsplit('.', 1)[1]}]" in root_reason(error)


# -- blank ids ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type, path, value", [
    ("page_view", "session.id", ""),
    ("page_view", "session.id", "   "),
    ("page_view", "user.id", ""),
    ("search", "user.id", "\t "),
    ("page_view", "document.id", ""),
    ("search_click", "document.id", " "),
    ("search", "search.sort.name", ""),
    ("search", "search.results.items.0.document.id", ""),
])
def test_blank_id_is_rejected(app: Any, es: Any, event_type: str, path: str, value: str) -> None:
    leaf = path.rsplit(".", 1)[1]
    changes: dict[str, Any] = {}
    if path.startswith("search.results"):
        changes["search.results"] = {"items": [{"document": {"id": value}}]}
    elif path.startswith("search.sort"):
        changes["search.sort"] = {"name": value}
    else:
        changes[path] = value
    error = assert_es_error(post(es, event_type, variant(event_type, changes)), 400, "x_content_parse_exception")
    assert error["error"]["root_cause"][0] == {"type": "illegal_argument_exception",
                                               "reason": f"field [{leaf}] can't be blank"}
    assert error["error"]["reason"].endswith(f"failed to parse field [{path.split('.')[0]}]")
    assert stored(app) == []


# -- search.filters ------------------------------------------------------------------------------------
def test_filters_are_normalised_to_arrays(app: Any, es: Any) -> None:
    filters = {"brand": "elastic", "products": ["elasticsearch", "kibana"], "rating": "[3-5]"}
    expected = {"brand": ["elastic"], "products": ["elasticsearch", "kibana"], "rating": ["[3-5]"]}
    response = post(es, "search", variant("search", {"search.filters": filters}), params="?debug=true")
    assert response.status_code == 202
    assert response.get_json()["event"]["search"]["filters"] == expected
    [event] = stored(app, COLLECTION)
    assert event.data["search"]["filters"] == expected


@pytest.mark.parametrize("value", [5, 1.5, True, None, {"nested": "x"}, ["ok", 3], [["x"]]])
def test_bad_filter_value(app: Any, es: Any, value: Any) -> None:
    body = variant("search", {"search.filters": {"category": "a", "brand": value}})
    error = assert_es_error(post(es, "search", body), 400, "x_content_parse_exception")
    assert root_reason(error) == "[brand] must be a string or an array of string."
    assert error["error"]["root_cause"][0]["type"] == "illegal_argument_exception"
    assert "failed to parse field [search]" in error["error"]["reason"]
    assert stored(app) == []


@pytest.mark.parametrize("value", ["brand", ["brand"], 3])
def test_filters_must_be_an_object(app: Any, es: Any, value: Any) -> None:
    error = assert_es_error(post(es, "search", variant("search", {"search.filters": value})), 400,
                            "x_content_parse_exception")
    assert "filters" in reasons(error)
    assert stored(app) == []


# -- pagination and integers -----------------------------------------------------------------------------
@pytest.mark.parametrize("page, field", [
    ({"current": -1, "size": 10}, "current"),
    ({"current": 1, "size": -1}, "size"),
    ({"current": "-2", "size": 10}, "current"),
    ({"current": 0, "size": -100}, "size"),
])
def test_negative_pagination(app: Any, es: Any, page: dict[str, Any], field: str) -> None:
    error = assert_es_error(post(es, "search", variant("search", {"search.page": page})), 400,
                            "x_content_parse_exception")
    assert error["error"]["root_cause"][0] == {"type": "illegal_argument_exception",
                                               "reason": f"field [{field}] must be positive"}
    assert stored(app) == []


def test_numeric_strings_are_accepted_for_integers(app: Any, es: Any) -> None:
    body = variant("search", {"search.page": {"current": "3", "size": "25"},
                              "search.results": {"total_results": "150", "items": []}})
    response = post(es, "search", body, params="?debug=true")
    assert response.status_code == 202, response.get_data(as_text=True)
    search = response.get_json()["event"]["search"]
    assert search["page"] == {"current": 3, "size": 25}
    assert search["results"]["total_results"] == 150
    [event] = stored(app, COLLECTION)
    assert event.data["search"]["page"] == {"current": 3, "size": 25}
    assert event.data["search"]["results"]["total_results"] == 150


@pytest.mark.parametrize("event_type, path, value, token", [
    ("page_view", "user.id", 123, "VALUE_NUMBER"),
    ("page_view", "session.id", True, "VALUE_BOOLEAN"),
    ("page_view", "user.id", None, "VALUE_NULL"),
    ("page_view", "page.url", 5, "VALUE_NUMBER"),
    ("page_view", "page.title", ["a"], "START_ARRAY"),
    ("page_view", "document.index", 1.5, "VALUE_NUMBER"),
    ("search", "search.query", 7, "VALUE_NUMBER"),
    ("search", "search.query", {"q": "x"}, "START_OBJECT"),
    ("search", "search.search_application", False, "VALUE_BOOLEAN"),
    ("search", "search.page.current", True, "VALUE_BOOLEAN"),
    ("search", "search.results.total_results", {"n": 1}, "START_OBJECT"),
])
def test_wrong_value_type(app: Any, es: Any, event_type: str, path: str, value: Any, token: str) -> None:
    changes: dict[str, Any] = {path: value}
    if path.startswith("search.page"):
        changes = {"search.page": {"current": value, "size": 10}}
    elif path.startswith("document"):
        changes = {"document": {"id": "d", "index": value}}
    error = assert_es_error(post(es, event_type, variant(event_type, changes)), 400, "x_content_parse_exception")
    leaf = path.rsplit(".", 1)[1]
    assert f"{leaf} doesn't support values of type: {token}" in root_reason(error)
    assert stored(app) == []


def test_non_numeric_string_for_an_integer_is_rejected(app: Any, es: Any) -> None:
    body = variant("search", {"search.page": {"current": "abc", "size": 10}})
    error = assert_es_error(post(es, "search", body), 400, "x_content_parse_exception")
    assert "current" in reasons(error)
    assert stored(app) == []


@pytest.mark.parametrize("event_type, key, value", [
    ("page_view", "session", "sess-1"),
    ("page_view", "user", 42),
    ("page_view", "page", "https://x"),
    ("search", "search", "shoes"),
    ("search", "search.sort", "price"),
    ("page_view", "user", ["user-1"]),
    ("page_view", "page", []),
    ("search", "search.sort", [{"name": "price"}]),
])
def test_object_field_given_a_non_object(app: Any, es: Any, event_type: str, key: str, value: Any) -> None:
    response = post(es, event_type, variant(event_type, {key: value}))
    error = assert_es_error(response, 400, "x_content_parse_exception")
    assert key.rsplit(".", 1)[-1] in reasons(error)
    assert stored(app) == []


# -- the body as bytes -------------------------------------------------------------------------------
@pytest.mark.parametrize("data", ['{"session": ', "{'single': 'quotes'}", "not json at all", '{"a": 1,}'])
def test_malformed_json(app: Any, es: Any, data: str) -> None:
    response = post(es, "page_view", data=data)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] in ("x_content_parse_exception", "parse_exception")
    assert stored(app) == []


@pytest.mark.parametrize("data", ["[1, 2]", '"a string"', "42", "null"])
def test_body_that_is_not_an_object(app: Any, es: Any, data: str) -> None:
    response = post(es, "page_view", data=data)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] in ("x_content_parse_exception", "parse_exception")
    assert stored(app) == []


def test_invalid_utf8_body(app: Any, es: Any) -> None:
    response = post(es, "page_view", data=b'{"session": {"id": "\xff\xfe"}}')
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] in ("x_content_parse_exception", "parse_exception")
    assert stored(app) == []


@pytest.mark.parametrize("data, key", [
    ('{"session": {"id": "a"}, "session": {"id": "b"}, "user": {"id": "u"}, "page": {"url": "p"}}', "session"),
    ('{"session": {"id": "a", "id": "b"}, "user": {"id": "u"}, "page": {"url": "p"}}', "id"),
])
def test_duplicate_keys(app: Any, es: Any, data: str, key: str) -> None:
    error = assert_es_error(post(es, "page_view", data=data), 400, "x_content_parse_exception")
    assert key in reasons(error)
    assert stored(app) == []


@pytest.mark.parametrize("event_type", ["page_view", "nonexistent-event-type"])
def test_missing_body(app: Any, es: Any, event_type: str) -> None:
    response = post(es, event_type, content_type=None)
    error = assert_es_error(response, 400, "parse_exception")
    assert error["error"]["reason"] == "request body or source parameter is required"
    assert stored(app) == []


def test_missing_content_type_is_406_short_form(app: Any, es: Any) -> None:
    response = post(es, "page_view", data=json.dumps(VALID["page_view"]), content_type=None)
    assert response.status_code == 406
    assert response.get_json() == {"error": "Content-Type header is missing", "status": 406}
    assert stored(app) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "application/xml"])
def test_unsupported_content_type_is_406_short_form(app: Any, es: Any, content_type: str) -> None:
    response = post(es, "page_view", data=json.dumps(VALID["page_view"]), content_type=content_type)
    assert response.status_code == 406
    assert response.get_json() == {"error": f"Content-Type header [{content_type}] is not supported",
                                   "status": 406}
    assert stored(app) == []


@pytest.mark.parametrize("content_type", ["application/json; charset=UTF-8", "Application/JSON",
                                          "application/vnd.elasticsearch+json; compatible-with=8",
                                          "application/vnd.elasticsearch+json;compatible-with=7"])
def test_json_content_types_are_accepted(app: Any, es: Any, content_type: str) -> None:
    # ES wants the compatible-with version on Accept too once Content-Type names one (same version)
    accept = content_type if "vnd.elasticsearch" in content_type else "application/json"
    response = post(es, "page_view", data=json.dumps(VALID["page_view"]), content_type=content_type,
                    headers={"Accept": accept})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert len(stored(app)) == 1


# -- query parameters -----------------------------------------------------------------------------------
@pytest.mark.parametrize("params, name", [("?foo=1", "foo"), ("?debug=true&verbose=true", "verbose"),
                                          ("?Debug=true", "Debug")])
def test_unknown_query_parameter_is_rejected(app: Any, es: Any, params: str, name: str) -> None:
    response = post(es, "page_view", VALID["page_view"], params=params)
    error = assert_es_error(response, 400, "illegal_argument_exception")
    path = f"/_application/analytics/{COLLECTION}/event/page_view"
    assert f"request [{path}] contains unrecognized parameter: [{name}]" in error["error"]["reason"]
    assert stored(app) == []


@pytest.mark.parametrize("params", ["?pretty", "?human=true", "?error_trace=false", "?pretty&debug=false"])
def test_common_parameters_are_allowed(app: Any, es: Any, params: str) -> None:
    assert post(es, "page_view", VALID["page_view"], params=params).status_code == 202
    assert len(stored(app)) == 1


@pytest.mark.parametrize("params, with_event", [
    ("", False), ("?debug=false", False), ("?debug=true", True), ("?debug", True), ("?debug=", True),
])
def test_debug_parameter(app: Any, es: Any, params: str, with_event: bool) -> None:
    response = post(es, "page_view", VALID["page_view"], params=params)
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] is True
    assert ("event" in body) is with_event
    [event] = stored(app, COLLECTION)
    if with_event:
        assert body["event"] == event.data
        assert body["event"]["event"] == {"action": "page_view"}


@pytest.mark.parametrize("value", ["yes", "1", "TRUE", "on"])
def test_debug_parameter_must_be_true_or_false(app: Any, es: Any, value: str) -> None:
    error = assert_es_error(post(es, "page_view", VALID["page_view"], params=f"?debug={value}"), 400,
                            "illegal_argument_exception")
    assert f"[{value}]" in error["error"]["reason"]
    assert stored(app) == []


def test_debug_parameter_error_has_es_wording(app: Any, es: Any) -> None:
    error = assert_es_error(post(es, "page_view", VALID["page_view"], params="?debug=yes"), 400,
                            "illegal_argument_exception")
    assert error["error"]["reason"] == "Failed to parse value [yes] as only [true] or [false] are allowed."


def _source(body: Any, content_type: str | None = "application/json") -> str:
    query = {"source": json.dumps(body)}
    if content_type is not None:
        query["source_content_type"] = content_type
    return "?" + urllib.parse.urlencode(query)


def test_source_parameter_replaces_the_body(app: Any, es: Any) -> None:
    body = variant("page_view", {"user.id": "from-source"})
    response = post(es, "page_view", params=_source(body) + "&debug=true", content_type=None)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json()["event"]["user"] == {"id": "from-source"}
    [event] = stored(app, COLLECTION)
    assert event.user_id == "from-source"


def test_source_parameter_is_validated_like_a_body(app: Any, es: Any) -> None:
    body = variant("page_view", {"page": DELETE})
    error = assert_es_error(post(es, "page_view", params=_source(body), content_type=None), 400,
                            "illegal_argument_exception")
    assert "[page]" in error["error"]["reason"]
    assert stored(app) == []


def test_source_parameter_with_unsupported_content_type(app: Any, es: Any) -> None:
    response = post(es, "page_view", params=_source(VALID["page_view"], "text/plain"), content_type=None)
    assert response.status_code >= 400
    assert stored(app) == []


def test_source_parameter_needs_source_content_type(app: Any, es: Any) -> None:
    response = post(es, "page_view", params=_source(VALID["page_view"], None), content_type=None)
    assert response.status_code >= 400
    assert stored(app) == []


# -- enrichment (notes §2.1, §2.3) -------------------------------------------------------------------------
@pytest.mark.parametrize("headers, ip", [
    ({"X-Forwarded-For": "192.23.12.12"}, "192.23.12.12"),
    ({"X-Forwarded-For": "192.23.12.12, 10.0.0.1"}, "192.23.12.12"),  # the first value
    ({"X-Forwarded-For": "2001:db8::1"}, "2001:db8::1"),
    ({"X-Forwarded-For": "not-an-ip, 192.23.12.12"}, "127.0.0.1"),  # malformed: ignored, the peer is used
    ({}, "127.0.0.1"),
])
def test_session_ip(app: Any, es: Any, headers: dict[str, str], ip: str) -> None:
    response = post(es, "page_view", VALID["page_view"], params="?debug=true", headers=headers)
    assert response.get_json()["event"]["session"]["ip"] == ip
    [event] = stored(app, COLLECTION)
    assert event.data["session"]["ip"] == ip


def test_forwarded_for_ignored_when_not_trusted(make_app: Any) -> None:
    app = make_app(server={"trust_forwarded_for": False})
    client = app.test_client()
    client.put(f"/_application/analytics/{COLLECTION}", headers=AUTH)
    response = post(client, "page_view", VALID["page_view"], params="?debug=true",
                    headers={"X-Forwarded-For": "192.23.12.12"})
    assert response.get_json()["event"]["session"]["ip"] == "127.0.0.1"


@pytest.mark.parametrize("agent, expected", [("Mozilla/5.0", "Mozilla/5.0"), ("   ", None), ("", None)])
def test_session_user_agent_only_when_not_blank(app: Any, es: Any, agent: str, expected: str | None) -> None:
    response = post(es, "page_view", VALID["page_view"], params="?debug=true", headers={"User-Agent": agent})
    session = response.get_json()["event"]["session"]
    assert session.get("user_agent") == expected
    assert ("user_agent" in session) is (expected is not None)
    [event] = stored(app, COLLECTION)
    assert event.data["session"] == session


def test_enriched_document_shape(app: Any, es: Any) -> None:
    before = time_ms()
    response = post(es, "search_click", VALID["search_click"], params="?debug=true")
    after = time_ms()
    event = response.get_json()["event"]
    assert before <= event["@timestamp"] <= after
    assert event["event"] == {"action": "search_click"}
    assert event["data_stream"] == {"type": "behavioral_analytics", "dataset": "events", "namespace": COLLECTION}
    assert {k: v for k, v in event.items() if k not in ("@timestamp", "event", "data_stream", "session")} == {
        k: v for k, v in VALID["search_click"].items() if k != "session"}


def time_ms() -> int:
    return time.time_ns() // 1_000_000


# -- collections ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method, path", [("PUT", "/_application/analytics/shop2"),
                                          ("GET", "/_application/analytics"),
                                          ("DELETE", f"/_application/analytics/{COLLECTION}")])
def test_collection_apis_refuse_a_body(app: Any, es: Any, method: str, path: str) -> None:
    before = [s.name for s in get_state(app).backend.list_streams("acme", PLUGIN)]
    response = es.open(path, method=method, headers=AUTH, data='{"x": 1}', content_type="application/json")
    error = assert_es_error(response, 400, "illegal_argument_exception")
    assert error["error"]["reason"] == f"request [{method} {path}] does not support having a body"
    assert [s.name for s in get_state(app).backend.list_streams("acme", PLUGIN)] == before


def test_create_existing_collection(es: Any) -> None:
    response = es.put(f"/_application/analytics/{COLLECTION}", headers=AUTH)
    error = assert_es_error(response, 400, "resource_already_exists_exception")
    assert error["error"]["reason"] == f"analytics collection [{COLLECTION}] already exists"


@pytest.mark.parametrize("name", ["Shop", "a%23b", "with%20space", "a%2Ab", "a%3Cb"])
def test_create_collection_with_invalid_data_stream_name(app: Any, es: Any, name: str) -> None:
    response = es.put(f"/_application/analytics/{name}", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"]["type"] == "status_exception"
    assert [s.name for s in get_state(app).backend.list_streams("acme", PLUGIN)] == [COLLECTION]


# -- CORS and the browser tracker -------------------------------------------------------------------------
@pytest.fixture
def cors_client(make_app: Any) -> Any:
    app = make_app(cors={"allow_origins": ["http://shop.example"]})
    client = app.test_client()
    assert client.put(f"/_application/analytics/{COLLECTION}", headers=AUTH).status_code == 201
    client.application = app
    return client


def _preflight(client: Any, origin: str) -> Any:
    return client.options(f"/_application/analytics/{COLLECTION}/event/page_view", headers={
        "Origin": origin, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization,content-type"})


def _header_set(value: str | None) -> set[str]:
    return {part.strip().lower() for part in (value or "").split(",") if part.strip()}


def test_cors_preflight_from_allowed_origin(cors_client: Any) -> None:
    response = _preflight(cors_client, "http://shop.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert "post" in _header_set(response.headers.get("Access-Control-Allow-Methods"))
    assert {"authorization", "content-type"} <= _header_set(response.headers.get("Access-Control-Allow-Headers"))
    assert stored(cors_client.application) == []


def test_cors_preflight_from_other_origin_gets_no_allow_origin(cors_client: Any) -> None:
    response = _preflight(cors_client, "http://evil.example")
    assert "Access-Control-Allow-Origin" not in response.headers
    assert "Access-Control-Allow-Headers" not in response.headers


def test_cors_post_from_allowed_origin(cors_client: Any) -> None:
    response = post(cors_client, "page_view", VALID["page_view"], headers={"Origin": "http://shop.example"})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert len(stored(cors_client.application)) == 1


def test_cors_post_from_other_origin_has_no_allow_origin(cors_client: Any) -> None:
    response = post(cors_client, "page_view", VALID["page_view"], headers={"Origin": "http://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_error_response_from_allowed_origin_is_readable(cors_client: Any) -> None:
    """The tracker reads error.reason from failed responses, so errors need the CORS header too."""
    response = post(cors_client, "page_view", {}, headers={"Origin": "http://shop.example"})
    assert response.status_code == 400
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.example"


@pytest.mark.parametrize("scheme", ["Apikey", "apikey", "APIKEY"])
def test_tracker_apikey_spelling(app: Any, es: Any, scheme: str) -> None:
    """The JS tracker sends ``Authorization: Apikey <b64>`` (credential `tracker` may only post events)."""
    response = es.post(f"/_application/analytics/{COLLECTION}/event/page_view",
                       headers={"Authorization": f"{scheme} {api_key('tracker')}"},
                       data=json.dumps(VALID["page_view"]), content_type="application/json")
    assert response.status_code == 202
    assert len(stored(app)) == 1


# -- authorization order and wording ---------------------------------------------------------------------
def test_request_validation_comes_before_authorization(app: Any, es: Any) -> None:
    """ES validates the request (event type) before its security filter authorizes the action."""
    reader = {"Authorization": f"ApiKey {api_key('reader')}"}  # holds manage on another collection only
    bad_type = post(es, "nonexistent-event-type", VALID["page_view"], headers=reader)
    assert_es_error(bad_type, 400, "action_request_validation_exception")
    forbidden = post(es, "page_view", VALID["page_view"], headers=reader)
    body = assert_es_error(forbidden, 403, "security_exception")
    assert root_reason(body) == ("action [cluster:admin/xpack/application/analytics/post_event] is unauthorized "
                                 "for API key id [reader]")
    assert stored(app) == []


def test_forbidden_basic_user_is_named_as_a_user(es: Any) -> None:
    basic = {"Authorization": "Basic " + base64.b64encode(b"tracker:tracker-secret-1").decode()}
    response = es.put("/_application/analytics/other", headers=basic)
    body = assert_es_error(response, 403, "security_exception")
    assert root_reason(body) == ("action [cluster:admin/xpack/application/analytics/put] is unauthorized "
                                 "for user [tracker]")


def test_valid_body_to_a_missing_collection_is_404_and_stores_nothing(app: Any, es: Any) -> None:
    response = post(es, "page_view", VALID["page_view"], collection="nope")
    assert root_reason(assert_es_error(response, 404, "resource_not_found_exception")) == \
        "no such analytics collection [nope]"
    assert stored(app, tenant="acme") == []


def test_filter_path_and_opaque_id(es: Any) -> None:
    response = post(es, "page_view", VALID["page_view"], params="?debug=true&filter_path=accepted,event.session.id",
                    headers={"X-Opaque-Id": "trace-42", "X-Forwarded-For": "203.0.113.5"})
    assert response.status_code == 202
    assert response.get_json() == {"accepted": True, "event": {"session": {"id": "sess-1"}}}
    assert response.headers["X-Opaque-Id"] == "trace-42"
    excluded = post(es, "page_view", VALID["page_view"], params="?debug=true&filter_path=-event")
    assert excluded.get_json() == {"accepted": True}


@pytest.mark.parametrize(("accept", "content_type", "status"), [
    ("application/vnd.elasticsearch+json; compatible-with=8", "application/vnd.elasticsearch+json; compatible-with=8",
     202),
    ("application/vnd.elasticsearch+json; compatible-with=8", "application/vnd.elasticsearch+json; compatible-with=9",
     400),
    ("application/vnd.elasticsearch+json; compatible-with=8", "application/json", 400),
    ("*/*", "application/vnd.elasticsearch+json; compatible-with=8", 400),
    ("application/json", "application/json", 202),
])
def test_compatible_versions_must_match(app: Any, es: Any, accept: str, content_type: str, status: int) -> None:
    response = post(es, "page_view", VALID["page_view"], headers={"Accept": accept}, content_type=content_type)
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 400:
        body = assert_es_error(response, 400, "media_type_header_exception")
        assert "compatible versions must match" in root_reason(body)
    assert len(stored(app)) == (1 if status == 202 else 0)


@pytest.mark.parametrize(("value", "stored_as"), [("7.5", 7), (7.9, 7), ("12", 12), (0, 0), (2**31 - 1, 2**31 - 1)])
def test_java_int_fields_coerce_like_es(app: Any, es: Any, value: Any, stored_as: int) -> None:
    body = variant("search", {"search.page": {"current": value, "size": 10}})
    assert post(es, "search", body).status_code == 202
    assert stored(app)[-1].data["search"]["page"]["current"] == stored_as


@pytest.mark.parametrize("value", [2**31, -(2**31) - 1, 99999999999999999999999, "1e999"])
def test_java_int_fields_refuse_values_beyond_32_bits(app: Any, es: Any, value: Any) -> None:
    body = variant("search", {"search.results": {"total_results": value}})
    error = assert_es_error(post(es, "search", body), 400, "x_content_parse_exception")
    assert "out of range of int (-2147483648 - 2147483647)" in root_reason(error)
    assert stored(app) == []
