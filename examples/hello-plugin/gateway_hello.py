"""A complete, minimal Event Gateway plugin: one API with its own auth, errors, quota, grants and settings.

POST /hello/v1/events {"name": "signup", "value": 3} with header X-Hello-Key: <secret>
GET  /hello/v1/events?name=signup -> the tenant's stored events, newest first

The whole plugin is the `VendorApi` declaration at the bottom and the `register_apis` hook returning it.
"""

from flask import Blueprint, request
from marshmallow import RAISE, Schema, ValidationError, fields

from gateway import hookimpl
from gateway.api import Event, backend, client_ip, plugin_settings, quota, require_grant, store_events
from gateway.auth import read_header
from gateway.errors import GatewayError, json_response
from gateway.jsonbody import read_json
from gateway.query import Filter, Query, Sort
from gateway.validation import flatten_errors
from gateway.vendor import Grant, VendorApi

API = "hello"
blueprint = Blueprint(API, __name__, url_prefix="/hello/v1")


class HelloEvent(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True)
    value = fields.Float(load_default=1.0)


class HelloSettings(Schema):
    """``[plugins.hello]``: validated once at start-up; `plugin_settings()` returns the loaded dict."""

    class Meta:
        unknown = RAISE

    stream = fields.String(load_default="events")


@blueprint.post("/events")
@quota("events")
def post_event():
    tenant = require_grant("write").tenant
    body = read_json(request, expect=dict)  # strict JSON; bad JSON is a 400 in this API's format
    try:
        doc = HelloEvent().load(body)
    except ValidationError as err:
        field, message = flatten_errors(err.messages)[0]
        raise GatewayError(f"{field}: {message}", status=400, code="invalid", field=field) from None
    doc["source_ip"] = client_ip()  # the plugin enriches its own events, here
    event = Event(tenant=tenant, plugin=API, stream=plugin_settings()["stream"], type=doc["name"], data=doc)
    store_events([event], create_streams=True)  # the stream is created on first use
    return json_response({"stored": 1}, 201)


@blueprint.get("/events")
def list_events():
    tenant = require_grant("read").tenant
    filters = (Filter("type", "eq", request.args["name"]),) if "name" in request.args else ()
    page = backend().query(Query(tenant=tenant, plugin=API, filters=filters, sort=(Sort("timestamp", True),)))
    return json_response({"total": page.total, "events": [e.data for e in page.events]})


def render(error: GatewayError):
    """Every error of this API as {"problem": {...}}."""
    return json_response({"problem": {"status": error.status, "title": error.message, "field": error.field}},
                         error.status, error.headers)


HELLO = VendorApi(
    name=API,
    blueprint=blueprint,
    read_credential=read_header("X-Hello-Key"),  # secrets arrive in the X-Hello-Key header
    render_error=render,
    quotas={"events": "100 per minute"},  # operators override with [quotas.hello] events = "..."
    grants=(Grant("write"), Grant("read")),  # what `event-gateway check` accepts in hello:<action>
    settings_schema=HelloSettings,
)


@hookimpl
def register_apis():
    """The API's one declaration."""
    return HELLO
