"""Elasticsearch Behavioral Analytics: collections and events, as ES 8.x serves them.

Hooks: routes (`views.blueprint`), the ES auth schemes (ApiKey, Basic, Bearer), ES error bodies, the
``post_event`` quota, and the enrichment ES performs before storing an event.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Request, Response

from gateway import hookimpl
from gateway.auth import PresentedCredential, standard_scheme
from gateway.errors import GatewayError
from gateway.events import Event

from . import errors, service, views

__version__ = "0.1.0"
GRANTS = ("elastic_analytics:manage[:<collection>]", "elastic_analytics:post_event[:<collection>]")


@hookimpl
def register_routes(app: object) -> Blueprint:
    """The `/_application/analytics` routes."""
    return views.blueprint


@hookimpl
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None] | None:
    """ES clients send ``ApiKey`` (any case; the JS tracker writes ``Apikey``), ``Basic`` or ``Bearer``."""
    return standard_scheme if api == service.PLUGIN else None


@hookimpl
def error_renderer(api: str) -> Callable[[GatewayError], Response] | None:
    """Errors as ES exception bodies with the product header."""
    return errors.render_error if api == service.PLUGIN else None


@hookimpl
def quota_limits(api: str) -> dict[str, str] | None:
    """Posting events is capped per credential, as ES's bulk queue would push back."""
    return {"post_event": "1000 per second"} if api == service.PLUGIN else None


@hookimpl(tryfirst=True)
def enrich_event(event: Event, request: Request) -> None:
    """Add @timestamp, event.action, data_stream and session.ip/user_agent, before other enrichers run."""
    if event.plugin == service.PLUGIN:
        service.enrich(event)
