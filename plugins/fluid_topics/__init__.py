"""Fluid Topics analytics web services: portal events in, event retrieval and event counts out.

Credentials come in ``Authorization`` or its prefixed form ``FT-Authorization`` (a Bearer API key or Basic
id:secret); every error has one JSON shape (`errors`). Events land in the credential tenant's implicit
``events`` stream. ``[plugins.fluid_topics] retention_days`` bounds the dates a query may ask for.
"""

from gateway import hookimpl
from gateway.vendor import Grant, VendorApi

from . import apidoc, errors, service, views

API = VendorApi(
    name=service.PLUGIN, blueprint=views.blueprint, read_credential=views.read_credential,
    render_error=errors.render_error, quotas={"ingest": "1000 per second", "query": "1000 per minute"},
    grants=(Grant("write", description="post events"), Grant("read", description="retrieve and count events")),
    settings_schema=service.SettingsSchema, openapi=apidoc.DOC,
)


@hookimpl
def register_apis() -> VendorApi:
    """Ingest ``/api/analytics/events``, retrieve ``/analytics/api/v1/events``, count ``…/traffic/event-counts``."""
    return API
