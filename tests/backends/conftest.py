"""The `backend` fixture: every contract test runs against each storage backend.

Memory and SQLite always run; PostgreSQL runs on the session's real server (`tests/pg_server.py`, skipped
without the server binaries); Elasticsearch runs only when ``ELASTICSEARCH_URL`` names a reachable node
(its module is imported only then), each test in its own index prefix that is dropped afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from backends.memory import MemoryBackend
from backends.postgresql import PostgresBackend
from backends.sqlite import SQLiteBackend
from gateway.storage import Backend, backend_from_url

# The contract suite lives in a package, not a test module: have pytest explain its failed asserts.
pytest.register_assert_rewrite("gateway.testing.contract")


def _elasticsearch() -> Backend:
    """An Elasticsearch backend on a fresh index prefix, or skip the test when none is configured."""
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip("ELASTICSEARCH_URL not set")
    from backends.elasticsearch import ElasticsearchBackend

    if url.startswith("https://"):
        url = "elasticsearch+https://" + url.removeprefix("https://")
    elif not url.startswith("elasticsearch"):
        url = "elasticsearch://" + url.split("://", 1)[-1]
    return backend_from_url(url, {"index_prefix": f"eg-test-{uuid.uuid4().hex[:12]}"}, [ElasticsearchBackend])


@pytest.fixture(params=["memory", "sqlite", "postgresql", "elasticsearch"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    """A fresh, empty backend of each kind."""
    if request.param == "memory":
        store: Backend = MemoryBackend("memory://")
    elif request.param == "sqlite":
        store = SQLiteBackend(f"sqlite:///{tmp_path}/events.db")
    elif request.param == "postgresql":
        store = PostgresBackend(request.getfixturevalue("postgres_url"))
    else:
        store = _elasticsearch()
    try:
        yield store
    finally:
        drop_all = getattr(store, "drop_all", None)
        if callable(drop_all):
            drop_all()
        store.close()
