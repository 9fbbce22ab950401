"""CORS for browser trackers (the Elastic JS tracker posts straight from web pages).

Only origins listed in ``cors.allow_origins`` are answered; ``*`` allows any; APIs declared with
``cors=False`` (`gateway.vendor.VendorApi`) are never opened to browsers. A preflight is answered
before authentication (browsers send no credentials with it). With no origins configured nothing is
added and preflights fall through to normal handling.
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


def init_app(app: Flask, settings: dict[str, Any]) -> None:
    """Install the preflight answer and the response headers when origins are configured."""
    origins = frozenset(settings["allow_origins"])
    if not origins:
        return
    any_origin = "*" in origins
    max_age = str(settings["max_age"])

    def allowed(origin: str | None) -> bool:
        if not origin or not (any_origin or origin in origins):
            return False
        api = get_state().apis.get(request.blueprint or "")
        return api is None or api.declaration.cors

    @app.before_request
    def preflight() -> Response | None:
        if request.method != "OPTIONS" or "Access-Control-Request-Method" not in request.headers:
            return None
        response = Response(status=200)  # empty; `_no_html` in gateway.app drops the text/html type
        origin = request.headers.get("Origin")
        if allowed(origin):
            response.headers.update({
                "Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Methods": ALLOW_METHODS,
                "Access-Control-Allow-Headers": _allowed_headers(request.headers.get("Access-Control-Request-Headers")),
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Max-Age": max_age,
                "Vary": "Origin",
            })
        return response

    @app.after_request
    def add_headers(response: Response) -> Response:
        origin = request.headers.get("Origin")
        if allowed(origin) and "Access-Control-Allow-Origin" not in response.headers:
            response.headers["Access-Control-Allow-Origin"] = origin
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers.add("Vary", "Origin")
        return response
