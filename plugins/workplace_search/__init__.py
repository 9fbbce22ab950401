"""Workplace Search (Enterprise Search) analytics events: clicks and feedback on search results.

Hooks: routes (`views.blueprint`), the ``Authorization: Bearer <access token>`` scheme, Enterprise
Search's ``{"errors": [...]}`` bodies, and the ``events`` quota. Events land in the credential tenant's
implicit ``workplace_search`` stream.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, Request, Response

from gateway import hookimpl
from gateway.auth import PresentedCredential, read_bearer
from gateway.errors import GatewayError

from . import errors, service, views

__version__ = "0.1.0"
GRANTS = ("workplace_search:write",)


@hookimpl
def register_routes(app: object) -> Blueprint:
    """``POST /api/ws/v1/analytics/event`` (and the trailing-slash form the Ruby client sends)."""
    return views.blueprint


@hookimpl
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None] | None:
    """Workplace Search takes an OAuth access token: ``Authorization: Bearer <token>``, nothing else."""
    return read_bearer if api == service.PLUGIN else None


@hookimpl
def error_renderer(api: str) -> Callable[[GatewayError], Response] | None:
    """Errors as Enterprise Search's ``{"errors": [...]}`` with ``application/json;charset=utf-8``."""
    return errors.render_error if api == service.PLUGIN else None


@hookimpl
def quota_limits(api: str) -> dict[str, str] | None:
    """Posting events is capped per credential (``[quotas.workplace_search] events = "..."`` overrides)."""
    return {"events": "1000 per second"} if api == service.PLUGIN else None
