"""The core's fallback hook implementations, registered ``trylast`` so any plugin can override them."""

from __future__ import annotations

from collections.abc import Callable

from flask import Request, Response

from .auth import PresentedCredential, standard_scheme
from .errors import GatewayError, render_gateway_error
from .hookspecs import hookimpl


@hookimpl(trylast=True)
def auth_scheme(api: str) -> Callable[[Request], PresentedCredential | None]:
    """APIs that declare no scheme accept ApiKey, Basic and Bearer credentials."""
    return standard_scheme


@hookimpl(trylast=True)
def error_renderer(api: str) -> Callable[[GatewayError], Response]:
    """APIs that declare no renderer answer errors in the gateway's own JSON format."""
    return render_gateway_error
