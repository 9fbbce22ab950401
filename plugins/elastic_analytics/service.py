"""Behavioral Analytics logic without HTTP: collections as streams, and the event document.

Collections are streams of the caller's tenant (plugin ``elastic_analytics``). Checks run in the order
Elasticsearch runs them, because that decides which error a client sees: event type, then the
collection's existence, then the body.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from gateway.api import Event, Stream, backend, client_ip, now_ms, store_events, user_agent
from gateway.errors import GatewayError
from gateway.storage import StreamExists, StreamNotFound

from .errors import EsError
from .schemas import load_event

PLUGIN = "elastic_analytics"
EVENT_TYPES = ("page_view", "search", "search_click")
DATA_STREAM_PREFIX = "behavioral_analytics-events-"
_INVALID_NAME_CHARS = re.compile(r'[\\/*?"<>| ,#:]')


def data_stream(name: str) -> dict[str, Any]:
    """How ES describes a collection in GET responses."""
    return {"event_data_stream": {"name": DATA_STREAM_PREFIX + name}}


def _invalid_name(name: str) -> str | None:
    """Why ES would refuse ``behavioral_analytics-events-<name>`` as a data stream name, or None."""
    index = DATA_STREAM_PREFIX + name
    if name != name.lower():
        return "must be lowercase"
    if _INVALID_NAME_CHARS.search(name):
        return 'must not contain the following characters [\\, /, *, ?, ", <, >, |, " ", ",", #, :]'
    if len(index.encode()) > 255:
        return "index name is too long, (" + str(len(index.encode())) + " > 255)"
    return None


def create_collection(tenant: str, name: str) -> None:
    """PUT: create the collection; ES answers 400 for an existing or invalid name."""
    if not name:
        raise EsError("action_request_validation_exception",
                      "Validation Failed: 1: Analytics collection name is missing;")
    problem = _invalid_name(name)
    if problem:
        cause = EsError("invalid_index_name_exception", f"Invalid index name [{DATA_STREAM_PREFIX + name}], {problem}")
        raise EsError("status_exception", f"error while creating analytics collection [{name}]", 400, cause=cause)
    try:
        backend().create_stream(Stream(tenant=tenant, plugin=PLUGIN, name=name))
    except StreamExists:
        raise EsError("resource_already_exists_exception", f"analytics collection [{name}] already exists") from None


def split_names(expression: str | None) -> list[str]:
    """The names and patterns of a GET path segment (ES splits it on commas)."""
    return [part.strip() for part in (expression or "").split(",") if part.strip()]


def is_pattern(name: str) -> bool:
    """Whether a GET name selects several collections (``*`` wildcards, ``_all``)."""
    return "*" in name or name == "_all"


def resolve_collections(tenant: str, patterns: list[str]) -> dict[str, Any]:
    """GET: collections matching names and ``*`` patterns (none: all); an exact miss is a 404."""
    names = [stream.name for stream in backend().list_streams(tenant, PLUGIN)]
    if not patterns or "*" in patterns or "_all" in patterns:
        return {name: data_stream(name) for name in names}
    found: dict[str, Any] = {}
    existing = set(names)
    for pattern in patterns:
        if "*" in pattern:
            found.update({name: data_stream(name) for name in names if fnmatchcase(name, pattern)})
        elif pattern in existing:
            found[pattern] = data_stream(pattern)
        else:
            raise EsError("resource_not_found_exception", f"no such analytics collection [{pattern}] ", 404)
    return found


def delete_collection(tenant: str, name: str) -> None:
    """DELETE: remove the collection and its events."""
    if not backend().delete_stream(tenant, PLUGIN, name):
        raise EsError("resource_not_found_exception", f"analytics collection [{name}] does not exists", 404)


def check_event_type(event_type: str) -> None:
    """The request validation ES runs before anything else."""
    if event_type not in EVENT_TYPES:
        raise EsError("action_request_validation_exception",
                      f"Validation Failed: 1: invalid event type: [{event_type}];")


def require_collection(tenant: str, name: str) -> None:
    """404 when the collection does not exist (checked before the body is parsed, as ES does)."""
    if backend().get_stream(tenant, PLUGIN, name) is None:
        raise EsError("resource_not_found_exception", f"no such analytics collection [{name}]", 404)


def build_event(tenant: str, collection: str, event_type: str, raw: Any) -> Event:
    """Validate the body and build the stored event (before `enrich` adds the server-side fields)."""
    payload = load_event(event_type, raw)
    received = now_ms()
    return Event(tenant=tenant, plugin=PLUGIN, stream=collection, type=event_type, data=payload,
                 timestamp=received, received_at=received, user_id=payload["user"]["id"],
                 session_id=payload["session"]["id"])


def enrich(event: Event) -> None:
    """The document ES stores: @timestamp, event.action, data_stream, session.ip and user_agent first."""
    payload = event.data
    session = dict(payload["session"])
    ip, agent = client_ip(), user_agent()
    if ip:
        session["ip"] = ip
    if agent:
        session["user_agent"] = agent
    doc: dict[str, Any] = {
        "@timestamp": event.timestamp,
        "event": {"action": event.type},
        "data_stream": {"type": "behavioral_analytics", "dataset": "events", "namespace": event.stream},
        "session": session,
    }
    doc.update((key, value) for key, value in payload.items() if key != "session")
    event.data = doc


def post_event(tenant: str, collection: str, event_type: str, parse: Callable[[], Any]) -> Event:
    """Parse, validate, enrich and store one event durably; returns it (the debug response shows `data`).

    ES looks the collection up before it parses the body, so a bad body sent to a missing collection is
    a 404. The lookup is only needed when the body is bad: for a good one the append itself refuses a
    missing collection, which saves a catalog query per accepted event.
    """
    try:
        event = build_event(tenant, collection, event_type, parse())
    except GatewayError:
        require_collection(tenant, collection)
        raise
    enrich(event)
    try:
        store_events([event])
    except StreamNotFound:
        raise EsError("resource_not_found_exception", f"no such analytics collection [{collection}]", 404) from None
    return event
