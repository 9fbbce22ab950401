"""A complete, minimal Event Gateway plugin: one API with its own auth, errors, quota and enrichment.

POST /hello/v1/events {"name": "signup", "value": 3} with header X-Hello-Key: <secret>
GET  /hello/v1/events?name=signup -> the tenant's stored events, newest first
"""

from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields

from gateway import hookimpl
from gateway.api import Event, Stream, backend, quota, require_grant, store_events
from gateway.auth import read_header
from gateway.errors import GatewayError, json_response
from gateway.query import Filter, Query, Sort

API = "hello"
blueprint = Blueprint(API, __name__, url_prefix="/hello/v1")


class HelloEvent(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True)
    value = fields.Float(load_default=1.0)


@blueprint.post("/events")
@quota("events")
def post_event():
    tenant = require_grant("write").tenant
    try:
        doc = HelloEvent().load(request.get_json(force=True, silent=True) or {})
    except ValidationError as err:
        field, messages = next(iter(err.messages.items()))
        raise GatewayError(f"{field}: {messages[0]}", status=400, code="invalid", field=field) from None
    backend().ensure_stream(Stream(tenant=tenant, plugin=API, name="events"))
    store_events([Event(tenant=tenant, plugin=API, stream="events", type=doc["name"], data=doc)])
    return json_response({"stored": 1}, 201)


@blueprint.get("/events")
def list_events():
    tenant = require_grant("read").tenant
    filters = (Filter("type", "eq", request.args["name"]),) if "name" in request.args else ()
    page = backend().query(Query(tenant=tenant, plugin=API, filters=filters, sort=(Sort("timestamp", True),)))
    return json_response({"total": page.total, "events": [e.data for e in page.events]})


def render(error: GatewayError):
    return json_response({"problem": {"status": error.status, "title": error.message, "field": error.field}},
                         error.status, error.headers)


@hookimpl
def register_routes(app):
    """The API's routes."""
    return blueprint


@hookimpl
def auth_scheme(api):
    """Secrets arrive in the X-Hello-Key header."""
    return read_header("X-Hello-Key") if api == API else None


@hookimpl
def error_renderer(api):
    """Errors as {"problem": {...}}."""
    return render if api == API else None


@hookimpl
def quota_limits(api):
    """A named quota operators can override with [quotas.hello] events = "..."."""
    return {"events": "100 per minute"} if api == API else None


@hookimpl
def enrich_event(event, request):
    """Stamp where an event came from."""
    if event.plugin == API:
        event.data["source_ip"] = request.remote_addr
