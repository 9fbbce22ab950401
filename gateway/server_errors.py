"""The server's own answers to requests it refuses before the app sees them: JSON, and logged without addresses.

gunicorn answers unparseable requests with an HTML page and logs ``Invalid request from ip=<address>``. The
gateway promises JSON for every response and never to log a raw client address (Buildless documents that),
so `gateway.buffered_worker` answers those here, in the gateway's own error format
(``{"error": {"code", "message", "status"}}``, as `gateway.errors.render_gateway_error`), with
``Connection: close``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from gunicorn.http import errors as gerr

_REASONS = {
    400: ("Bad Request", "bad_request", "the request could not be parsed as HTTP/1.1"),
    403: ("Forbidden", "forbidden", "request forbidden"),
    408: ("Request Timeout", "request_timeout", "the request was not received whole in time"),
    414: ("URI Too Long", "uri_too_long", "the request line is longer than 8190 bytes"),
    417: ("Expectation Failed", "expectation_failed", "unsupported Expect header"),
    431: ("Request Header Fields Too Large", "request_header_fields_too_large",
          "a header field, or the header block, is larger than the server accepts"),
    500: ("Internal Server Error", "internal_error", "internal error"),
    501: ("Not Implemented", "not_implemented", "unsupported transfer coding"),
}


def rejection(status: int, message: str | None = None) -> bytes:
    """A complete HTTP/1.1 response: the gateway's JSON error body and ``Connection: close``."""
    reason, code, default = _REASONS[status]
    body = json.dumps({"error": {"code": code, "message": message or default, "status": status}},
                      separators=(",", ":")).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode("latin-1") + body


def error_response(exc: BaseException) -> tuple[int, bytes]:
    """Status and response for an exception from gunicorn's parser (500 for anything else)."""
    if isinstance(exc, gerr.InvalidResponseHeader | gerr.InvalidResponseHeaderName):
        return 500, rejection(500)  # the app's fault, not the client's
    if isinstance(exc, gerr.LimitRequestLine):
        return 414, rejection(414)
    if isinstance(exc, gerr.LimitRequestHeaders):
        return 431, rejection(431)
    if isinstance(exc, gerr.UnsupportedTransferCoding):
        return 501, rejection(501)
    if isinstance(exc, gerr.ExpectationFailed):
        return 417, rejection(417)
    if isinstance(exc, gerr.ForbiddenProxyRequest):
        return 403, rejection(403)
    if isinstance(exc, gerr.ParseException) or type(exc).__module__.startswith("gunicorn.http"):
        return 400, rejection(400, _describe(exc))
    return 500, rejection(500)


def _describe(exc: BaseException) -> str:
    """A short, printable reason naming what was wrong (no request bytes beyond 100 characters)."""
    kind = {gerr.InvalidHeader: "invalid header", gerr.InvalidHeaderName: "invalid header name",
            gerr.InvalidRequestLine: "invalid request line", gerr.InvalidRequestMethod: "invalid method",
            gerr.InvalidHTTPVersion: "invalid HTTP version"}.get(type(exc), "malformed request")
    detail = str(exc).encode("ascii", "backslashreplace").decode()[:100]
    return f"{kind}: {detail}" if detail else kind


def log_rejection(log: Any, status: int, detail: str) -> None:
    """One warning per refused request, naming the status and the reason, never the client address."""
    text = detail.encode("ascii", "backslashreplace").decode()[:200]
    (log if log is not None else logging.getLogger("gunicorn.error")).warning("Refused request (%d): %s", status, text)
