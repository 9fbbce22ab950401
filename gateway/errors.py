"""Errors as values, and their rendering: every response the gateway gives is JSON.

Handlers and the core raise `GatewayError` subclasses that say *what* went wrong (status, a neutral
`code`, a message naming the field). *How* it looks on the wire is the business of the API the request
belongs to: each API declares a renderer (`gateway.vendor.VendorApi.render_error`); routes of no plugin
(``/_gateway/...``, unknown paths) use `render_gateway_error`. Renderers tell cases apart by type
(`MissingCredentials` vs `InvalidCredentials`), never by comparing strings.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from flask import Response
from werkzeug.exceptions import HTTPException

JSON_MIMETYPE = "application/json"


class GatewayError(Exception):
    """An error with an HTTP status; `field` names the offending input when there is one."""

    status: int = 500
    code: str = "internal_error"

    def __init__(self, message: str, *, field: str | None = None, status: int | None = None,
                 code: str | None = None, headers: Mapping[str, str] | None = None,
                 detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code
        self.headers = dict(headers or {})
        self.detail = detail


class BadRequest(GatewayError):
    """The input is invalid; plugins usually raise their own subclass carrying the vendor's details."""

    status, code = 400, "bad_request"


class Unauthorized(GatewayError):
    """No credentials, or credentials the gateway does not know."""

    status, code = 401, "unauthorized"


class MissingCredentials(Unauthorized):
    """The request carried no credential the API's scheme could read."""

    def __init__(self, message: str = "missing authentication credentials", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class InvalidCredentials(Unauthorized):
    """The request carried a credential the gateway does not know (or a wrong secret)."""

    def __init__(self, message: str = "unable to authenticate with the provided credentials", **kwargs: Any) -> None:
        super().__init__(message, **kwargs)


class Forbidden(GatewayError):
    """Valid credentials without the grant the route needs."""

    status, code = 403, "forbidden"


class NotFound(GatewayError):
    """No such route or resource."""

    status, code = 404, "not_found"


class MethodNotAllowed(GatewayError):
    """The route exists with other methods; `allowed` lists them."""

    status, code = 405, "method_not_allowed"

    def __init__(self, message: str, *, allowed: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.allowed = sorted(allowed or [])
        if self.allowed:
            self.headers.setdefault("Allow", ", ".join(self.allowed))


def allowed_methods(error: GatewayError) -> list[str]:
    """The methods a 405 names to the client: the route's own, without the implicit HEAD and OPTIONS."""
    return [m for m in getattr(error, "allowed", ()) if m not in ("HEAD", "OPTIONS")]


class PayloadTooLarge(GatewayError):
    """The body is over `server.max_body_bytes`."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GatewayError):
    """The body's content type is not one the API reads."""

    status, code = 415, "unsupported_media_type"


class TooManyRequests(GatewayError):
    """A quota is exhausted; `retry_after` seconds until it refills."""

    status, code = 429, "too_many_requests"

    def __init__(self, message: str, *, retry_after: int = 1, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))
        self.headers["Retry-After"] = str(self.retry_after)


class ServiceUnavailable(GatewayError):
    """The storage backend or the quota store is down: nothing was accepted; `retry_after` seconds is
    the hint clients get (``Retry-After``) before trying again."""

    status, code = 503, "service_unavailable"

    def __init__(self, message: str, *, retry_after: int = 2, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = max(1, int(retry_after))
        self.headers.setdefault("Retry-After", str(self.retry_after))


class InternalError(GatewayError):
    """A bug; logged with its traceback, answered without one."""

    status, code = 500, "internal_error"


_HTTP_TO_ERROR: dict[int, type[GatewayError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 405: MethodNotAllowed,
    413: PayloadTooLarge, 415: UnsupportedMediaType, 429: TooManyRequests, 503: ServiceUnavailable,
}

_HTTP_MESSAGES = {
    404: "no handler found for this path",
    405: "method not allowed for this path",
    413: "request body is larger than the configured limit",
}


def from_http_exception(exc: HTTPException) -> GatewayError:
    """Turn a werkzeug exception (routing, body size, ...) into a `GatewayError`."""
    status = exc.code or 500
    message = _HTTP_MESSAGES.get(status) or exc.description or exc.name
    if status == 405:
        allowed = list(getattr(exc, "valid_methods", None) or [])
        return MethodNotAllowed(message, allowed=allowed)
    cls = _HTTP_TO_ERROR.get(status, GatewayError)
    return cls(message, status=status, code=None if cls is not GatewayError else f"http_{status}")


def json_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None,
                  mimetype: str = JSON_MIMETYPE) -> Response:
    """A compact JSON response (faster than flask.jsonify, and independent of app JSON settings).

    Non-ASCII text is escaped (``\u00e9``): the same JSON to every parser, and a string that could not be
    encoded as UTF-8 (an unpaired surrogate from some path the strict parser did not see) cannot turn an
    answer into a 500.
    """
    response = Response(json.dumps(body, separators=(",", ":")), status=status, mimetype=mimetype)
    if headers:
        response.headers.update(headers)
    return response


def render_gateway_error(error: GatewayError) -> Response:
    """The gateway's own error format, for /_gateway routes and paths no plugin claims."""
    body: dict[str, Any] = {"error": {"code": error.code, "message": error.message, "status": error.status}}
    if error.field:
        body["error"]["field"] = error.field
    return json_response(body, error.status, error.headers)
