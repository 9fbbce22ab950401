"""What plugin code calls while serving a request: the caller, grants, storage, time and client facts.

Views stay thin (parse, call, serialize, like Invenio's resource layer); these helpers keep vendor-free
work (grant checks, enrichment hooks, durable append) in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .auth import Credential
from .errors import Forbidden, MissingCredentials
from .events import Event, Stream, new_event_id, now_ms
from .flaskapp import current_globals, current_request
from .metrics import count_accepted
from .netaddr import client_ip as _client_ip
from .quotas import quota
from .state import get_state
from .storage import Backend

__all__ = ["Event", "Stream", "backend", "client_ip", "count_quota", "credential", "new_event_id", "now_ms",
           "plugin_settings", "quota", "require_grant", "store_events", "user_agent"]


def credential() -> Credential:
    """The authenticated caller of this request."""
    cred = current_globals().get("credential")
    if cred is None:
        raise MissingCredentials()
    return cred


def require_grant(action: str, stream: str | None = None, *, plugin: str | None = None) -> Credential:
    """The caller, after checking it holds ``<plugin>:<action>[:<stream>]``; 403 otherwise."""
    cred = credential()
    plugin_name = plugin or current_request().blueprint or ""
    if not cred.allows(plugin_name, action, stream):
        needed = f"{plugin_name}:{action}" + (f":{stream}" if stream else "")
        raise Forbidden(f"action [{needed}] is unauthorized for credential [{cred.id}]", detail=needed)
    return cred


def count_quota(name: str, *key: str) -> None:
    """Count one use of the current API's declared quota `name` for `key` (429 when spent).

    For limits keyed by something only the view knows after reading the request, e.g.
    ``count_quota("searches", tenant, event_type)``; `[quotas.<api>] name = "..."` overrides the limit as usual.
    """
    state = get_state()
    api = state.apis[current_request().blueprint or ""]
    assert state.quotas is not None
    state.quotas.count(api, name, *key)


def backend() -> Backend:
    """The app's storage backend."""
    return get_state().backend


def plugin_settings(name: str | None = None) -> Any:
    """The ``[plugins.<name>]`` table (default: the current request's API) as its declared schema loaded it.

    Loaded once at start-up. A plugin that declares no API (an enricher, say) gets its raw table.
    """
    state = get_state()
    api = state.apis.get(name or current_request().blueprint or "")
    return api.settings if api is not None else state.config.plugin_settings(name or "")


def client_ip() -> str | None:
    """The caller's address: the first valid X-Forwarded-For value (if trusted), else the peer."""
    return _client_ip(current_request(), trust_forwarded_for=get_state().config.server["trust_forwarded_for"])


def user_agent() -> str | None:
    """The User-Agent header, or None when absent or blank."""
    value = current_request().headers.get("User-Agent")
    return value if value and value.strip() else None


def store_events(events: Sequence[Event], *, enrich: bool = True, create_streams: bool = False) -> int:
    """Run the `enrich_event` hooks, then append the batch atomically; returns how many were new.

    Returns only once the backend holds the events durably, so the caller may acknowledge them. With
    `create_streams` the events' streams are implicit: the backend creates the missing ones in the same
    call (for SQLite, in the transaction that stores the events).
    """
    state = get_state()
    current = current_request()
    if enrich:
        hook = state.pm.hook.enrich_event
        if hook.get_hookimpls():  # pluggy's dispatch costs microseconds an event even with no implementation
            for event in events:
                hook(event=event, request=current)
    stored = state.backend.append(events, create_streams=True) if create_streams else state.backend.append(events)
    count_accepted(current.blueprint or "", len(events))  # duplicates the store already held count as accepted
    return stored
