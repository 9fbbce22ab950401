"""Issue 10, item 4: ingest recovers by itself once a storage fault clears, and health tells the truth.

On a real 2-worker server writing a real SQLite file, each fault is made and cleared while clients post
Fluid Topics events; meanwhile `GET /_gateway/health` must report the store as down whenever a write
fails, and ingest must work again within seconds of the repair, without a restart. Tests run as root,
where file modes do not stop writes, so the faults are a removed directory, a full file system (a small
tmpfs mounted for the test) and an immutable file (``chattr +i``); each skips with the reason where the
machine cannot make it.

Before (measured on this branch's base with the same steps): a full disk and an immutable database file
left health at ``200 ok`` while ingest answered 503 (full) or 503 on every new connection (immutable).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hardening_storage.hs_helpers import ACME, EVENT, INGEST

from backends.sqlite import SQLiteBackend
from gateway.query import Query

#: Seconds within which health must reflect a fault or its repair (the write probe is cached 1.5 s).
HEALTH_WITHIN = 4.0
#: Seconds within which ingest must work again after the fault is cleared.
RECOVER_WITHIN = 5.0


def _ingest(url: str, marker: str) -> int:
    return requests.post(url + INGEST, json={**EVENT, "marker": marker}, headers=ACME, timeout=10).status_code


def _health(url: str) -> tuple[int, dict[str, Any]]:
    resp = requests.get(url + "/_gateway/health", timeout=10)
    return resp.status_code, resp.json()


def _until(condition: Callable[[], bool], within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.1)
    return condition()


def _truthful_burst(url: str, prefix: str, count: int = 8) -> list[str]:
    """Post `count` events; after each failure, health must say down within `HEALTH_WITHIN`. Returns the
    markers acknowledged."""
    acked = []
    for i in range(count):
        marker = f"{prefix}-{i}"
        status = _ingest(url, marker)
        if status == 200:
            acked.append(marker)
        else:
            assert status == 503, status
            assert _until(lambda: _health(url)[0] == 503, HEALTH_WITHIN), "ingest failed while health said ok"
    return acked


def _stored_markers(db: Path) -> set[str]:
    store = SQLiteBackend(f"sqlite:///{db}")
    try:
        result = store.query(Query(tenant="acme", plugin="fluid_topics", limit=10_000))
        return {event.data["parameters"].get("marker") for event in result.events}
    finally:
        store.close()


def _recovers(url: str, prefix: str) -> list[str]:
    """Ingest and health both work again within `RECOVER_WITHIN`; returns the markers acknowledged."""
    acked: list[str] = []

    def ok() -> bool:
        marker = f"{prefix}-{len(acked)}"
        if _ingest(url, marker) == 200:
            acked.append(marker)
            return True
        return False

    assert _until(ok, RECOVER_WITHIN), "ingest did not recover"
    for i in range(6):  # every worker and thread, not just one lucky connection
        marker = f"{prefix}-after-{i}"
        assert _ingest(url, marker) == 200
        acked.append(marker)
    assert _until(lambda: _health(url)[0] == 200, HEALTH_WITHIN), _health(url)
    return acked


def test_removed_directory_made_again(ft_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "data" / "events.db"
    server = ft_server(db)
    assert _ingest(server.url, "before") == 200
    shutil.rmtree(db.parent)
    assert _until(lambda: _health(server.url)[0] == 503, HEALTH_WITHIN), _health(server.url)
    status, body = _health(server.url)
    assert status == 503, body
    assert body["storage"]["status"] == "down" and str(tmp_path) not in body["storage"]["reason"], body
    assert _ingest(server.url, "during") == 503
    db.parent.mkdir()
    acked = _recovers(server.url, "recreated")
    assert set(acked) <= _stored_markers(db)
    # No worker keeps the writer lock file of the removed directory open (it would not exclude the others).
    for pid in server.worker_pids():
        fds = Path(f"/proc/{pid}/fd")
        targets = [os.readlink(fd) for fd in fds.iterdir() if fd.is_symlink()]
        assert not [t for t in targets if "writelock" in t and "(deleted)" in t], targets


def test_deleted_database_file(ft_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "data" / "events.db"
    server = ft_server(db)
    assert _ingest(server.url, "before") == 200
    for path in db.parent.glob("events.db*"):
        path.unlink()
    _truthful_burst(server.url, "during")
    acked = _recovers(server.url, "after")
    assert set(acked) <= _stored_markers(db)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs mounted for the test (skipped where mounting is not permitted)."""
    mount = tmp_path / "small"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mount)], capture_output=True,
                          text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here (needs root and CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def test_full_disk(ft_server: Any, small_fs: Path) -> None:
    db = small_fs / "events.db"
    server = ft_server(db)
    assert _ingest(server.url, "before") == 200
    assert _until(lambda: _health(server.url)[0] == 200, HEALTH_WITHIN)
    filler = small_fs / "filler"
    subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=64k"], capture_output=True)
    assert shutil.disk_usage(small_fs).free < 64 * 1024
    assert _until(lambda: _health(server.url)[0] == 503, HEALTH_WITHIN), _health(server.url)
    acked = _truthful_burst(server.url, "full")
    filler.unlink()
    acked += _recovers(server.url, "freed")
    assert set(acked) <= _stored_markers(db)


def test_immutable_database_file(ft_server: Any, tmp_path: Path) -> None:
    db = tmp_path / "data" / "events.db"
    server = ft_server(db)
    assert _ingest(server.url, "before") == 200
    done = subprocess.run(["chattr", "+i", str(db)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"chattr +i is not supported here: {done.stderr.strip()}")
    try:
        assert _until(lambda: _health(server.url)[0] == 503, HEALTH_WITHIN), _health(server.url)
        _truthful_burst(server.url, "immutable")
    finally:
        subprocess.run(["chattr", "-i", str(db)], check=True)
    acked = _recovers(server.url, "writable")
    assert set(acked) <= _stored_markers(db)
