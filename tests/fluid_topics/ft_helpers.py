"""Helpers of the Fluid Topics tests: this plugin's credentials, the reference's examples, stored events.

The tenant of the reference's response example (``documentation-docft-stable``) is a configured tenant,
so the example request can be answered with exactly the example response.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from support import base_config

from gateway.events import Event, Stream
from gateway.state import get_state
from plugins.fluid_topics import service

PLUGIN = "fluid_topics"
STREAM = "events"
INGEST = "/api/analytics/events"
RETRIEVE = "/analytics/api/v1/events"
COUNT = "/analytics/api/v1/traffic/event-counts"
DOC_TENANT = "documentation-docft-stable"

DOC_KEY = "ft-doc-tenant-key-0001"
ACME_KEY = "ft-acme-key-0001"
WRITER_KEY = "ft-acme-writer-0001"
READER_KEY = "ft-acme-reader-0001"
GLOBEX_KEY = "ft-globex-key-0001"
NO_GRANT_KEY = "ft-no-grant-key-0001"

FT_CREDENTIALS = [
    {"id": "ft-doc", "secret": DOC_KEY, "tenant": DOC_TENANT, "grants": ["fluid_topics:read", "fluid_topics:write"]},
    {"id": "ft-acme", "secret": ACME_KEY, "tenant": "acme", "grants": ["fluid_topics:*"]},
    {"id": "ft-writer", "secret": WRITER_KEY, "tenant": "acme", "grants": ["fluid_topics:write"]},
    {"id": "ft-reader", "secret": READER_KEY, "tenant": "acme", "grants": ["fluid_topics:read"]},
    {"id": "ft-globex", "secret": GLOBEX_KEY, "tenant": "globex",
     "grants": ["fluid_topics:read", "fluid_topics:write"]},
    {"id": "ft-none", "secret": NO_GRANT_KEY, "tenant": "acme", "grants": ["elastic_analytics:*"]},
]


def bearer(key: str) -> dict[str, str]:
    """The ``Authorization: Bearer`` header of an API key."""
    return {"Authorization": f"Bearer {key}"}


DOC = bearer(DOC_KEY)
ACME = bearer(ACME_KEY)
GLOBEX = bearer(GLOBEX_KEY)

#: The reference's "Retrieve events" request example, verbatim.
DOC_REQUEST_TEXT = """{
"startDate": "2024-01-01",
"endDate": "2024-05-01",
"filters": {
"name": [
"khub.search"
],
"user": {
"realm": [
"internal",
"Keycloak"
],
"group": [
"ft:administrator",
"TechWriter"
],
"role": [
"FEEDBACK_USER"
]
}
},
"paging": {
"page": 1,
"perPage": 1
},
"sortOrder": "latestFirst"
}"""

#: The reference's "Retrieve events" response example, verbatim.
DOC_RESPONSE_TEXT = """{
"startDate": "2024-01-01T00:00:00",
"endDate": "2024-05-01T00:00:00",
"paging": {
"page": 1,
"perPage": 1,
"totalCount": 4329,
"lastPage": false
},
"results": [
{
"appName": "ft/turnkey-portal",
"appVersion": "4.3.32",
"contentLocale": "en-US",
"datetime": 1714487636947,
"id": "f0c7a781-8956-492c-8961-60fcefca2328",
"name": "khub.search",
"offline": false,
"parameters": {
"searchQuery": {
"terms": "Keyword or semantic search",
"facets": [
{
"key": "Version_FT",
"values": [
"Latest"
]
}
],
"searchType": "EVERYWHERE"
},
"searchResponse": {
"autocorrect": false,
"nbResults": 1261
}
},
"sessionId": "dc439e78-9f84-4a37-a5ae-95e040b550c1",
"tenantId": "documentation-docft-stable",
"uiLocale": "en-US",
"user": {
"realm": [
"internal",
"Keycloak"
],
"groups": [
"ft:administrator",
"antidot",
"nda_basic",
"ft:authenticated",
"nda_advanced"
],
"id": "a95f015f-bddc-4f6d-8719-171e3510b304",
"roles": [
"PERSONAL_BOOK_SHARE_USER",
"PDF_EXPORT_USER",
"PERSONAL_BOOK_USER",
"OFFLINE_USER",
"FEEDBACK_USER",
"ANALYTICS_USER",
"RATING_USER",
"GENERATIVE_AI_USER",
"ADMIN",
"PRINT_USER",
"COLLECTION_USER",
"HTML_EXPORT_USER",
"SAVED_SEARCH_USER"
]
},
"userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
"userIp": "10.60.1.38"
}
]
}"""  # noqa: E501 - verbatim

#: The reference's "Trigger interface analytics events" examples, verbatim: one object, and an array.
DOC_INGEST_SEARCH = json.loads("""{ "offline": false, "appName": "ft-integration", "appVersion": "1.0",
  "name": "khub.search",
  "searchQuery": { "terms": "Fluid Topics", "searchType": "EVERYWHERE", "lastUpdate": "LAST_WEEK",
                   "facets": [ { "key": "Version", "values": ["latest"] } ] },
  "searchResponse": { "autocorrect": false, "nbResults": 10 } }""")
DOC_INGEST_ARRAY = json.loads("""[
{
"offline": false,
"appName": "ft-integration",
"appVersion": "1.0",
"name": "custom_event.trigger",
"eventName": "MyCustomEventName",
"componentId": "button-contact1",
"page": {
"id": "ft/home",
"type": "homePage",
"url": "/",
"name": "home",
"language": "en-US"
}
}
]""")


def ft_config(tmp_path: Path, *, storage: str = "memory", retention_days: int | None = 3650,
              **sections: Any) -> dict[str, Any]:
    """`base_config` serving only this plugin with `FT_CREDENTIALS`, on memory or SQLite storage.

    The default retention is ten years so that the reference's 2024 examples are inside it.
    """
    plugins: dict[str, Any] = {"enabled": [PLUGIN]}
    if retention_days is not None:
        plugins[PLUGIN] = {"retention_days": retention_days}
    sections.setdefault("plugins", plugins)
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path}/ft-events.db"
    sections.setdefault("storage", {"url": url})
    return base_config(tmp_path, credentials=FT_CREDENTIALS, **sections)


def ms(text: str) -> int:
    """Epoch ms of an ISO date-time taken as UTC (``2024-01-01T10:00:00.250``)."""
    moment = datetime.fromisoformat(text)
    return int(moment.replace(tzinfo=UTC).timestamp() * 1000)


def doc(at: int, name: str = "khub.search", *, tenant: str = "acme", user_id: str | None = "u-1",
        realm: Iterable[str] = ("internal",), groups: Iterable[str] = ("ft:authenticated",),
        roles: Iterable[str] = ("PRINT_USER",), parameters: dict[str, Any] | None = None,
        event_id: str | None = None, session: str | None = "s-1") -> dict[str, Any]:
    """A stored event document, built by the plugin's own `service.document`."""
    fields = {"offline": False, "appName": "ft/turnkey-portal", "appVersion": "4.3.32", "name": name,
              "contentLocale": "en-US", "uiLocale": "en-US", "sessionId": session,
              "user": {"id": user_id, "realm": list(realm), "groups": list(groups), "roles": list(roles)}}
    return service.document(event_id=event_id or str(uuid.uuid4()), at=at, tenant=tenant, fields=fields,
                            parameters=parameters or {}, agent="pytest", ip="127.0.0.1")


def seed(app: Any, docs: Iterable[dict[str, Any]]) -> list[Event]:
    """Store documents directly in the app's backend (one atomic append), creating streams as needed."""
    store = get_state(app).backend
    events = [service.to_event(d["tenantId"], d) for d in docs]
    for tenant in {e.tenant for e in events}:
        store.ensure_stream(Stream(tenant=tenant, plugin=PLUGIN, name=STREAM))
    if events:
        store.append(events)
    return events


def assert_error(resp: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The plugin's documented error shape, with `status` and (when given) `field` leading."""
    assert resp.status_code == status, (resp.status_code, resp.get_data(as_text=True))
    assert resp.mimetype == "application/json", resp.headers
    body = resp.get_json()
    assert list(body) == ["timestamp", "status", "error", "message", "path", "field", "errors"], body
    assert body["status"] == status
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert body["path"] == resp.request.path
    assert isinstance(body["errors"], list)
    if field is not None:
        assert body["field"] == field, body
        assert field in body["message"], body
        assert body["errors"][0]["field"] == field
        assert all(e["field"] in e["message"] for e in body["errors"]), body
    return body
