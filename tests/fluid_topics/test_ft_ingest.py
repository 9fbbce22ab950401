"""Trigger interface analytics events (``POST /api/analytics/events``): the reference's examples, server-set
fields, parameters, atomic arrays, validation naming the field, and what lands in the store."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import (
    ACME,
    DOC_INGEST_ARRAY,
    DOC_INGEST_SEARCH,
    GLOBEX,
    INGEST,
    PLUGIN,
    RETRIEVE,
    STREAM,
    assert_error,
    ft_config,
)

from gateway import create_app
from gateway.events import now_ms
from gateway.query import Query
from gateway.state import get_state

EVENT = {"offline": False, "appName": "ft/turnkey-portal", "appVersion": "4.3.32", "name": "khub.search"}
TODAY = {"startDate": time.strftime("%Y-%m-%d", time.gmtime())}


def stored(app: Any, tenant: str = "acme") -> list[Any]:
    return get_state(app).backend.query(Query(tenant=tenant, plugin=PLUGIN, limit=10_000)).events


def post(app: Any, body: Any, headers: dict[str, str] = ACME) -> Any:
    return app.test_client().post(INGEST, json=body, headers=headers)


def test_reference_example_is_stored_with_server_fields(any_app: Any) -> None:
    before = now_ms()
    resp = post(any_app, DOC_INGEST_SEARCH, {**ACME, "User-Agent": "Mozilla/5.0 (test)",
                                             "X-Forwarded-For": "10.60.1.38, 192.168.0.1",
                                             "Ft-Calling-App": "my-integration"})
    after = now_ms()
    assert resp.status_code == 200, resp.get_data(as_text=True)
    answer = resp.get_json()
    assert answer["accepted"] == 1 and uuid.UUID(answer["ids"][0]).version == 4
    (event,) = stored(any_app)
    assert (event.id, event.type, event.stream, event.user_id, event.session_id) == (
        answer["ids"][0], "khub.search", STREAM, None, None)
    assert before <= event.timestamp <= after and event.received_at == event.timestamp
    assert event.data == {
        "appName": "ft-integration", "appVersion": "1.0", "contentLocale": None, "datetime": event.timestamp,
        "id": event.id, "name": "khub.search", "offline": False,
        "parameters": {"searchQuery": DOC_INGEST_SEARCH["searchQuery"],
                       "searchResponse": DOC_INGEST_SEARCH["searchResponse"]},
        "sessionId": None, "tenantId": "acme", "uiLocale": None,
        "user": {"realm": [], "groups": [], "id": None, "roles": []},
        "userAgent": "Mozilla/5.0 (test)", "userIp": "10.60.1.38",
    }
    # and the retrieve service returns it in the same form
    (result,) = any_app.test_client().post(RETRIEVE, json=TODAY, headers=ACME).get_json()["results"]
    assert json.dumps(result) == json.dumps(event.data)


def test_reference_array_example(any_app: Any) -> None:
    resp = post(any_app, DOC_INGEST_ARRAY)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 1
    (event,) = stored(any_app)
    assert event.type == "custom_event.trigger"
    assert event.data["parameters"] == {k: v for k, v in DOC_INGEST_ARRAY[0].items()
                                        if k in ("eventName", "componentId", "page")}


def test_array_is_stored_in_one_atomic_append(any_app: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    store = get_state(any_app).backend
    calls = []
    original = store.append
    monkeypatch.setattr(store, "append", lambda events, **kw: calls.append(len(events)) or original(events, **kw))
    body = [{**EVENT, "name": f"event.{i}", "sessionId": f"s-{i}", "user": {"id": f"u-{i}"}} for i in range(5)]
    resp = post(any_app, body)
    assert resp.status_code == 200 and resp.get_json()["accepted"] == 5
    assert calls == [5]
    events = sorted(stored(any_app), key=lambda e: e.type)
    assert [e.type for e in events] == [f"event.{i}" for i in range(5)]
    assert [e.user_id for e in events] == [f"u-{i}" for i in range(5)]
    assert [e.session_id for e in events] == [f"s-{i}" for i in range(5)]
    assert len({e.id for e in events}) == 5 and set(resp.get_json()["ids"]) == {e.id for e in events}
    assert len({e.timestamp for e in events}) == 1


def test_an_invalid_event_in_an_array_stores_nothing(any_app: Any) -> None:
    body = [EVENT, {**EVENT, "name": ""}, EVENT, "not an event"]
    resp_body = assert_error(post(any_app, body), 400, "[1].name")
    assert [e["field"] for e in resp_body["errors"]] == ["[1].name", "[3]"]
    assert stored(any_app) == []


def test_empty_array_stores_nothing(ft_app: Any) -> None:
    resp = post(ft_app, [])
    assert resp.status_code == 200 and resp.get_json() == {"accepted": 0, "ids": []}
    assert get_state(ft_app).backend.list_streams("acme", PLUGIN) == []


def test_batch_limit(ft_app: Any) -> None:
    assert post(ft_app, [EVENT] * 1000).get_json()["accepted"] == 1000
    assert_error(post(ft_app, [EVENT] * 1001), 400, "body")
    assert len(stored(ft_app)) == 1000


def test_user_and_optional_fields(ft_app: Any) -> None:
    body = {**EVENT, "contentLocale": "fr-FR", "uiLocale": "en-US", "sessionId": "dc439e78",
            "user": {"id": "a95f015f", "realm": "internal", "groups": ["ft:administrator", "antidot"],
                     "roles": ["FEEDBACK_USER"]}}
    assert post(ft_app, body).status_code == 200
    (event,) = stored(ft_app)
    assert event.data["user"] == {"realm": ["internal"], "groups": ["ft:administrator", "antidot"],
                                  "id": "a95f015f", "roles": ["FEEDBACK_USER"]}
    assert (event.user_id, event.session_id) == ("a95f015f", "dc439e78")
    assert (event.data["contentLocale"], event.data["uiLocale"], event.data["parameters"]) == ("fr-FR", "en-US", {})


def test_server_fields_sent_by_the_client_are_ignored(ft_app: Any) -> None:
    body = {**EVENT, "id": "mine", "datetime": 1, "tenantId": "globex", "userAgent": "forged", "userIp": "1.2.3.4",
            "parameters": {"searchQuery": {"terms": "x"}}, "searchResponse": {"nbResults": 3}}
    assert post(ft_app, body, {**ACME, "User-Agent": "real"}).status_code == 200
    (event,) = stored(ft_app)
    assert event.id != "mine" and event.timestamp > 1
    assert (event.data["tenantId"], event.data["userAgent"], event.data["userIp"]) == ("acme", "real", "127.0.0.1")
    assert event.data["parameters"] == {"searchQuery": {"terms": "x"}, "searchResponse": {"nbResults": 3}}
    assert stored(ft_app, "globex") == []


def test_forwarded_for_is_ignored_when_not_trusted_or_invalid(tmp_path: Path) -> None:
    app = create_app(ft_config(tmp_path, server={"trust_forwarded_for": False}))
    assert post(app, EVENT, {**ACME, "X-Forwarded-For": "10.0.0.1"}).status_code == 200
    trusting = create_app(ft_config(tmp_path / "t"))
    assert post(trusting, EVENT, {**ACME, "X-Forwarded-For": "not-an-ip"}).status_code == 200
    assert [e.data["userIp"] for e in stored(app) + stored(trusting)] == ["127.0.0.1", "127.0.0.1"]


def test_events_go_to_the_credential_tenant(ft_app: Any) -> None:
    assert post(ft_app, EVENT, GLOBEX).status_code == 200
    assert stored(ft_app, "acme") == []
    (event,) = stored(ft_app, "globex")
    assert event.data["tenantId"] == "globex"


def test_stream_deleted_behind_the_plugin_is_recreated(ft_app: Any) -> None:
    assert post(ft_app, EVENT).status_code == 200
    assert get_state(ft_app).backend.delete_stream("acme", PLUGIN, STREAM)
    assert post(ft_app, EVENT).status_code == 200
    assert len(stored(ft_app)) == 1


@pytest.mark.parametrize("body, field", [
    ({k: v for k, v in EVENT.items() if k != "offline"}, "offline"),
    ({k: v for k, v in EVENT.items() if k != "appName"}, "appName"),
    ({k: v for k, v in EVENT.items() if k != "appVersion"}, "appVersion"),
    ({k: v for k, v in EVENT.items() if k != "name"}, "name"),
    ({**EVENT, "offline": "false"}, "offline"),
    ({**EVENT, "offline": 0}, "offline"),
    ({**EVENT, "offline": None}, "offline"),
    ({**EVENT, "appName": 1}, "appName"),
    ({**EVENT, "appVersion": ""}, "appVersion"),
    ({**EVENT, "name": "   "}, "name"),
    ({**EVENT, "name": None}, "name"),
    ({**EVENT, "name": ["khub.search"]}, "name"),
    ({**EVENT, "contentLocale": 5}, "contentLocale"),
    ({**EVENT, "uiLocale": {}}, "uiLocale"),
    ({**EVENT, "sessionId": 12}, "sessionId"),
    ({**EVENT, "user": "u-1"}, "user"),
    ({**EVENT, "user": {"id": 7}}, "user.id"),
    ({**EVENT, "user": {"groups": [1]}}, "user.groups"),
    ({**EVENT, "user": {"roles": {"ADMIN": True}}}, "user.roles"),
    ({**EVENT, "user": {"realm": [None]}}, "user.realm"),
    ({**EVENT, "user": {"group": ["TechWriter"]}}, "user.group"),
    ({**EVENT, "parameters": "x"}, "parameters"),
    ([EVENT, {**EVENT, "offline": "no"}], "[1].offline"),
], ids=lambda v: json.dumps(v, separators=(",", ":")) if not isinstance(v, str) else v)
def test_invalid_events_are_400_naming_the_field(ft_app: Any, body: Any, field: str) -> None:
    assert_error(post(ft_app, body), 400, field)
    assert stored(ft_app) == []


@pytest.mark.parametrize("data", ["", "{", '"event"', "3", "null", '{"offline": NaN}', b"\xff\xfe"])
def test_unreadable_bodies_are_400(ft_app: Any, data: Any) -> None:
    resp = ft_app.test_client().post(INGEST, data=data, content_type="application/json", headers=ACME)
    assert_error(resp, 400, "body")


def test_nulls_count_as_absent_for_optional_fields(ft_app: Any) -> None:
    body = {**EVENT, "contentLocale": None, "uiLocale": None, "sessionId": None, "user": None, "parameters": None}
    assert post(ft_app, body).status_code == 200
    assert stored(ft_app)[0].data["user"] == {"realm": [], "groups": [], "id": None, "roles": []}
