"""Workplace Search (Enterprise Search) analytics events: clicks and feedback on search results.

Workplace Search takes an OAuth access token (``Authorization: Bearer <token>``, nothing else) and answers
errors as ``{"errors": [...]}``. Events land in the credential tenant's implicit ``workplace_search`` stream.
"""

from gateway import hookimpl
from gateway.auth import read_bearer
from gateway.vendor import Grant, VendorApi

from . import apidoc, errors, service, views

API = VendorApi(
    name=service.PLUGIN, blueprint=views.blueprint, read_credential=read_bearer, render_error=errors.render_error,
    quotas={"events": "1000 per second"}, grants=(Grant("write", description="record click and feedback events"),),
    openapi=apidoc.DOC,
)


@hookimpl
def register_apis() -> VendorApi:
    """``POST /api/ws/v1/analytics/event`` (and the trailing-slash form the Ruby client sends)."""
    return API
