"""The gateway's own routes: health (for load balancers and operators) and the plugin list.

They need no credentials and reveal no secrets: store URLs are shown as scheme and host only (no user info,
no file-system path: a SQLite URL is its path), and paths are cut out of failure reasons. Storage is reported
down when it does not answer or when a write would fail (`Backend.check_writable`: a real write at most every
1.5 s per process).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from flask import Blueprint, Response

from .errors import json_response
from .plugins import describe_plugins
from .state import get_state
from .storage import BackendUnavailable

blueprint = Blueprint("_gateway", __name__, url_prefix="/_gateway")
_PATH = re.compile(r"(?<![\w:/.])/[^\s'\":,]+")


def _public_url(url: str) -> str:
    """Scheme and host: nothing of a password, a database path or a key prefix."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


@blueprint.get("/health")
def health() -> Response:
    """200 with backend facts when the store answers, 503 when it does not."""
    state = get_state()
    storage = {"url": _public_url(state.config.storage["url"]), "status": "up"}
    try:
        storage.update(state.backend.health())
        state.backend.check_writable()  # a cached real write: down whenever an append would fail
        status = 200
    except BackendUnavailable as exc:
        storage.update(status="down", reason=_PATH.sub("<path>", str(exc)))
        status = 503
    storage.pop("path", None)  # unauthenticated: no file-system layout
    quotas = {"url": _public_url(state.config.quotas["storage_url"]), "status": "up"}
    try:
        reachable = state.quotas is not None and state.quotas.reachable()
    except Exception as exc:
        reachable = False
        quotas["reason"] = type(exc).__name__
    if not reachable:
        quotas["status"], status = "down", 503  # every API call would answer 503: say so
    body = {"status": "ok" if status == 200 else "unavailable", "storage": storage, "quotas": quotas,
            "apis": sorted(state.apis)}
    return json_response(body, status)


@blueprint.get("/plugins")
def plugins() -> Response:
    """Loaded plugins with versions, hooks and routes (as ``event-gateway plugins``)."""
    state = get_state()
    return json_response({"plugins": describe_plugins(state.pm, state.apis)})
