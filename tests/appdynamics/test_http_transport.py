"""Transport and auth: the two headers (401), the account must be the key's tenant (401), grants narrowed per
schema (403), media types (415/406), body size (413), 405, CORS closed, and one JSON error body everywhere."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appdynamics.appd_http_helpers import (
    ACCOUNT,
    DOC,
    DOC_PUBLISH_BODY,
    DOC_SCHEMA_BODY,
    KEY,
    NO_GRANT_KEY,
    OTHER_ACCOUNT,
    OTHER_KEY,
    PUBLISH_ONLY_KEY,
    QUERY_PRODUCTS_KEY,
    SCHEMA_ONLY_KEY,
    TEXT_V2,
    appd_config,
    error_body,
    headers,
)

from gateway import create_app
from gateway.state import get_state


@pytest.fixture
def appd_app(tmp_path: Path) -> Iterator[Any]:
    """Transport rules do not depend on the storage: one backend (SQLite) here; the data-bearing tests run on
    every backend (conftest.py)."""
    app = create_app(appd_config(tmp_path))
    yield app
    get_state(app).backend.close()


ROUTES = [("POST", "/events/schema/myProducts", DOC_SCHEMA_BODY), ("GET", "/events/schema/myProducts", None),
          ("PATCH", "/events/schema/myProducts", '{"add": {"x": "string"}}'),
          ("DELETE", "/events/schema/myProducts", None), ("POST", "/events/publish/myProducts", DOC_PUBLISH_BODY),
          ("POST", "/events/query", "SELECT * FROM myProducts")]


def call(client: Any, method: str, path: str, body: str | None, hdrs: dict[str, str]) -> Any:
    return client.open(path, method=method, headers=hdrs, data=body)


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
@pytest.mark.parametrize("hdrs", [
    {},
    {"X-Events-API-AccountName": ACCOUNT},
    {"X-Events-API-Key": KEY},
    {"X-Events-API-AccountName": " ", "X-Events-API-Key": KEY},
    {"Authorization": "Bearer " + KEY},
    headers(key="not-a-key"),
    headers(account=OTHER_ACCOUNT),          # a valid key, used with another account's name
    headers(key=OTHER_KEY, account=ACCOUNT),  # another account's key
])
def test_401_without_matching_account_and_key(appd_client: Any, method: str, path: str, body: str | None,
                                              hdrs: dict[str, str]) -> None:
    response = call(appd_client, method, path, body, {"Content-Type": "application/vnd.appd.events+json;v=2", **hdrs})
    assert response.status_code == 401
    assert error_body(response)["code"] == "Unauthorized"


def test_key_of_the_right_account_works(appd_client: Any) -> None:
    other = headers(key=OTHER_KEY, account=OTHER_ACCOUNT)
    assert call(appd_client, "POST", "/events/schema/s", DOC_SCHEMA_BODY, other).status_code == 201


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_403_without_any_grant(appd_client: Any, method: str, path: str, body: str | None) -> None:
    response = call(appd_client, method, path, body, headers(key=NO_GRANT_KEY))
    assert response.status_code == 403
    error = error_body(response)
    assert error["code"] == "Forbidden" and "appdynamics:" in error["message"]


def test_grants_narrowed_per_action_and_schema(appd_client: Any) -> None:
    schema_only = headers(key=SCHEMA_ONLY_KEY)
    publisher = headers(key=PUBLISH_ONLY_KEY)
    reader = headers(key=QUERY_PRODUCTS_KEY, content_type=TEXT_V2)
    assert call(appd_client, "POST", "/events/schema/myProducts", DOC_SCHEMA_BODY, schema_only).status_code == 201
    assert call(appd_client, "POST", "/events/schema/other", DOC_SCHEMA_BODY, schema_only).status_code == 201
    # schema-only: no publish, no query
    assert call(appd_client, "POST", "/events/publish/myProducts", DOC_PUBLISH_BODY, schema_only).status_code == 403
    assert call(appd_client, "POST", "/events/query", "SELECT * FROM myProducts",
                headers(key=SCHEMA_ONLY_KEY, content_type=TEXT_V2)).status_code == 403
    # publish:myProducts only
    assert call(appd_client, "POST", "/events/publish/myProducts", DOC_PUBLISH_BODY, publisher).status_code == 200
    response = call(appd_client, "POST", "/events/publish/other", DOC_PUBLISH_BODY, publisher)
    assert response.status_code == 403 and "appdynamics:publish:other" in error_body(response)["message"]
    assert call(appd_client, "GET", "/events/schema/myProducts", None, publisher).status_code == 403
    # query:myProducts (and schema:myProducts) only; the grant is checked against the ADQL FROM
    ok = call(appd_client, "POST", "/events/query", "SELECT count(*) FROM myProducts", reader)
    assert ok.status_code == 200 and ok.get_json()[0]["results"] == [[2]]
    denied = call(appd_client, "POST", "/events/query", "SELECT * FROM other", reader)
    assert denied.status_code == 403 and "appdynamics:query:other" in error_body(denied)["message"]
    mixed = json.dumps([{"query": "SELECT * FROM myProducts"}, {"query": "SELECT * FROM other"}])
    assert call(appd_client, "POST", "/events/query", mixed, reader).status_code == 403
    assert call(appd_client, "GET", "/events/schema/myProducts", None, reader).status_code == 200
    assert call(appd_client, "GET", "/events/schema/other", None, reader).status_code == 403


@pytest.mark.parametrize("content_type", [
    "application/vnd.appd.events+json;v=2", "application/vnd.appd.events+json;v=1",
    "application/vnd.appd.events+json", "application/vnd.appd.events+json; v=2; charset=utf-8",
    "Application/VND.appd.events+JSON;v=2", "application/json", "application/json; charset=utf-8", None,
])
def test_json_media_types_accepted(appd_client: Any, content_type: str | None) -> None:
    response = call(appd_client, "POST", "/events/schema/myProducts", DOC_SCHEMA_BODY,
                    headers(content_type=content_type))
    assert response.status_code == 201, response.get_data(as_text=True)
    response = call(appd_client, "POST", "/events/publish/myProducts", DOC_PUBLISH_BODY,
                    headers(content_type=content_type))
    assert response.status_code == 200


@pytest.mark.parametrize("content_type", [
    "text/plain", "application/x-www-form-urlencoded", "application/xml", "application/vnd.appd.events+json;v=3",
    "application/vnd.appd.events+text;v=2", "multipart/form-data; boundary=x",
])
def test_other_content_types_are_415(appd_client: Any, content_type: str) -> None:
    for method, path, body in ROUTES:
        if method in ("GET", "DELETE"):
            continue
        if path == "/events/query" and content_type == "application/vnd.appd.events+text;v=2":
            continue  # the query route reads ADQL text
        response = call(appd_client, method, path, body, headers(content_type=content_type))
        assert response.status_code == 415, (path, response.get_data(as_text=True))
        error = error_body(response)
        assert error["code"] == "Unsupported.Media.Type" and content_type in error["message"]


@pytest.mark.parametrize("accept", ["text/html", "text/plain", "application/xml", "application/json;q=0",
                                    "application/vnd.appd.events+text;v=2"])
def test_accept_excluding_json_is_406(appd_client: Any, accept: str) -> None:
    for method, path, body in ROUTES:
        response = call(appd_client, method, path, body, headers(Accept=accept))
        assert response.status_code == 406, (path, response.get_data(as_text=True))
        error = error_body(response)
        assert error["code"] == "Not.Acceptable"
        assert response.headers["Content-Type"] == "application/vnd.appd.events+json;v=2"


@pytest.mark.parametrize(("accept", "answered"), [
    ("application/vnd.appd.events+json;v=2", "application/vnd.appd.events+json;v=2"),
    ("*/*", "application/vnd.appd.events+json;v=2"),
    ("application/*", "application/vnd.appd.events+json;v=2"),
    ("text/html, */*;q=0.1", "application/vnd.appd.events+json;v=2"),
    ("application/json", "application/json"),
])
def test_accepted_types(appd_client: Any, accept: str, answered: str) -> None:
    assert call(appd_client, "POST", "/events/schema/myProducts", DOC_SCHEMA_BODY, DOC).status_code == 201
    response = call(appd_client, "GET", "/events/schema/myProducts", None, headers(Accept=accept))
    assert response.status_code == 200
    assert response.headers["Content-Type"] == answered
    missing = call(appd_client, "GET", "/events/schema/nope", None, headers(Accept=accept))
    assert missing.status_code == 404 and missing.headers["Content-Type"] == answered


def test_413_for_a_body_over_the_limit(tmp_path: Path) -> None:
    app = create_app(appd_config(tmp_path, server={"max_body_bytes": 512}))
    client = app.test_client()
    assert call(client, "POST", "/events/schema/myProducts", DOC_SCHEMA_BODY, DOC).status_code == 201
    big = json.dumps([{"description": "x" * 600}])
    for path in ("/events/publish/myProducts", "/events/query"):
        response = call(client, "POST", path, big, DOC)
        assert response.status_code == 413
        assert error_body(response)["code"] == "Request.Too.Large"


def test_405_and_404_in_the_api_format(appd_client: Any) -> None:
    response = call(appd_client, "GET", "/events/query", None, DOC)
    assert response.status_code == 405 and response.headers["Allow"] == "POST"
    assert error_body(response)["code"] == "Method.Not.Allowed"
    response = call(appd_client, "PUT", "/events/publish/x", "[]", DOC)
    assert response.status_code == 405
    response = call(appd_client, "GET", "/events/nothing/here", None, DOC)
    assert response.status_code == 404 and error_body(response)["code"] == "Not.Found"


def test_cors_stays_closed_even_with_allowed_origins(tmp_path: Path) -> None:
    app = create_app(appd_config(tmp_path, cors={"allow_origins": ["https://app.example"]}))
    client = app.test_client()
    preflight = client.options("/events/query", headers={"Origin": "https://app.example",
                                                         "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 403 and "Access-Control-Allow-Origin" not in preflight.headers
    response = call(client, "POST", "/events/schema/myProducts", DOC_SCHEMA_BODY,
                    {**DOC, "Origin": "https://app.example"})
    assert response.status_code == 201
    assert "Access-Control-Allow-Origin" not in response.headers


def test_errors_are_never_html(appd_client: Any) -> None:
    for method, path, body in [*ROUTES, ("GET", "/events/", None), ("POST", "/events/schema/", "{}")]:
        for hdrs in ({}, headers(key=NO_GRANT_KEY), headers(Accept="text/html"), DOC):
            response = call(appd_client, method, path, body, {**hdrs, "Accept": "text/html, */*"}
                            if "Accept" not in hdrs else hdrs)
            text = response.get_data(as_text=True)
            assert "<html" not in text.lower()
            if response.status_code >= 400:
                error_body(response)
