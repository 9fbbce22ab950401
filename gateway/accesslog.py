"""One JSON access-log line per request, written by the app (gunicorn's own access log stays off).

The line holds what an operator needs to follow traffic and nothing a client sent as a secret:
``{"ts", "api", "route", "method", "status", "duration_ms", "tenant", "credential"}`` -- the route is the URL
rule (``/_application/analytics/<collection>/event/<event_type>``), never the raw path or query string
(Buildless sends whole events as query parameters), and client addresses are never logged (Buildless
promises to keep only salted hashes of them). ``[server] access_log = false`` turns it off; lines go to
the ``event_gateway.access`` logger, by default to stderr.
"""

from __future__ import annotations

import json
import logging
import sys
import time

from flask import Flask, Response, g, request

LOGGER_NAME = "event_gateway.access"
log = logging.getLogger(LOGGER_NAME)


def _ensure_handler() -> None:
    """A bare-message stderr handler, once per process, unless the embedder configured the logger itself."""
    if log.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def init_app(app: Flask) -> None:
    """Log every answered request of `app`."""
    _ensure_handler()
    dumps = json.dumps
    info = log.info

    def write(response: Response) -> Response:
        rule = request.url_rule
        blueprint = request.blueprint
        credential = g.get("credential")
        started = g.get("started")  # set by the metrics hook, first before every request
        line = {
            "ts": round(time.time(), 3),
            "api": blueprint if blueprint and not blueprint.startswith("_") else None,
            "route": rule.rule if rule is not None else None,
            "method": request.method,
            "status": response.status_code,
            "duration_ms": round((time.perf_counter() - started) * 1000, 3) if started is not None else None,
            "tenant": credential.tenant if credential is not None else None,
            "credential": credential.id if credential is not None else None,
        }
        info(dumps(line, separators=(",", ":")))
        return response

    app.after_request(write)
