"""The stored event and the stream that holds it: the one data model every plugin and backend shares.

Plugins turn vendor documents into `Event`s; backends store and return them. Nothing here knows about
a vendor: `data` is the vendor document after validation and enrichment, opaque to the core.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

#: Top-level event attributes a query may name directly; anything else is addressed as ``data.<path>``.
EVENT_FIELDS = ("id", "tenant", "plugin", "stream", "type", "timestamp", "received_at", "user_id", "session_id")


def now_ms() -> int:
    """The current UTC time in epoch milliseconds, the unit of every stored time."""
    return time.time_ns() // 1_000_000


def new_event_id() -> str:
    """A server-made event id, for vendors whose events carry none: 32 hex digits, the current time in
    milliseconds (12) then 80 random bits (20).

    Time first, so that ids made one after another sort near each other: a store's unique index on ids
    grows at its end instead of touching a random page per event (fewer pages written per commit, a
    smaller working set), as Elasticsearch's own auto-generated ids are time-based. 80 random bits per
    millisecond keep ids from different processes and hosts apart.
    """
    return f"{time.time_ns() // 1_000_000 & 0xFFFF_FFFF_FFFF:012x}{os.urandom(10).hex()}"


@dataclass(slots=True)
class Event:
    """One stored event. `id` is unique per tenant, plugin and stream."""

    tenant: str
    plugin: str
    stream: str
    type: str
    data: dict[str, Any]
    timestamp: int = field(default_factory=now_ms)
    received_at: int = field(default_factory=now_ms)
    id: str = field(default_factory=new_event_id)
    user_id: str | None = None
    session_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The event as plain JSON-ready data (the NDJSON export line, the ES document)."""
        return {
            "id": self.id,
            "tenant": self.tenant,
            "plugin": self.plugin,
            "stream": self.stream,
            "type": self.type,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
            "user_id": self.user_id,
            "session_id": self.session_id,
            "data": self.data,
        }

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Event:
        """Inverse of `to_dict`."""
        return cls(**{name: doc.get(name) for name in (*EVENT_FIELDS, "data")})


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """A typed field of a stream schema (AppDynamics schemas have them; most streams do not).

    `path` is where the field's values are stored in `Event.data` (a dotted path) when that differs from
    `name` — a renamed field keeps its values where they are and only its name changes. None: under `name`.
    """

    name: str
    type: str  # string | integer | float | boolean | date | object
    path: str | None = None


@dataclass(slots=True)
class Stream:
    """A named, tenant-owned container of events (an ES collection, an AppD schema, a portal's log)."""

    tenant: str
    plugin: str
    name: str
    created_at: int = field(default_factory=now_ms)
    schema: tuple[FieldSpec, ...] | None = None
