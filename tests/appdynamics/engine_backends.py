"""Backends the ADQL engine is tested on, and storing oracle-form events as the HTTP layer stores them.

Why: the engine tests and the property tests compare `plugins.appdynamics.engine.run_query` on every backend
with the reference evaluator (`adql_oracle`). Adding a backend is one entry in :data:`BACKENDS` (PostgreSQL
runs on the session's real server, `tests/pg_server.py`; Elasticsearch joins when ``ELASTICSEARCH_URL`` is set).
"""

from __future__ import annotations

import math
import os
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from backends.memory import MemoryBackend
from backends.sqlite import SQLiteBackend
from gateway.events import Event, FieldSpec, Stream
from gateway.storage import Backend, backend_from_url

TENANT = "acct"


def _postgresql(request: pytest.FixtureRequest, _tmp: Path) -> Backend:
    from backends.postgresql import PostgresBackend

    return PostgresBackend(request.getfixturevalue("postgres_url"))


def _elasticsearch(_request: pytest.FixtureRequest, _tmp: Path) -> Backend:
    url = os.environ.get("ELASTICSEARCH_URL")
    if not url:
        pytest.skip("ELASTICSEARCH_URL not set")
    from backends.elasticsearch import ElasticsearchBackend

    if url.startswith("https://"):
        url = "elasticsearch+https://" + url.removeprefix("https://")
    elif not url.startswith("elasticsearch"):
        url = "elasticsearch://" + url.split("://", 1)[-1]
    return backend_from_url(url, {"index_prefix": f"eg-appd-{uuid.uuid4().hex[:12]}"}, [ElasticsearchBackend])


#: name -> factory(the test's request, a fresh temporary directory) of an empty backend (real files for SQLite).
BACKENDS: dict[str, Callable[[pytest.FixtureRequest, Path], Backend]] = {
    "memory": lambda request, tmp: MemoryBackend("memory://"),
    "sqlite": lambda request, tmp: SQLiteBackend(f"sqlite:///{tmp}/events.db"),
    "postgresql": _postgresql,
    "elasticsearch": _elasticsearch,
}


def close(store: Backend) -> None:
    drop_all = getattr(store, "drop_all", None)
    if callable(drop_all):
        drop_all()
    store.close()


def nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """``{"a.b": 1}`` -> ``{"a": {"b": 1}}`` (the stored form of dotted schema names)."""
    out: dict[str, Any] = {}
    for name, value in flat.items():
        node = out
        *parents, last = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return out


def store(backend: Backend, schema: Mapping[str, str], events: Sequence[Mapping[str, Any]],
          name: str = "t") -> Stream:
    """Create the schema's stream (replacing one of that name) and append oracle-form events (flat, dates as
    epoch ms) in one batch."""
    backend.delete_stream(TENANT, "appdynamics", name)
    stream = backend.create_stream(Stream(tenant=TENANT, plugin="appdynamics", name=name,
                                          schema=tuple(FieldSpec(n, k) for n, k in schema.items())))
    batch = []
    for i, event in enumerate(events):
        user = {k: v for k, v in event.items() if k not in ("eventTimestamp", "pickupTimestamp") and v is not None}
        batch.append(Event(tenant=TENANT, plugin="appdynamics", stream=name, type=name, data=nest(user),
                           timestamp=event["eventTimestamp"], received_at=event["pickupTimestamp"], id=f"e{i}"))
    if batch:
        backend.append(batch)
    return stream


def same(a: Any, b: Any) -> bool:
    """Equal values, floats up to summation-order rounding."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, int | float) and isinstance(b, int | float) and math.isclose(a, b, rel_tol=1e-9,
                                                                                          abs_tol=1e-9)
    return a == b and type(a) is type(b)
