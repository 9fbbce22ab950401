"""Publish: typed checks naming the event index and field, atomic arrays, dotted keys and nested objects,
dates as ISO 8601 or epoch ms, eventTimestamp defaulting to the pickup time, the batch cap, 404."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from appdynamics.appd_http_helpers import ACCOUNT, DOC, TEXT_V2, error_body, headers

from gateway.state import get_state
from plugins.appdynamics.service import MAX_PUBLISH_EVENTS

SCHEMA = {"name": "string", "count": "integer", "ratio": "float", "ok": "boolean", "when": "date",
          "user.address.city": "string"}


@pytest.fixture
def client(appd_client: Any) -> Any:
    response = appd_client.post("/events/schema/typed", headers=DOC, data=json.dumps({"schema": SCHEMA}))
    assert response.status_code == 201
    return appd_client


def publish(client: Any, events: Any, name: str = "typed") -> Any:
    return client.post(f"/events/publish/{name}", headers=DOC, data=json.dumps(events))


def stored(client: Any) -> list[Any]:
    backend = get_state(client.application).backend
    return list(backend.iter_events(ACCOUNT, "appdynamics", ("typed",)))


def rows(client: Any, text: str) -> list[list[Any]]:
    response = client.post("/events/query", headers=headers(content_type=TEXT_V2), data=text)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()[0]["results"]


def test_publish_stores_typed_nested_events(client: Any) -> None:
    before = int(time.time() * 1000)
    events = [
        {"name": "a", "count": 3, "ratio": 2, "ok": True, "when": "2024-05-01T10:00:00.250Z",
         "user": {"address": {"city": "Oslo"}}, "eventTimestamp": 1_700_000_000_000},
        {"name": "b", "count": 4.0, "when": 1_714_557_600_000, "user.address.city": "Rome"},
        {"name": "c", "when": "2024-05-01T12:00:00+02:00", "ratio": None},
    ]
    response = publish(client, events)
    assert response.status_code == 200 and response.get_data() == b""
    after = int(time.time() * 1000)
    got = sorted(stored(client), key=lambda e: e.data["name"])
    assert [e.data for e in got] == [
        {"name": "a", "count": 3, "ratio": 2.0, "ok": True, "when": 1_714_557_600_250,
         "user": {"address": {"city": "Oslo"}}},
        {"name": "b", "count": 4, "when": 1_714_557_600_000, "user": {"address": {"city": "Rome"}}},
        {"name": "c", "when": 1_714_557_600_000},
    ]
    assert isinstance(got[0].data["ratio"], float) and isinstance(got[1].data["count"], int)
    assert got[0].timestamp == 1_700_000_000_000
    for event in got:
        assert before <= event.received_at <= after
        assert event.plugin == "appdynamics" and event.stream == "typed" and event.tenant == ACCOUNT
    assert got[1].timestamp == got[1].received_at  # eventTimestamp defaults to the pickup time
    assert rows(client, "SELECT name, when, user.address.city FROM typed ORDER BY name") == [
        ["a", "2024-05-01T10:00:00.250Z", "Oslo"], ["b", "2024-05-01T10:00:00.000Z", "Rome"],
        ["c", "2024-05-01T10:00:00.000Z", None]]


@pytest.mark.parametrize(("events", "index", "field"), [
    ([{"name": "ok"}, {"name": 5}], 1, "name"),
    ([{"count": 1.5}], 0, "count"),
    ([{"count": "3"}], 0, "count"),
    ([{"count": True}], 0, "count"),
    ([{"ratio": "1.5"}], 0, "ratio"),
    ([{"ok": "true"}], 0, "ok"),
    ([{"when": "yesterday"}], 0, "when"),
    ([{"name": "a"}, {"name": "b"}, {"unknown": 1}], 2, "unknown"),
    ([{"user": {"address": {"zip": "1"}}}], 0, "user.address.zip"),
    ([{"user.address.city": "x", "user": {"address": {"city": "y"}}}], 0, "user.address.city"),
    ([{"eventTimestamp": "not a date"}], 0, "eventTimestamp"),
    ([{"name": "a"}, 7], 1, None),
])
def test_a_bad_event_names_index_and_field_and_stores_nothing(client: Any, events: list[Any], index: int,
                                                              field: str | None) -> None:
    response = publish(client, events)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_body(response)
    assert error["code"] == "Invalid.Event"
    assert error["index"] == index
    assert error.get("field") == field
    assert f"event {index}" in error["message"]
    if field is not None:
        assert field in error["message"]
    assert stored(client) == []  # atomic: the good events of the array were not stored either


@pytest.mark.parametrize(("body", "message"), [
    ('{"name": "a"}', "array"), ('"x"', "array"), ("", "empty"), ("[{", "JSON"), ("[NaN]", "JSON"),
])
def test_the_body_must_be_a_json_array(client: Any, body: str, message: str) -> None:
    response = client.post("/events/publish/typed", headers=DOC, data=body)
    assert response.status_code == 400
    error = error_body(response)
    assert error["field"] == "body" and message in error["message"]


def test_empty_array_is_fine_and_stores_nothing(client: Any) -> None:
    assert publish(client, []).status_code == 200
    assert stored(client) == []


def test_batch_cap(client: Any) -> None:
    response = publish(client, [{"name": "x"}] * (MAX_PUBLISH_EVENTS + 1))
    assert response.status_code == 400
    error = error_body(response)
    assert error["field"] == "body" and str(MAX_PUBLISH_EVENTS) in error["message"]
    assert stored(client) == []
    assert publish(client, [{"name": "x"}] * MAX_PUBLISH_EVENTS).status_code == 200
    assert len(stored(client)) == MAX_PUBLISH_EVENTS


def test_unknown_schema_is_404(client: Any) -> None:
    response = publish(client, [{"name": "a"}], name="nope")
    assert response.status_code == 404
    assert error_body(response)["code"] == "Missing.EventType"


def test_publish_needs_a_valid_schema_name(client: Any) -> None:
    response = publish(client, [{"name": "a"}], name="no-such-name")
    assert response.status_code == 400
    assert error_body(response)["field"] == "schemaName"
