"""Auth (401/403), the one error shape for every status (404/405/413/415/429/500/503), named quotas, and the
start-up check of ``[plugins.fluid_topics]``."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import (
    ACME,
    ACME_KEY,
    COUNT,
    INGEST,
    NO_GRANT_KEY,
    PLUGIN,
    READER_KEY,
    RETRIEVE,
    WRITER_KEY,
    assert_error,
    bearer,
    ft_config,
)

from gateway import create_app
from gateway.config import ConfigError
from gateway.state import get_state
from gateway.storage import BackendUnavailable
from plugins.fluid_topics import service

EVENT = {"offline": False, "appName": "a", "appVersion": "1", "name": "khub.search"}
MONTH_AGO = time.strftime("%Y-%m-%d", time.gmtime(time.time() - 30 * 86400))
BODIES = {INGEST: EVENT, RETRIEVE: {"startDate": MONTH_AGO},
          COUNT: {"startDate": MONTH_AGO, "endDate": "2100-01-01", "groupByPeriod": "month"}}
ROUTES = list(BODIES)


def basic(user: str, secret: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()}


# -- 401 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("headers", [
    {},
    bearer("not-a-known-key"),
    {"Authorization": f"ApiKey {ACME_KEY}"},
    {"Authorization": ACME_KEY},
    {"Authorization": "Bearer "},
    {"X-API-Key": ACME_KEY},
    basic("ft-acme", "wrong-secret"),
    {"FT-Authorization": "Bearer nope"},
], ids=["none", "unknown-key", "apikey-scheme", "no-scheme", "empty-bearer", "x-api-key", "basic-wrong",
        "prefixed-unknown"])
def test_401(ft_client: Any, route: str, headers: dict[str, str]) -> None:
    resp = ft_client.post(route, json=BODIES[route], headers=headers)
    body = assert_error(resp, 401)
    assert resp.headers["WWW-Authenticate"] == 'Bearer realm="Fluid Topics"'
    assert body["field"] is None and body["errors"] == []
    assert "authorization header" in body["message"].lower()


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("headers", [bearer(ACME_KEY), {"Authorization": f"bearer {ACME_KEY}"},
                                     {"FT-Authorization": f"Bearer {ACME_KEY}"}, basic("ft-acme", ACME_KEY),
                                     {"FT-Authorization": basic("ft-acme", ACME_KEY)["Authorization"]}],
                         ids=["bearer", "bearer-lowercase", "prefixed-bearer", "basic", "prefixed-basic"])
def test_accepted_credentials(ft_client: Any, route: str, headers: dict[str, str]) -> None:
    assert ft_client.post(route, json=BODIES[route], headers=headers).status_code == 200


# -- 403 --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("key, route, grant", [
    (READER_KEY, INGEST, "fluid_topics:write"),
    (WRITER_KEY, RETRIEVE, "fluid_topics:read"),
    (WRITER_KEY, COUNT, "fluid_topics:read"),
    (NO_GRANT_KEY, INGEST, "fluid_topics:write"),
    (NO_GRANT_KEY, RETRIEVE, "fluid_topics:read"),
    (NO_GRANT_KEY, COUNT, "fluid_topics:read"),
])
def test_403_without_the_grant(ft_client: Any, key: str, route: str, grant: str) -> None:
    # checked before the body is read: even an invalid body gets 403
    for body in (BODIES[route], {"nonsense": True}):
        resp = ft_client.post(route, json=body, headers=bearer(key))
        assert grant in assert_error(resp, 403)["message"]
    assert get_state(ft_client.application).backend.list_streams("acme", PLUGIN) == []


def test_grants_allow_their_routes(ft_client: Any) -> None:
    assert ft_client.post(INGEST, json=EVENT, headers=bearer(WRITER_KEY)).status_code == 200
    assert ft_client.post(RETRIEVE, json=BODIES[RETRIEVE], headers=bearer(READER_KEY)).status_code == 200
    assert ft_client.post(COUNT, json=BODIES[COUNT], headers=bearer(READER_KEY)).status_code == 200


# -- the other statuses -----------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/analytics/api/v1/nothing", "/analytics/api/v1/traffic/sessions",
                                  "/api/analytics/events/extra"])
def test_404(ft_client: Any, path: str) -> None:
    assert path in assert_error(ft_client.post(path, json={}, headers=ACME), 404)["message"]


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_405(ft_client: Any, route: str, method: str) -> None:
    resp = ft_client.open(route, method=method, headers=ACME)
    assert_error(resp, 405)
    assert resp.headers["Allow"] == "POST"


@pytest.mark.parametrize("route", ROUTES)
def test_413(tmp_path: Path, route: str) -> None:
    client = create_app(ft_config(tmp_path, server={"max_body_bytes": 256})).test_client()
    resp = client.post(route, data=json.dumps({**BODIES[route], "pad": "x" * 300}), content_type="application/json",
                       headers=ACME)
    assert_error(resp, 413)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"])
def test_415(ft_client: Any, route: str, content_type: str) -> None:
    resp = ft_client.post(route, data=json.dumps(BODIES[route]), content_type=content_type, headers=ACME)
    assert_error(resp, 415)


def test_json_media_types_are_accepted(ft_client: Any) -> None:
    for content_type in ("application/json; charset=utf-8", "application/vnd.ft+json"):
        resp = ft_client.post(INGEST, data=json.dumps(EVENT), content_type=content_type, headers=ACME)
        assert resp.status_code == 200, content_type


def test_429_named_quotas(tmp_path: Path) -> None:
    client = create_app(ft_config(tmp_path, quotas={"default": "1000 per minute",
                                                    PLUGIN: {"query": "2 per minute", "ingest": "3 per minute"}})
                        ).test_client()
    # retrieve and count share "query"
    assert client.post(RETRIEVE, json=BODIES[RETRIEVE], headers=ACME).status_code == 200
    assert client.post(COUNT, json=BODIES[COUNT], headers=ACME).status_code == 200
    resp = client.post(RETRIEVE, json=BODIES[RETRIEVE], headers=ACME)
    assert_error(resp, 429)
    assert int(resp.headers["Retry-After"]) >= 1
    # ingest has its own budget
    statuses = [client.post(INGEST, json=EVENT, headers=ACME).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


def test_500_hides_the_bug(ft_client: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(service, "retrieve", broken)
    body = assert_error(ft_client.post(RETRIEVE, json=BODIES[RETRIEVE], headers=ACME), 500)
    assert "secret" not in json.dumps(body) and body["message"] == "Internal server error"


@pytest.mark.parametrize("route", ROUTES)
def test_503_when_the_store_is_down(ft_client: Any, monkeypatch: pytest.MonkeyPatch, route: str) -> None:
    store = get_state(ft_client.application).backend

    def down(*args: Any, **kwargs: Any) -> Any:
        raise BackendUnavailable("disk gone")

    for name in ("query", "append", "ensure_stream"):
        monkeypatch.setattr(store, name, down)
    assert_error(ft_client.post(route, json=BODIES[route], headers=ACME), 503)


# -- settings ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("settings, key", [
    ({"retention_days": 0}, "retention_days"),
    ({"retention_days": -5}, "retention_days"),
    ({"retention_days": "365"}, "retention_days"),
    ({"retention_days": True}, "retention_days"),
    ({"retention_days": 1.5}, "retention_days"),
    ({"retention": 30}, "retention"),
])
def test_bad_settings_stop_start_up(tmp_path: Path, settings: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"plugins\.fluid_topics\.{key}"):
        create_app(ft_config(tmp_path, plugins={"enabled": [PLUGIN], PLUGIN: settings}))


def test_settings_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS__FLUID_TOPICS__RETENTION_DAYS", "zero")
    with pytest.raises(ConfigError, match=r"plugins\.fluid_topics\.retention_days"):
        create_app(ft_config(tmp_path))
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS__FLUID_TOPICS__RETENTION_DAYS", "7")
    app = create_app(ft_config(tmp_path))
    with app.app_context():
        assert service.settings().retention_days == 7


@pytest.mark.slow
def test_real_server_with_two_workers(tmp_path: Path, serve: Any) -> None:
    """``event-gateway serve`` (gunicorn, 2 workers, SQLite): post an array, then read it back and count it."""
    import requests

    server = serve(ft_config(tmp_path, storage="sqlite"))
    headers = {**ACME, "Ft-Calling-App": "pytest", "X-Forwarded-For": "10.60.1.38"}
    posted = requests.post(server.url + INGEST, json=[EVENT, {**EVENT, "name": "topic.display"}], headers=headers,
                           timeout=10)
    assert posted.status_code == 200, posted.text
    got = requests.post(server.url + RETRIEVE, json=BODIES[RETRIEVE], headers=headers, timeout=10).json()
    assert {r["id"] for r in got["results"]} == set(posted.json()["ids"])
    assert {r["userIp"] for r in got["results"]} == {"10.60.1.38"}
    counted = requests.post(server.url + COUNT, json=BODIES[COUNT], headers=headers, timeout=10).json()
    assert sorted(sum(p["eventCount"] for p in r["periods"]) for r in counted["results"]) == [1, 1]
    missing = requests.post(server.url + RETRIEVE, json={}, headers=headers, timeout=10)
    assert missing.status_code == 400 and missing.json()["field"] == "startDate"
