"""Shared data and helpers of the backend contract: the test events, query shorthands and the `sample` fixture."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from gateway.events import Event, Stream
from gateway.query import Aggregation, Query
from gateway.storage import Backend

T, P = "acme", "analytics"


T, P = "acme", "analytics"


def ev(id: str, stream: str = "web", ts: int = 0, type: str = "click", data: dict[str, Any] | None = None,
       user: str | None = None, session: str | None = None, tenant: str = T, plugin: str = P) -> Event:
    """A test event with explicit id and time."""
    return Event(tenant=tenant, plugin=plugin, stream=stream, type=type, data=data or {}, timestamp=ts,
                 received_at=ts + 5, id=id, user_id=user, session_id=session)


def q(**kwargs: Any) -> Query:
    """A query of the test tenant and plugin."""
    return Query(tenant=T, plugin=P, **kwargs)


def ids(backend: Backend, limit: int = 1000, **kwargs: Any) -> list[str]:
    """Ids of a query's page, in order."""
    return [e.id for e in backend.query(q(limit=limit, **kwargs)).events]


def ms(*args: int) -> int:
    """Epoch milliseconds of a UTC date-time."""
    return int(datetime(*args, tzinfo=UTC).timestamp() * 1000)


def agg(backend: Backend, *aggregations: Aggregation, **kwargs: Any) -> dict[str, Any]:
    """Aggregation results of an aggregation-only query."""
    return backend.query(q(limit=0, aggregations=aggregations, **kwargs)).aggregations


def buckets(pairs: list[tuple[int, int]]) -> list[dict[str, int]]:
    return [{"key": key, "count": count} for key, count in pairs]


def cursor_walk(backend: Backend, first: Query) -> list[str]:
    """Every id of a query, following next_cursor page by page."""
    seen: list[str] = []
    query, pages = first, 0
    while True:
        result = backend.query(query)
        assert len(result.events) <= query.limit
        seen.extend(e.id for e in result.events)
        pages += 1
        assert pages < 10_000
        if result.next_cursor is None:
            return seen
        assert len(result.events) == query.limit
        query = Query(**{**{f: getattr(query, f) for f in query.__dataclass_fields__}, "cursor": result.next_cursor,
                         "offset": 0})


# -- the main data set -------------------------------------------------------------------------------
# Six events over two streams, chosen so each filter/sort/aggregation case below can be checked by hand.
SAMPLE = [
    ev("e1", "web", 1000, "click", {"name": "alpha", "score": 3, "tags": ["a", "b"], "nested": {"k": "x", "v": 1},
                                     "flag": True}, user="u1", session="s1"),
    ev("e2", "web", 2000, "view", {"name": "beta", "score": 1, "tags": ["b"], "nested": {"k": "y", "v": 2}},
       user="u2", session="s1"),
    ev("e3", "web", 3000, "click", {"name": "gamma", "tags": [], "nested": {"k": "x"}}),
    ev("e4", "app", 4000, "view", {"name": "alphabet", "score": [2, 9], "tags": "a"}, user="u1", session="s2"),
    ev("e5", "app", 5000, "buy", {"name": None, "score": 5, "tags": ["c", "d"]}, user="u3", session="s3"),
    ev("e6", "app", 6000, "click", {"name": "Alpha", "score": 1, "nested": {"v": 3}}, user="u2", session="s2"),
]


class ContractBase:
    """The fixtures every part of the contract shares; a subclass provides `backend`."""

    @pytest.fixture
    def sample(self, backend: Backend) -> Backend:
        """The backend holding SAMPLE (streams "web" and "app")."""
        backend.create_stream(Stream(T, P, "web"))
        backend.create_stream(Stream(T, P, "app"))
        assert backend.append(SAMPLE) == 6
        return backend
