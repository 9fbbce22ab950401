"""Buildless telemetry logic without HTTP: validate an ``Event`` envelope, enrich it, store it once.

Storage: every tenant has one implicit stream, ``telemetry``, created on first use. One stream (rather than
one per ``collection``) is what makes de-duplication hold per tenant: the stored event's id is the client's
``event.id``, and the backend keeps event ids unique per stream, atomically (racing appends store one
event), so an id already accepted for the tenant is acknowledged and not stored again, whatever its
collection. The collection is the stored event's ``type`` (``_default`` without one; a collection is
letters only, so it cannot collide), which keeps per-collection queries cheap.

Enrichment (the protocol's ``OUTPUT_ONLY`` fields, and what the credential decides):

* ``event.timing.received``: when the request arrived; ``event.timing.ingested``: when the validated event
  was handed to the store; both epoch milliseconds. ``event.timing.timehash``: the first 32 hex digits of
  SHA-256 over ``"<occurred>:<event id>"``, bound to the occurrence time;
* ``event.tenant``: the credential's tenant (a client's value is validated, then replaced);
  ``event.scope``: ``tenant::<tenant>`` (gateway credentials belong to tenants, never to users; a tenant
  name that is not 3-56 letters and digits is replaced by 32 hex digits of its SHA-256);
* ``event.location.sourceIp``: base64 of HMAC-SHA256 over ``"<tenant>\\n<client IP>"`` (the address in
  canonical form, IPv4-mapped IPv6 as IPv4), keyed by ``[plugins.buildless] ip_salt``: stable for one
  address within a tenant, different across tenants, not reversible without the key. Without a configured
  salt the key is derived per tenant from its credentials' secret digests (`derived_salts`), which are as
  secret as the configuration file that holds them, and stable as long as the tenant's keys do not change
  (a warning is logged at start-up). Nothing is ever derived from the store, which holds the hashes. The raw
  address is never stored nor logged. ``location.timezone`` and the other location fields a client sends
  are kept.

The event time is ``event.timing.occurred`` (epoch ms); ``user_id`` is ``event.user`` (else
``detail.user.uid``) and ``session_id`` the envelope's ``scope`` (e.g. a CI build id).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validates

from gateway.api import Event, now_ms, plugin_settings, store_events
from gateway.config import CredentialConfig
from gateway.state import get_state

from .errors import BuildlessError
from .schemas import InvalidEvent, load_envelope

PLUGIN = "buildless"
STREAM = "telemetry"
NO_COLLECTION = "_default"
MIN_SALT_CHARS = 16
DERIVED_SALT_LABEL = "event-gateway/buildless/ip-salt\n"
log = logging.getLogger("event_gateway.buildless")

_TENANT_ID = re.compile(r"[A-Za-z0-9]{3,56}")
#: `TelemetryEvent` fields in field-number order (the stored document's key order).
EVENT_FIELDS = ("scope", "id", "tenant", "user", "context", "detail", "timing", "location", "timer", "ordinal",
                "data")


# -- settings --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """``[plugins.buildless]``: `ip_salt` keys the hash of client addresses; without it, `derived` per tenant."""

    ip_salt: bytes | None = None
    derived: Mapping[str, bytes] = field(default_factory=dict)

    def salt_for(self, tenant: str) -> bytes | None:
        """The key of the tenant's address hashes (None only for a tenant no credential has)."""
        return self.ip_salt if self.ip_salt is not None else self.derived.get(tenant)


def derived_salts(credentials: Iterable[CredentialConfig]) -> dict[str, bytes]:
    """Per tenant, SHA-256 of ``DERIVED_SALT_LABEL`` + the sorted secret digests of the tenant's credentials."""
    digests: dict[str, set[str]] = {}
    for cred in credentials:
        digests.setdefault(cred.tenant, set()).add(cred.secret_sha256.lower())
    return {tenant: hashlib.sha256((DERIVED_SALT_LABEL + "\n".join(sorted(found))).encode()).digest()
            for tenant, found in digests.items()}


class SettingsSchema(Schema):
    """``[plugins.buildless]``, loaded once at start-up (the declared settings schema); `configure` adds the
    derived per-tenant keys when no ``ip_salt`` is set."""

    class Meta:
        unknown = RAISE

    error_messages = {"unknown": "unknown setting (known: ip_salt)"}
    ip_salt = fields.Raw(load_default=None)

    @validates("ip_salt")
    def _long_enough(self, salt: Any, **_: Any) -> None:
        if salt is not None and (not isinstance(salt, str) or len(salt) < MIN_SALT_CHARS):
            raise ValidationError(f"must be a string of at least {MIN_SALT_CHARS} characters "
                                  "(a random secret, e.g. from `openssl rand -hex 32`)")

    @post_load
    def _settings(self, data: dict[str, Any], **_: Any) -> Settings:
        salt = data["ip_salt"]
        return Settings(ip_salt=salt.encode("utf-8") if salt is not None else None)


