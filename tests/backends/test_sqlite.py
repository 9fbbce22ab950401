"""What only the SQLite backend promises: versioned schema, WAL durability, and safety across processes.

The contract tests cover query semantics; these cover the file: migrations, journal mode, persistence,
concurrent writers in separate processes, connections never crossing a fork, and failures reported as
`BackendUnavailable`.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from backends.sqlite import MIGRATIONS, SQLiteBackend, parse_url
from gateway.events import Event, Stream
from gateway.query import Filter, Query
from gateway.storage import BackendUnavailable, StreamNotFound

T, P = "acme", "analytics"
ROOT = Path(__file__).resolve().parents[2]


def ev(id: str, ts: int, stream: str = "s") -> Event:
    """A minimal event of the test tenant."""
    return Event(tenant=T, plugin=P, stream=stream, type="t", data={"i": id}, timestamp=ts, received_at=ts, id=id)


def count(backend: SQLiteBackend) -> int:
    """Events stored for the test tenant and plugin."""
    total = backend.query(Query(tenant=T, plugin=P, limit=0)).total
    assert total is not None
    return total


@pytest.fixture
def db(tmp_path: Path) -> Path:
    """Path of a database file that does not exist yet, in a directory that does not exist yet."""
    return tmp_path / "nested" / "dir" / "events.db"


def at_version(conn: sqlite3.Connection, version: int) -> None:
    """Give an empty database the schema of an older gateway: the first `version` migrations, recorded."""
    conn.execute("CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
    for number, statements in enumerate(MIGRATIONS[:version], start=1):
        for statement in statements:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (number,))


def open_backend(path: Path, **options: object) -> SQLiteBackend:
    """A backend on the file (four slashes: an absolute path)."""
    return SQLiteBackend(f"sqlite:///{path}", options)


def test_url_forms(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert parse_url("sqlite:///var/events.db") == str(tmp_path / "var" / "events.db")
    assert parse_url("sqlite:////abs/events.db") == "/abs/events.db"
    assert parse_url("sqlite://") == ":memory:"
    assert parse_url("sqlite:///:memory:") == ":memory:"
    with pytest.raises(ValueError):
        parse_url("sqlite://host/events.db")
    relative = SQLiteBackend("sqlite:///var/events.db")
    relative.close()
    assert (tmp_path / "var" / "events.db").is_file()


def test_memory_databases_are_private(tmp_path: Path) -> None:
    first, second = SQLiteBackend("sqlite://"), SQLiteBackend("sqlite:///:memory:")
    assert first.multiprocess_safe is False and second.multiprocess_safe is False
    assert SQLiteBackend.multiprocess_safe is True
    first.create_stream(Stream(T, P, "s"))
    first.append([ev("a", 1)])
    assert count(first) == 1
    assert second.get_stream(T, P, "s") is None


def test_schema_version_and_idempotent_migrations(db: Path) -> None:
    open_backend(db).close()
    backend = open_backend(db)  # reopening applies nothing twice
    backend.close()
    with sqlite3.connect(db) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version ORDER BY version")]
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        indexes = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert versions == list(range(1, len(MIGRATIONS) + 1))
    assert {"schema_version", "streams", "events"} <= tables
    assert {"events_by_time", "events_by_type"} <= indexes
    assert open_backend(db).health()["schema_version"] == len(MIGRATIONS)


def test_newer_schema_is_refused(db: Path) -> None:
    open_backend(db).close()
    with sqlite3.connect(db) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?, 0)", (len(MIGRATIONS) + 1,))
    with pytest.raises(BackendUnavailable):
        open_backend(db)


def test_wal_and_connection_settings(db: Path) -> None:
    backend = open_backend(db, busy_timeout_ms=1234)
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn = backend._connection()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 1234
    assert backend.health()["journal_mode"] == "wal"


def test_data_persists_across_instances(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s", created_at=42))
    backend.append([ev("a", 1), ev("b", 2)])
    backend.close()
    reopened = open_backend(db)
    assert reopened.get_stream(T, P, "s").created_at == 42
    assert [e.id for e in reopened.query(Query(tenant=T, plugin=P)).events] == ["a", "b"]
    assert reopened.append([ev("a", 3)]) == 0  # ids stay unique across instances


_WRITER = textwrap.dedent("""
    import sys
    from backends.sqlite import SQLiteBackend
    from gateway.events import Event
    url, first, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    backend = SQLiteBackend(url)
    stored = 0
    for i in range(first, first + n):
        stored += backend.append([Event(tenant="acme", plugin="analytics", stream="s", type="t", data={},
                                        timestamp=i, received_at=i, id=f"id{i}")])
    print(stored)
