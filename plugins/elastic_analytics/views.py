"""HTTP layer of the Behavioral Analytics API: parse the request, call the service, answer like ES.

Request checks follow Elasticsearch's REST layer: query parameters it does not know are rejected,
a body needs a JSON Content-Type (406 otherwise, ES's status for unsupported media types), and a
missing body is a ``parse_exception``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from flask import Blueprint, Response, request

from gateway.api import quota, require_grant
from gateway.flaskapp import current_request
from gateway.jsonbody import parse_json, read_body
from gateway.openapi import operation

from . import apidoc, service
from .cluster import cluster_info
from .errors import (
    COMPATIBLE_VERSIONS,
    CURRENT_MAJOR,
    EsError,
    ShortEsError,
    compatible_version,
    encode,
    es_response,
)
from .schemas import EVENT_SCHEMAS

blueprint = Blueprint(service.PLUGIN, __name__)
BASE = "/_application/analytics"
COMMON_PARAMS = frozenset({"pretty", "human", "error_trace", "filter_path"})
COLLECTION_PARAMS = COMMON_PARAMS | {"master_timeout", "timeout"}
EVENT_PARAMS = COMMON_PARAMS | {"debug", "source", "source_content_type"}
JSON_TYPES = frozenset({"application/json", "application/vnd.elasticsearch+json"})
#: The answer to an accepted event, encoded once.
ACCEPTED = encode({"accepted": True})


def _no_body() -> None:
    """ES's BaseRestHandler refuses content a handler does not read."""
    if request.content_length or request.get_data(cache=False):
        raise EsError("illegal_argument_exception",
                      f"request [{request.method} {request.path}] does not support having a body")


def _allow_params(allowed: frozenset[str]) -> None:
    req = current_request()
    if not req.environ.get("QUERY_STRING"):
        return
    for name in req.args:
        if name not in allowed:
            raise EsError("illegal_argument_exception",
                          f"request [{req.path}] contains unrecognized parameter: [{name}]")


def _bool_param(name: str) -> bool:
    req = current_request()
    value = req.args.get(name) if req.environ.get("QUERY_STRING") else None
    if value is None:
        return False
    if value in ("", "true"):
        return True
    if value == "false":
        return False
    raise EsError("illegal_argument_exception",
                  f"Failed to parse value [{value}] as only [true] or [false] are allowed.")


def _media_type(header: str) -> str:
    media, _, params = header.partition(";")
    media = media.strip().lower()
    if media == "application/vnd.elasticsearch+json" and compatible_version(params) not in COMPATIBLE_VERSIONS:
        raise ShortEsError(f"Content-Type header [{header}] is not supported", status=406)
    return media


def _vendor_version(header: str) -> str | None:
    return compatible_version(header) if "vnd.elasticsearch+" in header.lower() else None


def _check_compatible_versions(content_type: str, accept: str) -> None:
    """ES requires the same compatible-with version on Accept and Content-Type; a header that names none
    (``Accept: */*``, plain JSON) means the current version, as on Elasticsearch 9."""
    wanted = _vendor_version(accept) or CURRENT_MAJOR
    sent = _vendor_version(content_type) or CURRENT_MAJOR
    if wanted != sent:
        cause = EsError("status_exception", "A compatible version is required on both Content-Type and Accept "
                        "headers if either one has requested a compatible version and the compatible versions must "
                        f"match. Accept={accept}, Content-Type={content_type}")
        raise EsError("media_type_header_exception", "Invalid media-type value on headers [Accept, Content-Type]",
                      cause=cause)


