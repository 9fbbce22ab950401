"""Every response is JSON in the format of the API its path belongs to; none is an HTML page.

Plugin routes are enumerated from the app's URL map (never listed by hand) and probed without
credentials. The error paths of the core (routing 404/405, body too large, quota, backend failure and
unavailability) are checked under the Elasticsearch API, in ES's formats, and under ``/_gateway`` and
unknown paths, in the gateway's own format.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support import api_key, base_config

from backends.memory import MemoryBackend
from gateway import create_app
from gateway.query import Query
from gateway.state import get_state
from gateway.storage import BackendUnavailable
from gateway.testing.conformance import route_probes

ES_API = "elastic_analytics"
AUTH = {"Authorization": f"ApiKey {api_key('admin')}"}
PAGE_VIEW = {"session": {"id": "s-1"}, "user": {"id": "u-1"}, "page": {"url": "https://shop.example/"}}
JSON_TYPES = ("application/json", "application/vnd.elasticsearch+json")


def parse_json(response: Any) -> Any:
    """The body as JSON, after checking the response is not HTML and declares a JSON media type."""
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "<!doctype" not in text.lower(), text
    assert response.mimetype in JSON_TYPES, (response.status_code, response.content_type, text)
    return json.loads(text)


def assert_es_full_error(response: Any, status: int) -> dict[str, Any]:
    """ES's exception body: {"error": {"root_cause": [...], "type", "reason"}, "status"}."""
    assert response.status_code == status
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = parse_json(response)
    assert body["status"] == status
    error = body["error"]
    assert isinstance(error["type"], str) and error["type"]
    assert isinstance(error["reason"], str) and error["reason"]
    assert error["root_cause"] and {"type", "reason"} <= set(error["root_cause"][0])
    return body


def assert_gateway_error(response: Any, status: int) -> dict[str, Any]:
    """The gateway's own format: {"error": {"code", "message", "status"}}."""
    assert response.status_code == status
    body = parse_json(response)
    assert set(body) == {"error"}
    assert body["error"]["status"] == status
    assert isinstance(body["error"]["code"], str) and body["error"]["code"]
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert "X-Elastic-Product" not in response.headers
    return body


# -- every plugin route ------------------------------------------------------------------------------------
# Every API's routes are also probed by the conformance kit (gateway.testing.conformance, run per plugin in
# tests/<plugin>/test_*_conformance.py); these two keep the ES-specific assertions on top of it.
plugin_probes = route_probes


def test_every_plugin_route_answers_401_json_without_credentials(make_app: Any) -> None:
    app = make_app()
    probes = plugin_probes(app)
    assert {endpoint.partition(".")[0] for endpoint, _, _ in probes} >= {ES_API}
    assert {method for _, method, _ in probes} >= {"GET", "PUT", "DELETE", "POST"}
    client = app.test_client()
    for endpoint, method, path in probes:
        response = client.open(path, method=method, data=json.dumps(PAGE_VIEW), content_type="application/json")
        assert response.status_code == 401, (method, path, response.get_data(as_text=True))
        parse_json(response)
        if endpoint.startswith(ES_API + "."):
            assert response.headers["X-Elastic-Product"] == "Elasticsearch", (method, path)
            body = assert_es_full_error(response, 401)
            assert body["error"]["type"] == "security_exception"
            assert response.headers.get("WWW-Authenticate")
    assert get_state(app).backend.list_streams("acme", ES_API) == []


def test_every_plugin_route_answers_401_json_with_a_wrong_key(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    bad = {"Authorization": "ApiKey " + api_key("admin")[:-4] + "AAA=", "X-Hello-Key": "nope"}
    for endpoint, method, path in plugin_probes(app):
        response = client.open(path, method=method, headers=bad, data="{}", content_type="application/json")
        assert response.status_code == 401, (method, path)
        parse_json(response)
        if endpoint.startswith(ES_API + "."):
            assert response.headers["X-Elastic-Product"] == "Elasticsearch"


# -- routing errors ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/_application/nothing-here", "/_application/analytics/a/b/c",
                                  "/_application/analytics/shop/event/page_view/extra"])
