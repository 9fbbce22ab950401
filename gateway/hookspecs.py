"""The hooks a plugin may implement: the whole plugin API of Event Gateway.

Every vendor API, every storage backend and every third-party extension is an ordinary pluggy plugin
implementing some of these hooks. `api` arguments are the plugin's API name, which is also the name of
the Flask blueprint holding its routes. Hooks that pick one answer are ``firstresult``; the core's
fallbacks are registered ``trylast`` so a plugin can override them without the core knowing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from flask import Blueprint, Flask, Request, Response

    from .auth import PresentedCredential
    from .errors import GatewayError
    from .events import Event
    from .storage import Backend

hookspec = pluggy.HookspecMarker("event_gateway")
hookimpl = pluggy.HookimplMarker("event_gateway")


@hookspec
def register_routes(app: Flask) -> Blueprint | Sequence[Blueprint] | None:
    """Return the blueprint(s) serving this plugin's API; the blueprint name is the API name."""


@hookspec(firstresult=True)
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None] | None:
    """Return how `api` reads credentials from a request (a callable giving a PresentedCredential or None)."""


@hookspec(firstresult=True)
def error_renderer(api: str) -> Callable[[GatewayError], Response] | None:
    """Return the callable that renders every error under `api`'s routes in the vendor's own format."""


@hookspec
def quota_limits(api: str) -> dict[str, str] | None:
    """Return `api`'s named default quotas, e.g. {"post_event": "1000 per second"}; config may override."""


@hookspec
def enrich_event(event: Event, request: Request) -> None:
    """Add server-side facts to an event before it is stored (mutate `event.data`); called per event."""


@hookspec
def storage_backends() -> Sequence[type[Backend]] | None:
    """Return backend classes; each serves the URL schemes in its `schemes` attribute."""


@hookspec
def startup(app: Flask) -> None:
    """Called once when an app is fully built (config, backend, routes): prepare state, check settings."""