def _body_bytes() -> bytes:
    """The raw body (or ``source`` parameter), after ES's Content-Type check; 400 when there is none."""
    req = current_request()
    raw = read_body(req, req.max_content_length)  # type: ignore[arg-type]  # the gateway's server.max_body_bytes
    if raw:
        header = req.environ.get("CONTENT_TYPE")  # what ``request.headers.get("Content-Type")`` returns
        if not header:
            raise ShortEsError("Content-Type header is missing", status=406)
        if _media_type(header) not in JSON_TYPES:
            raise ShortEsError(f"Content-Type header [{header}] is not supported", status=406)
        _check_compatible_versions(header, req.environ.get("HTTP_ACCEPT", ""))
        return raw
    source = req.args.get("source")
    if source:
        source_type = req.args.get("source_content_type")
        if not source_type:
            raise EsError("illegal_argument_exception", "source and source_content_type parameters are required")
        if _media_type(source_type) not in JSON_TYPES:
            raise EsError("illegal_argument_exception", f"Unknown value for source_content_type [{source_type}]")
        return source.encode()
    raise EsError("parse_exception", "request body or source parameter is required")


@blueprint.route("/", methods=["GET", "HEAD"])
def root() -> Response:
    """Elasticsearch's root (``es.info()``): the ``cluster:monitor/main`` action, granted as ``monitor``."""
    _allow_params(COMMON_PARAMS)
    _no_body()
    require_grant("monitor")
    return es_response(cluster_info())


@blueprint.put(f"{BASE}/<name>")
@operation(responses={201: apidoc.CREATED}, path_params={"name": apidoc.COLLECTION_NAME})
def put_collection(name: str) -> Response:
    """Create a collection: 201 + Location, as ES's newest handler answers."""
    _allow_params(COLLECTION_PARAMS)
    _no_body()
    tenant = require_grant("manage", name).tenant
    service.create_collection(tenant, name)
    return es_response({"acknowledged": True, "name": name}, 201, {"Location": f"{BASE}/{quote(name, safe='')}"})


@blueprint.get(BASE)
@blueprint.get(f"{BASE}/<name>")
@operation(responses={200: apidoc.COLLECTIONS}, path_params={"name": apidoc.COLLECTION_NAME})
def get_collections(name: str | None = None) -> Response:
    """List collections: all, a comma list, ``*`` patterns."""
    _allow_params(COLLECTION_PARAMS)
    _no_body()
    names = service.split_names(name)
    if names and not any(service.is_pattern(part) for part in names):
        tenant = ""
        for part in names:  # explicit names: a per-collection grant is enough
            tenant = require_grant("manage", part).tenant
    else:
        tenant = require_grant("manage").tenant
    return es_response(service.resolve_collections(tenant, names))


@blueprint.delete(f"{BASE}/<name>")
@operation(responses={200: apidoc.ACKNOWLEDGED}, path_params={"name": apidoc.COLLECTION_NAME})
def delete_collection(name: str) -> Response:
    """Delete a collection and its events."""
    _allow_params(COLLECTION_PARAMS)
    _no_body()
    tenant = require_grant("manage", name).tenant
    service.delete_collection(tenant, name)
    return es_response({"acknowledged": True})


@blueprint.post(f"{BASE}/<collection>/event/<event_type>")
@quota("post_event")
@operation(body=tuple(type(schema) for schema in EVENT_SCHEMAS.values()), query=apidoc.DEBUG,
           body_media_types=apidoc.MEDIA_TYPES, responses={202: apidoc.ACCEPTED},
           path_params={"collection": apidoc.COLLECTION_NAME, "event_type": apidoc.EVENT_TYPE})
def post_event(collection: str, event_type: str) -> Response:
    """Accept one event: 202 ``{"accepted": true}``, with ``?debug=true`` also the stored document.

    ES's order: REST checks (parameters, body), request validation (event type), authorization,
    then the collection, then the body's content.
    """
    _allow_params(EVENT_PARAMS)
    debug = _bool_param("debug")
    raw = _body_bytes()
    service.check_event_type(event_type)
    tenant = require_grant("post_event", collection).tenant
    event = service.post_event(tenant, collection, event_type, lambda: parse_json(raw, reject_duplicate_keys=True))
    body: dict[str, Any] = {"accepted": True}
    if debug:
        body["event"] = event.data
    return es_response(body, 202, encoded=None if debug else ACCEPTED)
