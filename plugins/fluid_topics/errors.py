"""The plugin's one JSON error shape, used for every status under its routes.

Fluid Topics documents its return codes (400 "One or more required parameters is missing", 401 "The
authorization header was not provided or is invalid", 403, 404, 415, 429, 500, 503) but not an error
body. Fluid Topics is a Spring application, so the body follows Spring Boot's default error attributes,
plus the offending field and the list of every problem found::

    {"timestamp": "2024-05-01T10:00:00.000Z", "status": 400, "error": "Bad Request",
     "message": "startDate is required", "path": "/analytics/api/v1/events",
     "field": "startDate", "errors": [{"field": "startDate", "message": "startDate is required"}]}

Every key is always present: ``field`` is null and ``errors`` empty when no input field is at fault.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from http import HTTPStatus
from typing import Any

from flask import Response, request

from gateway.errors import GatewayError, MissingCredentials, allowed_methods, json_response

WWW_AUTHENTICATE = 'Bearer realm="Fluid Topics"'


class FtError(GatewayError):
    """An error of this API; `problems` lists every (field, message) found, the first one leading."""

    def __init__(self, message: str, status: int = 400, *, field: str | None = None,
                 problems: Sequence[tuple[str | None, str]] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message, status=status, code="fluid_topics_error", field=field, headers=headers)
        if problems is None:
            problems = [(field, message)] if field else []
        self.problems = list(problems)

    @classmethod
    def invalid(cls, problems: Sequence[tuple[str | None, str]]) -> FtError:
        """A 400 for validation problems (at least one), led by the first."""
        field, message = problems[0]
        return cls(message, 400, field=field, problems=problems)


def ft_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response of this API."""
    return json_response(body, status, headers)


def _timestamp() -> str:
    now = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def _allowed(error: GatewayError) -> str:
    return ", ".join(allowed_methods(error)) or "POST"


def _message(error: GatewayError) -> tuple[str, dict[str, str]]:
    """The message and extra headers of a gateway error under this plugin's routes."""
    if isinstance(error, FtError):
        return error.message, {}
    status = error.status
    if status == 401:
        reason = "missing" if isinstance(error, MissingCredentials) else "unknown"
        return (f"The authorization header was not provided or is invalid ({reason} credentials): send "
                f"Authorization: Bearer <API key>", {"WWW-Authenticate": WWW_AUTHENTICATE})
    if status == 403:
        needed = error.detail if isinstance(error.detail, str) else "fluid_topics"
        return f"The API key does not have the rights required by this web service (grant {needed})", {}
    if status == 404:
        return f"No web service at {request.method} {request.path}", {}
    if status == 405:
        allowed = _allowed(error)
        return f"Method {request.method} is not allowed on {request.path} (allowed: {allowed})", {"Allow": allowed}
    if status == 429:
        return f"Too many requests: {error.message}", {}
    if status == 503:
        return f"Service unavailable: {error.message}", {}
    if status >= 500:
        return "Internal server error", {}
    return error.message[:1].upper() + error.message[1:], {}


def render_error(error: GatewayError) -> Response:
    """The declared `render_error` of this API: the documented shape, with the error's status and headers."""
    message, extra = _message(error)
    problems = error.problems if isinstance(error, FtError) else ([(error.field, message)] if error.field else [])
    body = {
        "timestamp": _timestamp(),
        "status": error.status,
        "error": _phrase(error.status),
        "message": message,
        "path": request.path,
        "field": error.field,
        "errors": [{"field": field, "message": text} for field, text in problems],
    }
    return ft_response(body, error.status, {**error.headers, **extra})
