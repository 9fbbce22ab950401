"""HTTP layer of the Analytics Events API: ``/events/schema/{name}``, ``/events/publish/{name}``, ``/events/query``.

Order of checks on every route: credentials (core, 401) -> ``Accept`` (406) -> grant (403; schema routes
know their schema from the URL, a query from its ADQL ``FROM``) -> Content-Type (415) -> body (413/400) ->
the service. Queries count against the per-account and per-key quotas as requests (core) and, once parsed,
against the per-account-and-event-type search quota (`gateway.api.count_quota`), one search per query.
"""

from __future__ import annotations

from fnmatch import fnmatchcase

from flask import Blueprint, Response, request

from gateway.api import count_quota, credential, quota, require_grant

from . import service
from .errors import appd_response, empty_response
from .transport import check_accept, check_content_type, raw_body, read_json_body

blueprint = Blueprint(service.PLUGIN, __name__)
SCHEMA_ROUTE = "/events/schema/<name>"
PUBLISH_ROUTE = "/events/publish/<name>"
QUERY_ROUTE = "/events/query"


def _granted(action: str, name: str, *, body: bool = False) -> str:
    """The caller's tenant, after the Accept check, the grant ``appdynamics:<action>:<name>`` and, for a
    route taking a body, its Content-Type."""
    check_accept()
    tenant = require_grant(action, name).tenant
    if body:
        check_content_type()
    return tenant


@blueprint.post(SCHEMA_ROUTE)
def create_schema(name: str) -> Response:
    """``{"schema": {field: type}}`` -> 201 (empty body); 409 when the schema exists."""
    tenant = _granted("schema", name, body=True)
    name = service.schema_name(name)
    service.create_schema(tenant, name, read_json_body(dict, 'an object like {"schema": {"field": "string"}}'))
    return empty_response(201)


@blueprint.get(SCHEMA_ROUTE)
def get_schema(name: str) -> Response:
    """``{"schema": {field: type}}`` or 404."""
    tenant = _granted("schema", name)
    return appd_response({"schema": service.read_schema(tenant, service.schema_name(name))})


@blueprint.patch(SCHEMA_ROUTE)
def patch_schema(name: str) -> Response:
    """``add``/``rename`` (an object or an array of them) -> the complete schema."""
    tenant = _granted("schema", name, body=True)
    name = service.schema_name(name)
    body = read_json_body((dict, list), 'an object like {"add": {...}, "rename": {...}} or an array of them')
    return appd_response({"schema": service.update_schema(tenant, name, body)})


@blueprint.delete(SCHEMA_ROUTE)
def delete_schema(name: str) -> Response:
    """Delete the schema and its events -> 200 (empty body)."""
    tenant = _granted("schema", name)
    service.delete_schema(tenant, service.schema_name(name))
    return empty_response(200)


@blueprint.post(PUBLISH_ROUTE)
def publish(name: str) -> Response:
    """A JSON array of events, stored all or none -> 200 (empty body)."""
    tenant = _granted("publish", name, body=True)
    name = service.schema_name(name)
    body = read_json_body(list, "a JSON array of event objects")
    service.publish(tenant, name, body)
    return empty_response(200)


def _may_query_something() -> bool:
    """Whether any grant of the caller could allow a query (so that a key without one gets 403 at once)."""
    for grant in credential().grants:
        parts = grant.split(":", 2)
        if len(parts) >= 2 and fnmatchcase(service.PLUGIN, parts[0]) and fnmatchcase("query", parts[1]):
            return True
    return False


@blueprint.post(QUERY_ROUTE)
@quota("query_per_account", per="tenant")
@quota("query_per_key")
def query() -> Response:
    """One ADQL text or a JSON array of up to 20 queries -> a JSON array, one element per query."""
    check_accept()
    if not _may_query_something():
        require_grant("query")  # raises the 403
    tenant = credential().tenant
    check_content_type(text_allowed=True)
    params, specs = service.query_specs(request.args, raw_body())
    prepared = service.prepare(tenant, specs, lambda schema: require_grant("query", schema))
    for item in prepared:
        count_quota("searches_per_event_type", tenant, item.stream.name)
    return appd_response(service.run(prepared, params.scrollid))

