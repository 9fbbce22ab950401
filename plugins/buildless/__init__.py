"""Buildless telemetry: ``EventEmit`` and ``Ping`` of the ``buildless.service.v1.Telemetry`` service over JSON/REST.

Hooks: routes (`views.blueprint`), the Buildless API-key schemes (``Authorization: Bearer <key>``,
``X-API-Key: <key>``, Basic with user ``apikey``), gRPC-gateway status bodies, the ``emit`` quota, and
start-up (reading ``[plugins.buildless]``). Events land in the credential tenant's implicit ``telemetry``
stream, de-duplicated by ``event.id``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flask import Blueprint, Flask, Request, Response

from gateway import hookimpl
from gateway.auth import PresentedCredential, first_of, read_basic, read_bearer, read_header
from gateway.errors import GatewayError

from . import errors, service, views

__version__ = "0.1.0"
GRANTS = ("buildless:emit",)
_read_credential = first_of(read_bearer, partial(read_basic, user="apikey"), read_header("X-API-Key"))


@hookimpl
def register_routes(app: object) -> Blueprint:
    """``POST /v1/telemetry/event:emit`` and ``POST /v1/telemetry/event:ping``."""
    return views.blueprint


@hookimpl
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None] | None:
    """The API key as ``Authorization: Bearer``, as ``X-API-Key`` (no prefix), or as the password of user ``apikey``."""
    return _read_credential if api == service.PLUGIN else None


@hookimpl
def error_renderer(api: str) -> Callable[[GatewayError], Response] | None:
    """Errors as gRPC-gateway's ``{"code", "message", "details"}`` with the matching HTTP status."""
    return errors.render_error if api == service.PLUGIN else None


@hookimpl
def quota_limits(api: str) -> dict[str, str] | None:
    """Emitting events is capped per credential (``[quotas.buildless] emit = "..."`` overrides)."""
    return {"emit": "1000 per second"} if api == service.PLUGIN else None


@hookimpl
def startup(app: Flask) -> None:
    """Validate ``[plugins.buildless]`` (a bad value stops start-up) and keep the IP salt."""
    service.configure(app)
