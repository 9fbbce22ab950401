"""Issue 10 item 8, CORS: what a browser on another origin is told, checked in-process.

Before: a preflight from an origin that is not allowed got ``200`` with no CORS headers (Elasticsearch's
CorsHandler answers ``403`` with an empty body), and ``allow_origins = ["*"]`` echoed every origin together
with ``Access-Control-Allow-Credentials: true``, letting any site make credentialed calls.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from support import api_key

AUTH = {"Authorization": f"ApiKey {api_key('admin')}"}
EVENT_PATH = "/_application/analytics/shop/event/page_view"
PAGE_VIEW = {"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://shop.example/"}}


def _client(make_app: Any, origins: list[str]) -> Any:
    client = make_app(cors={"allow_origins": origins}).test_client()
    assert client.put("/_application/analytics/shop", headers=AUTH).status_code == 201
    return client


def _preflight(client: Any, origin: str | None, path: str = EVENT_PATH) -> Any:
    headers = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization,content-type"}
    if origin is not None:
        headers["Origin"] = origin
    return client.options(path, headers=headers)


def _post(client: Any, origin: str, body: Any = PAGE_VIEW) -> Any:
    return client.post(EVENT_PATH, data=json.dumps(body), content_type="application/json",
                       headers={**AUTH, "Origin": origin})


@pytest.mark.parametrize("path", [EVENT_PATH, "/api/analytics/events", "/no/such/route"])
def test_preflight_from_origin_not_allowed_is_403_empty(make_app: Any, path: str) -> None:
    """ES's CorsHandler.forbidden: 403, empty body, none of the Access-Control-* headers."""
    client = _client(make_app, ["http://shop.example"])
    response = _preflight(client, "http://evil.example", path)
    assert response.status_code == 403
    assert response.get_data() == b""
    assert not [name for name, _ in response.headers.items() if name.lower().startswith("access-control-")]
    assert "html" not in response.headers.get("Content-Type", "")


def test_preflight_from_allowed_origin_is_200_with_credentials(make_app: Any) -> None:
    client = _client(make_app, ["http://shop.example"])
    response = _preflight(client, "http://shop.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://shop.example"
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    assert "Origin" in response.headers.get("Vary", "")


def test_preflight_from_the_gateways_own_origin_is_allowed(make_app: Any) -> None:
    """ES's isSameOrigin: an Origin naming the Host the request was sent to is never refused."""
    client = _client(make_app, ["http://shop.example"])
    response = client.options(EVENT_PATH, headers={"Origin": "http://gateway.example:8080",
                                                    "Host": "gateway.example:8080",
                                                    "Access-Control-Request-Method": "POST"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "http://gateway.example:8080"


def test_options_without_origin_is_not_a_preflight(make_app: Any) -> None:
    """Without Origin it is a plain OPTIONS (ES: not a preflight): answered with Allow, never 403."""
    client = _client(make_app, ["http://shop.example"])
    response = _preflight(client, None)
    assert response.status_code == 200
    assert "POST" in response.headers["Allow"]
    assert "Access-Control-Allow-Origin" not in response.headers


def test_any_origin_never_allows_credentials(make_app: Any) -> None:
    client = _client(make_app, ["*"])
    preflight = _preflight(client, "http://anyone.example")
    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in preflight.headers
    assert {"authorization", "content-type"} <= {
        h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    accepted = _post(client, "http://anyone.example")
    assert accepted.status_code == 202
    assert accepted.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in accepted.headers
    refused = _post(client, "http://anyone.example", body={})
    assert refused.status_code == 400  # the tracker reads error.reason, so errors are readable too
    assert refused.headers["Access-Control-Allow-Origin"] == "*"
    assert "Access-Control-Allow-Credentials" not in refused.headers


def test_no_origins_configured_adds_nothing(make_app: Any) -> None:
    client = _client(make_app, [])
    response = _preflight(client, "http://shop.example")
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers
