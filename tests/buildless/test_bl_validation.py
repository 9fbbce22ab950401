"""Validation of the ``Event`` envelope, rule by rule (each refused with 400 INVALID_ARGUMENT naming the field),
and the proto3 JSON forms that must be accepted: JSON or proto names, enums by name or number, 64-bit integers as
strings."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Any

import pytest
from buildless.bl_helpers import BEARER_ACME, CONTEXT_TYPE, EMAIL_SHA256, EMIT, EVENT_ID, OCCURRED, b64, minimal, stored

Mutation = Callable[[dict[str, Any]], None]
VERSION = {"major": 1}


def _set(path: str, value: Any) -> Mutation:
    """A mutation setting a dotted path (list items as integers) of the envelope; missing objects are created."""
    def mutate(body: dict[str, Any]) -> None:
        node: Any = body
        parts = path.split(".")
        for part in parts[:-1]:
            key: Any = int(part) if part.isdigit() else part
            if isinstance(node, dict) and key not in node:
                node[key] = {}
            node = node[key]
        last: Any = int(parts[-1]) if parts[-1].isdigit() else parts[-1]
        node[last] = value
    return mutate


def _drop(path: str) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        node: Any = body
        parts = path.split(".")
        for part in parts[:-1]:
            node = node[int(part) if part.isdigit() else part]
        del node[parts[-1]]
    return mutate


def _both(*mutations: Mutation) -> Mutation:
    def mutate(body: dict[str, Any]) -> None:
        for mutation in mutations:
            mutation(body)
    return mutate


def _context(**item: Any) -> Mutation:
    return _set("event.context", [{"type": CONTEXT_TYPE, "event": "build.started", **item}])


def _os(**os: Any) -> Mutation:
    return _set("event.detail.client.os", {"name": "Linux", "family": "LINUX", "arch": "X86", "version": {}, **os})


def _repo(**repo: Any) -> Mutation:
    return _set("event.detail.repository", {"provider": "GITHUB", "link": "https://github.com/a/b", **repo})


def _user(**user: Any) -> Mutation:
    return _set("event.detail.user", {"uid": "u-1", "email": b64(EMAIL_SHA256), **user})


def _tenant(**tenant: Any) -> Mutation:
    return _set("event.detail.tenant", {"oid": 1, "name": "acme", **tenant})


LONG_TYPE = "type.googleapis.com/buildless.context." + "A" * 27  # matches the pattern, 65 characters

#: (id, mutation of a valid envelope, the JSON path the message must name, a fragment of the message)
INVALID: list[tuple[str, Mutation, str, str]] = [
    # envelope
    ("event-missing", _drop("event"), "event", "is required"),
    ("event-null", _set("event", None), "event", "is required"),
    ("event-not-object", _set("event", [1]), "event", "must be a JSON object"),
    ("collection-short", _set("collection", "ab"), "collection", "^[a-zA-Z]{3,32}$"),
    ("collection-digits", _set("collection", "builds2"), "collection", "^[a-zA-Z]{3,32}$"),
    ("collection-long", _set("collection", "a" * 33), "collection", "at most 32"),
    ("collection-not-string", _set("collection", 5), "collection", "must be a string"),
    ("fin-string", _set("fin", "true"), "fin", "true or false"),
    ("index-negative", _set("index", -1), "index", "between 0 and 4294967295"),
    ("index-over-uint32", _set("index", 2**32), "index", "between 0 and 4294967295"),
    ("index-fraction", _set("index", 1.5), "index", "unsigned 32-bit integer"),
    ("index-bool", _set("index", True), "index", "unsigned 32-bit integer"),
    ("scope-not-string", _set("scope", {"a": 1}), "scope", "must be a string"),
    # event.id
    ("id-missing", _drop("event.id"), "event.id", "is required"),
    ("id-empty", _set("event.id", ""), "event.id", "is required"),
    ("id-short", _set("event.id", "abc12345678"), "event.id", "^[a-zA-Z0-9]{12,64}$"),
    ("id-long", _set("event.id", "a" * 65), "event.id", "at most 64"),
    ("id-dash", _set("event.id", "abcdef-123456"), "event.id", "^[a-zA-Z0-9]{12,64}$"),
    ("id-number", _set("event.id", 123456789012345), "event.id", "must be a string"),
    # tenant, user
    ("tenant-pattern", _set("event.tenant", "acme"), "event.tenant", "^org_[a-zA-Z0-9]{3,32}$"),
    ("tenant-long", _set("event.tenant", "org_" + "a" * 33), "event.tenant", "^org_"),
    ("user-long", _set("event.user", "u" * 129), "event.user", "at most 128"),
    # context
    ("context-missing", _drop("event.context"), "event.context", "is required"),
    ("context-empty", _set("event.context", []), "event.context", "between 1 and 10 items (got 0)"),
    ("context-eleven", _set("event.context", [{"type": CONTEXT_TYPE, "event": "e"}] * 11), "event.context",
     "between 1 and 10 items (got 11)"),
    ("context-not-array", _set("event.context", {"type": CONTEXT_TYPE}), "event.context", "JSON array"),
    ("context-item-not-object", _set("event.context", ["x"]), "event.context[0]", "JSON object"),
    ("context-type-missing", _drop("event.context.0.type"), "event.context[0].type", "is required"),
    ("context-type-pattern", _context(type="type.googleapis.com/acme.Build"), "event.context[0].type",
     "^type.googleapis.com/buildless.context."),
    ("context-type-long", _context(type=LONG_TYPE), "event.context[0].type", "at most 64"),
    ("context-event-missing", _drop("event.context.0.event"), "event.context[0].event", "is required"),
    ("context-event-long", _context(event="e" * 65), "event.context[0].event", "at most 64"),
    ("context-resource-pattern", _context(resource="repo:app"), "event.context[0].resource", "^[a-zA-Z]{3,12}::"),
    ("context-resource-long", _context(resource="repo::" + "a" * 123), "event.context[0].resource", "at most 128"),
    ("context-action-long", _context(resource="repo::a", action="a" * 33), "event.context[0].action", "at most 32"),
    ("context-action-without-resource", _context(action="push"), "event.context[0].action", "resource"),
    ("context-second-item", _set("event.context", [{"type": CONTEXT_TYPE, "event": "a"}, {"type": CONTEXT_TYPE}]),
     "event.context[1].event", "is required"),
    # detail
    ("detail-missing", _drop("event.detail"), "event.detail", "is required"),
    ("detail-not-object", _set("event.detail", "x"), "event.detail", "JSON object"),
    ("detail-tenant-oid-missing", _set("event.detail.tenant", {"name": "acme"}), "event.detail.tenant.oid",
     "is required"),
    ("detail-tenant-oid-zero", _tenant(oid=0), "event.detail.tenant.oid", "is required"),
    ("detail-tenant-oid-string", _tenant(oid="x"), "event.detail.tenant.oid", "unsigned 32-bit integer"),
    ("detail-tenant-name-missing", _set("event.detail.tenant", {"oid": 1}), "event.detail.tenant.name",
     "is required"),
    ("detail-tenant-name-pattern", _tenant(name="1acme"), "event.detail.tenant.name", "^[a-zA-Z]{1}"),
    ("detail-tenant-name-long", _tenant(name="a" * 33), "event.detail.tenant.name", "at most 32"),
    ("detail-user-uid-missing", _set("event.detail.user", {"email": b64(EMAIL_SHA256)}), "event.detail.user.uid",
     "is required"),
    ("detail-user-uid-long", _user(uid="u" * 129), "event.detail.user.uid", "at most 128"),
    ("detail-user-email-missing", _set("event.detail.user", {"uid": "u"}), "event.detail.user.email", "is required"),
    ("detail-user-email-not-base64", _user(email="dev@example.com"), "event.detail.user.email", "base64"),
    ("detail-user-email-16-bytes", _user(email=b64(b"0123456789abcdef")), "event.detail.user.email",
     "exactly 32 bytes (got 16)"),
    ("detail-user-username-long", _user(username="u" * 33), "event.detail.user.username", "at most 32"),
    ("detail-repository-provider-missing", _set("event.detail.repository", {"link": "https://a.b/c"}),
     "event.detail.repository.provider", "is required"),
    ("detail-repository-provider-zero", _repo(provider="NO_REPOSITORY_PROVIDER"), "event.detail.repository.provider",
     "is required"),
    ("detail-repository-provider-name", _repo(provider="GITLAB"), "event.detail.repository.provider",
     "RepositoryProvider"),
    ("detail-repository-provider-number", _repo(provider=7), "event.detail.repository.provider", "RepositoryProvider"),
    ("detail-repository-provider-lowercase", _repo(provider="github"), "event.detail.repository.provider",
     "RepositoryProvider"),
    ("detail-repository-link-missing", _set("event.detail.repository", {"provider": 1}),
     "event.detail.repository.link", "is required"),
    ("detail-repository-link-relative", _repo(link="github.com/acme/app"), "event.detail.repository.link",
     "absolute URI"),
    ("detail-repository-link-space", _repo(link="https://github.com/acme app"), "event.detail.repository.link",
     "absolute URI"),
    ("detail-repository-name-long", _repo(name="r" * 33), "event.detail.repository.name", "at most 32"),
    ("detail-client-tool-name", _set("event.detail.client.tool", [{"version": {}}]),
     "event.detail.client.tool[0].name", "is required"),
    ("detail-client-tool-version", _set("event.detail.client.tool", [{"name": "gradle"}]),
     "event.detail.client.tool[0].version", "is required"),
    ("detail-client-os-name", _os(name=""), "event.detail.client.os.name", "is required"),
    ("detail-client-os-family-missing", _set("event.detail.client.os", {"name": "x", "arch": 1, "version": {}}),
     "event.detail.client.os.family", "is required"),
    ("detail-client-os-family-undefined", _os(family="BEOS"), "event.detail.client.os.family", "OSFamily"),
    ("detail-client-os-family-number", _os(family=6), "event.detail.client.os.family", "OSFamily"),
    ("detail-client-os-family-zero", _os(family="UNKNOWN_OS_FAMILY"), "event.detail.client.os.family", "is required"),
    ("detail-client-os-family-numeric-string", _os(family="2"), "event.detail.client.os.family", "OSFamily"),
    ("detail-client-os-arch-undefined", _os(arch=9), "event.detail.client.os.arch", "ProcessorArch"),
    ("detail-client-os-arch-bool", _os(arch=True), "event.detail.client.os.arch", "ProcessorArch"),
    ("detail-client-os-version", _set("event.detail.client.os", {"name": "x", "family": 1, "arch": 1}),
     "event.detail.client.os.version", "is required"),
    ("detail-client-agent-name", _set("event.detail.client.agent", {"version": {}}),
     "event.detail.client.agent.name", "is required"),
    ("detail-client-agent-version", _set("event.detail.client.agent", {"name": "cli"}),
     "event.detail.client.agent.version", "is required"),
    ("version-major-string", _os(version={"major": "one"}), "event.detail.client.os.version.major", "integer"),
    ("version-release-over-uint64", _os(version={"release": str(2**64)}), "event.detail.client.os.version.release",
     "between 0 and 18446744073709551615"),
    # timing
    ("timing-missing", _drop("event.timing"), "event.timing", "is required"),
    ("timing-occurred-missing", _set("event.timing", {"received": 5}), "event.timing.occurred", "is required"),
    ("timing-occurred-zero", _set("event.timing.occurred", 0), "event.timing.occurred", "is required"),
    ("timing-occurred-zero-string", _set("event.timing.occurred", "0"), "event.timing.occurred", "is required"),
    ("timing-occurred-negative", _set("event.timing.occurred", -5), "event.timing.occurred", "between 0"),
    ("timing-occurred-fraction", _set("event.timing.occurred", 1.5), "event.timing.occurred", "64-bit integer"),
    ("timing-occurred-text", _set("event.timing.occurred", "yesterday"), "event.timing.occurred", "64-bit integer"),
    ("timing-occurred-bool", _set("event.timing.occurred", True), "event.timing.occurred", "64-bit integer"),
    ("timing-occurred-huge-string", _set("event.timing.occurred", "9" * 5000), "event.timing.occurred", "between 0"),
    ("timing-occurred-huge-number", _set("event.timing.occurred", 10**4000), "event.timing.occurred", "between 0"),
    ("timing-occurred-after-9999", _set("event.timing.occurred", 253_402_300_800_000), "event.timing.occurred",
     "253402300799999"),
    # location, timer, ordinal
    ("location-not-object", _set("event.location", "Paris"), "event.location", "JSON object"),
    ("location-point-lat-text", _set("event.location", {"point": {"lat": "north"}}), "event.location.point.lat",
     "must be a number"),
    ("location-point-lon-nan", _set("event.location", {"point": {"lon": "NaN"}}), "event.location.point.lon",
     "finite"),
    ("location-source-ip-twice", _set("event.location", {"sourceIp": "AQ==", "source_ip": "AQ=="}),
     "event.location.sourceIp", "given twice"),
    ("location-point-lat-huge", _set("event.location", {"point": {"lat": 10**400}}), "event.location.point.lat",
     "finite"),
    ("location-point-lat-exponent-overflow", _set("event.location", {"point": {"lat": "1e400"}}),
     "event.location.point.lat", "finite"),
    ("location-point-lat-python-only-syntax", _set("event.location", {"point": {"lat": "1_0"}}),
     "event.location.point.lat", "must be a number"),
    ("timer-long", _set("event.timer", b64(b"t" * 33)), "event.timer", "at most 32 bytes (got 33)"),
    ("timer-not-base64", _set("event.timer", "%%%"), "event.timer", "base64"),
    ("ordinal-negative", _set("event.ordinal", -1), "event.ordinal", "between 0 and 4294967295"),
    # data
    ("data-not-object", _set("event.data", [1]), "event.data", "JSON object"),
    ("data-without-type", _set("event.data", {"a": 1}), "event.data.@type", "is required"),
    ("data-bad-type", _set("event.data", {"@type": "acme.Build"}), "event.data.@type", "type URL"),
    ("data-prefix", _set("event.data", {"@type": "t/x", "_buildless_ver": 1}), "event.data._buildless_ver",
     '"_buildless_"'),
    ("data-contains", _set("event.data", {"@type": "t/x", "mybuildlessflag": 1}), "event.data.mybuildlessflag",
     '"buildless"'),
    ("data-contains-any-case", _set("event.data", {"@type": "t/x", "viaBuildLess": 1}), "event.data.viaBuildLess",
     '"buildless"'),
    ("data-nested", _set("event.data", {"@type": "t/x", "a": {"b": {"buildless_id": 1}}}),
     "event.data.a.b.buildless_id", '"buildless"'),
    ("data-in-array", _set("event.data", {"@type": "t/x", "items": [{"ok": 1}, {"_buildless_": 2}]}),
     "event.data.items[1]._buildless_", '"_buildless_"'),
    ("data-struct-value", _set("event.data", {"@type": "type.googleapis.com/google.protobuf.Struct",
                                              "value": {"buildless": True}}), "event.data.value.buildless",
     '"buildless"'),
]


@pytest.mark.parametrize("mutate, path, fragment", [case[1:] for case in INVALID], ids=[case[0] for case in INVALID])
def test_rule_is_enforced_and_the_message_names_the_field(bl_client: Any, bl_backend: Any, mutate: Mutation,
                                                          path: str, fragment: str) -> None:
    body = minimal()
    mutate(body)
    resp = bl_client.post(EMIT, json=body, headers=BEARER_ACME)
    assert resp.status_code == 400, resp.get_data(as_text=True)
    payload = resp.get_json()
    assert payload["code"] == 3 and payload["details"] == []
    message = payload["message"]
    assert f"{path} " in message, message
    assert fragment in message, message
    assert stored(bl_backend, "acme") == []


def test_every_problem_is_reported_at_once(bl_client: Any) -> None:
    body = {"collection": "x1", "event": {"id": "short", "context": [], "timing": {}, "timer": "!"}}
    message = bl_client.post(EMIT, json=body, headers=BEARER_ACME).get_json()["message"]
    for path in ("collection ", "event.id ", "event.context ", "event.detail ", "event.timing.occurred ",
                 "event.timer "):
        assert path in message, message
    assert message.index("collection ") < message.index("event.id ") < message.index("event.timing.occurred ")


#: (id, mutation, path in the stored envelope, the stored value)
ACCEPTED: list[tuple[str, Mutation, str, Any]] = [
    ("enum-by-name", _os(family="WINDOWS", arch="X86"), "event.detail.client.os.family", "WINDOWS"),
    ("enum-by-number", _os(family=4, arch=2), "event.detail.client.os.arch", "ARM"),
    ("enum-by-number-family", _os(family=1), "event.detail.client.os.family", "UNIX"),
    ("repository-provider-number", _repo(provider=1), "event.detail.repository.provider", "GITHUB"),
    ("int64-as-string", _set("event.timing.occurred", "1700000000999"), "event.timing.occurred", 1700000000999),
    ("int64-as-number", _set("event.timing.occurred", 1700000000999), "event.timing.occurred", 1700000000999),
    ("int64-integral-float", _set("event.timing.occurred", 1.7e12), "event.timing.occurred", 1700000000000),
    ("uint64-max-as-string", _os(version={"release": "18446744073709551615"}),
     "event.detail.client.os.version.release", 2**64 - 1),
    ("uint32-as-string", _set("index", "4294967295"), "index", 4294967295),
    # the proto name of an output-only field is recognised (and ignored) like its JSON name
    ("snake-case-name", _set("event.location", {"source_ip": b64(b"192.0.2.1"), "timezone": "Asia/Tokyo"}),
     "event.location", {"timezone": "Asia/Tokyo"}),
    ("null-is-unset", _set("event.location", None), "event.location", None),
    ("empty-optional-string", _set("collection", ""), "collection", ""),
    ("unknown-fields-dropped", _set("event.detail", {"tenant": {"oid": "7", "name": "acme", "plan": "pro"},
                                                    "nope": 1}), "event.detail", {"tenant": {"oid": 7,
                                                                                            "name": "acme"}}),
    ("bytes-url-safe-unpadded", _user(email=base64.urlsafe_b64encode(EMAIL_SHA256).decode().rstrip("=")),
     "event.detail.user.email", b64(EMAIL_SHA256)),
    ("double-as-string", _set("event.location", {"point": {"lat": "-33.5", "lon": 151}}), "event.location.point",
     {"lat": -33.5, "lon": 151.0}),
    ("context-ten-items", _set("event.context", [{"type": CONTEXT_TYPE, "event": str(i)} for i in range(10)]),
     "event.context.9.event", "9"),
    ("context-resource-prefix-match", _context(resource="repo::app/extra", action="push"),
     "event.context.0.resource", "repo::app/extra"),
    ("tenant-pattern-ok", _set("event.tenant", "org_acme01"), "event.tenant", "acme"),  # replaced by the credential's
    ("data-empty-any", _set("event.data", {}), "event.data", {}),
    ("data-type-value-may-say-buildless", _set("event.data", {"@type": "type.googleapis.com/buildless.X", "n": 1}),
     "event.data", {"@type": "type.googleapis.com/buildless.X", "n": 1}),
    ("fin-false", _set("fin", False), "fin", False),
    ("action-with-resource", _context(resource="repo::a", action="push"), "event.context.0.action", "push"),
    ("several-rules-at-once", _both(_context(resource="repo::a"), _tenant(oid="9"), _os()), "event.detail.tenant.oid",
     9),
]


def _get(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if doc is None:
            return None
        doc = doc[int(part)] if isinstance(doc, list) else doc.get(part)
    return doc


@pytest.mark.parametrize("mutate, path, value", [case[1:] for case in ACCEPTED], ids=[case[0] for case in ACCEPTED])
def test_proto3_json_forms_are_accepted(bl_client: Any, bl_backend: Any, mutate: Mutation, path: str,
                                        value: Any) -> None:
    body = minimal()
    mutate(body)
    resp = bl_client.post(EMIT, json=body, headers=BEARER_ACME)
    assert resp.get_json() == {"ok": True, "eid": EVENT_ID}, resp.get_data(as_text=True)
    (event,) = stored(bl_backend, "acme")
    if path == "event.location":
        location = event.data["event"]["location"]
        location.pop("sourceIp")
        assert (location or None) == value
    else:
        assert _get(event.data, path) == value


def test_the_event_time_is_occurred_whatever_its_json_form(bl_client: Any, bl_backend: Any) -> None:
    for index, form in enumerate((str(OCCURRED + 1), OCCURRED + 2, float(OCCURRED + 3))):
        body = minimal(f"timeform{index:08d}")
        body["event"]["timing"]["occurred"] = form
        assert bl_client.post(EMIT, json=body, headers=BEARER_ACME).status_code == 200
    assert [e.timestamp for e in stored(bl_backend, "acme")] == [OCCURRED + 1, OCCURRED + 2, OCCURRED + 3]
