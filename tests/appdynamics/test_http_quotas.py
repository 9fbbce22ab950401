"""Quotas of the query API: requests per account name (every key of the account), per key, and searches per
account and event type (counted once the ADQL names the event type, one per query); 429 in this API's format
with Retry-After; defaults from the document, overridable in ``[quotas.appdynamics]``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from appdynamics.appd_http_helpers import (
    DOC,
    DOC_SCHEMA_BODY,
    OTHER_ACCOUNT,
    OTHER_KEY,
    QUERY_PRODUCTS_KEY,
    TEXT_V2,
    appd_config,
    error_body,
    headers,
)

from gateway import create_app
from gateway.config import ConfigError
from gateway.state import get_state
from plugins.appdynamics import API


def make(tmp_path: Path, **limits: str) -> Any:
    app = create_app(appd_config(tmp_path, quotas={"appdynamics": limits}))
    client = app.test_client()
    for name in ("myProducts", "other"):
        assert client.post(f"/events/schema/{name}", headers=DOC, data=DOC_SCHEMA_BODY).status_code == 201
    other = headers(key=OTHER_KEY, account=OTHER_ACCOUNT)
    assert client.post("/events/schema/myProducts", headers=other, data=DOC_SCHEMA_BODY).status_code == 201
    return client


def ask(client: Any, text: str, key: str | None = None, account: str | None = None) -> Any:
    kw = {k: v for k, v in (("key", key), ("account", account)) if v is not None}
    return client.post("/events/query", headers=headers(content_type=TEXT_V2, **kw), data=text)


def assert_429(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) >= 1
    error = error_body(response)
    assert error["code"] == "Too.Many.Requests"
    return error


def test_declared_defaults_are_the_documents() -> None:
    assert dict(API.quotas) == {"query_per_account": "450 per minute", "query_per_key": "145 per minute",
                                "searches_per_event_type": "200 per minute"}


def test_per_account_counts_every_key_of_the_account(tmp_path: Path) -> None:
    client = make(tmp_path, query_per_account="3 per minute")
    q = "SELECT count(*) FROM myProducts"
    assert ask(client, q).status_code == 200
    assert ask(client, q).status_code == 200
    assert ask(client, q, key=QUERY_PRODUCTS_KEY).status_code == 200  # another key of the same account
    assert_429(ask(client, q, key=QUERY_PRODUCTS_KEY))
    assert_429(ask(client, "SELECT count(*) FROM other"))
    assert ask(client, q, key=OTHER_KEY, account=OTHER_ACCOUNT).status_code == 200  # another account
    # schema and publish routes are not query requests
    assert client.get("/events/schema/myProducts", headers=DOC).status_code == 200


def test_per_key(tmp_path: Path) -> None:
    client = make(tmp_path, query_per_key="2 per minute")
    q = "SELECT count(*) FROM myProducts"
    assert ask(client, q).status_code == 200
    assert ask(client, q).status_code == 200
    assert_429(ask(client, q))
    assert ask(client, q, key=QUERY_PRODUCTS_KEY).status_code == 200  # the same account, another key


def test_per_event_type_is_counted_after_parsing(tmp_path: Path) -> None:
    client = make(tmp_path, searches_per_event_type="2 per minute")
    assert ask(client, "SELECT count(*) FROM myProducts").status_code == 200
    assert ask(client, "SELECT * FROM myProducts", key=QUERY_PRODUCTS_KEY).status_code == 200
    error = assert_429(ask(client, "SELECT productBrand, count(*) FROM myProducts"))
    assert "2 per 1 minute" in error["message"]
    assert ask(client, "SELECT count(*) FROM other").status_code == 200  # another event type
    assert ask(client, "SELECT count(*) FROM myProducts", key=OTHER_KEY,
               account=OTHER_ACCOUNT).status_code == 200  # another account
    # an invalid query or an unknown schema searches nothing, so it is answered as such, not 429
    assert ask(client, "SELECT count(*) FROM").status_code == 400
    assert ask(client, "SELECT count(*) FROM nope").status_code == 404


def test_each_query_of_a_multi_query_is_a_search(tmp_path: Path) -> None:
    client = make(tmp_path, searches_per_event_type="3 per minute")
    two = json.dumps([{"query": "SELECT count(*) FROM myProducts"}, {"query": "SELECT * FROM myProducts"}])
    assert ask(client, two).status_code == 200
    assert_429(ask(client, two))  # 3rd and 4th searches: the 4th is over
    assert ask(client, json.dumps([{"query": "SELECT count(*) FROM other"}] * 3)).status_code == 200


def test_quota_override_must_name_a_declared_quota(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"quotas\.appdynamics\.searches: unknown quota"):
        create_app(appd_config(tmp_path, quotas={"appdynamics": {"searches": "1 per minute"}}))
    app = create_app(appd_config(tmp_path, quotas={"appdynamics": {"searches_per_event_type": "7 per hour"}}))
    assert get_state(app).apis["appdynamics"].quotas["searches_per_event_type"] == "7 per hour"
