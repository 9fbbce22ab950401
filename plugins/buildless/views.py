"""HTTP layer of the Buildless telemetry API: read the envelope (JSON body or query parameters), call the service.

The protocol binds ``EventEmit`` as ``post: "/v1/telemetry/event:emit"`` with no ``body:`` clause, so under
gRPC-HTTP transcoding its fields are query parameters (``?collection=builds&event.id=...``; gRPC-gateway
also reads a form-encoded body as parameters); clients and mocks usually send the envelope as a JSON body.
Both are served:

* a non-empty body is read as JSON whatever its Content-Type (gRPC-gateway's default marshaler reads any
  type as JSON), except ``application/x-www-form-urlencoded``, which is read as parameters like the query
  string, unless it starts with ``{`` (``curl -d '{...}'`` sends JSON with that type);
* with a JSON body, query parameters naming envelope fields are refused (400: which one wins would be a
  guess); parameters naming nothing are ignored, as gRPC-gateway ignores them.

The grant is checked before the request is read, so a caller without it gets 403 whatever it sent.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, request

from gateway.api import client_ip, quota, require_grant
from gateway.errors import json_response
from gateway.jsonbody import InvalidJSON
from gateway.jsonbody import parse_json as core_parse_json
from gateway.openapi import operation

from . import apidoc, service
from .errors import BuildlessError
from .schemas import Envelope, InvalidEvent, envelope_from_params, is_known_param

blueprint = Blueprint(service.PLUGIN, __name__)
EMIT = "/v1/telemetry/event:emit"
PING = "/v1/telemetry/event:ping"
FORM = "application/x-www-form-urlencoded"
#: Deepest nesting of objects and arrays a JSON body may have (the envelope itself needs 6 levels).
MAX_DEPTH = 100


def _depth(value: Any) -> int:
    """How deeply objects and arrays nest in a parsed JSON value (iteratively: no recursion limit)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in (node.values() if isinstance(node, dict) else node))
    return deepest


def parse_json(raw: bytes) -> Any:
    """The body as JSON (strict: UTF-8, no duplicate keys, no NaN/Infinity, at most `MAX_DEPTH` levels); else 400."""
    too_deep = f"invalid request body: objects and arrays nest more than {MAX_DEPTH} levels deep"
    try:
        body = core_parse_json(raw, reject_duplicate_keys=True)
    except InvalidJSON as exc:
        if exc.too_deep:
            raise BuildlessError(too_deep) from None
        problem = f'duplicate field "{exc.duplicate_key}"' if exc.duplicate_key else exc.describe()  # protojson's words
        raise BuildlessError(f"invalid request body: {problem}") from None
    if _depth(body) > MAX_DEPTH:
        raise BuildlessError(too_deep)
    return body


def _params(pairs: list[tuple[str, list[str]]], where: str) -> dict[str, Any]:
    try:
        return envelope_from_params(pairs)
    except InvalidEvent as exc:
        raise BuildlessError(f"invalid {where}: {exc}", field=exc.field) from None


def read_envelope() -> Any:
    """The request's envelope: the JSON body, or the query (and form) parameters."""
    query = [(name, request.args.getlist(name)) for name in request.args]
    if request.mimetype == FORM:
        raw = request.get_data(cache=True)
        if not raw.lstrip().startswith(b"{"):
            form = [(name, request.form.getlist(name)) for name in request.form]
            merged: dict[str, list[str]] = {}
            for name, values in (*form, *query):
                merged.setdefault(name, []).extend(values)
            return _params(list(merged.items()), "parameters")
    else:
        raw = request.get_data(cache=False)
    if raw.strip():
        both = next((name for name, _ in query if is_known_param(name)), None)
        if both is not None:
            raise BuildlessError(f"query parameter {both} is not allowed with a JSON body: send the event either "
                                 "as a JSON body or as query parameters", field=both)
        return parse_json(raw)
    return _params(query, "query parameters")


@blueprint.post(EMIT)
@quota("emit")
@operation(body=Envelope, body_required=False, responses={200: apidoc.EMITTED})
def event_emit() -> Response:
    """``EventEmit``: ``200 {"ok": true, "eid": <event.id>}`` once stored, or when the id was already accepted."""
    tenant = require_grant("emit").tenant
    event, _new = service.emit(tenant, read_envelope(), ip=client_ip())
    return json_response({"ok": True, "eid": event.id})


@blueprint.post(PING)
@operation(responses={200: apidoc.PONG})
def event_ping() -> Response:
    """``Ping``: ``200 {}`` for a caller holding the emit grant (the body, an empty message, is not read)."""
    require_grant("emit")
    return json_response({})
