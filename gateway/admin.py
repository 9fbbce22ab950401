"""The gateway's own routes: health (for load balancers and operators) and the plugin list.

They need no credentials and reveal no secrets: the storage URL is shown without user info or query.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, Response

from .errors import json_response
from .plugins import describe_plugins
from .state import get_state
from .storage import BackendUnavailable

blueprint = Blueprint("_gateway", __name__, url_prefix="/_gateway")


def redact_url(url: str) -> str:
    """A URL without credentials, query or fragment (safe to print and to serve)."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme}://{host}{parts.path}"


@blueprint.get("/health")
def health() -> Response:
    """200 with backend facts when the store answers, 503 when it does not."""
    state = get_state()
    storage = {"url": redact_url(state.config.storage["url"]), "status": "up"}
    try:
        storage.update(state.backend.health())
        status = 200
    except BackendUnavailable as exc:
        storage.update(status="down", reason=str(exc))
        status = 503
    body = {"status": "ok" if status == 200 else "unavailable", "storage": storage,
            "quotas": {"storage_url": redact_url(state.config.quotas["storage_url"])},
            "apis": sorted(state.apis)}
    return json_response(body, status)


@blueprint.get("/plugins")
def plugins() -> Response:
    """Loaded plugins with versions, hooks and routes (as ``event-gateway plugins``)."""
    state = get_state()
    routes = {name: api.routes for name, api in state.apis.items()}
    return json_response({"plugins": describe_plugins(state.pm, routes)})
