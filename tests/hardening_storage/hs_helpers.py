"""Helpers of the storage-hardening tests: Fluid Topics requests against real servers, and bulk seeding."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from fluid_topics.ft_helpers import ACME_KEY, READER_KEY, doc

from backends.sqlite import SQLiteBackend
from gateway.events import Stream
from plugins.fluid_topics import service

INGEST = "/api/analytics/events"
RETRIEVE = "/analytics/api/v1/events"
COUNT = "/analytics/api/v1/traffic/event-counts"
ACME = {"Authorization": f"Bearer {ACME_KEY}"}
READER = {"Authorization": f"Bearer {READER_KEY}"}
FT_KEYS = ["timestamp", "status", "error", "message", "path", "field", "errors"]
#: Events in the seeded SQLite file (issue 10 measured 0.12 s per filter value over 100k events).
SEEDED = 100_000
EVENT = {"offline": False, "appName": "hardening", "appVersion": "1.0", "name": "khub.search"}


def day(offset: int) -> str:
    """The UTC date `offset` days from today (``YYYY-MM-DD``)."""
    return (datetime.now(UTC) + timedelta(days=offset)).strftime("%Y-%m-%d")


def assert_ft_error(resp: requests.Response, status: int, field: str | None, path: str) -> dict[str, Any]:
    """The plugin's error shape (Spring Boot's attributes, the field leading) with `status`."""
    assert resp.status_code == status, (resp.status_code, resp.text[:500])
    assert resp.headers["Content-Type"].startswith("application/json"), resp.headers
    body = resp.json()
    assert list(body) == FT_KEYS, body
    assert body["status"] == status and body["path"] == path
    assert body["field"] == field, body
    if field is not None:
        assert field in body["message"] and body["errors"][0]["field"] == field, body
    return body


def seed_sqlite(db: Path, count: int, *, tenant: str = "acme", days: int = 300, roles: int = 40,
                names: int = 3) -> None:
    """Store `count` Fluid Topics events in the SQLite file, spread over the last `days` days, each user
    having a few of `roles` roles, groups and realms; written with the backend itself, in big batches."""
    store = SQLiteBackend(f"sqlite:///{db}", {"synchronous": "normal"})
    try:
        store.ensure_stream(Stream(tenant=tenant, plugin=service.PLUGIN, name=service.STREAM))
        now = int(datetime.now(UTC).timestamp() * 1000)
        span = days * 86_400_000
        batch = []
        for i in range(count):
            at = now - span + (i * span) // count
            picked = [f"ROLE_{(i * 7 + k) % roles}" for k in range(3)]
            batch.append(service.to_event(tenant, doc(at, f"event.{i % names}", tenant=tenant, user_id=f"u{i % 500}",
                                                      realm=[f"realm{i % 5}"], groups=[f"group{i % 50}"],
                                                      roles=picked, event_id=str(uuid.uuid4()))))
            if len(batch) == 5000:
                store.append(batch)
                batch = []
        if batch:
            store.append(batch)
    finally:
        store.close()
