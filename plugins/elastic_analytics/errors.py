"""Elasticsearch's error bodies and headers, so the official clients raise the exceptions they would.

Body: ``{"error": {"root_cause": [...], "type", "reason", "caused_by"?}, "status"}``; routing errors use
ES's short form ``{"error": "<text>", "status"}``. Every response carries ``X-Elastic-Product:
Elasticsearch`` (the 8.x client refuses a 2xx without it) and, when the client asked for a compatible
media type, answers in it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from flask import Response, g, request

from gateway.errors import GatewayError, MissingCredentials, allowed_methods
from gateway.flaskapp import current_request
from gateway.jsonbody import InvalidJSON

from .filter_path import apply_filter_path

PRODUCT_HEADER = ("X-Elastic-Product", "Elasticsearch")
WWW_AUTHENTICATE = 'Basic realm="security", charset="UTF-8", Bearer realm="security", ApiKey'
#: view endpoint -> the ES transport action named in authorization errors
ES_ACTIONS = {
    "elastic_analytics.put_collection": "cluster:admin/xpack/application/analytics/put",
    "elastic_analytics.get_collections": "cluster:admin/xpack/application/analytics/get",
    "elastic_analytics.delete_collection": "cluster:admin/xpack/application/analytics/delete",
    "elastic_analytics.post_event": "cluster:admin/xpack/application/analytics/post_event",
    "elastic_analytics.root": "cluster:monitor/main",
}


class EsError(GatewayError):
    """An Elasticsearch exception: `es_type` (e.g. ``resource_not_found_exception``), reason, status.

    `cause` chains the inner exception as ES's ``caused_by``; the innermost one is the ``root_cause``.
    """

    def __init__(self, es_type: str, reason: str, status: int = 400, *, cause: EsError | None = None,
                 field: str | None = None, headers: dict[str, str] | None = None,
                 es_exception: bool = True) -> None:
        super().__init__(reason, status=status, code=es_type, field=field, headers=headers)
        self.es_type = es_type
        self.cause = cause
        self.es_exception = es_exception

    def to_body(self) -> dict[str, Any]:
        """The ES JSON error body.

        The root cause is the innermost Elasticsearch exception of the chain: a cause that is a plain Java
        exception (`es_exception` False, e.g. an IllegalArgumentException) is shown as ``caused_by`` only.
        """
        chain = [self]
        while chain[-1].cause is not None:
            chain.append(chain[-1].cause)
        root = self
        while root.cause is not None and root.cause.es_exception:
            root = root.cause
        error: dict[str, Any] = {"root_cause": [{"type": root.es_type, "reason": root.message}],
                                 "type": self.es_type, "reason": self.message}
        node = error
        for inner in chain[1:]:
            node["caused_by"] = {"type": inner.es_type, "reason": inner.message}
            node = node["caused_by"]
        return {"error": error, "status": self.status}


class ShortEsError(GatewayError):
    """ES's terse routing/content-type errors: ``{"error": "<text>", "status": N}`` (some omit ``status``)."""

    def __init__(self, message: str, *, status: int, with_status: bool = True, **kwargs: Any) -> None:
        super().__init__(message, status=status, **kwargs)
        self.with_status = with_status


COMPATIBLE_VERSIONS = frozenset({"7", "8", "9"})
#: The major version a request without a ``compatible-with`` version is taken as (see `cluster`).
CURRENT_MAJOR = "9"
_COMPATIBLE_WITH = re.compile(r"compatible-with\s*=\s*(\d+)")


def compatible_version(header: str) -> str | None:
    """The ``compatible-with`` major version of a vendor media type header, or None."""
    match = _COMPATIBLE_WITH.search(header)
    return match.group(1) if match else None


def content_type() -> str:
    """Answer in the compatible media type when the client asked for a supported one, else plain JSON."""
    return _content_type(current_request().environ.get("HTTP_ACCEPT", ""))


def _content_type(accept: str) -> str:
    if "vnd.elasticsearch+json" in accept:
        version = compatible_version(accept) or CURRENT_MAJOR
        if version in COMPATIBLE_VERSIONS:
            return f"application/vnd.elasticsearch+json;compatible-with={version}"
    return "application/json"