def configure(app: Any) -> Settings:
    """At start-up: without ``ip_salt``, derive the tenants' keys from their credentials, and warn about it."""
    state = get_state(app)
    api = state.apis[PLUGIN]
    if api.settings.ip_salt is None:
        api.settings = replace(api.settings, derived=derived_salts(state.config.credentials))
        log.warning("plugins.%s.ip_salt is not set: event.location.sourceIp hashes are keyed by the tenant's "
                    "credential digests, so they change when its keys change; set a random secret of at least %d "
                    "characters", PLUGIN, MIN_SALT_CHARS)
    return api.settings


# -- enrichment ------------------------------------------------------------------------------------------------
def source_ip_hash(salt: bytes, tenant: str, ip: str) -> str:
    """The salted, per-tenant hash of a client address, as proto3 JSON ``bytes`` (standard base64)."""
    address = ipaddress.ip_address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    digest = hmac.new(salt, f"{tenant}\n{address}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def tenant_scope(tenant: str) -> str:
    """``event.scope`` of a tenant's events, within the protocol's ``^(user|tenant)::[a-zA-Z0-9]{3,64}$`` (64 max)."""
    if _TENANT_ID.fullmatch(tenant):
        return f"tenant::{tenant}"
    return "tenant::" + hashlib.sha256(tenant.encode("utf-8")).hexdigest()[:32]


def timehash(occurred: int, event_id: str) -> str:
    """``event.timing.timehash``: 32 hex digits of SHA-256 over ``"<occurred>:<event id>"``."""
    return hashlib.sha256(f"{occurred}:{event_id}".encode()).hexdigest()[:32]


def _valid_ip(ip: str | None) -> str | None:
    if not ip:
        return None
    try:
        ipaddress.ip_address(ip)
    except ValueError:
        return None
    return ip


def enrich(tenant: str, envelope: dict[str, Any], *, received: int, ip: str | None,
           salt: bytes | None) -> dict[str, Any]:
    """The stored document: the envelope with the server's fields filled in (a new dict; `envelope` is kept)."""
    doc = dict(envelope)
    event: dict[str, Any] = {**doc["event"], "scope": tenant_scope(tenant), "tenant": tenant}
    occurred = event["timing"]["occurred"]
    event["timing"] = {"timehash": timehash(occurred, event["id"]), "occurred": occurred, "received": received}
    address = _valid_ip(ip)
    if salt is not None and address is not None:
        event["location"] = {"sourceIp": source_ip_hash(salt, tenant, address), **(event.get("location") or {})}
    ordered = {name: event[name] for name in EVENT_FIELDS if name in event}
    doc["event"] = ordered
    return doc


# -- storage ---------------------------------------------------------------------------------------------------
def build_event(tenant: str, raw: Any, *, ip: str | None, received: int | None = None) -> Event:
    """Validate the envelope (every problem reported at once, 400) and build the enriched stored event."""
    received = now_ms() if received is None else received
    try:
        envelope = load_envelope(raw)
    except InvalidEvent as exc:
        raise BuildlessError(f"invalid event: {exc}", 400, field=exc.field) from None
    doc = enrich(tenant, envelope, received=received, ip=ip, salt=plugin_settings(PLUGIN).salt_for(tenant))
    event = doc["event"]
    detail_user = (event.get("detail") or {}).get("user") or {}
    return Event(tenant=tenant, plugin=PLUGIN, stream=STREAM, type=envelope.get("collection") or NO_COLLECTION,
                 data=doc, id=event["id"], timestamp=event["timing"]["occurred"], received_at=received,
                 user_id=event.get("user") or detail_user.get("uid") or None,
                 session_id=envelope.get("scope") or None)


def emit(tenant: str, raw: Any, *, ip: str | None) -> tuple[Event, bool]:
    """Validate, enrich and store one event durably; (the event, whether it was new for the tenant)."""
    event = build_event(tenant, raw, ip=ip)
    event.data["event"]["timing"]["ingested"] = now_ms()
    stored = store_events([event], create_streams=True)
    return event, stored > 0
