"""HTTP layer of the Fluid Topics analytics web services: read the JSON body, call the service, answer.

The grant is checked before the body is read, so a caller without it gets 403 whatever it sent. The
``Ft-Calling-App`` header Fluid Topics asks clients to send is accepted and not required.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.api import quota, require_grant
from gateway.jsonbody import InvalidJSON, is_json_media_type, parse_json

from . import service
from .errors import FtError, ft_response

blueprint = Blueprint(service.PLUGIN, __name__)
INGEST_ROUTE = "/api/analytics/events"
RETRIEVE_ROUTE = "/analytics/api/v1/events"
COUNT_ROUTE = "/analytics/api/v1/traffic/event-counts"


def read_body(*, array: bool = False) -> Any:
    """The JSON body (an object, or with `array` also an array); 415 for a non-JSON Content-Type, 400 else.

    A request without Content-Type is read as JSON (curl and scripts sometimes omit it).
    """
    header = request.headers.get("Content-Type")
    if header and not is_json_media_type(header):
        raise FtError(f"Content-Type must be application/json (got {header})", 415)
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise FtError("the request body is empty: expected a JSON object", 400, field="body")
    try:
        body = parse_json(raw)
    except InvalidJSON as exc:
        raise FtError(f"Invalid JSON request body: {exc.describe()}", 400, field="body") from None
    if isinstance(body, dict) or (array and isinstance(body, list)):
        return body
    expected = "a JSON object or an array of objects" if array else "a JSON object"
    raise FtError(f"the request body must be {expected}", 400, field="body")


@blueprint.post(INGEST_ROUTE)
@quota("ingest")
def trigger_events() -> Response:
    """Store one event or an array of events atomically: ``200 {"accepted": n, "ids": [...]}``."""
    tenant = require_grant("write").tenant
    events = service.record_events(tenant, read_body(array=True))
    return ft_response({"accepted": len(events), "ids": [event.id for event in events]})


@blueprint.post(RETRIEVE_ROUTE)
@quota("query")
def retrieve_events() -> Response:
    """A page of the tenant's events in a date range, filtered and sorted."""
    tenant = require_grant("read").tenant
    return ft_response(service.retrieve(tenant, read_body()))


@blueprint.post(COUNT_ROUTE)
@quota("query")
def event_counts() -> Response:
    """The number of events per name and per day, ISO week or month."""
    tenant = require_grant("read").tenant
    return ft_response(service.count(tenant, read_body()))