def encode(body: Any) -> bytes:
    """A body as ES's answers (and `json_response`) encode it: compact, ASCII-only JSON."""
    return json.dumps(body, separators=(",", ":")).encode()


def es_response(body: Any, status: int = 200, headers: dict[str, str] | None = None, *,
                encoded: bytes | None = None) -> Response:
    """A JSON response as ES sends it: ``filter_path`` applied, the product header, ``X-Opaque-Id`` echoed,
    in the media type the client accepts.

    `encoded` is `body` already encoded by `encode` (a constant answer, encoded once at import): used unless
    a ``filter_path`` has to be applied. The response is built with its headers in one go, which costs a
    third of setting them one by one on a `json_response`.
    """
    req = current_request()
    environ = req.environ
    if environ.get("QUERY_STRING"):
        body = apply_filter_path(body, req.args.get("filter_path"))
        encoded = None
    listed = [("Content-Type", _content_type(environ.get("HTTP_ACCEPT", "")))]
    if headers:
        listed.extend(headers.items())
    listed.append(PRODUCT_HEADER)
    opaque = environ.get("HTTP_X_OPAQUE_ID")
    if opaque:
        listed.append(("X-Opaque-Id", opaque))
    return Response(encode(body) if encoded is None else encoded, status=status, headers=listed)


def _translate(error: GatewayError) -> EsError | ShortEsError:
    """Map the core's neutral errors onto what Elasticsearch answers in the same situation."""
    if isinstance(error, EsError | ShortEsError):
        return error
    if isinstance(error, InvalidJSON):
        where = f"[{error.line}:{error.column}] " if error.line is not None else ""
        return EsError("x_content_parse_exception", f"{where}{error.message}")
    status = error.status
    if status == 401:
        if isinstance(error, MissingCredentials):
            reason = f"missing authentication credentials for REST request [{request.full_path.rstrip('?')}]"
        else:
            reason = ("unable to authenticate with provided credentials and anonymous access is not allowed "
                      "for this request")
        return EsError("security_exception", reason, 401, headers={"WWW-Authenticate": WWW_AUTHENTICATE})
    if status == 403:
        presented, cred = g.get("presented"), g.get("credential")
        who = "API key id" if presented is not None and presented.scheme == "apikey" else "user"
        action = ES_ACTIONS.get(request.endpoint or "", "indices:data/write")
        return EsError("security_exception", f"action [{action}] is unauthorized for {who} "
                                             f"[{cred.id if cred else '?'}]", 403)
    if status == 404:  # ES's RestController.handleBadRequest: 400 and a body without "status"
        return ShortEsError(f"no handler found for uri [{request.full_path.rstrip('?')}] and method "
                            f"[{request.method}]", status=400, with_status=False)
    if status == 405:
        allowed = ", ".join(allowed_methods(error))
        return ShortEsError(f"Incorrect HTTP method for uri [{request.full_path.rstrip('?')}] and method "
                            f"[{request.method}], allowed: [{allowed}]",
                            status=405, headers=error.headers)
    if status == 413:
        return EsError("content_too_long_exception", "request body is too large", 413)
    if status == 415:
        return ShortEsError(error.message, status=406)
    if status == 429:
        reason = ("Unable to add the event: too many requests." if request.endpoint == "elastic_analytics.post_event"
                  else "too many requests")
        return EsError("status_exception", f"{reason} ({error.message})", 429, headers=error.headers)
    if status == 503:
        return EsError("status_exception", error.message, 503)
    if status >= 500:
        return EsError("exception", error.message, status)
    return EsError("illegal_argument_exception", error.message, status)


def render_error(error: GatewayError) -> Response:
    """The declared `render_error` of this API: any gateway error as Elasticsearch would have said it."""
    es_error = _translate(error)
    headers = {**error.headers, **es_error.headers}
    if isinstance(es_error, ShortEsError):
        if "Allow" in headers:
            headers["Allow"] = ", ".join(m for m in headers["Allow"].split(", ") if m != "OPTIONS")
        body: dict[str, Any] = {"error": es_error.message}
        if es_error.with_status:
            body["status"] = es_error.status
        return es_response(body, es_error.status, headers)
    return es_response(es_error.to_body(), es_error.status, headers)