""")


def _python(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})


def test_concurrent_processes_lose_nothing(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    # two writers overlap on ids 150..199: each id is stored once, and the reported counts add up
    writers = [_python(_WRITER, f"sqlite:///{db}", "0", "200"), _python(_WRITER, f"sqlite:///{db}", "150", "200")]
    outputs = [w.communicate(timeout=120)[0] for w in writers]
    assert [w.returncode for w in writers] == [0, 0]
    assert sum(int(out) for out in outputs) == 350
    assert count(backend) == 350


def test_acknowledged_append_survives_sigkill(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    script = _WRITER + "\nimport os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n"
    writer = _python(script, f"sqlite:///{db}", "0", "25")
    out, _ = writer.communicate(timeout=120)
    assert writer.returncode == -signal.SIGKILL
    assert out.strip() == "25"
    assert count(backend) == 25


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_connection_not_reused_after_fork(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    backend.append([ev("parent", 1)])
    parent_conn = backend._connection()
    pid = os.fork()
    if pid == 0:  # child: must open its own connection, then write through it
        code = 1
        try:
            if backend._connection() is not parent_conn and backend.append([ev("child", 2)]) == 1:
                code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert backend._connection() is parent_conn
    assert [e.id for e in backend.query(Query(tenant=T, plugin=P)).events] == ["parent", "child"]
    assert backend.append([ev("after", 3)]) == 1


def test_unopenable_database_is_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(BackendUnavailable):
        open_backend(blocker / "events.db")
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not an SQLite database" * 100)
    with pytest.raises(BackendUnavailable):
        open_backend(garbage)


def test_failure_after_open_is_unavailable(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    backend.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    db.parent.rmdir()
    with pytest.raises(BackendUnavailable):
        backend.append([ev("a", 1)])


def test_removed_directory_is_not_made_again_by_a_later_open(db: Path) -> None:
    """A worker booting after the operator removed the directory (the first open made it) leaves it removed:
    making it again with an empty database would end the outage for every worker behind health's back."""
    first = open_backend(db)
    first.create_stream(Stream(T, P, "s"))
    first.close()
    shutil.rmtree(db.parent)
    late = open_backend(db)
    assert not db.parent.exists()
    with pytest.raises(BackendUnavailable):
        late.probe_write()
    with pytest.raises(BackendUnavailable):
        late.append([ev("a", 1)], create_streams=True)
    assert not db.parent.exists()
    db.parent.mkdir()  # made again by the operator: the late instance writes there
    assert late.append([ev("b", 2)], create_streams=True) == 1
    assert count(late) == 1
    late.close()


def test_concurrent_appends_share_transactions_but_fail_alone(db: Path) -> None:
    """Group commit: 8 threads x 50 appends, every 10th naming a missing stream; only those fail."""
    import threading

    from gateway.storage import StreamNotFound

    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    commits = []
    original = backend._commit_batches

    def counting(batches):
        commits.append(len(batches))
        return original(batches)

    backend._committer.commit_all = counting
    outcomes: dict[str, object] = {}

    def worker(n: int) -> None:
        for i in range(50):
            event_id = f"t{n}-{i}"
            stream = "missing" if i % 10 == 0 else "s"
            try:
                outcomes[event_id] = backend.append([ev(event_id, i, stream)])
            except StreamNotFound as exc:
                outcomes[event_id] = exc

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    failed = {k for k, v in outcomes.items() if isinstance(v, StreamNotFound)}
    assert failed == {f"t{n}-{i}" for n in range(8) for i in range(0, 50, 10)}
    assert all(v == 1 for k, v in outcomes.items() if k not in failed)
    stored = backend.query(Query(T, P, limit=1000))
    assert sorted(e.id for e in stored.events) == sorted(set(outcomes) - failed)
    assert sum(commits) == 400  # every batch went through exactly one group
    backend.close()


