"""The telemetry API in-process: emit by JSON body and by query/form parameters, ping, the stored document and the
server's fields, de-duplication, auth and grants, and the gRPC-gateway error format for every status."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from buildless.bl_helpers import (
    BEARER_ACME,
    BEARER_GLOBEX,
    BL_CREDENTIALS,
    CONTEXT_TYPE,
    EMAIL_SHA256,
    EMIT,
    EVENT_ID,
    KEY_ACME,
    KEY_GLOBEX,
    KEY_NO_GRANT,
    KEY_ODD_TENANT,
    KEY_WILDCARD,
    OCCURRED,
    PING,
    PLUGIN,
    SALT,
    STREAM,
    b64,
    bl_config,
    expected_derived_salt,
    expected_source_ip,
    expected_timehash,
    minimal,
    stored,
)

from backends.memory import MemoryBackend
from gateway import create_app, hookimpl
from gateway.config import ConfigError
from gateway.events import now_ms
from gateway.query import Filter, Query
from gateway.state import get_state
from gateway.storage import BackendUnavailable

CACHE_TYPE = "type.googleapis.com/buildless.context.Cache"
FULL_ID = "FULL0000000000000001"
UINT64_MAX = 18446744073709551615


def full_body() -> dict[str, Any]:
    """Every client field of the envelope, in the forms proto3 JSON allows (strings for integers, enum numbers...)."""
    return {
        "collection": "builds", "fin": True, "index": 7, "scope": "ci-build-42",
        "event": {
            "id": FULL_ID,
            "tenant": "org_acme01",
            "user": "user-1",
            "context": [{"type": CONTEXT_TYPE, "resource": "repo::app", "action": "push", "event": "build.finished"},
                        {"type": CACHE_TYPE, "event": "cache.hit"}],
            "detail": {
                "tenant": {"oid": 42, "name": "acme-corp"},
                "user": {"uid": "u-1", "email": b64(EMAIL_SHA256), "username": "dev"},
                "repository": {"provider": "GITHUB", "link": "https://github.com/acme/app", "name": "app"},
                "client": {
                    "tool": [{"name": "gradle", "version": {"major": 8, "minor": 5, "micro": 0, "spec": "8.5"}}],
                    "os": {"name": "macOS", "family": 3, "arch": "ARM",
                           "version": {"major": "14", "release": str(UINT64_MAX)}},
                    "agent": {"name": "buildless-cli", "version": {"major": 1, "commit": "abc123"}},
                },
            },
            "timing": {"occurred": str(OCCURRED)},
            "location": {"timezone": "Europe/Paris", "point": {"lat": 48.85, "lon": "2.35"}, "locality": "Paris",
                         "region": "IDF", "country": "FR", "edge": "cdg"},
            "timer": b64(b"timer-0001"),
            "ordinal": 3,
            "data": {"@type": "type.googleapis.com/acme.BuildInfo", "durationMs": 1234, "tags": ["a"]},
        },
    }


def canonical_full(tenant: str, ip: str) -> dict[str, Any]:
    """The document `full_body()` is stored as, without `timing.received`/`ingested` (checked separately)."""
    return {
        "collection": "builds", "fin": True, "index": 7, "scope": "ci-build-42",
        "event": {
            "scope": f"tenant::{tenant}",
            "id": FULL_ID,
            "tenant": tenant,
            "user": "user-1",
            "context": [{"type": CONTEXT_TYPE, "resource": "repo::app", "action": "push", "event": "build.finished"},
                        {"type": CACHE_TYPE, "event": "cache.hit"}],
            "detail": {
                "tenant": {"oid": 42, "name": "acme-corp"},
                "user": {"uid": "u-1", "email": b64(EMAIL_SHA256), "username": "dev"},
                "repository": {"provider": "GITHUB", "link": "https://github.com/acme/app", "name": "app"},
                "client": {
                    "tool": [{"name": "gradle", "version": {"major": 8, "minor": 5, "micro": 0, "spec": "8.5"}}],
                    "os": {"name": "macOS", "family": "DARWIN", "arch": "ARM",
                           "version": {"major": 14, "release": UINT64_MAX}},
                    "agent": {"name": "buildless-cli", "version": {"major": 1, "commit": "abc123"}},
                },
            },
            "timing": {"timehash": expected_timehash(OCCURRED, FULL_ID), "occurred": OCCURRED},
            "location": {"sourceIp": expected_source_ip(tenant, ip), "timezone": "Europe/Paris",
                         "point": {"lat": 48.85, "lon": 2.35}, "locality": "Paris", "region": "IDF", "country": "FR",
                         "edge": "cdg"},
            "timer": b64(b"timer-0001"),
            "ordinal": 3,
            "data": {"@type": "type.googleapis.com/acme.BuildInfo", "durationMs": 1234, "tags": ["a"]},
        },
    }


def status_body(resp: Any, status: int, code: int) -> str:
    """Check a gRPC-gateway status body ``{"code", "message", "details": []}``; return the message."""
    assert resp.status_code == status, resp.get_data(as_text=True)
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert list(body) == ["code", "message", "details"], body
    assert body["code"] == code and body["details"] == []
    assert isinstance(body["message"], str) and body["message"]
    return body["message"]


def pop_times(doc: dict[str, Any]) -> tuple[int, int]:
    timing = doc["event"]["timing"]
    return timing.pop("received"), timing.pop("ingested")


# -- emit by JSON body -------------------------------------------------------------------------------------------

def test_emit_minimal_event_answers_ok_and_stores_it(bl_client: Any, bl_backend: Any) -> None:
    before = now_ms()
    resp = bl_client.post(EMIT, json=minimal(), headers=BEARER_ACME)
    after = now_ms()
    assert resp.status_code == 200
    assert resp.mimetype == "application/json"
    assert resp.get_json() == {"ok": True, "eid": EVENT_ID}
    (event,) = stored(bl_backend, "acme")
    assert (event.id, event.tenant, event.plugin, event.stream) == (EVENT_ID, "acme", PLUGIN, STREAM)
    assert event.type == "_default"  # no collection
    assert event.timestamp == OCCURRED
    assert before <= event.received_at <= after
    assert (event.user_id, event.session_id) == (None, None)
    received, ingested = pop_times(event.data)
    assert received == event.received_at and received <= ingested <= after
    assert event.data == {"event": {
        "scope": "tenant::acme", "id": EVENT_ID, "tenant": "acme",
        "context": [{"type": CONTEXT_TYPE, "event": "build.started"}], "detail": {},
        "timing": {"timehash": expected_timehash(OCCURRED, EVENT_ID), "occurred": OCCURRED},
        "location": {"sourceIp": expected_source_ip("acme", "127.0.0.1")},
    }}
    assert [s.name for s in bl_backend.list_streams("acme", PLUGIN)] == [STREAM]


def test_emit_full_event_stores_the_canonical_proto3_json_document(bl_client: Any, bl_backend: Any) -> None:
    ip = "203.0.113.77"
    resp = bl_client.post(EMIT, json=full_body(), headers={**BEARER_ACME, "X-Forwarded-For": f"{ip}, 10.0.0.1"})
    assert resp.get_json() == {"ok": True, "eid": FULL_ID}
    (event,) = stored(bl_backend, "acme")
    pop_times(event.data)
    assert event.data == canonical_full("acme", ip)
    # proto field-number order for the event's keys
    assert list(event.data["event"]) == ["scope", "id", "tenant", "user", "context", "detail", "timing", "location",
                                         "timer", "ordinal", "data"]
    assert list(event.data["event"]["timing"]) == ["timehash", "occurred"]
    assert (event.type, event.user_id, event.session_id) == ("builds", "user-1", "ci-build-42")


def test_user_id_falls_back_to_the_detail_user(bl_client: Any, bl_backend: Any) -> None:
    body = minimal()
    body["event"]["detail"] = {"user": {"uid": "uid-7", "email": b64(EMAIL_SHA256)}}
    assert bl_client.post(EMIT, json=body, headers=BEARER_ACME).status_code == 200
    assert stored(bl_backend, "acme")[0].user_id == "uid-7"


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/octet-stream", None,
                                          "application/x-www-form-urlencoded"])
def test_a_json_body_is_read_whatever_the_content_type(bl_client: Any, bl_backend: Any,
                                                       content_type: str | None) -> None:
    headers = {**BEARER_ACME, **({"Content-Type": content_type} if content_type else {})}
    resp = bl_client.post(EMIT, data=json.dumps(minimal()), headers=headers)
    assert resp.get_json() == {"ok": True, "eid": EVENT_ID}
    assert [e.id for e in stored(bl_backend, "acme")] == [EVENT_ID]


# -- server fields -----------------------------------------------------------------------------------------------

def test_output_only_fields_sent_by_the_client_are_ignored(bl_client: Any, bl_backend: Any) -> None:
    ip = "198.51.100.23"
    body = minimal(collection="builds")
    body["event"].update({"scope": "user::mallory", "tenant": "org_other01"})
    body["event"]["timing"].update({"timehash": "forged", "received": 1, "ingested": "2"})
    body["event"]["location"] = {"sourceIp": b64(ip.encode()), "nielsen": "501", "tag": "u09tvw",
                                 "timezone": "America/New_York", "country": "US"}
    before = now_ms()
    assert bl_client.post(EMIT, json=body, headers={**BEARER_ACME, "X-Forwarded-For": ip}).status_code == 200
    (event,) = stored(bl_backend, "acme")
    received, ingested = pop_times(event.data)
    assert before <= received <= ingested <= now_ms()
    doc = event.data["event"]
    assert doc["scope"] == "tenant::acme"
    assert doc["tenant"] == "acme"  # the credential's tenant, not the client's
    assert doc["timing"] == {"timehash": expected_timehash(OCCURRED, EVENT_ID), "occurred": OCCURRED}
    # the client's timezone and country are kept; nielsen and tag are the server's (and it detects none)
    assert doc["location"] == {"sourceIp": expected_source_ip("acme", ip), "timezone": "America/New_York",
                               "country": "US"}


def test_source_ip_is_a_salted_per_tenant_hash(bl_client: Any, bl_backend: Any) -> None:
    for event_id, headers, ip in [("ipAcme00000001", BEARER_ACME, "192.0.2.10"),
                                  ("ipAcme00000002", BEARER_ACME, "192.0.2.10"),
                                  ("ipAcme00000003", BEARER_ACME, "192.0.2.11"),
                                  ("ipGlobex000001", BEARER_GLOBEX, "192.0.2.10"),
                                  ("ipAcme00000004", BEARER_ACME, "2001:db8::1")]:
        resp = bl_client.post(EMIT, json=minimal(event_id), headers={**headers, "X-Forwarded-For": ip})
        assert resp.status_code == 200
    acme = [e.data["event"]["location"]["sourceIp"] for e in stored(bl_backend, "acme")]
    (globex,) = [e.data["event"]["location"]["sourceIp"] for e in stored(bl_backend, "globex")]
    assert acme == [expected_source_ip("acme", "192.0.2.10"), expected_source_ip("acme", "192.0.2.10"),
                    expected_source_ip("acme", "192.0.2.11"), expected_source_ip("acme", "2001:db8::1")]
    assert globex == expected_source_ip("globex", "192.0.2.10")
    assert acme[0] == acme[1] != acme[2] and globex != acme[0]
    assert len(base64.b64decode(acme[0])) == 32  # HMAC-SHA256 bytes
    hmac_unsalted = expected_source_ip("acme", "192.0.2.10", salt="another-salt-0000000")
    assert acme[0] != hmac_unsalted


def test_source_ip_is_the_peer_when_forwarded_for_is_not_trusted(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}, server={"trust_forwarded_for": False}))
    resp = app.test_client().post(EMIT, json=minimal(), headers={**BEARER_ACME, "X-Forwarded-For": "192.0.2.99"},
                                  environ_base={"REMOTE_ADDR": "192.0.2.5"})
    assert resp.status_code == 200
    (event,) = stored(get_state(app).backend, "acme")
    assert event.data["event"]["location"] == {"sourceIp": expected_source_ip("acme", "192.0.2.5")}


def test_without_a_salt_the_key_is_derived_from_the_tenants_credentials(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        app = create_app(bl_config(tmp_path, salt=None, storage={"url": "memory://"}))
    assert any("ip_salt" in r.getMessage() and "sourceIp" in r.getMessage() for r in caplog.records)
    client, backend = app.test_client(), get_state(app).backend
    ip = "192.0.2.44"
    body = minimal()
    body["event"]["location"] = {"timezone": "UTC"}
    assert client.post(EMIT, json=body, headers={**BEARER_ACME, "X-Forwarded-For": ip}).status_code == 200
    assert client.post(EMIT, json=body, headers={**BEARER_GLOBEX, "X-Forwarded-For": ip}).status_code == 200
    (acme,) = stored(backend, "acme")
    (globex,) = stored(backend, "globex")
    acme_key = expected_derived_salt(KEY_ACME, KEY_NO_GRANT)  # the two credentials of tenant acme
    assert acme.data["event"]["location"] == {"sourceIp": expected_source_ip("acme", ip, acme_key), "timezone": "UTC"}
    assert globex.data["event"]["location"]["sourceIp"] == expected_source_ip("globex", ip,
                                                                              expected_derived_salt(KEY_GLOBEX))
    for event in (acme, globex):
        assert ip not in json.dumps(event.to_dict())

    # another tenant's new key changes nothing for acme; a new acme key changes acme's hashes
    extra = [{"id": "bl-globex-2", "secret": "bl-globex-emit-key-0002", "tenant": "globex", "grants": []}]
    for credentials, expected in (([*BL_CREDENTIALS, *extra], acme_key),
                                  ([*BL_CREDENTIALS, {**extra[0], "tenant": "acme"}],
                                   expected_derived_salt(KEY_ACME, KEY_NO_GRANT, "bl-globex-emit-key-0002"))):
        other = create_app(bl_config(tmp_path, salt=None, storage={"url": "memory://"}, credentials=credentials))
        assert other.test_client().post(EMIT, json=minimal(), headers={**BEARER_ACME, "X-Forwarded-For": ip}
                                        ).status_code == 200
        (event,) = stored(get_state(other).backend, "acme")
        assert event.data["event"]["location"]["sourceIp"] == expected_source_ip("acme", ip, expected)


@pytest.mark.parametrize("settings, key", [
    ({"ip_salt": "short"}, "plugins.buildless.ip_salt"),
    ({"ip_salt": 1234567890123456789}, "plugins.buildless.ip_salt"),
    ({"ip_salt": SALT, "salt": "x"}, "plugins.buildless.salt"),
])
def test_bad_settings_stop_start_up_naming_the_key(tmp_path: Path, settings: dict[str, Any], key: str) -> None:
    config = bl_config(tmp_path, storage={"url": "memory://"}, plugins={"enabled": [PLUGIN], PLUGIN: settings})
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        create_app(config)


def test_a_tenant_name_outside_the_scope_pattern_is_hashed(bl_client: Any, bl_backend: Any) -> None:
    resp = bl_client.post(EMIT, json=minimal(), headers={"Authorization": f"Bearer {KEY_ODD_TENANT}"})
    assert resp.status_code == 200
    (event,) = stored(bl_backend, "a.b")
    assert event.data["event"]["scope"] == "tenant::" + hashlib.sha256(b"a.b").hexdigest()[:32]
    assert event.data["event"]["tenant"] == "a.b"


# -- emit by query parameters ------------------------------------------------------------------------------------

QUERY_PARAMS = [
    ("collection", "builds"), ("fin", "true"), ("index", "7"), ("scope", "ci-build-42"),
    ("event.id", FULL_ID), ("event.tenant", "org_acme01"), ("event.user", "user-1"),
    ("event.context.type", CONTEXT_TYPE), ("event.context.resource", "repo::app"), ("event.context.action", "push"),
    ("event.context.event", "build.finished"), ("event.context.type", CACHE_TYPE), ("event.context.event", "cache.hit"),
    ("event.detail.tenant.oid", "42"), ("event.detail.tenant.name", "acme-corp"),
    ("event.detail.user.uid", "u-1"), ("event.detail.user.email", base64.urlsafe_b64encode(EMAIL_SHA256).decode()),
    ("event.detail.user.username", "dev"),
    ("event.detail.repository.provider", "1"), ("event.detail.repository.link", "https://github.com/acme/app"),
    ("event.detail.repository.name", "app"),
    ("event.detail.client.tool.name", "gradle"), ("event.detail.client.tool.version.major", "8"),
    ("event.detail.client.tool.version.minor", "5"), ("event.detail.client.tool.version.micro", "0"),
    ("event.detail.client.tool.version.spec", "8.5"),
    ("event.detail.client.os.name", "macOS"), ("event.detail.client.os.family", "DARWIN"),
    ("event.detail.client.os.arch", "2"), ("event.detail.client.os.version.major", "14"),
    ("event.detail.client.os.version.release", str(UINT64_MAX)),
    ("event.detail.client.agent.name", "buildless-cli"), ("event.detail.client.agent.version.major", "1"),
    ("event.detail.client.agent.version.commit", "abc123"),
    ("event.timing.occurred", str(OCCURRED)),
    ("event.location.timezone", "Europe/Paris"), ("event.location.point.lat", "48.85"),
    ("event.location.point.lon", "2.35"), ("event.location.locality", "Paris"), ("event.location.region", "IDF"),
    ("event.location.country", "FR"), ("event.location.edge", "cdg"),
    ("event.timer", base64.urlsafe_b64encode(b"timer-0001").decode().rstrip("=")), ("event.ordinal", "3"),
    ("event.location.source_ip", "forged"), ("event.timing.received", "5"),  # output-only: ignored
    ("utm_source", "x"), ("event.unknown.field", "y"),  # unknown: ignored
]


def _without_data(doc: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(doc)
    del doc["event"]["data"]
    return doc


def test_emit_by_query_parameters(bl_client: Any, bl_backend: Any) -> None:
    ip = "203.0.113.78"
    resp = bl_client.post(f"{EMIT}?{urlencode(QUERY_PARAMS)}", headers={**BEARER_ACME, "X-Forwarded-For": ip})
    assert resp.get_json() == {"ok": True, "eid": FULL_ID}
    (event,) = stored(bl_backend, "acme")
    pop_times(event.data)
    assert event.data == _without_data(canonical_full("acme", ip))


def test_emit_by_form_encoded_body(bl_client: Any, bl_backend: Any) -> None:
    ip = "203.0.113.79"
    resp = bl_client.post(EMIT, data=urlencode(QUERY_PARAMS),
                          headers={**BEARER_ACME, "X-Forwarded-For": ip,
                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert resp.get_json() == {"ok": True, "eid": FULL_ID}
    (event,) = stored(bl_backend, "acme")
    pop_times(event.data)
    assert event.data == _without_data(canonical_full("acme", ip))


@pytest.mark.parametrize("value, expected", [("true", True), ("1", True), ("True", True), ("false", False),
                                             ("0", False), ("F", False)])
def test_boolean_parameters_as_go_parses_them(bl_client: Any, bl_backend: Any, value: str, expected: bool) -> None:
    params = {"fin": value, "event.id": EVENT_ID, "event.context.type": CONTEXT_TYPE,
              "event.context.event": "e", "event.timing.occurred": str(OCCURRED)}
    params["event.detail.tenant.oid"] = "1"
    params["event.detail.tenant.name"] = "acme"
    assert bl_client.post(f"{EMIT}?{urlencode(params)}", headers=BEARER_ACME).status_code == 200
    assert stored(bl_backend, "acme")[0].data["fin"] is expected


@pytest.mark.parametrize("params, path, fragment", [
    ([("event.detail", "x")], "event.detail", "is a message"),
    ([("event.context", "x")], "event.context", "list of messages"),
    ([("event.data", "{}")], "event.data", "JSON body"),
    ([("event.id", EVENT_ID), ("event.id", "other0000000001")], "event.id", "given 2 times"),
    ([("event.id.x", "1")], "event.id", "not a message"),
    ([("fin", "yes")], "fin", "true or false"),
    ([("event.detail.client.os.family", "BEOS")], "event.detail.client.os.family", "OSFamily"),
    ([("event.timing.occurred", "soon")], "event.timing.occurred", "integer"),
    ([("event.context.type", CONTEXT_TYPE), ("event.context.type", CACHE_TYPE), ("event.context.event", "e")],
     "event.context[1].event", "is required"),
    ([], "event", "is required"),
])
def test_parameter_problems_are_400_naming_the_field(bl_client: Any, bl_backend: Any, params: list[tuple[str, str]],
                                                      path: str, fragment: str) -> None:
    message = status_body(bl_client.post(f"{EMIT}?{urlencode(params)}", headers=BEARER_ACME), 400, 3)
    assert path in message and fragment in message, message
    assert stored(bl_backend, "acme") == []


def test_json_body_with_envelope_parameters_is_refused(bl_client: Any, bl_backend: Any) -> None:
    resp = bl_client.post(f"{EMIT}?collection=builds", json=minimal(), headers=BEARER_ACME)
    message = status_body(resp, 400, 3)
    assert "collection" in message and "JSON body" in message
    resp = bl_client.post(f"{EMIT}?event.id={EVENT_ID}", json=minimal(), headers=BEARER_ACME)
    assert "event.id" in status_body(resp, 400, 3)
    # parameters naming no field are ignored
    assert bl_client.post(f"{EMIT}?trace=1&utm_source=x", json=minimal(), headers=BEARER_ACME).status_code == 200
    assert len(stored(bl_backend, "acme")) == 1


# -- ping --------------------------------------------------------------------------------------------------------

def test_ping_answers_an_empty_object(bl_client: Any, bl_backend: Any) -> None:
    for kwargs in ({}, {"json": {}}, {"data": "anything"}):
        resp = bl_client.post(PING, headers=BEARER_ACME, **kwargs)
        assert resp.status_code == 200 and resp.mimetype == "application/json"
        assert resp.get_data() == b"{}"
    assert stored(bl_backend, "acme") == []
    status_body(bl_client.post(PING), 401, 16)
    status_body(bl_client.post(PING, headers={"X-API-Key": KEY_NO_GRANT}), 403, 7)
    status_body(bl_client.get(PING, headers=BEARER_ACME), 405, 12)


# -- de-duplication (sequential; the concurrent case runs against a real server) ---------------------------------

def test_a_repeated_event_id_is_acknowledged_and_stored_once(bl_client: Any, bl_backend: Any) -> None:
    first = minimal(collection="builds")
    second = minimal(collection="caches")  # same id, other collection and content
    second["event"]["context"][0]["event"] = "build.retried"
    replies = [bl_client.post(EMIT, json=body, headers=BEARER_ACME) for body in (first, first, second)]
    assert [(r.status_code, r.get_json()) for r in replies] == [(200, {"ok": True, "eid": EVENT_ID})] * 3
    (event,) = stored(bl_backend, "acme")
    assert event.type == "builds"  # the first one wins
    assert event.data["event"]["context"][0]["event"] == "build.started"
    # by query parameters too
    params = {"event.id": EVENT_ID, "event.context.type": CONTEXT_TYPE, "event.context.event": "e",
              "event.timing.occurred": "1", "event.detail.tenant.oid": "1", "event.detail.tenant.name": "acme"}
    resp = bl_client.post(f"{EMIT}?{urlencode(params)}", headers=BEARER_ACME)
    assert resp.get_json() == {"ok": True, "eid": EVENT_ID}
    assert len(stored(bl_backend, "acme")) == 1


def test_event_ids_are_per_tenant(bl_client: Any, bl_backend: Any) -> None:
    for headers in (BEARER_ACME, BEARER_GLOBEX, {"Authorization": f"Bearer {KEY_WILDCARD}"}):
        assert bl_client.post(EMIT, json=minimal(), headers=headers).get_json() == {"ok": True, "eid": EVENT_ID}
    for tenant in ("acme", "globex", "initech"):
        assert [e.id for e in stored(bl_backend, tenant)] == [EVENT_ID]
    assert stored(bl_backend, "nobody") == []


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
def test_deleted_stream_is_recreated_and_nothing_is_lost(tmp_path: Path, storage: str) -> None:
    config = bl_config(tmp_path, **({"storage": {"url": "memory://"}} if storage == "memory" else {}))
    app = create_app(config)
    client, backend = app.test_client(), get_state(app).backend
    assert client.post(EMIT, json=minimal("first0000000001"), headers=BEARER_ACME).status_code == 200
    assert backend.delete_stream("acme", PLUGIN, STREAM)
    assert client.post(EMIT, json=minimal("second000000001"), headers=BEARER_ACME).status_code == 200
    assert [e.id for e in stored(backend, "acme")] == ["second000000001"]


# -- reading the events back -------------------------------------------------------------------------------------

def test_events_are_readable_through_the_backend_query(bl_client: Any, bl_backend: Any) -> None:
    bodies = [minimal("build00000000001", collection="builds"), minimal("cache00000000001", collection="caches"),
              minimal("build00000000002", collection="builds"), minimal("plain00000000001")]
    for offset, body in enumerate(bodies):
        body["event"]["timing"]["occurred"] = OCCURRED + offset * 1000
        assert bl_client.post(EMIT, json=body, headers=BEARER_ACME).status_code == 200
    query = Query(tenant="acme", plugin=PLUGIN, streams=(STREAM,), filters=(Filter("type", "eq", "builds"),))
    assert [e.id for e in bl_backend.query(query).events] == ["build00000000001", "build00000000002"]
    window = Query(tenant="acme", plugin=PLUGIN, start=OCCURRED + 1000, end=OCCURRED + 3000)
    assert [e.id for e in bl_backend.query(window).events] == ["cache00000000001", "build00000000002"]
    by_path = Query(tenant="acme", plugin=PLUGIN, filters=(Filter("data.event.scope", "eq", "tenant::acme"),
                                                           Filter("data.collection", "exists")))
    assert bl_backend.query(by_path).total == 3
    assert [e.type for e in stored(bl_backend, "acme")] == ["builds", "caches", "builds", "_default"]
    assert stored(bl_backend, "globex") == []


# -- auth and grants ---------------------------------------------------------------------------------------------

def _basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.mark.parametrize("headers", [
    {"Authorization": f"Bearer {KEY_ACME}"},
    {"Authorization": f"bearer {KEY_ACME}"},
    {"X-API-Key": KEY_ACME},
    {"x-api-key": f"  {KEY_ACME} "},
    _basic("apikey", KEY_ACME),
], ids=["bearer", "bearer-lowercase", "x-api-key", "x-api-key-padded", "basic-apikey"])
def test_every_documented_key_scheme_is_accepted(bl_client: Any, bl_backend: Any, headers: dict[str, str]) -> None:
    assert bl_client.post(EMIT, json=minimal(), headers=headers).get_json() == {"ok": True, "eid": EVENT_ID}
    assert len(stored(bl_backend, "acme")) == 1


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": ""},
    {"Authorization": "Bearer"},
    {"X-API-Key": "   "},
    _basic("bl-acme", KEY_ACME),  # Basic is only for the user apikey
    {"Authorization": "ApiKey " + base64.b64encode(f"bl-acme:{KEY_ACME}".encode()).decode()},
    {"X-Hello-Key": KEY_ACME},
], ids=["none", "empty", "bearer-without-key", "blank-x-api-key", "basic-other-user", "es-apikey", "other-header"])
def test_missing_key_is_401_unauthenticated(bl_client: Any, bl_backend: Any, headers: dict[str, str]) -> None:
    resp = bl_client.post(EMIT, json=minimal(), headers=headers)
    message = status_body(resp, 401, 16)
    assert "missing credentials" in message
    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    assert stored(bl_backend, "acme") == []


@pytest.mark.parametrize("headers", [
    {"Authorization": "Bearer not-a-key"},
    {"X-API-Key": KEY_ACME + "x"},
    _basic("apikey", "wrong-key-000001"),
], ids=["bearer", "x-api-key", "basic"])
def test_unknown_key_is_401_unauthenticated(bl_client: Any, headers: dict[str, str]) -> None:
    resp = bl_client.post(EMIT, json=minimal(), headers=headers)
    assert "invalid credentials" in status_body(resp, 401, 16)
    assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]


def test_key_without_the_grant_is_403_before_the_request_is_read(bl_client: Any, bl_backend: Any) -> None:
    for kwargs in ({"json": minimal()}, {"json": {"event": {"id": "x"}}}, {"data": "not json"}):
        resp = bl_client.post(EMIT, headers={"X-API-Key": KEY_NO_GRANT}, **kwargs)
        message = status_body(resp, 403, 7)
        assert "buildless:emit" in message
    resp = bl_client.post(f"{EMIT}?event.data=1", headers={"X-API-Key": KEY_NO_GRANT})
    status_body(resp, 403, 7)
    assert stored(bl_backend, "acme") == []


# -- every other status in the gRPC-gateway format ---------------------------------------------------------------

def test_invalid_json_is_400_invalid_argument(bl_client: Any) -> None:
    cases = [("{", "invalid request body"), ("[1, 2]", "must be a JSON object"), ('"x"', "must be a JSON object"),
             ('{"event": {}, "event": {}}', 'duplicate field "event"'), ('{"index": NaN}', "NaN"),
             (b"\xff\xfe", "UTF-8")]
    for body, fragment in cases:
        resp = bl_client.post(EMIT, data=body, headers={**BEARER_ACME, "Content-Type": "application/json"})
        assert fragment in status_body(resp, 400, 3), body


@pytest.mark.parametrize("depth, status", [(90, 200), (98, 400), (5000, 400), (200_000, 400)])
def test_deeply_nested_bodies_are_400_not_500(bl_client: Any, bl_backend: Any, depth: int, status: int) -> None:
    # root, event and data are three levels; `depth` arrays nest inside data.a
    raw = json.dumps(minimal())[:-2] + ', "data": {"@type": "t/x", "a": ' + "[" * depth + "]" * depth + "}}}"
    resp = bl_client.post(EMIT, data=raw, headers={**BEARER_ACME, "Content-Type": "application/json"})
    if status == 200:
        assert resp.get_json() == {"ok": True, "eid": EVENT_ID}
        assert len(stored(bl_backend, "acme")) == 1
    else:
        assert "100 levels" in status_body(resp, 400, 3)
        assert stored(bl_backend, "acme") == []


@pytest.mark.parametrize("path", ["/v1/telemetry/event:stream", "/v1/telemetry/events", "/v1/telemetry/"])
def test_unknown_path_under_the_api_is_404_not_found(bl_client: Any, path: str) -> None:
    assert status_body(bl_client.post(path, json={}, headers=BEARER_ACME), 404, 5) == "Not Found"


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH"])
def test_wrong_method_is_405_unimplemented(bl_client: Any, method: str) -> None:
    resp = bl_client.open(EMIT, method=method, headers=BEARER_ACME)
    assert status_body(resp, 405, 12) == "Method Not Allowed"
    assert "POST" in resp.headers["Allow"]


def test_body_over_the_limit_is_413(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}, server={"max_body_bytes": 300}))
    body = minimal()
    body["event"]["user"] = "u" * 400
    resp = app.test_client().post(EMIT, data=json.dumps(body), headers={**BEARER_ACME,
                                                                        "Content-Type": "application/json"})
    assert "larger" in status_body(resp, 413, 8)
    assert stored(get_state(app).backend, "acme") == []


def test_quota_breach_is_429_resource_exhausted_with_retry_after(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}, quotas={PLUGIN: {"emit": "2 per minute"}}))
    client = app.test_client()
    statuses = [client.post(EMIT, json=minimal(f"quota{i:011d}"), headers=BEARER_ACME).status_code for i in range(3)]
    assert statuses == [200, 200, 429]
    limited = client.post(EMIT, json=minimal(), headers=BEARER_ACME)
    status_body(limited, 429, 8)
    assert int(limited.headers["Retry-After"]) >= 1
    assert client.post(EMIT, json=minimal(), headers=BEARER_GLOBEX).status_code == 200  # its own budget
    assert len(stored(get_state(app).backend, "acme")) == 2
    default = create_app(bl_config(tmp_path, storage={"url": "memory://"}))
    assert get_state(default).apis[PLUGIN].quotas == {"emit": "1000 per second"}


class DownBackend(MemoryBackend):
    """The catalog works, appends fail: the store went away mid-request."""

    def append(self, events: Any, create_streams: bool = False) -> int:
        raise BackendUnavailable("connection refused")


def test_store_down_is_503_unavailable(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}), backend=DownBackend("memory://"))
    resp = app.test_client().post(EMIT, json=minimal(), headers=BEARER_ACME)
    assert "unavailable" in status_body(resp, 503, 14)


class Exploding:
    """A third-party enricher with a bug: the request fails as a gRPC INTERNAL status, not an HTML page."""

    @hookimpl
    def enrich_event(self, event: Any, request: Any) -> None:
        if event.plugin == PLUGIN:
            raise RuntimeError("bug in an enricher")


def test_unexpected_error_is_500_internal(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}), plugins=[("exploding", Exploding())])
    resp = app.test_client().post(EMIT, json=minimal(), headers=BEARER_ACME)
    assert status_body(resp, 500, 13) == "internal error"
    assert stored(get_state(app).backend, "acme") == []


def test_plugin_is_a_builtin_with_its_routes(tmp_path: Path) -> None:
    app = create_app(bl_config(tmp_path, storage={"url": "memory://"}, plugins={"enabled": ["buildless"]}))
    described = {p["name"]: p for p in app.test_client().get("/_gateway/plugins").get_json()["plugins"]}
    plugin = described[PLUGIN]
    assert plugin["builtin"] and plugin["version"] == "0.1.0"
    assert {"POST /v1/telemetry/event:emit", "POST /v1/telemetry/event:ping"} <= set(plugin["routes"])
    assert SALT not in json.dumps(described)