def test_unknown_path_under_the_es_api_is_es_short_form(make_app: Any, path: str) -> None:
    """ES answers an unmatched route with 400 ``{"error": "no handler found for uri [..] and method [..]"}``."""
    client = make_app().test_client()
    response = client.get(path, headers=AUTH)
    assert response.status_code == 400
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = parse_json(response)
    assert body["error"] == f"no handler found for uri [{path}] and method [GET]"


@pytest.mark.parametrize("method, path, allowed", [
    ("GET", "/_application/analytics/shop/event/page_view", {"POST"}),
    ("POST", "/_application/analytics/shop", {"GET", "PUT", "DELETE"}),
    ("DELETE", "/_application/analytics", {"GET"}),
])
def test_wrong_method_under_the_es_api_is_es_405(make_app: Any, method: str, path: str, allowed: set[str]) -> None:
    client = make_app().test_client()
    response = client.open(path, method=method, headers=AUTH)
    assert response.status_code == 405
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = parse_json(response)
    assert body["status"] == 405
    prefix = f"Incorrect HTTP method for uri [{path}] and method [{method}], allowed: ["
    assert body["error"].startswith(prefix) and body["error"].endswith("]")
    assert {m.strip() for m in body["error"][len(prefix):-1].split(",")} == allowed
    assert allowed <= {m.strip() for m in response.headers["Allow"].split(",")}


@pytest.mark.parametrize("method, path, status", [
    ("GET", "/nothing", 404),
    ("POST", "/nothing/at/all", 404),
    ("GET", "/_gateway/nothing", 404),
    ("POST", "/_gateway/health", 405),
    ("DELETE", "/_gateway/plugins", 405),
])
def test_gateway_and_unknown_paths_use_the_gateway_format(make_app: Any, method: str, path: str,
                                                          status: int) -> None:
    client = make_app().test_client()
    assert_gateway_error(client.open(path, method=method, headers=AUTH), status)


def test_gateway_routes_answer_json(make_app: Any) -> None:
    app = make_app()
    client = app.test_client()
    paths = [rule.rule for rule in app.url_map.iter_rules() if rule.endpoint.startswith("_gateway.")]
    assert paths
    for path in paths:
        response = client.get(path)
        assert response.status_code == 200, path
        assert isinstance(parse_json(response), dict)


# -- media types -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("accept, expected", [
    ("application/json", "application/json"),
    ("*/*", "application/json"),
    ("application/vnd.elasticsearch+json; compatible-with=8", "application/vnd.elasticsearch+json;compatible-with=8"),
    ("application/vnd.elasticsearch+json;compatible-with=7", "application/vnd.elasticsearch+json;compatible-with=7"),
])
def test_es_response_media_type_follows_accept(make_app: Any, accept: str, expected: str) -> None:
    client = make_app().test_client()
    for response in (client.get("/_application/analytics", headers={**AUTH, "Accept": accept}),
                     client.get("/_application/analytics/ghost", headers={**AUTH, "Accept": accept})):
        assert response.headers["Content-Type"] == expected
        parse_json(response)


@pytest.mark.parametrize("accept", ["application/vnd.elasticsearch+json",
                                    "application/vnd.elasticsearch+json; compatible-with=10"])
def test_es_response_media_type_is_well_formed(make_app: Any, accept: str) -> None:
    response = make_app().test_client().get("/_application/analytics", headers={**AUTH, "Accept": accept})
    content_type = response.headers["Content-Type"]
    requested = accept.partition("compatible-with=")[2].strip()
    version = content_type.partition("compatible-with=")[2]
    assert content_type == "application/json" or (version.isdigit() and version == (requested or version)), \
        content_type


# -- body size, quotas, backend failures --------------------------------------------------------------------
def test_body_over_max_body_bytes_is_es_413(make_app: Any) -> None:
    app = make_app(server={"max_body_bytes": 512})
    client = app.test_client()
    assert client.put("/_application/analytics/shop", headers=AUTH).status_code == 201
    big = {**PAGE_VIEW, "page": {"url": "https://shop.example/", "title": "x" * 600}}
    assert len(json.dumps(big)) > 512
    response = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=big)
    assert_es_full_error(response, 413)
    small = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=PAGE_VIEW)
    assert small.status_code == 202
    events = get_state(app).backend.query(Query(tenant="acme", plugin=ES_API)).events
    assert [event.data["page"] for event in events] == [PAGE_VIEW["page"]]


