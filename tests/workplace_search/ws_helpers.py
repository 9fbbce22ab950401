"""Helpers of the Workplace Search tests: this plugin's own credentials (the suite's are shared), bodies, queries.

The two bearer tokens of the vendor's reference examples are configured as credentials of two tenants,
so the verbatim curl examples authenticate and tenant isolation can be checked on them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import base_config

from gateway.events import Event
from gateway.query import Query
from gateway.storage import Backend

PLUGIN = STREAM = "workplace_search"
ROUTE = "/api/ws/v1/analytics/event"
JSON_UTF8 = "application/json;charset=utf-8"

#: The access tokens printed in the reference's request examples.
DOC_TOKEN_A = "7ea05c8bd50ab5c75d2b71adbcb9ae71c4034d7a4f8d6c16a8940510a951cec7"
DOC_TOKEN_B = "64c51eee12c1f7a3be8ab0ecf9a2184106c1641e49736119414da0c0e85f3611"
NO_GRANT_TOKEN = "ws-no-grant-token-0001"
WILDCARD_TOKEN = "ws-wildcard-token-0001"

WS_CREDENTIALS = [
    {"id": "ws-acme", "secret": DOC_TOKEN_A, "tenant": "acme", "grants": ["workplace_search:write"]},
    {"id": "ws-globex", "secret": DOC_TOKEN_B, "tenant": "globex", "grants": ["workplace_search:write"]},
    {"id": "ws-no-grant", "secret": NO_GRANT_TOKEN, "tenant": "acme", "grants": ["elastic_analytics:*"]},
    {"id": "ws-wildcard", "secret": WILDCARD_TOKEN, "tenant": "initech", "grants": ["workplace_search:*"]},
]
BEARER_A = {"Authorization": f"Bearer {DOC_TOKEN_A}"}
BEARER_B = {"Authorization": f"Bearer {DOC_TOKEN_B}"}

CLICK: dict[str, Any] = {"type": "click", "query_id": "2992570ab570b581ac6c457bddf68835", "page": 1,
                         "content_source_id": "5f91bf7888f9297b02a3d80c", "document_id": "product-123",
                         "rank": 0, "event": "app"}
FEEDBACK: dict[str, Any] = {"type": "feedback", "query_id": "2992570ab570b581ac6c457bddf68835", "page": 1,
                            "content_source_id": "5f91bf7888f9297b02a3d80c", "document_id": "product-123",
                            "rank": 0, "score": 1}


def ws_config(tmp_path: Path, **sections: Any) -> dict[str, Any]:
    """`base_config` serving only this plugin, with this file's credentials."""
    sections.setdefault("plugins", {"enabled": [PLUGIN]})
    return base_config(tmp_path, credentials=WS_CREDENTIALS, **sections)


def stored(backend: Backend, tenant: str, **query: Any) -> list[Event]:
    """Every event of the tenant's Workplace Search log, oldest first."""
    return backend.query(Query(tenant=tenant, plugin=PLUGIN, **query)).events
