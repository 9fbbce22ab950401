"""Workplace Search analytics logic without HTTP: validate an event and store it durably.

Every tenant has one implicit stream, ``workplace_search`` (the Workplace Search analytics log),
created on first use. Which tenants' streams are known to exist is remembered per backend, so the hot
path does not ask the catalog on every request; if a stream disappears (deleted by an operator or
another process) the append raises `StreamNotFound`, the memory is dropped, the stream is re-created
and the append retried once, so nothing is lost and nothing is acknowledged falsely.
"""

from __future__ import annotations

import threading
from typing import Any
from weakref import WeakKeyDictionary

from gateway.api import Event, Stream, backend, now_ms, store_events
from gateway.storage import Backend, StreamNotFound

from .schemas import load_event

PLUGIN = "workplace_search"
STREAM = "workplace_search"

_known: WeakKeyDictionary[Backend, set[str]] = WeakKeyDictionary()
_lock = threading.Lock()


def _tenants_with_stream(store: Backend) -> set[str]:
    with _lock:
        known = _known.get(store)
        if known is None:
            known = _known[store] = set()
        return known


def ensure_stream(tenant: str, *, recheck: bool = False) -> None:
    """Make sure the tenant's stream exists; asks the catalog only the first time (or when `recheck`)."""
    store = backend()
    known = _tenants_with_stream(store)
    if tenant in known and not recheck:
        return
    known.discard(tenant)
    store.ensure_stream(Stream(tenant=tenant, plugin=PLUGIN, name=STREAM))
    known.add(tenant)


def build_event(tenant: str, raw: dict[str, Any]) -> Event:
    """Validate the body (every problem reported at once) and build the stored event; time = receipt time."""
    payload = load_event(raw)
    received = now_ms()
    return Event(tenant=tenant, plugin=PLUGIN, stream=STREAM, type=payload["type"], data=payload,
                 timestamp=received, received_at=received)


def record_event(tenant: str, raw: dict[str, Any]) -> Event:
    """Validate and store one event; returns only once the backend holds it durably."""
    event = build_event(tenant, raw)
    ensure_stream(tenant)
    try:
        store_events([event])
    except StreamNotFound:  # the stream was deleted since we last saw it: re-create it, append again
        ensure_stream(tenant, recheck=True)
        store_events([event], enrich=False)  # already enriched by the first attempt
    return event
