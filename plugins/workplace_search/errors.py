"""Enterprise Search's error bodies: ``{"errors": ["<message>", ...]}`` for every status.

Enterprise Search (a Rails app behind Jetty) answers API errors as a JSON object holding a list of
human-readable messages, and its JSON responses are ``application/json;charset=utf-8`` (the Ruby
client's VCR cassette of this very endpoint shows that header on the ``200 {}``). The official Python
client raises its exception by status (400 ``BadRequestError``, 401 ``UnauthorizedError``, 403
``ForbiddenError`` ...) and puts ``str(body)`` in the message, so every message names what went wrong.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Response, request

from gateway.errors import GatewayError, MissingCredentials, allowed_methods, json_response

#: What Enterprise Search sends with every JSON response.
CONTENT_TYPE = "application/json;charset=utf-8"
REALM = 'Bearer realm="Workplace Search"'


class WsError(GatewayError):
    """An error carrying Enterprise Search's list of messages (validation errors list every problem)."""

    def __init__(self, messages: str | Sequence[str], status: int = 400, *, field: str | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.messages = [messages] if isinstance(messages, str) else list(messages)
        super().__init__("; ".join(self.messages), status=status, code="workplace_search_error", field=field,
                         headers=headers)


def ws_response(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> Response:
    """A JSON response with Enterprise Search's exact Content-Type."""
    response = json_response(body, status, headers)
    response.headers["Content-Type"] = CONTENT_TYPE
    return response


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _where() -> str:
    return f'[{request.method}] "{request.path}"'


def _messages(error: GatewayError) -> tuple[list[str], dict[str, str]]:
    """The ``errors`` list and extra headers for any gateway error under this plugin's routes."""
    if isinstance(error, WsError):
        return error.messages, {}
    status = error.status
    if status == 401:
        if isinstance(error, MissingCredentials):
            return (["Missing access token: send the header Authorization: Bearer <access token>"],
                    {"WWW-Authenticate": REALM})
        return (["Invalid access token: the Bearer token is unknown"],
                {"WWW-Authenticate": f'{REALM}, error="invalid_token", '
                                     'error_description="The access token is invalid"'})
    if status == 403:
        needed = error.detail if isinstance(error.detail, str) else "workplace_search:write"
        return [f"Forbidden: the access token does not hold the grant {needed}"], {}
    if status == 404:
        return [f"No route matches {_where()}"], {}
    if status == 405:
        allowed = ", ".join(allowed_methods(error)) or "POST"
        return [f"Method not allowed: {_where()} only accepts {allowed}"], {}
    if status == 413:
        return [_sentence(error.message)], {}
    if status == 415:
        return [_sentence(error.message)], {}
    if status == 429:
        return [f"Too many requests: {error.message}"], {}
    if status == 503:
        return [f"Service unavailable: {error.message}"], {}
    if status >= 500:
        return ["Internal server error"], {}
    return [_sentence(error.message)], {}


def render_error(error: GatewayError) -> Response:
    """The declared `render_error` of this API: ``{"errors": [...]}`` with the error's status and headers."""
    messages, extra = _messages(error)
    return ws_response({"errors": messages}, error.status, {**error.headers, **extra})
