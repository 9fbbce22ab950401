"""CORS for browser trackers (the Elastic JS tracker posts straight from web pages).

Modelled on Elasticsearch's CorsHandler, because trackers are written against it:

* Only origins listed in ``cors.allow_origins`` are answered, plus the gateway's own origin (an ``Origin``
  naming the ``Host`` the request was sent to, ES's same-origin rule). With no origins configured nothing is
  added and ``OPTIONS`` falls through to normal handling, as ES with CORS disabled.
* A preflight (``OPTIONS`` with ``Origin`` and ``Access-Control-Request-Method``) is answered before
  authentication (browsers send no credentials with it): ``200`` with the allow headers, or ``403`` with an
  empty body when the origin is not allowed, so the browser never sends the real request.
* ``*`` allows any origin but never with ``Access-Control-Allow-Credentials: true``: the answer is the literal
  ``Access-Control-Allow-Origin: *``, which browsers refuse for credentialed (cookie) requests. Trackers
  authenticate with the ``Authorization`` header, which needs no credentials mode. Listed origins are echoed
  with ``Access-Control-Allow-Credentials: true`` and ``Vary: Origin`` (ES's ``http.cors.allow-credentials``).
* APIs declared with ``cors=False`` (`gateway.vendor.VendorApi`; AppDynamics, whose Events API refuses
  cross-origin requests) are never opened to browsers: their preflights get the ``403`` of a refused origin.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, request

from .state import get_state

ALLOW_HEADERS = ("X-Requested-With, X-Auth-Token, Content-Type, Content-Length, Authorization, "
                 "Access-Control-Allow-Headers, Accept, User-Agent")
ALLOW_METHODS = "OPTIONS, HEAD, GET, POST, PUT, DELETE"


def _allowed_headers(requested: str | None) -> str:
    """The usual headers plus whatever the preflight asks for (vendor headers such as FT-Authorization);
    the origin allow-list, not the header list, is what keeps other sites out."""
    if not requested:
        return ALLOW_HEADERS
    usual = {name.strip().lower() for name in ALLOW_HEADERS.split(",")}
    extra = [name.strip() for name in requested.split(",") if name.strip() and name.strip().lower() not in usual]
    return ", ".join([ALLOW_HEADERS, *extra]) if extra else ALLOW_HEADERS


def _same_origin(origin: str, host: str | None) -> bool:
    """ES's isSameOrigin: the origin without its scheme is the Host header."""
    bare = origin.split("://", 1)[1] if origin.startswith(("http://", "https://")) else origin
    return bool(host) and bare == host


class CorsPolicy:
    """Which origins may call, and the headers that tell a browser so."""

    def __init__(self, origins: frozenset[str], max_age: int) -> None:
        self.any_origin = "*" in origins
        self.origins = origins - {"*"}
        self.max_age = str(max_age)

    def allowed(self, origin: str | None) -> bool:
        """May a page on `origin` call? (No Origin: not a browser's cross-origin call.)"""
        if not origin:
            return False
        api = get_state().apis.get(request.blueprint or "")
        if api is not None and not api.declaration.cors:
            return False
        return self.any_origin or origin in self.origins or _same_origin(origin, request.headers.get("Host"))

    def origin_headers(self, origin: str) -> dict[str, str]:
        """Allow-Origin (and, for a listed origin, Allow-Credentials): never credentials with ``*``."""
        if self.any_origin and origin not in self.origins:
            return {"Access-Control-Allow-Origin": "*"}
        return {"Access-Control-Allow-Origin": origin, "Access-Control-Allow-Credentials": "true"}

    def preflight(self) -> Response | None:
        """The answer to a preflight, or None when the request is not one."""
        origin = request.headers.get("Origin")
        if request.method != "OPTIONS" or not origin or "Access-Control-Request-Method" not in request.headers:
            return None
        if not self.allowed(origin):
            return Response(status=403)  # ES's CorsHandler.forbidden: empty body; `_no_html` drops the type
        response = Response(status=200)
        response.headers.update(self.origin_headers(origin))
        response.headers.update({
            "Access-Control-Allow-Methods": ALLOW_METHODS,
            "Access-Control-Allow-Headers": _allowed_headers(request.headers.get("Access-Control-Request-Headers")),
            "Access-Control-Max-Age": self.max_age,
        })
        if response.headers["Access-Control-Allow-Origin"] != "*":
            response.headers["Vary"] = "Origin"
        return response

    def add_headers(self, response: Response) -> Response:
        """Let the page read the answer (errors included: the tracker reads ``error.reason``)."""
        origin = request.headers.get("Origin")
        if self.allowed(origin) and "Access-Control-Allow-Origin" not in response.headers:
            headers = self.origin_headers(origin or "")
            response.headers.update(headers)
            if headers["Access-Control-Allow-Origin"] != "*":
                response.headers.add("Vary", "Origin")
        return response


def init_app(app: Flask, settings: dict[str, Any]) -> None:
    """Install the preflight answer and the response headers when origins are configured."""
    origins = frozenset(settings["allow_origins"])
    if not origins:
        return
    policy = CorsPolicy(origins, settings["max_age"])
    app.before_request(policy.preflight)
    app.after_request(policy.add_headers)
