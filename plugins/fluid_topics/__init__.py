"""Fluid Topics analytics web services: portal events in, event retrieval and event counts out.

Hooks: routes (`views.blueprint`), Fluid Topics' credentials (``Authorization`` or its prefixed form
``FT-Authorization``, with a Bearer API key or Basic id:secret), one JSON error shape (`errors`), the
``ingest`` and ``query`` quotas, and the start-up check of ``[plugins.fluid_topics]``. Events land in the
credential tenant's implicit ``events`` stream.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Flask, Request, Response

from gateway import hookimpl
from gateway.api import plugin_settings
from gateway.auth import PresentedCredential, read_basic, read_bearer
from gateway.errors import GatewayError

from . import errors, service, views

__version__ = "0.1.0"
GRANTS = ("fluid_topics:write", "fluid_topics:read")
PREFIXED_HEADER = "FT-Authorization"


class _Prefixed:
    """The request seen through ``FT-Authorization`` as if it were ``Authorization`` (for the readers)."""

    def __init__(self, value: str) -> None:
        self.headers = {"Authorization": value}


def read_credential(request: Request) -> PresentedCredential | None:
    """``Authorization: Bearer <key>`` or ``Basic base64(id:secret)``; the same in ``FT-Authorization``.

    Fluid Topics "supports both prefixed and unprefixed authentication headers" (``FT-Authorization``
    was its only header before v3.4.12); the unprefixed one wins when both are sent.
    """
    for source in (request, _Prefixed(request.headers.get(PREFIXED_HEADER, ""))):
        if not source.headers.get("Authorization"):
            continue
        found = read_bearer(source) or read_basic(source)  # type: ignore[arg-type]
        if found is not None:
            return found
    return None


@hookimpl
def register_routes(app: Flask) -> Blueprint:
    """Ingest ``/api/analytics/events``, retrieve ``/analytics/api/v1/events``, count ``…/traffic/event-counts``."""
    return views.blueprint


@hookimpl
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None] | None:
    """Bearer API keys (and Basic), in ``Authorization`` or ``FT-Authorization``."""
    return read_credential if api == service.PLUGIN else None


@hookimpl
def error_renderer(api: str) -> Callable[[GatewayError], Response] | None:
    """Every error as ``{"timestamp","status","error","message","path","field","errors"}``."""
    return errors.render_error if api == service.PLUGIN else None


@hookimpl
def quota_limits(api: str) -> dict[str, str] | None:
    """Per credential: ``ingest`` for posted events, ``query`` shared by retrieve and count."""
    return {"ingest": "1000 per second", "query": "1000 per minute"} if api == service.PLUGIN else None


@hookimpl
def startup(app: Flask) -> None:
    """Validate ``[plugins.fluid_topics]`` (``retention_days``) so a bad value stops start-up, naming the key."""
    with app.app_context():
        service.load_settings(plugin_settings(service.PLUGIN))
