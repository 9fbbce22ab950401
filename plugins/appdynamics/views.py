"""HTTP layer of the Analytics Events API: ``/events/schema/{name}``, ``/events/publish/{name}``, ``/events/query``.

Order of checks on every route: credentials (core, 401) -> ``Accept`` (406) -> grant (403; schema routes
know their schema from the URL, a query from its ADQL ``FROM``) -> Content-Type (415) -> body (413/400) ->
the service. Queries count against the per-account and per-key quotas as requests (core) and, once parsed,
against the per-account-and-event-type search quota (`gateway.api.count_quota`), one search per query.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

from flask import Blueprint, Response, request

from gateway.api import count_quota, credential, quota, require_grant
from gateway.openapi import operation

from . import apidoc, service
from .errors import appd_response, empty_response
from .transport import check_accept, check_content_type, raw_body, read_json_body

blueprint = Blueprint(service.PLUGIN, __name__)
SCHEMA_ROUTE = "/events/schema/<name>"
PUBLISH_ROUTE = "/events/publish/<name>"
QUERY_ROUTE = "/events/query"


def _schema_request(action: str, name: str, body: tuple[type | tuple[type, ...], str] | None = None
                    ) -> tuple[str, str, Any]:
    """``(tenant, schema name, JSON body)`` of a ``/events/schema|publish/{name}`` request, checked in the module's
    order: Accept (406), the grant ``appdynamics:<action>:<name>`` (403), then the schema name (400) and, for a
    route taking a body (`body` = the expected JSON type and how a 400 words it), Content-Type (415) and body."""
    check_accept()
    tenant = require_grant(action, name).tenant
    if body is not None:
        check_content_type()
    name = service.schema_name(name)
    return tenant, name, None if body is None else read_json_body(*body)


@blueprint.post(SCHEMA_ROUTE)
@operation(body=apidoc.SCHEMA_BODY, body_media_types=apidoc.JSON_BODY_TYPES, path_params=apidoc.PATH_PARAMS,
           responses={201: apidoc.CREATED})
def create_schema(name: str) -> Response:
    """``{"schema": {field: type}}`` -> 201 (empty body); 409 when the schema exists."""
    tenant, name, body = _schema_request("schema", name, (dict, 'an object like {"schema": {"field": "string"}}'))
    service.create_schema(tenant, name, body)
    return empty_response(201)


@blueprint.get(SCHEMA_ROUTE)
@operation(path_params=apidoc.PATH_PARAMS, responses={200: apidoc.SCHEMA_ANSWER})
def get_schema(name: str) -> Response:
    """``{"schema": {field: type}}`` or 404."""
    tenant, name, _ = _schema_request("schema", name)
    return appd_response({"schema": service.read_schema(tenant, name)})


@blueprint.patch(SCHEMA_ROUTE)
@operation(body=apidoc.UPDATE_BODY, body_media_types=apidoc.JSON_BODY_TYPES, path_params=apidoc.PATH_PARAMS,
           responses={200: apidoc.SCHEMA_ANSWER})
def patch_schema(name: str) -> Response:
    """``add``/``rename`` (an object or an array of them) -> the complete schema."""
    tenant, name, body = _schema_request("schema", name, ((dict, list), 'an object like {"add": {...}, '
                                                                         '"rename": {...}} or an array of them'))
    return appd_response({"schema": service.update_schema(tenant, name, body)})


@blueprint.delete(SCHEMA_ROUTE)
@operation(path_params=apidoc.PATH_PARAMS, responses={200: apidoc.DONE})
def delete_schema(name: str) -> Response:
    """Delete the schema and its events -> 200 (empty body)."""
    tenant, name, _ = _schema_request("schema", name)
    service.delete_schema(tenant, name)
    return empty_response(200)


@blueprint.post(PUBLISH_ROUTE)
@operation(body=apidoc.EVENTS_BODY, body_media_types=apidoc.JSON_BODY_TYPES, path_params=apidoc.PATH_PARAMS,
           responses={200: apidoc.PUBLISHED})
def publish(name: str) -> Response:
    """A JSON array of events, stored all or none -> 200 (empty body)."""
    tenant, name, body = _schema_request("publish", name, (list, "a JSON array of event objects"))
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
@operation(query=apidoc.QUERY_PARAMS, responses={200: apidoc.QUERY_ANSWER}, extra=apidoc.QUERY_REQUEST)
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

