"""Acknowledged means stored: SIGKILL a gunicorn worker while clients post events, then read the store.

`event-gateway serve` runs 2 workers on SQLite, then on a real PostgreSQL server (`tests/pg_server.py`).
Eight client threads (one `requests.Session` each, no retries) post Behavioral Analytics events, each
carrying a unique ``user.id`` marker. One worker is killed with SIGKILL mid-traffic; gunicorn replaces it
and posting continues. After a clean stop the store must hold every acknowledged (202) event exactly
once, nothing twice, and at least as many events as were acknowledged (requests cut off by the kill may
or may not have been stored).
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests
from support import api_key, base_config

from backends.postgresql import PostgresBackend
from backends.sqlite import SQLiteBackend
from gateway.storage import Backend

THREADS = 8
BEFORE_KILL_S = 1.0
AFTER_KILL_S = 1.5
COLLECTION = "durable"
HEADERS = {"Authorization": f"ApiKey {api_key('admin')}", "Content-Type": "application/json"}


@dataclass
class Outcome:
    """What one client thread saw."""

    acked: list[tuple[str, float]] = field(default_factory=list)  # (marker, monotonic time of the 202)
    connection_errors: list[str] = field(default_factory=list)
    other: list[tuple[str, int, str]] = field(default_factory=list)  # unexpected HTTP answers


def _post_until(stop: threading.Event, url: str, index: int, outcome: Outcome) -> None:
    with requests.Session() as session:
        n = 0
        while not stop.is_set():
            marker = f"t{index}-{n}"
            n += 1
            body = {"session": {"id": f"s{index}"}, "user": {"id": marker}, "page": {"url": f"https://x/{marker}"}}
            try:
                response = session.post(url, json=body, headers=HEADERS, timeout=10)
            except requests.RequestException:
                outcome.connection_errors.append(marker)
                continue
            if response.status_code == 202:
                outcome.acked.append((marker, time.monotonic()))
            else:
                outcome.other.append((marker, response.status_code, response.text[:200]))


def _wait_for_replacement(server: Any, killed: int, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = server.worker_pids()
        if killed not in pids and len(pids) == 2:
            return pids
        time.sleep(0.05)
    raise AssertionError(f"gunicorn did not replace worker {killed}: {server.worker_pids()}\n{server.log()}")


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "postgresql"])
def test_acknowledged_events_survive_a_worker_sigkill(serve: Any, tmp_path: Path, storage: str,
                                                      request: pytest.FixtureRequest) -> None:
    config = base_config(tmp_path)
    if storage == "postgresql":
        config["storage"] = {"url": request.getfixturevalue("postgres_url")}
    server = serve(config, workers=2)
    assert requests.put(f"{server.url}/_application/analytics/{COLLECTION}", headers=HEADERS,
                        timeout=10).status_code == 201
    url = f"{server.url}/_application/analytics/{COLLECTION}/event/page_view"

    stop = threading.Event()
    outcomes = [Outcome() for _ in range(THREADS)]
    threads = [threading.Thread(target=_post_until, args=(stop, url, i, outcomes[i]), daemon=True)
               for i in range(THREADS)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(BEFORE_KILL_S)
        workers = server.worker_pids()
        assert len(workers) == 2, workers
        victim = workers[0]
        os.kill(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        replaced = _wait_for_replacement(server, victim)
        time.sleep(AFTER_KILL_S)
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert not any(thread.is_alive() for thread in threads)
    assert victim not in replaced

    acked = [marker for outcome in outcomes for marker, _ in outcome.acked]
    acked_after_kill = [m for outcome in outcomes for m, at in outcome.acked if at > killed_at]
    failed = [marker for outcome in outcomes for marker in outcome.connection_errors]
    unexpected = [entry for outcome in outcomes for entry in outcome.other]
    assert not unexpected, unexpected[:5]
    assert len(acked) > 50, (len(acked), server.log())
    assert acked_after_kill, "the gateway stopped acknowledging after the kill"
    assert len(set(acked)) == len(acked)

    server.stop()
    assert server.process.returncode is not None
    store: Backend = SQLiteBackend(f"sqlite:///{tmp_path}/events.db") if storage == "sqlite" else \
        PostgresBackend(config["storage"]["url"])
    try:
        events = list(store.iter_events("acme", "elastic_analytics", streams=(COLLECTION,)))
    finally:
        store.close()
    counts = collections.Counter(event.user_id for event in events)
    attempted = set(acked) | set(failed)

    twice = {marker: n for marker, n in counts.items() if n > 1}
    assert not twice, f"stored more than once: {sorted(twice.items())[:10]}"
    missing = [marker for marker in acked if counts[marker] != 1]
    assert not missing, f"{len(missing)} acknowledged events are not stored: {missing[:10]}"
    assert len(events) >= len(acked)
    assert set(counts) <= attempted, sorted(set(counts) - attempted)[:10]
    for event in events:
        assert event.type == "page_view" and event.stream == COLLECTION
        assert event.data["user"]["id"] == event.user_id
        assert event.data["page"]["url"] == f"https://x/{event.user_id}"
    print(f"\nacknowledged={len(acked)} (after kill {len(acked_after_kill)}), connection errors={len(failed)}, "
          f"stored={len(events)} of which unacknowledged={len(events) - len(acked)}")
