"""HTTP layer of the Fluid Topics analytics web services: read credentials and the JSON body, call the service.

The grant is checked before the body is read, so a caller without it gets 403 whatever it sent. The
``Ft-Calling-App`` header Fluid Topics asks clients to send is accepted and not required.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Request, Response, request

from gateway.api import quota, require_grant
from gateway.auth import PresentedCredential, read_basic, read_bearer
from gateway.errors import UnsupportedMediaType
from gateway.jsonbody import EmptyBody, InvalidJSON, WrongShape, read_json
from gateway.openapi import operation

from . import apidoc, service
from .errors import FtError, ft_response
from .schemas import CountRequestSchema, IngestEventSchema, RetrieveRequestSchema

blueprint = Blueprint(service.PLUGIN, __name__)
INGEST_ROUTE = "/api/analytics/events"
RETRIEVE_ROUTE = "/analytics/api/v1/events"
COUNT_ROUTE = "/analytics/api/v1/traffic/event-counts"
PREFIXED_HEADER = "FT-Authorization"


class _Prefixed:
    """The request seen through ``FT-Authorization`` as if it were ``Authorization`` (for the readers)."""

    def __init__(self, value: str) -> None:
        self.headers = {"Authorization": value}


def read_credential(request: Request) -> PresentedCredential | None:
    """``Authorization: Bearer <key>`` or ``Basic base64(id:secret)``; the same in ``FT-Authorization``.

    Fluid Topics "supports both prefixed and unprefixed authentication headers" (``FT-Authorization``
    was its only header before v3.4.12); the unprefixed one wins when both are sent.
    """
    for source in (request, _Prefixed(request.headers.get(PREFIXED_HEADER, ""))):
        if not source.headers.get("Authorization"):
            continue
        found = read_bearer(source) or read_basic(source)  # type: ignore[arg-type]
        if found is not None:
            return found
    return None


def read_body(*, array: bool = False) -> Any:
    """The JSON body (an object, or with `array` also an array); 415 for a non-JSON Content-Type, 400 else."""
    try:
        return read_json(request, expect=(dict, list) if array else dict)
    except UnsupportedMediaType as exc:
        raise FtError(exc.message, 415) from None
    except EmptyBody:
        raise FtError("the request body is empty: expected a JSON object", 400, field="body") from None
    except WrongShape:
        expected = "a JSON object or an array of objects" if array else "a JSON object"
        raise FtError(f"the request body must be {expected}", 400, field="body") from None
    except InvalidJSON as exc:
        raise FtError(f"Invalid JSON request body: {exc.describe()}", 400, field="body") from None


@blueprint.post(INGEST_ROUTE)
@quota("ingest")
@operation(body=(IngestEventSchema, apidoc.EVENTS_ARRAY), headers=apidoc.HEADERS, responses={200: apidoc.INGESTED})
def trigger_events() -> Response:
    """Store one event or an array of events atomically: ``200 {"accepted": n, "ids": [...]}``."""
    tenant = require_grant("write").tenant
    events = service.record_events(tenant, read_body(array=True))
    return ft_response({"accepted": len(events), "ids": [event.id for event in events]})


@blueprint.post(RETRIEVE_ROUTE)
@quota("query")
@operation(body=RetrieveRequestSchema, headers=apidoc.HEADERS, responses={200: apidoc.RETRIEVED})
def retrieve_events() -> Response:
    """A page of the tenant's events in a date range, filtered and sorted."""
    tenant = require_grant("read").tenant
    return ft_response(service.retrieve(tenant, read_body()))


@blueprint.post(COUNT_ROUTE)
@quota("query")
@operation(body=CountRequestSchema, headers=apidoc.HEADERS, responses={200: apidoc.COUNTED})
def event_counts() -> Response:
    """The number of events per name and per day, ISO week or month."""
    tenant = require_grant("read").tenant
    return ft_response(service.count(tenant, read_body()))