def test_synchronous_option_and_unknown_options(db: Path) -> None:
    backend = open_backend(db, synchronous="normal")
    with backend._session() as conn:
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    backend.close()
    with pytest.raises(ValueError, match="synchronous"):
        open_backend(db, synchronous="sometimes")
    with pytest.raises(ValueError, match="busy_timout_ms"):
        open_backend(db, busy_timout_ms=5)


# -- the day summary (event_days) --------------------------------------------------------------------
DAY = 86_400_000
_RECOUNT = ("SELECT stream_id, type, CAST(floor(timestamp / 86400000.0) AS INTEGER), count(*) FROM events "
            "GROUP BY 1, 2, 3 ORDER BY 1, 2, 3")
_SUMMARY = "SELECT stream_id, type, day, sum(n) FROM event_days GROUP BY 1, 2, 3 HAVING sum(n) > 0 ORDER BY 1, 2, 3"


def summary_matches_events(path: Path) -> bool:
    """Whether event_days holds exactly the per (stream, type, UTC day) counts of the events table."""
    with sqlite3.connect(path) as conn:
        zero = conn.execute("SELECT count(*) FROM event_days WHERE n <= 0").fetchone()[0]
        return zero == 0 and conn.execute(_RECOUNT).fetchall() == conn.execute(_SUMMARY).fetchall()


def typed_ev(id: str, ts: int, type: str | None, stream: str = "s") -> Event:
    return Event(tenant=T, plugin=P, stream=stream, type=type, data={}, timestamp=ts, received_at=ts, id=id)  # type: ignore[arg-type]


