"""Buildless telemetry: ``EventEmit`` and ``Ping`` of the ``buildless.service.v1.Telemetry`` service over JSON/REST.

The API key comes as ``Authorization: Bearer``, as ``X-API-Key`` (no prefix), or as the password of user
``apikey``; errors are gRPC-gateway status bodies. Events land in the credential tenant's implicit
``telemetry`` stream, de-duplicated by ``event.id``. ``[plugins.buildless] ip_salt`` keys the client-address hash.
"""

from functools import partial

from flask import Flask

from gateway import hookimpl
from gateway.auth import first_of, read_basic, read_bearer, read_header
from gateway.vendor import Grant, VendorApi

from . import apidoc, errors, service, views

API = VendorApi(
    name=service.PLUGIN, blueprint=views.blueprint, render_error=errors.render_error,
    read_credential=first_of(read_bearer, partial(read_basic, user="apikey"), read_header("X-API-Key")),
    quotas={"emit": "1000 per second"}, grants=(Grant("emit", description="emit and ping"),),
    settings_schema=service.SettingsSchema, openapi=apidoc.DOC,
)


@hookimpl
def register_apis() -> VendorApi:
    """``POST /v1/telemetry/event:emit`` and ``POST /v1/telemetry/event:ping``."""
    return API


@hookimpl
def startup(app: Flask) -> None:
    """Derive the per-tenant address-hash keys when no ``ip_salt`` is set (and warn about it)."""
    service.configure(app)
