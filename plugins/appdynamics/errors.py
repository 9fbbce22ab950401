"""The plugin's one error body, used for every status under ``/events/``, and its JSON responses.

AppDynamics publishes status codes but no error body. The npm client ``appdynamics-analytics-events-api``
reads ``message``, ``code`` and ``statusCode`` from every error body and tells a missing schema by
``code == "Missing.EventType"``, which matches the research notes' recollection of the Events Service, so
every error here is::

    {"statusCode": 404, "code": "Missing.EventType",
     "message": "Unable to find metadata for event type [myProducts] and account [customer1]"}

plus, when known, ``field`` (the input at fault), ``line``/``column`` (ADQL errors) and ``index`` (the event
of a publish array). Responses are typed ``application/vnd.appd.events+json;v=2`` unless the client asked for
``application/json`` (`response_type`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, request

from gateway.errors import GatewayError, MissingCredentials, allowed_methods, json_response

MEDIA_TYPE = "application/vnd.appd.events+json;v=2"

#: The ``code`` of each status for errors the core raises (ours carry their own).
CODES = {
    400: "Invalid.Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not.Found", 405: "Method.Not.Allowed",
    406: "Not.Acceptable", 409: "Conflict", 413: "Request.Too.Large", 415: "Unsupported.Media.Type",
    429: "Too.Many.Requests", 500: "Internal.Error", 503: "Service.Unavailable",
}  # fmt: skip


class AppdError(GatewayError):
    """An error of this API: status, ``code`` (``Missing.EventType``, ``Invalid.Query`` ...) and extra keys."""

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None,
                 extra: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, status=status, code=code, field=field, headers=headers)
        self.extra = dict(extra or {})


def accept_quality(header: str | None, media: str) -> float:
    """The quality an ``Accept`` header gives `media` (parameters other than ``q`` ignored, so that
    ``application/vnd.appd.events+json;v=2`` matches; the most specific range wins); 1 without a header."""
    if header is None or not header.strip():
        return 1.0
    kind, _, sub = media.partition("/")
    best: tuple[int, float] | None = None
    for item in header.split(","):
        rng, *params = item.split(";")
        rng = rng.strip().lower()
        r_kind, _, r_sub = rng.partition("/")
        if rng == "*" or (r_kind == "*" and r_sub in ("*", "")):
            specificity = 0
        elif r_kind == kind and r_sub == "*":
            specificity = 1
        elif r_kind == kind and r_sub == sub:
            specificity = 2
        else:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = max(0.0, min(1.0, float(value.strip())))
                except ValueError:
                    quality = 0.0
        if best is None or specificity > best[0]:
            best = (specificity, quality)
    return best[1] if best is not None else 0.0


def response_type() -> str:
    """``application/json`` when the client prefers it to the vendor type, else the vendor type."""
    header = request.headers.get("Accept")
    if accept_quality(header, "application/json") > accept_quality(header, "application/vnd.appd.events+json"):
        return "application/json"
    return MEDIA_TYPE


def appd_response(body: Any, status: int = 200) -> Response:
    """A JSON answer of this API."""
    return json_response(body, status, mimetype=response_type())


def empty_response(status: int) -> Response:
    """An answer without a body (create, publish, delete): no Content-Type at all, so never text/html."""
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response


def _message(error: GatewayError) -> tuple[str, str]:
    """``(code, message)`` of any error under this API's routes."""
    if isinstance(error, AppdError):
        return error.code, error.message
    status = error.status
    code = CODES.get(status, "Error")
    if status == 401:
        if isinstance(error, MissingCredentials):
            return code, ("missing credentials: send the X-Events-API-AccountName and X-Events-API-Key headers")
        return code, "the account name and API key do not match a known API key of that account"
    if status == 403:
        needed = error.detail if isinstance(error.detail, str) else "appdynamics"
        return code, f"the API key is not allowed to do this (it needs the grant {needed})"
    if status == 404:
        return code, f"no resource at {request.method} {request.path}"
    if status == 405:
        return code, f"method {request.method} is not allowed on {request.path} " \
                     f"(allowed: {', '.join(allowed_methods(error)) or 'none'})"
    if status == 413:
        return code, "the request body is larger than the maximum allowed size"
    if status >= 500 and status != 503:
        return code, "internal error"
    return code, error.message


def render_error(error: GatewayError) -> Response:
    """The declared `render_error`: ``{"statusCode", "code", "message"[, "field", "line", "column", "index"]}``."""
    code, message = _message(error)
    body: dict[str, Any] = {"statusCode": error.status, "code": code, "message": message}
    if error.field is not None:
        body["field"] = error.field
    if isinstance(error, AppdError):
        body.update(error.extra)
    headers = dict(error.headers)
    if error.status == 405:
        headers["Allow"] = ", ".join(allowed_methods(error))
    return json_response(body, error.status, headers, mimetype=response_type())
