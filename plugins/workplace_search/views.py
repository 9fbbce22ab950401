"""HTTP layer of the Workplace Search analytics event API: read the body, call the service, answer ``200 {}``.

The Python client posts to ``/api/ws/v1/analytics/event``, the Ruby client to the same path with a
trailing slash; both are routed here. The grant is checked before the body is read (Enterprise Search
authorizes before it looks at parameters), so a caller without the grant gets 403 whatever it sent.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.api import quota, require_grant
from gateway.errors import UnsupportedMediaType
from gateway.jsonbody import EmptyBody, InvalidJSON, WrongShape, read_json
from gateway.openapi import operation

from . import apidoc, service
from .errors import WsError, ws_response
from .schemas import AnalyticsEventSchema

blueprint = Blueprint(service.PLUGIN, __name__)
ROUTE = "/api/ws/v1/analytics/event"


def read_body() -> dict[str, Any]:
    """The request body as a JSON object; 415 for a non-JSON Content-Type, 400 naming what is wrong otherwise."""
    try:
        return read_json(request, expect=dict)
    except UnsupportedMediaType as exc:
        raise WsError(exc.message, 415) from None
    except EmptyBody:
        raise WsError("Request body is empty: expected a JSON object with type, query_id, page, "
                      "content_source_id, document_id and rank", 400) from None
    except WrongShape as exc:
        raise WsError(f"Request body must be a JSON object, not {exc.found}", 400) from None
    except InvalidJSON as exc:
        raise WsError(f"Request body is not valid JSON: {exc.describe()}", 400) from None


@blueprint.post(ROUTE)
@blueprint.post(f"{ROUTE}/")
@quota("events")
@operation(body=AnalyticsEventSchema, responses={200: apidoc.RECORDED})
def create_analytics_event() -> Response:
    """Record one click or feedback event: ``200 {}`` once it is stored."""
    tenant = require_grant("write").tenant
    service.record_event(tenant, read_body())
    return ws_response({})
