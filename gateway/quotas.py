"""Quotas with flask-limiter: a default per credential across all APIs, plus named per-plugin limits.

* ``quotas.default`` is an application-wide limit keyed by credential id, so one key's traffic to every
  API counts against one budget.
* A plugin declares named limits in its `quota_limits` hook (e.g. ``{"post_event": "1000 per second"}``)
  and marks views with ``@quota("post_event")``; ``[quotas.<plugin>] post_event = "..."`` overrides the
  value. A named limit is shared by every view carrying the name.
* ``quotas.storage_url`` is ``memory://`` (per process: each gunicorn worker counts alone) or Redis,
  which holds quotas across workers and hosts.

A breach becomes `TooManyRequests` with ``Retry-After``, rendered by the plugin like any other error.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from flask import Flask, g, request
from flask_limiter import ExemptionScope, Limiter, RateLimitExceeded

from .errors import GatewayError, ServiceUnavailable, TooManyRequests
from .state import GatewayState, get_state

F = TypeVar("F", bound=Callable[..., Any])
QUOTA_ATTRIBUTE = "__gateway_quotas__"


def quota(name: str, *, per: str = "credential") -> Callable[[F], F]:
    """Mark a view as counting against the plugin's named quota `name`, per credential or per tenant."""
    if per not in ("credential", "tenant"):
        raise ValueError("per must be 'credential' or 'tenant'")

    def mark(view: F) -> F:
        setattr(view, QUOTA_ATTRIBUTE, (*getattr(view, QUOTA_ATTRIBUTE, ()), (name, per)))
        return view

    return mark


def credential_key() -> str:
    """Whose budget a request spends: the credential id, or the client address before authentication."""
    credential = g.get("credential")
    return f"cred:{credential.id}" if credential is not None else f"ip:{request.remote_addr}"


def tenant_key() -> str:
    """Budget shared by every credential of a tenant (e.g. AppDynamics' per-account limits)."""
    credential = g.get("credential")
    return f"tenant:{credential.tenant}" if credential is not None else f"ip:{request.remote_addr}"


def init_app(app: Flask, state: GatewayState) -> None:
    """Create the app's limiter after authentication is installed, and attach the named quotas."""
    cfg = state.config.quotas
    limiter = Limiter(
        key_func=credential_key,
        application_limits=[cfg["default"]],
        storage_uri=cfg["storage_url"],
        strategy=cfg["strategy"],
        headers_enabled=False,  # vendors send no X-RateLimit headers; 429s carry Retry-After (errors.py)
        key_prefix="event-gateway",
    )
    limiter.init_app(app)
    limiter.exempt(app.blueprints["_gateway"],
                   flags=ExemptionScope.APPLICATION | ExemptionScope.DEFAULT | ExemptionScope.META)
    limiter.request_filter(lambda: request.method == "OPTIONS" or g.get("credential") is None)
    state.limiter = limiter

    for endpoint, view in list(app.view_functions.items()):
        api = state.apis.get(endpoint.partition(".")[0])
        marks = getattr(view, QUOTA_ATTRIBUTE, ())
        if api is None or not marks:
            continue
        wrapped = view
        for name, per in marks:
            if name not in api.quotas:
                raise ValueError(f"view {endpoint} uses quota [{name}] that plugin [{api.name}] does not declare")
            wrapped = limiter.shared_limit(
                api.quotas[name], scope=f"{api.name}:{name}",
                key_func=tenant_key if per == "tenant" else credential_key,
            )(wrapped)
        app.view_functions[endpoint] = wrapped


def as_gateway_error(exc: BaseException) -> GatewayError | None:
    """A breach as `TooManyRequests` (with Retry-After); an unreachable quota store as 503; else None."""
    if isinstance(exc, RateLimitExceeded):
        limiter = get_state().limiter
        current = limiter.current_limit if limiter is not None else None
        retry = math.ceil(current.reset_at - time.time()) if current is not None else 1
        return TooManyRequests(f"rate limit exceeded: {exc.description}", retry_after=retry)
    module = type(exc).__module__
    if module.startswith(("redis", "limits")):
        return ServiceUnavailable("the quota store is unavailable")
    return None
