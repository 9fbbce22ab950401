"""Elasticsearch's root (``GET /``, ``HEAD /``): who answers, so ``es.info()`` works in the official clients.

The body is RestMainAction's: node name, cluster name and uuid, version, tagline. The version is the one
whose REST rules this plugin follows: Elasticsearch 9 (a request without a ``compatible-with`` version is
taken as 9, and 8 is accepted when asked for). The clients do not check it: the Python (8, 9) and Node (8, 9)
clients verify only the ``X-Elastic-Product: Elasticsearch`` header on the first 2xx, which `es_response` adds.
What ES knows about its build and this gateway does not say (type, hash, date) is ``unknown``, ES's own word
for it; the node name is the host name, as ES's default.
"""

from __future__ import annotations

import base64
import socket
import uuid
from typing import Any

from .errors import CURRENT_MAJOR

VERSION = {
    "number": f"{CURRENT_MAJOR}.0.0",  # the REST rules served: a missing compatible-with version means this major
    "build_flavor": "default",
    "build_type": "unknown",
    "build_hash": "unknown",
    "build_date": "unknown",
    "build_snapshot": False,
    "lucene_version": "10.1.0",  # what Elasticsearch 9.0.0 reports
    "minimum_wire_compatibility_version": "8.18.0",
    "minimum_index_compatibility_version": "8.0.0",
}
CLUSTER_NAME = "event-gateway"
TAGLINE = "You Know, for Search"


def _cluster_uuid(name: str) -> str:
    """A stable 22-character url-safe base64 id, as ES prints cluster uuids (same host, same id)."""
    raw = uuid.uuid5(uuid.NAMESPACE_DNS, f"{CLUSTER_NAME}.{name}").bytes
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def cluster_info() -> dict[str, Any]:
    """The body of ``GET /``."""
    name = socket.gethostname() or CLUSTER_NAME
    return {"name": name, "cluster_name": CLUSTER_NAME, "cluster_uuid": _cluster_uuid(name),
            "version": dict(VERSION), "tagline": TAGLINE}
