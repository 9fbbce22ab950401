"""The analytics event API in-process: routes, auth, grants, the ``{"errors": [...]}`` format for every status,
quotas, and what lands in the store (type, receipt time, tenant isolation, the implicit stream)."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from workplace_search.ws_helpers import (
    BEARER_A,
    BEARER_B,
    CLICK,
    DOC_TOKEN_A,
    FEEDBACK,
    JSON_UTF8,
    NO_GRANT_TOKEN,
    PLUGIN,
    ROUTE,
    STREAM,
    WILDCARD_TOKEN,
    WS_CREDENTIALS,
    stored,
    ws_config,
)

from backends.memory import MemoryBackend
from gateway import create_app, hookimpl
from gateway.events import Stream, now_ms
from gateway.query import Filter, Query
from gateway.state import get_state
from gateway.storage import BackendUnavailable


def _errors(resp: Any) -> list[str]:
    assert resp.headers["Content-Type"] == JSON_UTF8, resp.headers
    body = resp.get_json()
    assert set(body) == {"errors"} and body["errors"], body
    assert all(isinstance(m, str) and m for m in body["errors"])
    return body["errors"]


# -- routes and success ------------------------------------------------------------------------------

@pytest.mark.parametrize("path", [ROUTE, f"{ROUTE}/"], ids=["python-client-path", "ruby-client-path"])
def test_both_paths_answer_200_empty_object(ws_app: Any, path: str) -> None:
    resp = ws_app.test_client().post(path, json=CLICK, headers=BEARER_A)
    assert resp.status_code == 200
    assert resp.get_data() == b"{}"
    assert resp.headers["Content-Type"] == "application/json;charset=utf-8"
    assert len(stored(get_state(ws_app).backend, "acme")) == 1


def test_event_is_stored_with_type_and_receipt_time(ws_app: Any) -> None:
    client, backend = ws_app.test_client(), get_state(ws_app).backend
    before = now_ms()
    assert client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code == 200
    time.sleep(0.003)  # so the two receipt times are distinct milliseconds on either side of `middle`
    middle = now_ms()
    time.sleep(0.003)
    assert client.post(ROUTE, json=FEEDBACK, headers=BEARER_A).status_code == 200
    after = now_ms()

    click, feedback = stored(backend, "acme", streams=(STREAM,))
    assert (click.type, click.data) == ("click", CLICK)
    assert (feedback.type, feedback.data) == ("feedback", FEEDBACK)
    assert before <= click.timestamp < middle < feedback.timestamp <= after
    for event in (click, feedback):
        assert event.received_at == event.timestamp
        assert (event.tenant, event.plugin, event.stream) == ("acme", PLUGIN, STREAM)
    assert click.id != feedback.id
    # the neutral query sees them like any other stream's events
    only_feedback = backend.query(Query(tenant="acme", plugin=PLUGIN, filters=(Filter("type", "eq", "feedback"),)))
    assert [e.data["score"] for e in only_feedback.events] == [1]
    window = backend.query(Query(tenant="acme", plugin=PLUGIN, start=before, end=middle))
    assert [e.type for e in window.events] == ["click"]
    assert [s.name for s in backend.list_streams("acme", PLUGIN)] == [STREAM]


def test_tenants_are_isolated(ws_app: Any) -> None:
    client, backend = ws_app.test_client(), get_state(ws_app).backend
    assert client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code == 200
    assert client.post(ROUTE, json=FEEDBACK, headers=BEARER_B).status_code == 200
    assert client.post(ROUTE, json={**CLICK, "event": "wild"},
                       headers={"Authorization": f"Bearer {WILDCARD_TOKEN}"}).status_code == 200
    assert [e.type for e in stored(backend, "acme")] == ["click"]
    assert [e.type for e in stored(backend, "globex")] == ["feedback"]
    assert [e.data["event"] for e in stored(backend, "initech")] == ["wild"]
    assert stored(backend, "nobody") == []


def test_nothing_is_stored_on_400(ws_app: Any) -> None:
    client, backend = ws_app.test_client(), get_state(ws_app).backend
    assert client.post(ROUTE, json={**CLICK, "page": 0}, headers=BEARER_A).status_code == 400
    assert client.post(ROUTE, data="nope", headers={**BEARER_A, "Content-Type": "application/json"}).status_code == 400
    assert stored(backend, "acme") == []


# -- the implicit stream and its cache ---------------------------------------------------------------

class CountingBackend(MemoryBackend):
    """A memory backend that counts catalog lookups."""

    schemes = ("counting",)

    def __init__(self, url: str, options: Any = None) -> None:
        super().__init__(url, options)
        self.catalog_calls = 0

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        self.catalog_calls += 1
        return super().get_stream(tenant, plugin, name)


def _app_with(tmp_path: Path, backend: Any, **sections: Any) -> Any:
    config = ws_config(tmp_path, storage={"url": "memory://"}, **sections)
    return create_app(config, backend=backend)


def test_stream_is_never_looked_up_per_request(tmp_path: Path) -> None:
    # The implicit stream is created by the append itself (create_streams=True): no catalog round trip.
    backend = CountingBackend("counting://")
    client = _app_with(tmp_path, backend).test_client()
    for _ in range(5):
        assert client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code == 200
    assert backend.catalog_calls == 0
    assert client.post(ROUTE, json=CLICK, headers=BEARER_B).status_code == 200
    assert backend.catalog_calls == 0
    assert len(stored(backend, "acme")) == 5 and len(stored(backend, "globex")) == 1


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_deleted_stream_is_recreated_and_nothing_is_lost(tmp_path: Path, storage: str) -> None:
    if storage == "memory":
        app = _app_with(tmp_path, CountingBackend("counting://"))
    else:
        app = create_app(ws_config(tmp_path))  # SQLite under tmp_path
    client, backend = app.test_client(), get_state(app).backend
    assert client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code == 200
    assert backend.delete_stream("acme", PLUGIN, STREAM)  # e.g. an operator cleared the log
    assert stored(backend, "acme") == []
    resp = client.post(ROUTE, json=FEEDBACK, headers=BEARER_A)
    assert (resp.status_code, resp.get_json()) == (200, {})
    (event,) = stored(backend, "acme")
    assert (event.type, event.data) == ("feedback", FEEDBACK)
    assert client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code == 200
    assert [e.type for e in stored(backend, "acme")] == ["feedback", "click"]


# -- auth and grants ---------------------------------------------------------------------------------

_ID_AND_TOKEN = base64.b64encode(f"ws-acme:{DOC_TOKEN_A}".encode()).decode()


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"Authorization": "Bearer   "},
    # a valid token in another scheme is not a bearer token
    {"Authorization": f"Basic {_ID_AND_TOKEN}"},
    {"Authorization": f"ApiKey {_ID_AND_TOKEN}"},
    {"X-Api-Key": DOC_TOKEN_A},
], ids=["none", "empty", "bearer-without-token", "bearer-blank", "basic", "apikey", "other-header"])
def test_missing_token_is_401(ws_app: Any, headers: dict[str, str]) -> None:
    resp = ws_app.test_client().post(ROUTE, json=CLICK, headers=headers)
    assert resp.status_code == 401
    (message,) = _errors(resp)
    assert "Missing access token" in message
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="Workplace Search"'
    assert stored(get_state(ws_app).backend, "acme") == []


@pytest.mark.parametrize("token", ["unknown-token", "7ea05c8bd50ab5c75d2b71adbcb9ae71c4034d7a4f8d6c16a8940510a951cec8",
                                   "ws-acme"])
def test_unknown_token_is_401(ws_client: Any, token: str) -> None:
    resp = ws_client.post(ROUTE, json=CLICK, headers={"Authorization": f"Bearer {token}"})
    assert resp.status_code == 401
    (message,) = _errors(resp)
    assert "Invalid access token" in message
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_scheme_is_case_insensitive(ws_client: Any) -> None:
    token = BEARER_A["Authorization"].split()[1]
    assert ws_client.post(ROUTE, json=CLICK, headers={"Authorization": f"bearer {token}"}).status_code == 200


def test_token_without_the_grant_is_403_before_the_body_is_read(ws_app: Any) -> None:
    client = ws_app.test_client()
    headers = {"Authorization": f"Bearer {NO_GRANT_TOKEN}"}
    for kwargs in ({"json": CLICK}, {"json": {"page": 0}}, {"data": "not json"}):
        resp = client.post(ROUTE, headers=headers, **kwargs)
        assert resp.status_code == 403
        (message,) = _errors(resp)
        assert "workplace_search:write" in message
    assert stored(get_state(ws_app).backend, "acme") == []


# -- every other status in the vendor's format -------------------------------------------------------

def test_unknown_path_under_the_api_is_404(ws_client: Any) -> None:
    for path in ("/api/ws/v1/analytics/events", "/api/ws/v1/analytics/event/extra", "/api/ws/v1/analytics/"):
        resp = ws_client.post(path, json=CLICK, headers=BEARER_A)
        assert resp.status_code == 404
        (message,) = _errors(resp)
        assert path in message


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405(ws_client: Any, method: str) -> None:
    resp = ws_client.open(ROUTE, method=method, headers=BEARER_A)
    assert resp.status_code == 405
    assert "POST" in resp.headers["Allow"]
    (message,) = _errors(resp)
    assert method in message and ROUTE in message


def test_body_over_the_limit_is_413(make_app: Any) -> None:
    app = make_app(plugins={"enabled": [PLUGIN]}, credentials=WS_CREDENTIALS,
                   server={"max_body_bytes": 200})
    body = {**CLICK, "event": "x" * 300}
    resp = app.test_client().post(ROUTE, data=json.dumps(body),
                                  headers={**BEARER_A, "Content-Type": "application/json"})
    assert resp.status_code == 413
    (message,) = _errors(resp)
    assert "body" in message and "large" in message
    assert stored(get_state(app).backend, "acme") == []


def test_quota_breach_is_429_with_retry_after(make_app: Any) -> None:
    app = make_app(plugins={"enabled": [PLUGIN]}, credentials=WS_CREDENTIALS,
                   quotas={"workplace_search": {"events": "3 per minute"}})
    client = app.test_client()
    statuses = [client.post(ROUTE, json=CLICK, headers=BEARER_A).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    limited = client.post(f"{ROUTE}/", json=CLICK, headers=BEARER_A)  # both paths share the budget
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    (message,) = _errors(limited)
    assert "Too many requests" in message
    # another token has its own budget; the declared default is 1000 per second
    assert client.post(ROUTE, json=CLICK, headers=BEARER_B).status_code == 200
    assert len(stored(get_state(app).backend, "acme")) == 3
    default = make_app(plugins={"enabled": [PLUGIN]}, credentials=WS_CREDENTIALS)
    assert get_state(default).apis[PLUGIN].quotas == {"events": "1000 per second"}


class DownBackend(MemoryBackend):
    """The catalog works, appends fail: the store went away mid-request."""

    def append(self, events: Any, create_streams: bool = False) -> int:
        raise BackendUnavailable("connection refused")


def test_store_down_is_503_and_nothing_is_acknowledged(tmp_path: Path) -> None:
    client = _app_with(tmp_path, DownBackend("memory://")).test_client()
    resp = client.post(ROUTE, json=CLICK, headers=BEARER_A)
    assert resp.status_code == 503
    (message,) = _errors(resp)
    assert "unavailable" in message


class Exploding:
    """A third-party enricher with a bug: the request must fail as a JSON 500, not an HTML page."""

    @hookimpl
    def enrich_event(self, event: Any, request: Any) -> None:
        if event.plugin == PLUGIN:
            raise RuntimeError("bug in an enricher")


def test_unexpected_error_is_500_in_the_vendor_format(tmp_path: Path) -> None:
    app = create_app(ws_config(tmp_path, storage={"url": "memory://"}), plugins=[("exploding", Exploding())])
    resp = app.test_client().post(ROUTE, json=CLICK, headers=BEARER_A)
    assert resp.status_code == 500
    assert _errors(resp) == ["Internal server error"]
    assert stored(get_state(app).backend, "acme") == []


def test_plugin_is_a_builtin_with_its_routes(ws_app: Any) -> None:
    described = {p["name"]: p for p in ws_app.test_client().get("/_gateway/plugins").get_json()["plugins"]}
    ws = described[PLUGIN]
    assert ws["builtin"] and ws["version"] == "0.1.0"
    assert "POST /api/ws/v1/analytics/event" in ws["routes"]
    assert "POST /api/ws/v1/analytics/event/" in ws["routes"]
