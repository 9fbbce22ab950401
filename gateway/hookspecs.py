"""The hooks a plugin may implement: the whole plugin API of Event Gateway.

Every vendor API, every storage backend and every third-party extension is an ordinary pluggy plugin
implementing some of these hooks. A vendor API is one `gateway.vendor.VendorApi` declaration returned
from `register_apis`; the core takes its routes, credential reader, error renderer, quotas, grants and
settings schema from there, so no hook is asked "is this your API?". The other hooks are broadcast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from collections.abc import Sequence

    from flask import Flask, Request

    from .events import Event
    from .storage import Backend
    from .vendor import VendorApi

hookspec = pluggy.HookspecMarker("event_gateway")
hookimpl = pluggy.HookimplMarker("event_gateway")


@hookspec
def register_apis() -> VendorApi | Sequence[VendorApi] | None:
    """Return the plugin's vendor API declaration(s); the core serves each from what it declares."""


@hookspec
def enrich_event(event: Event, request: Request) -> None:
    """Add server-side facts to another plugin's event before it is stored (mutate `event.data`).

    For cross-cutting, third-party enrichment (geo-IP, tagging ...): called for every event of every API.
    A vendor API enriches its own events in its service, before it calls `gateway.api.store_events`.
    """


@hookspec
def storage_backends() -> Sequence[type[Backend]] | None:
    """Return backend classes; each serves the URL schemes in its `schemes` attribute."""


@hookspec
def startup(app: Flask) -> None:
    """Called once when an app is fully built (config, backend, routes, settings loaded by the declared schemas).

    For what a declaration cannot hold, e.g. keys derived from the configured credentials (Buildless).
    """