def test_summary_backfilled_by_migration(db: Path) -> None:
    """A database made before the summary existed gets it filled from its events when opened."""
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        at_version(conn, 1)
        conn.execute("INSERT INTO streams (tenant, plugin, name, created_at) VALUES (?, ?, 's', 0), (?, ?, 'o', 0)",
                     (T, P, T, P))
        rows = [(1 + i % 2, f"e{i}", [None, "a", "b", 3][i // 2 % 4], (i - 40) * DAY // 3, "{}") for i in range(200)]
        conn.executemany("INSERT INTO events (stream_id, id, type, timestamp, received_at, data) "
                         "VALUES (?, ?, ?, ?, 0, ?)", rows)
    backend = open_backend(db)
    assert backend.health()["schema_version"] == len(MIGRATIONS)
    assert summary_matches_events(db)
    assert count(backend) == 200
    a_rows = [r for r in rows if r[2] == "a" and r[0] == 1 and -5 * DAY + 7 <= r[3] < 20 * DAY + 11]
    query = Query(tenant=T, plugin=P, streams=("s",), start=-5 * DAY + 7, end=20 * DAY + 11,
                  filters=(Filter("type", "eq", "a"),), limit=0)
    assert backend.query(query).total == len(a_rows) > 0
    # NULL types: the backfilled row and new rows for the same day add up, and deletions take them away
    backend.append([typed_ev("late", 0, None), typed_ev("later", 1, None)])
    assert summary_matches_events(db)
    backend.delete_stream(T, P, "s")
    assert summary_matches_events(db)
    assert count(backend) == 100
    backend.close()


def test_summary_follows_appends_duplicates_and_deletions(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    backend.create_stream(Stream(T, P, "o"))
    events = [typed_ev(f"e{i}", (i * 7919 % 400 - 200) * DAY // 5 + i, ["x", "y", None][i % 3], "so"[i % 2])
              for i in range(300)]
    assert backend.append(events[:200]) == 200
    assert backend.append(events[100:]) == 100  # half of them are duplicates: counted once
    assert summary_matches_events(db)
    with sqlite3.connect(db) as conn:  # any change of the events table, not only the backend's own
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("DELETE FROM events WHERE id IN ('e3', 'e4', 'e5')")
        conn.execute("UPDATE events SET timestamp = timestamp + 3 * ?, type = 'z' WHERE id IN ('e6', 'e7', 'e8')",
                     (DAY,))
    assert summary_matches_events(db)
    total = Query(tenant=T, plugin=P, filters=(Filter("type", "in", ["x", "z"]),), limit=0)
    assert backend.query(total).total == sum(1 for e in events if e.type in ("x",) and e.id not in
                                             ("e3", "e4", "e5", "e6", "e7", "e8")) + 3
    assert backend.delete_stream(T, P, "o")
    assert summary_matches_events(db)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(DISTINCT stream_id) FROM event_days").fetchone()[0] == 1
    backend.close()


def test_big_deletes_go_in_chunks_and_let_appends_through(db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading
    import time

    import backends.sqlite.backend as sqlite_module

    monkeypatch.setattr(sqlite_module, "DELETE_CHUNK", 200)
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "big"))
    backend.create_stream(Stream(T, P, "s"))
    backend.append([ev(f"b{i}", i, "big") for i in range(20_000)])
    done = threading.Event()
    appended_during_delete = []

    def appender() -> None:
        n = 0
        while not done.is_set():
            backend.append([ev(f"live{n}", n)])
            appended_during_delete.append(time.monotonic())
            n += 1

    thread = threading.Thread(target=appender)
    thread.start()
    time.sleep(0.05)
    started = time.monotonic()
    assert backend.delete_stream(T, P, "big") is True
    finished = time.monotonic()
    done.set()
    thread.join()
    assert any(started < t < finished for t in appended_during_delete)  # appends interleaved with the chunks
    assert backend.get_stream(T, P, "big") is None
    assert backend.query(Query(T, P, streams=("big",), limit=0)).total == 0
    backend.create_stream(Stream(T, P, "big"))  # the name is free again, and empty
    assert backend.query(Query(T, P, streams=("big",), limit=0)).total == 0
    with backend._session() as conn:
        assert conn.execute("SELECT count(*) FROM events WHERE stream_id NOT IN (SELECT id FROM streams)"
                            ).fetchone()[0] == 0
    backend.close()


def test_a_delete_cut_short_is_finished_on_reopen(db: Path) -> None:
    from backends.sqlite import TOMBSTONE

    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "gone"))
    backend.append([ev(f"g{i}", i, "gone") for i in range(50)])
    with backend._session() as conn:  # what a crash right after the tombstone step leaves behind
        conn.execute("UPDATE streams SET tenant = ?, name = 'x' WHERE name = 'gone'", (TOMBSTONE,))
    backend.close()
    reopened = open_backend(db)
    with reopened._session() as conn:
        assert conn.execute("SELECT count(*) FROM streams WHERE tenant = ?", (TOMBSTONE,)).fetchone()[0] == 0
        assert conn.execute("SELECT count(*) FROM events").fetchone()[0] == 0
    reopened.close()


def test_a_database_deleted_while_open_is_never_written_into(db: Path) -> None:
    """Appending into an unlinked inode would acknowledge events nobody can ever read again."""
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    backend.append([ev("before", 1)])
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    # The operation that finds the file gone reopens: it starts a fresh database at the path (with its
    # schema; the operator deleted the old one), so the event lands there, where it can be read again.
    with pytest.raises(StreamNotFound):
        backend.append([ev("no-stream", 2)])
    assert backend.append([ev("after", 3)], create_streams=True) == 1
    fresh = open_backend(db)
    assert [e.id for e in fresh.query(Query(T, P)).events] == ["after"]
    fresh.close()
    backend.close()


def test_a_database_replaced_while_open_is_reopened(db: Path) -> None:
    backend = open_backend(db)
    backend.create_stream(Stream(T, P, "s"))
    other = db.with_name("other.db")
    second = open_backend(other)
    second.create_stream(Stream(T, P, "s"))
    second.append([ev("from-other", 1)])
    second.close()
    os.replace(other, db)
    for suffix in ("-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    # The append reopens the file now at the path and lands there, never in the replaced inode.
    assert backend.append([ev("x", 2)]) == 1
    assert [e.id for e in backend.query(Query(T, P)).events] == ["from-other", "x"]
    fresh = open_backend(db)
    assert [e.id for e in fresh.query(Query(T, P)).events] == ["from-other", "x"]
    fresh.close()
    backend.close()
