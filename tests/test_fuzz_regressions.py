"""Regressions found by fuzzing every plugin route: each once answered 500 or stored what it could not give back."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
from support import base_config

from gateway import create_app
from gateway.query import Query
from gateway.state import get_state

CREDS = [
    {"id": "es", "secret": "es-secret-1", "tenant": "acme", "grants": ["elastic_analytics:*"]},
    {"id": "ws", "secret": "ws-secret-1", "tenant": "acme", "grants": ["workplace_search:write"]},
    {"id": "ft", "secret": "ft-secret-1", "tenant": "acme", "grants": ["fluid_topics:write", "fluid_topics:read"]},
    {"id": "bl", "secret": "bl-secret-1", "tenant": "acme", "grants": ["buildless:emit"]},
]
WS = ("workplace_search", "/api/ws/v1/analytics/event", {"Authorization": "Bearer ws-secret-1"},
      '{"type":"click","query_id":%s,"page":1,"content_source_id":"c","document_id":"d","rank":0,"event":"e"}')
FT = ("fluid_topics", "/api/analytics/events", {"Authorization": "Bearer ft-secret-1"},
      '{"offline":false,"appName":"a","appVersion":"1","name":"n","p":%s}')
BL = ("buildless", "/v1/telemetry/event:emit", {"Authorization": "Bearer bl-secret-1"},
      '{"event":{"id":"abcdefghijkl0123","context":[{"type":"SYSTEM"}],"detail":{},"timing":{"occurred":1},'
      '"user":%s}}')


@pytest.fixture(params=["memory", "sqlite"])
def app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    url = "memory://" if request.param == "memory" else f"sqlite:///{tmp_path}/events.db"
    plugins = {"enabled": ["elastic_analytics", "workplace_search", "fluid_topics", "buildless"]}
    return create_app(base_config(tmp_path, storage={"url": url}, credentials=CREDS, plugins=plugins))


def _total(app: Any, plugin: str) -> int:
    return get_state(app).backend.query(Query(tenant="acme", plugin=plugin, limit=0)).total


@pytest.mark.parametrize("route", [WS, FT, BL], ids=["workplace_search", "fluid_topics", "buildless"])
@pytest.mark.parametrize("value", ['"\\ud800"', '"x\\udfffy"', "1e400", "-1e999"])
def test_unencodable_values_are_400_and_nothing_is_stored(app: Any, route: tuple, value: str) -> None:
    plugin, path, headers, template = route
    response = app.test_client().post(path, data=template % value, headers={**headers,
                                                                             "Content-Type": "application/json"})
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.get_json()  # the vendor's JSON error, not a 500 page
    assert _total(app, plugin) == 0


def test_collection_names_with_line_breaks_get_a_usable_location(app: Any) -> None:
    auth = {"Authorization": "ApiKey " + base64.b64encode(b"es:es-secret-1").decode()}
    client = app.test_client()
    created = client.put("/_application/analytics/a%0Ab", headers=auth)
    assert created.status_code == 201 and created.headers["Location"] == "/_application/analytics/a%0Ab"
    assert "a\nb" in client.get("/_application/analytics", headers=auth).get_json()
