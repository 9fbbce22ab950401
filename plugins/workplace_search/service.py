"""Workplace Search analytics logic without HTTP: validate an event and store it durably.

Every tenant has one implicit stream, ``workplace_search`` (the Workplace Search analytics log),
created on first use by `gateway.api.store_events(..., create_streams=True)`.
"""

from __future__ import annotations

from typing import Any

from gateway.api import Event, now_ms, store_events

from .schemas import load_event

PLUGIN = "workplace_search"
STREAM = "workplace_search"

def build_event(tenant: str, raw: dict[str, Any]) -> Event:
    """Validate the body (every problem reported at once) and build the stored event; time = receipt time."""
    payload = load_event(raw)
    received = now_ms()
    return Event(tenant=tenant, plugin=PLUGIN, stream=STREAM, type=payload["type"], data=payload,
                 timestamp=received, received_at=received)


def record_event(tenant: str, raw: dict[str, Any]) -> Event:
    """Validate and store one event; returns only once the backend holds it durably."""
    event = build_event(tenant, raw)
    store_events([event], create_streams=True)
    return event
