"""Helpers of the Buildless tests: this plugin's own credentials, events, the expected server fields, queries.

Expected values (address hashes, time hashes, scopes) are computed here from the formulas the README documents,
independently of the plugin's code.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
from pathlib import Path
from typing import Any

from support import base_config

from gateway.events import Event
from gateway.query import Query
from gateway.storage import Backend

PLUGIN = "buildless"
STREAM = "telemetry"
EMIT = "/v1/telemetry/event:emit"
PING = "/v1/telemetry/event:ping"
SALT = "test-ip-salt-for-buildless-0001"

KEY_ACME = "bl-acme-emit-key-0001"
KEY_GLOBEX = "bl-globex-emit-key-0001"
KEY_NO_GRANT = "bl-no-grant-key-0001"
KEY_WILDCARD = "bl-wildcard-key-0001"
KEY_ODD_TENANT = "bl-odd-tenant-key-0001"
BL_CREDENTIALS = [
    {"id": "bl-acme", "secret": KEY_ACME, "tenant": "acme", "grants": ["buildless:emit"]},
    {"id": "bl-globex", "secret": KEY_GLOBEX, "tenant": "globex", "grants": ["buildless:emit"]},
    {"id": "bl-no-grant", "secret": KEY_NO_GRANT, "tenant": "acme", "grants": ["workplace_search:write"]},
    {"id": "bl-wildcard", "secret": KEY_WILDCARD, "tenant": "initech", "grants": ["buildless:*"]},
    {"id": "bl-odd", "secret": KEY_ODD_TENANT, "tenant": "a.b", "grants": ["*:*"]},
]
BEARER_ACME = {"Authorization": f"Bearer {KEY_ACME}"}
BEARER_GLOBEX = {"Authorization": f"Bearer {KEY_GLOBEX}"}

EVENT_ID = "abcdEFGH12345678"
OCCURRED = 1_700_000_000_123
CONTEXT_TYPE = "type.googleapis.com/buildless.context.Build"
#: SHA-256 of "dev@example.com": the 32 bytes `detail.user.email` must hold.
EMAIL_SHA256 = hashlib.sha256(b"dev@example.com").digest()

MINIMAL: dict[str, Any] = {
    "event": {
        "id": EVENT_ID,
        "context": [{"type": CONTEXT_TYPE, "event": "build.started"}],
        "detail": {},
        "timing": {"occurred": OCCURRED},
    },
}


def minimal(event_id: str = EVENT_ID, **envelope: Any) -> dict[str, Any]:
    """A valid envelope (deep copy) with the given event id and envelope fields."""
    body = copy.deepcopy(MINIMAL)
    body["event"]["id"] = event_id
    body.update(envelope)
    return body


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def expected_source_ip(tenant: str, ip: str, salt: str | bytes = SALT) -> str:
    """base64(HMAC-SHA256(salt, "<tenant>\\n<ip>")), as the README defines `location.sourceIp`."""
    key = salt.encode() if isinstance(salt, str) else salt
    return b64(hmac.new(key, f"{tenant}\n{ip}".encode(), hashlib.sha256).digest())


def expected_derived_salt(*secrets: str) -> bytes:
    """The key used without `ip_salt`: SHA-256 of "event-gateway/buildless/ip-salt\\n" and the sorted hex SHA-256
    digests of the tenant's credential secrets, one per line."""
    digests = sorted(hashlib.sha256(secret.encode()).hexdigest() for secret in secrets)
    return hashlib.sha256(("event-gateway/buildless/ip-salt\n" + "\n".join(digests)).encode()).digest()


def expected_timehash(occurred: int, event_id: str) -> str:
    """32 hex digits of SHA-256 over "<occurred>:<event id>"."""
    return hashlib.sha256(f"{occurred}:{event_id}".encode()).hexdigest()[:32]


def bl_config(tmp_path: Path, *, salt: str | None = SALT, **sections: Any) -> dict[str, Any]:
    """`base_config` serving only this plugin (with the IP salt unless None), with this file's credentials unless
    `credentials` is given."""
    plugins: dict[str, Any] = {"enabled": [PLUGIN]}
    if salt is not None:
        plugins[PLUGIN] = {"ip_salt": salt}
    sections.setdefault("plugins", plugins)
    sections.setdefault("credentials", BL_CREDENTIALS)
    return base_config(tmp_path, **sections)


def stored(backend: Backend, tenant: str, **query: Any) -> list[Event]:
    """The tenant's Buildless events, oldest first (by event time)."""
    return backend.query(Query(tenant=tenant, plugin=PLUGIN, **query)).events
