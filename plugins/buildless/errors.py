"""Buildless's error bodies: the gRPC-gateway JSON status ``{"code": <grpc code>, "message": "...", "details": []}``.

The Buildless API is a gRPC service transcoded to JSON/REST by gRPC-gateway, whose error handler answers
every failure with the ``google.rpc.Status`` of the call in proto3 JSON and the HTTP status that
`runtime.HTTPStatusFromCode` derives from the gRPC code. This renderer goes the other way for errors
the gateway core raises (it knows HTTP statuses): each status gets the gRPC code that maps back onto it,
so a gRPC-aware client and a plain HTTP client read the same failure.

Routing errors use gRPC-gateway's own wording (``Not Found``, ``Method Not Allowed``; the HTTP status is
kept, as its ``HTTPStatusError`` does). Statuses with no gRPC code of their own take the nearest one
(413 -> RESOURCE_EXHAUSTED, gRPC's status for a message over the size limit). ``details`` is always an
empty list.
"""

from __future__ import annotations

from collections.abc import Mapping

from flask import Response

from gateway.errors import GatewayError, MissingCredentials, json_response

# gRPC status codes (google.rpc.Code)
OK, CANCELLED, UNKNOWN, INVALID_ARGUMENT, DEADLINE_EXCEEDED, NOT_FOUND = 0, 1, 2, 3, 4, 5
ALREADY_EXISTS, PERMISSION_DENIED, RESOURCE_EXHAUSTED, FAILED_PRECONDITION, ABORTED = 6, 7, 8, 9, 10
OUT_OF_RANGE, UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS, UNAUTHENTICATED = 11, 12, 13, 14, 15, 16

#: HTTP status -> the gRPC code whose HTTP mapping it is (or the nearest one).
GRPC_CODE_BY_STATUS: dict[int, int] = {
    400: INVALID_ARGUMENT,
    401: UNAUTHENTICATED,
    403: PERMISSION_DENIED,
    404: NOT_FOUND,
    405: UNIMPLEMENTED,
    408: DEADLINE_EXCEEDED,
    409: ABORTED,
    411: INVALID_ARGUMENT,
    412: FAILED_PRECONDITION,
    413: RESOURCE_EXHAUSTED,
    414: INVALID_ARGUMENT,
    415: INVALID_ARGUMENT,
    416: OUT_OF_RANGE,
    429: RESOURCE_EXHAUSTED,
    499: CANCELLED,
    500: INTERNAL,
    501: UNIMPLEMENTED,
    503: UNAVAILABLE,
    504: DEADLINE_EXCEEDED,
}
CHALLENGE = 'Bearer realm="buildless"'
AUTH_HINT = "send the API key as Authorization: Bearer <key>, as X-API-Key: <key>, or by Basic auth with user apikey"


class BuildlessError(GatewayError):
    """An error of this API; `grpc_code` defaults to the code mapped from `status`."""

    def __init__(self, message: str, status: int = 400, *, grpc_code: int | None = None, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, status=status, code="buildless_error", field=field, headers=headers)
        self.grpc_code = grpc_code


def grpc_code(status: int) -> int:
    """The gRPC code for an HTTP status (UNKNOWN for statuses gRPC-gateway never produces)."""
    return GRPC_CODE_BY_STATUS.get(status, INVALID_ARGUMENT if 400 <= status < 500 else UNKNOWN)


def _message(error: GatewayError) -> tuple[str, dict[str, str]]:
    """The status message and extra headers of any error raised under this API's routes."""
    if isinstance(error, BuildlessError):
        return error.message, {}
    status = error.status
    if status == 401:
        if isinstance(error, MissingCredentials):
            return f"missing credentials: {AUTH_HINT}", {"WWW-Authenticate": CHALLENGE}
        return ("invalid credentials: the API key is not known",
                {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
    if status == 403:
        needed = error.detail if isinstance(error.detail, str) else "buildless:emit"
        return f"permission denied: the API key does not hold the grant {needed}", {}
    if status == 404:
        return "Not Found", {}
    if status == 405:
        return "Method Not Allowed", {}
    if status == 500:
        return "internal error", {}
    return error.message, {}


def render_error(error: GatewayError) -> Response:
    """The declared `render_error` of this API: a gRPC-gateway status body with the error's HTTP status."""
    message, extra = _message(error)
    code = getattr(error, "grpc_code", None)
    body = {"code": grpc_code(error.status) if code is None else code, "message": message, "details": []}
    return json_response(body, error.status, {**error.headers, **extra})