def test_oversized_body_to_an_unknown_gateway_path_is_a_gateway_404(make_app: Any) -> None:
    """Routing comes first: no gateway route reads a body, so the answer is the 404, in the gateway's format."""
    client = make_app(server={"max_body_bytes": 64}).test_client()
    response = client.post("/_gateway/nothing", data="x" * 1000, content_type="application/json")
    assert response.status_code == 404
    assert_gateway_error(response, 404)


def test_plain_options_requests_are_not_html(make_app: Any) -> None:
    client = make_app().test_client()
    for path in ("/_application/analytics", "/_gateway/health"):
        response = client.options(path)
        assert response.status_code == 200 and "Allow" in response.headers
        assert "html" not in response.headers.get("Content-Type", "") and response.get_data() == b""


def test_quota_breach_is_es_429_with_retry_after(make_app: Any) -> None:
    app = make_app(quotas={ES_API: {"post_event": "1 per minute"}})
    client = app.test_client()
    client.put("/_application/analytics/shop", headers=AUTH)
    first = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=PAGE_VIEW)
    assert first.status_code == 202
    second = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=PAGE_VIEW)
    body = assert_es_full_error(second, 429)
    assert body["error"]["type"] == "status_exception"
    retry_after = int(second.headers["Retry-After"])
    assert 1 <= retry_after <= 61
    assert len(get_state(app).backend.query(Query(tenant="acme", plugin=ES_API)).events) == 1
    # collection management is not counted against post_event
    assert client.get("/_application/analytics", headers=AUTH).status_code == 200


class FailingBackend(MemoryBackend):
    """A memory backend whose append raises `error` (collections still work)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def append(self, events: Any) -> int:
        raise self.error


class BrokenHealthBackend(MemoryBackend):
    def health(self) -> dict[str, Any]:
        raise RuntimeError("bug in health")


def _app_with(tmp_path: Path, backend: MemoryBackend) -> Any:
    return create_app(base_config(tmp_path, storage={"url": "memory://"}), backend=backend)


def test_unexpected_backend_error_is_es_500(tmp_path: Path) -> None:
    backend = FailingBackend(RuntimeError("disk on fire"))
    client = _app_with(tmp_path, backend).test_client()
    assert client.put("/_application/analytics/shop", headers=AUTH).status_code == 201
    response = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=PAGE_VIEW)
    body = assert_es_full_error(response, 500)
    assert "disk on fire" not in json.dumps(body)  # no internals leak
    assert "Traceback" not in json.dumps(body)


def test_backend_unavailable_is_es_503(tmp_path: Path) -> None:
    backend = FailingBackend(BackendUnavailable("store down"))
    client = _app_with(tmp_path, backend).test_client()
    client.put("/_application/analytics/shop", headers=AUTH)
    response = client.post("/_application/analytics/shop/event/page_view", headers=AUTH, json=PAGE_VIEW)
    assert_es_full_error(response, 503)


def test_unexpected_error_on_a_gateway_route_is_gateway_500(tmp_path: Path) -> None:
    client = _app_with(tmp_path, BrokenHealthBackend()).test_client()
    body = assert_gateway_error(client.get("/_gateway/health"), 500)
    assert "bug in health" not in json.dumps(body)


@pytest.mark.parametrize("path", ["/_application//analytics/shop/event/page_view", "/_gateway//health",
                                  "//_application/analytics"])
def test_double_slashes_are_json_errors_not_redirect_pages(path: str, tmp_path) -> None:
    from support import base_config

    from gateway import create_app

    client = create_app(base_config(tmp_path, storage={"url": "memory://"})).test_client()
    response = client.post(path, json={}) if "event" in path else client.get(path)
    assert response.status_code in (400, 404, 405)
    assert response.mimetype == "application/json" and response.get_json()
