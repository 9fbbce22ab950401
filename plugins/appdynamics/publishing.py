"""A publish body -> core `Event`s, with a fast path for the plain events nearly every client sends.

Why a module of its own: publish is the hot path of this API (arrays of up to 1,000 events), and the general
rules (`schema_types.validate_events`: nested objects, dotted keys, ISO dates, integral floats, the exact
error wording; then `storage.nest`) cost more per event than storing it. Here each event is first tried
with plain type checks against a per-request plan (field -> type and stored path): an event whose keys are
all schema fields holding values already of their exact type (str, int, float, bool, epoch-ms int dates,
null) becomes `Event.data` in one pass. Anything else (a nested object, an ISO date, an integer in a float
field, an unknown field, an out-of-range value ...) goes through the general rules for that event, which
accept it the same way or raise the same `EventError`. Both paths give equal results, key order of
``data`` included (`tests/appdynamics/test_publish_fastpath.py` compares them on random events).

Ids: one random 64-bit prefix per request after the pickup time (hex), then the event's index, so the
events of a request sort together and after earlier requests; the backends' unique index on ids then grows
at its end instead of at 1,000 random places per request (issue 9 benchmark).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping
from typing import Any

from gateway.events import Event, Stream

from .schema_types import IMPLICIT_FIELDS, INT64, MAX_DATE_MS, MIN_DATE_MS, event_types, validate_event
from .storage import PLUGIN, field_paths, logical_schema, nest

_EVENT_TS = "eventTimestamp"
#: Plan entries: (kind, stored path segments); the implicit fields have no path.
_Plan = dict[str, tuple[str, tuple[str, ...]]]


def batch_ids(count: int, pickup_ms: int) -> list[str]:
    """`count` event ids for one request: ``<pickup ms, 12 hex><64 random bits, 16 hex><index, 3+ hex>``."""
    prefix = f"{pickup_ms & 0xFFFF_FFFF_FFFF:012x}{secrets.randbits(64):016x}"
    return [f"{prefix}{index:03x}" for index in range(count)]


def _plan(stream: Stream) -> _Plan:
    plan: _Plan = {name: (kind, ()) for name, kind in IMPLICIT_FIELDS.items()}
    paths = field_paths(stream)
    for name, kind in logical_schema(stream).items():
        plan[name] = (kind, tuple(paths[name].split(".")))
    return plan


def _fast(event: Any, plan: _Plan, pickup_ms: int) -> tuple[int, dict[str, Any]] | None:
    """``(eventTimestamp, data)`` of a plain event, or None when the general rules must decide."""
    if type(event) is not dict:
        return None
    data: dict[str, Any] = {}
    timestamp = pickup_ms
    for name, value in event.items():
        entry = plan.get(name)
        if entry is None:
            return None
        if value is None:
            continue
        kind, segments = entry
        t = type(value)
        if kind == "string":
            if t is not str:
                return None
        elif kind == "float":
            if t is not float or not math.isfinite(value):
                return None
        elif kind == "integer":
            if t is not int or not -INT64 < value < INT64:
                return None
        elif kind == "date":
            if t is not int or not MIN_DATE_MS <= value <= MAX_DATE_MS:
                return None
            if not segments:  # an implicit field
                if name == _EVENT_TS:
                    timestamp = value
                continue
        elif kind == "boolean":
            if t is not bool:
                return None
        else:
            return None
        if len(segments) == 1:
            data[segments[0]] = value
        else:
            node = data
            for part in segments[:-1]:
                node = node.setdefault(part, {})
            node[segments[-1]] = value
    return timestamp, data


def _general(event: Any, index: int, types: Mapping[str, str], paths: Mapping[str, tuple[str, ...]],
             pickup_ms: int) -> tuple[int, dict[str, Any]]:
    """``(eventTimestamp, data)`` by the general rules; raises their `EventError`."""
    flat = validate_event(event, index, types, pickup_ms)
    return flat[_EVENT_TS], nest(flat, paths)


def to_events(tenant: str, name: str, stream: Stream, body: list[Any], pickup_ms: int) -> list[Event]:
    """The body's events as core events of the schema's stream; the first invalid one raises `EventError`
    naming its index and field (as `schema_types.validate_events` words it)."""
    plan = _plan(stream)
    types = event_types(logical_schema(stream))
    paths = {field: segments for field, (_, segments) in plan.items() if segments}
    ids = batch_ids(len(body), pickup_ms)
    events = []
    for index, event in enumerate(body):
        parsed = _fast(event, plan, pickup_ms)
        if parsed is None:
            parsed = _general(event, index, types, paths, pickup_ms)
        events.append(Event(tenant=tenant, plugin=PLUGIN, stream=name, type=name, data=parsed[1],
                            timestamp=parsed[0], received_at=pickup_ms, id=ids[index]))
    return events
