"""Issue 10, item 3: every query's run time is bounded (``storage.query_timeout``), whatever the backend.

Before: a retrieve with 1,000 role values pinned a thread for minutes and kept running after the client
had gone; no query had a time limit. Now `Backend.query` runs under a deadline (`gateway.query.deadline`):
SQLite statements are interrupted by a progress handler, the core evaluator and the memory backend check
it as they go, and the request answers 503 in its API's format.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from hardening_storage.hs_helpers import ACME, RETRIEVE, assert_ft_error, day

from backends.memory import MemoryBackend
from backends.sqlite import SQLiteBackend
from gateway.events import Event, Stream
from gateway.query import Aggregation, Computed, Filter, Query
from gateway.query.deadline import QueryTimeout

ROLES = [f"UNKNOWN_{i}" for i in range(900)]  # under the 991 that made the old SQL fail at once


def _slow_body() -> dict[str, Any]:
    """A retrieve every stored event must be decoded for (no value matches, no substring pre-test)."""
    return {"startDate": day(-364), "filters": {"user": {"role": ROLES, "group": ROLES}},
            "paging": {"page": 1, "perPage": 10}}


def test_a_query_past_the_timeout_is_a_503_in_the_vendor_format(ft_server: Any, seeded_db: Path) -> None:
    server = ft_server(seeded_db, workers=1, storage={"query_timeout": 0.05})
    started = time.monotonic()
    resp = requests.post(server.url + RETRIEVE, json=_slow_body(), headers=ACME, timeout=60)
    elapsed = time.monotonic() - started
    error = assert_ft_error(resp, 503, None, RETRIEVE)
    assert "storage.query_timeout" in error["message"] and "0.05 s" in error["message"], error
    assert elapsed < 3, elapsed
    # The interrupted connection (one worker) serves the next, quick query normally.
    quick = {"startDate": day(-364), "filters": {"name": ["event.1"]}, "paging": {"page": 1, "perPage": 1}}
    again = requests.post(server.url + RETRIEVE, json=quick, headers=ACME, timeout=60)
    assert again.status_code == 200, again.text[:300]
    assert again.json()["paging"]["totalCount"] > 0


def test_a_client_that_goes_away_leaves_no_query_running(ft_server: Any, seeded_db: Path) -> None:
    """One worker with one thread: the client gives up after 0.1 s; the server's only thread must be free
    again within the timeout (not minutes later), so health answers promptly."""
    server = ft_server(seeded_db, workers=1, threads=1, storage={"query_timeout": 0.5})
    with pytest.raises(requests.Timeout):
        requests.post(server.url + RETRIEVE, json=_slow_body(), headers=ACME, timeout=0.1)
    started = time.monotonic()
    health = requests.get(server.url + "/_gateway/health", timeout=10)
    assert health.status_code == 200
    assert time.monotonic() - started < 0.5 + 2.5
    assert "Traceback" not in server.log()


def _events(count: int) -> list[Event]:
    return [Event(tenant="t", plugin="p", stream="s", type=f"type{i % 7}", timestamp=1_000 + i, received_at=1_000 + i,
                  id=f"e{i}", data={"roles": [f"R{i % 50}"], "text": f"value number {i}", "n": i})
            for i in range(count)]


@pytest.fixture(params=["memory", "sqlite"])
def big_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    backend = MemoryBackend() if request.param == "memory" else SQLiteBackend(f"sqlite:///{tmp_path}/b.db")
    backend.create_stream(Stream(tenant="t", plugin="p", name="s"))
    backend.append(_events(60_000))
    yield backend
    backend.close()


SLOW_QUERIES = {
    # native on both (SQLite: one statement, interrupted by the progress handler)
    "native filter": Query(tenant="t", plugin="p", filters=(Filter("data.roles", "in", ROLES),), limit=10),
    # the core evaluator over the scan (regex and a computed field are evaluated in Python)
    "regex": Query(tenant="t", plugin="p", filters=(Filter("data.text", "regex", r".*9 9.*"),), limit=10),
    "computed": Query(tenant="t", plugin="p", limit=0, count_total=False, aggregations=(
        Aggregation("x", "terms", field=Computed("n mod 7", lambda e: e.data["n"] % 7)),)),
    "sorted page": Query(tenant="t", plugin="p", filters=(Filter("data.n", "gte", 0),),
                         sort=(), limit=10, aggregations=(Aggregation("s", "stdev", field="data.n"),)),
}


@pytest.mark.parametrize("name", sorted(SLOW_QUERIES))
def test_backends_cancel_a_query_at_its_deadline(big_store: Any, name: str) -> None:
    """A query over 60k events with a 5 ms limit raises `QueryTimeout` promptly; without the limit the
    same query answers (so the deadline, not the query, caused the error), and the store still works."""
    query = SLOW_QUERIES[name]
    big_store.query_timeout = None
    started = time.monotonic()
    big_store.query(query)
    unlimited = time.monotonic() - started
    assert unlimited > 0.02, f"the query is too quick to test the deadline ({unlimited:.3f} s)"
    big_store.query_timeout = 0.005
    started = time.monotonic()
    with pytest.raises(QueryTimeout) as caught:
        big_store.query(query)
    assert time.monotonic() - started < 0.005 + min(0.5, unlimited / 2) + 0.2
    assert caught.value.status == 503
    big_store.query_timeout = 10
    assert big_store.query(Query(tenant="t", plugin="p", limit=0)).total == 60_000


def test_the_deadline_is_per_thread(big_store: Any) -> None:
    """A query timing out in one thread does not affect another thread's queries."""
    big_store.query_timeout = 0.005
    outcome: dict[str, Any] = {}

    def slow() -> None:
        try:
            big_store.query(SLOW_QUERIES["native filter"])
        except QueryTimeout as exc:
            outcome["slow"] = exc

    thread = threading.Thread(target=slow)
    thread.start()
    thread.join(30)
    assert isinstance(outcome.get("slow"), QueryTimeout)
    big_store.query_timeout = 30
    assert big_store.query(SLOW_QUERIES["native filter"]).total == 0
