"""HTTP layer of the Workplace Search analytics event API: read the body, call the service, answer ``200 {}``.

The Python client posts to ``/api/ws/v1/analytics/event``, the Ruby client to the same path with a
trailing slash; both are routed here. The grant is checked before the body is read (Enterprise Search
authorizes before it looks at parameters), so a caller without the grant gets 403 whatever it sent.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.api import quota, require_grant
from gateway.jsonbody import InvalidJSON, is_json_media_type, parse_json

from . import service
from .errors import WsError, ws_response

blueprint = Blueprint(service.PLUGIN, __name__)
ROUTE = "/api/ws/v1/analytics/event"


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array"


def read_body() -> dict[str, Any]:
    """The request body as a JSON object; 415 for a non-JSON Content-Type, 400 naming what is wrong otherwise.

    A request without Content-Type is read as JSON (lenient: curl and scripts sometimes omit it).
    """
    header = request.headers.get("Content-Type")
    if header and not is_json_media_type(header):
        raise WsError(f"Content-Type must be application/json (got {header})", 415)
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise WsError("Request body is empty: expected a JSON object with type, query_id, page, "
                      "content_source_id, document_id and rank", 400)
    try:
        body = parse_json(raw)
    except InvalidJSON as exc:
        raise WsError(f"Request body is not valid JSON: {exc.describe()}", 400) from None
    if not isinstance(body, dict):
        raise WsError(f"Request body must be a JSON object, not {_json_type(body)}", 400)
    return body


@blueprint.post(ROUTE)
@blueprint.post(f"{ROUTE}/")
@quota("events")
def create_analytics_event() -> Response:
    """Record one click or feedback event: ``200 {}`` once it is stored."""
    tenant = require_grant("write").tenant
    service.record_event(tenant, read_body())
    return ws_response({})
