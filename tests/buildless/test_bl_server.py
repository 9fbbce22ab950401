"""Against a real multi-worker ``event-gateway serve`` with SQLite: racing duplicate emits store exactly one event
per id, and the client's raw address appears nowhere — not in the stored documents, the database files, the export,
nor the server's log."""

from __future__ import annotations

import base64
import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from buildless.bl_helpers import (
    BEARER_ACME,
    CONTEXT_TYPE,
    EMIT,
    KEY_ACME,
    OCCURRED,
    PLUGIN,
    STREAM,
    b64,
    bl_config,
    expected_source_ip,
    minimal,
)
from support import CLI, RunningServer

from backends.sqlite import SQLiteBackend
from gateway.query import Query

pytestmark = pytest.mark.slow

SCHEMES = [
    BEARER_ACME,
    {"X-API-Key": KEY_ACME},
    {"Authorization": "Basic " + base64.b64encode(f"apikey:{KEY_ACME}".encode()).decode()},
]


def _events(tmp_path: Path) -> list[Any]:
    store = SQLiteBackend(f"sqlite:///{tmp_path}/events.db")
    try:
        return store.query(Query(tenant="acme", plugin=PLUGIN, limit=10_000)).events
    finally:
        store.close()


def test_racing_duplicate_emits_store_exactly_one_event(serve: Callable[..., RunningServer], tmp_path: Path) -> None:
    server = serve(bl_config(tmp_path), workers=4, threads=8)
    deadline = time.monotonic() + 20
    while len(server.worker_pids()) < 4 and time.monotonic() < deadline:  # health answered as soon as one was up
        time.sleep(0.1)
    assert len(server.worker_pids()) == 4
    ids = [f"race{n:012d}" for n in range(6)]
    racers = 16
    barrier = threading.Barrier(racers)
    replies: list[tuple[str, int, Any]] = []
    lock = threading.Lock()

    def emit(event_id: str, index: int) -> None:
        body = minimal(event_id, collection="builds" if index % 2 else "caches")
        body["event"]["context"][0]["event"] = f"racer-{index}"
        with requests.Session() as session:  # its own connection, so the racers spread over the workers
            barrier.wait(timeout=30)
            resp = session.post(server.url + EMIT, json=body, headers=SCHEMES[index % len(SCHEMES)], timeout=60)
        with lock:
            replies.append((event_id, resp.status_code, resp.json()))

    for event_id in ids:
        threads = [threading.Thread(target=emit, args=(event_id, i)) for i in range(racers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)

    assert len(replies) == len(ids) * racers
    for event_id, status, body in replies:
        assert (status, body) == (200, {"ok": True, "eid": event_id}), server.log()
    events = _events(tmp_path)
    assert sorted(e.id for e in events) == sorted(ids)
    assert {(e.stream, e.tenant) for e in events} == {(STREAM, "acme")}
    # and sequential repeats afterwards change nothing
    for scheme in SCHEMES:
        resp = requests.post(server.url + EMIT, json=minimal(ids[0]), headers=scheme, timeout=30)
        assert resp.json() == {"ok": True, "eid": ids[0]}
    assert len(_events(tmp_path)) == len(ids)


def test_the_raw_client_address_is_never_stored_nor_logged(serve: Callable[..., RunningServer],
                                                            tmp_path: Path) -> None:
    ip = "198.51.100.213"
    server = serve(bl_config(tmp_path), workers=2)
    url = server.url + EMIT
    forwarded = {"X-Forwarded-For": ip}

    # a client trying to put the address into the server's fields
    body = minimal("addr000000000001")
    body["event"]["location"] = {"sourceIp": b64(ip.encode()), "tag": ip, "nielsen": ip,
                                 "timezone": "UTC"}
    body["event"]["timing"]["timehash"] = ip
    body["event"]["scope"] = ip
    assert requests.post(url, json=body, headers={**BEARER_ACME, **forwarded}, timeout=30).status_code == 200
    assert requests.post(url, json=body, headers={**BEARER_ACME, **forwarded}, timeout=30).status_code == 200
    params = {"event.id": "addr000000000002", "event.context.type": CONTEXT_TYPE, "event.context.event": "e",
              "event.timing.occurred": str(OCCURRED), "event.detail.tenant.oid": "1",
              "event.detail.tenant.name": "acme", "event.location.source_ip": ip}
    resp = requests.post(url, params=params, headers={"X-API-Key": KEY_ACME, **forwarded}, timeout=30)
    assert resp.json() == {"ok": True, "eid": "addr000000000002"}
    # failures with the address on the request
    assert requests.post(url, json={"event": {"id": "x"}}, headers={**BEARER_ACME, **forwarded},
                         timeout=30).status_code == 400
    assert requests.post(url, json=body, headers=forwarded, timeout=30).status_code == 401
    assert requests.post(url, json=body, headers={"Authorization": "Bearer wrong-key-000", **forwarded},
                         timeout=30).status_code == 401
    assert requests.post(server.url + "/v1/telemetry/nothing", headers={**BEARER_ACME, **forwarded},
                         timeout=30).status_code == 404

    export = subprocess.run([CLI, "export", "--config", str(server.config_path), "--tenant", "acme"],
                            capture_output=True, text=True, timeout=60, cwd=str(server.config_path.parent))
    assert export.returncode == 0, export.stderr
    server.stop()

    events = _events(tmp_path)
    assert sorted(e.id for e in events) == ["addr000000000001", "addr000000000002"]
    for event in events:
        assert event.data["event"]["location"]["sourceIp"] == expected_source_ip("acme", ip)
    stored_json = json.dumps([e.to_dict() for e in events])
    exported = export.stdout
    assert len(exported.splitlines()) == 2
    database = b"".join(path.read_bytes() for path in tmp_path.glob("events.db*"))
    for form in (ip, b64(ip.encode())):
        assert form not in stored_json
        assert form not in exported
        assert form.encode() not in database
        assert form not in server.log(), server.log()
