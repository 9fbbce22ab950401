"""SQLite appends as the writer runs them (`backends.sqlite.batch`, `backends.sqlite.multirow`): rows in multi-row
INSERTs, and the day summary counted by the appending code (migration 4 dropped the per-row insert trigger),
exact under duplicates, failed batches of a group commit, NULL types and databases upgraded from version 3."""

from __future__ import annotations

import fcntl
import json
import sqlite3
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support import wait_until

from backends.sqlite import MIGRATIONS, SQLiteBackend, multirow, typed
from backends.sqlite.batch import prepare
from gateway.events import Event, FieldSpec, Stream
from gateway.query import Query
from gateway.storage import StreamNotFound

from .test_sqlite import DAY, at_version, open_backend, summary_matches_events

T, P = "acme", "analytics"


def event(id: str, ts: int, type: str | None = "t", stream: str = "s", data: dict | None = None) -> Event:
    return Event(tenant=T, plugin=P, stream=stream, type=type, data={"n": len(id)} if data is None else data,  # type: ignore[arg-type]
                 timestamp=ts, received_at=ts, id=id)


def stored_ids(backend: SQLiteBackend) -> list[str]:
    return sorted(e.id for e in backend.query(Query(T, P, limit=10_000)).events)


def test_chunk_sizes_are_powers_of_two_adding_up() -> None:
    for total in (0, 1, 2, 7, 255, 256, 257, 1000, 1023, 5000):
        sizes = multirow.chunk_sizes(total, 256)
        assert sum(sizes) == total
        assert all(s & (s - 1) == 0 and 0 < s <= 256 for s in sizes)
        assert sizes == sorted(sizes, reverse=True)
    assert multirow.chunk_sizes(1000, 256) == [256, 256, 256, 128, 64, 32, 8]


def test_rows_go_in_a_few_statements_within_the_variable_limit() -> None:
    conn = sqlite3.connect(":memory:", isolation_level=None)
    conn.execute("CREATE TABLE t (a PRIMARY KEY, b, c)")
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    rows = [(i, f"v{i}", i * 0.5) for i in range(1000)]
    assert multirow.insert(conn, "INSERT INTO t (a, b, c)", 3, rows) == 1000
    assert len(statements) == 7  # 256 x 3, 128, 64, 32, 8
    assert conn.execute("SELECT a, b, c FROM t ORDER BY a").fetchall() == rows
    # duplicates skipped by the conflict clause do not count
    assert multirow.insert(conn, "INSERT INTO t (a, b, c)", 3, [*rows[990:], (2000, "x", 0.0)],
                           " ON CONFLICT (a) DO NOTHING") == 1
    conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 100)  # a build with a low limit: smaller chunks
    assert multirow.biggest_chunk(conn, 3) == 32
    statements.clear()
    more = [(3000 + i, "w", None) for i in range(100)]
    assert multirow.insert(conn, "INSERT INTO t (a, b, c)", 3, more) == 100
    assert len(statements) == 4  # 32 x 3, 4
    assert conn.execute("SELECT count(*) FROM t").fetchone()[0] == 1101


def test_migration_4_drops_the_insert_trigger_and_counts_stay_exact(tmp_path: Path) -> None:
    """A version-3 database (events counted by the trigger) keeps exact counts once appends count them."""
    path = tmp_path / "v3.db"
    with sqlite3.connect(path) as conn:
        at_version(conn, 3)
        conn.execute("INSERT INTO streams (tenant, plugin, name, created_at) VALUES (?, ?, 's', 0)", (T, P))
        conn.executemany("INSERT INTO events (stream_id, id, type, timestamp, received_at, data) "
                         "VALUES (1, ?, ?, ?, 0, '{}')", [(f"old{i}", [None, "a"][i % 2], i * DAY // 4)
                                                          for i in range(40)])
        assert conn.execute("SELECT sum(n) FROM event_days").fetchone()[0] == 40  # the trigger's counts
    backend = open_backend(path)
    assert backend.health()["schema_version"] == len(MIGRATIONS) >= 4
    with sqlite3.connect(path) as conn:
        triggers = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
    assert "event_days_insert" not in triggers
    assert {"event_days_delete", "event_days_update"} <= triggers
    # new events on days the old ones have, duplicates of old ones, NULL types: counted once each
    fresh = [event(f"new{i}", i * DAY // 3 - DAY, [None, "a", "b"][i % 3]) for i in range(60)]
    assert backend.append([*fresh, event("old3", 0, "a"), event("old4", 0, None)]) == 60
    assert summary_matches_events(path)
    assert backend.query(Query(T, P, limit=0)).total == 100
    backend.close()


def test_a_group_commit_counts_only_what_its_batches_stored(tmp_path: Path) -> None:
    """Batches committed in one group (held back behind the cross-process lock until all have queued): repeats of
    a stored batch, a batch repeating its own ids, batches naming a missing stream (undone alone, day counts
    included), several streams in one batch, NULL types, a thousand-event batch, single events (one statement, no
    savepoint, day counts upserted once for the group); the summary stays exact."""
    path = tmp_path / "group.db"
    backend = open_backend(path)
    schema = (FieldSpec("n", "integer"),)
    backend.create_stream(Stream(T, P, "s", schema=schema))  # with typed columns
    backend.create_stream(Stream(T, P, "o"))
    first = [event(f"a{i}", i * DAY // 7 - 3 * DAY, ["x", None][i % 2], "so"[i % 3 == 0]) for i in range(300)]
    assert backend.append(first) == 300
    batches = {
        "repeat": first[:150],  # all duplicates: 0
        "partly": first[250:] + [event(f"b{i}", i * 1000, None) for i in range(70)],  # 70 new
        "self": [event("c1", 5, "x"), event("c1", 6, "y"), event("c2", 7, "x")],  # 2 new (first of each id)
        "missing": [event("d1", 1, "x"), event("d2", 2, "x", "nope")],  # StreamNotFound, d1 not kept either
        "big": [event(f"e{i}", i * 60_000, "x", "so"[i % 2]) for i in range(1000)],  # 1,000 new
        "missing2": [event("f1", 1, None, "gone")],
        # single events of a stream without typed columns: one statement each, no savepoint
        "single": [event("g1", 3 * DAY, "x", "o")],  # 1 new
        "single_dup": [first[0]],  # a duplicate of stream o: 0
        "single_null": [event("g2", -DAY - 1, None, "o")],  # 1 new, NULL type, a negative day
        "single_again": [event("g1", 3 * DAY, "x", "o")],  # the same id as "single" in the same group: 0 or 1
    }
    outcomes: dict[str, object] = {}
    groups: list[int] = []
    original = backend._commit_batches

    def recording(group):
        groups.append(len(group))
        return original(group)

    backend._committer.commit_all = recording

    def submit(name: str) -> None:
        try:
            outcomes[name] = backend.append(batches[name])
        except StreamNotFound as exc:
            outcomes[name] = exc

    threads = [threading.Thread(target=submit, args=(name,)) for name in batches]
    with open(f"{path}-writelock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as another worker would, so that the batches queue up
        for thread in threads:
            thread.start()
        wait_until(lambda: len(backend._committer._queue) >= len(batches), timeout=10)
        fcntl.flock(lock, fcntl.LOCK_UN)
    for thread in threads:
        thread.join()
    assert groups == [len(batches)]
    assert outcomes["single"] + outcomes["single_again"] == 1  # whichever queued first stored it
    assert {k: v for k, v in outcomes.items() if not isinstance(v, Exception) and not k.startswith("single")} == \
        {"repeat": 0, "partly": 70, "self": 2, "big": 1000}
    assert (outcomes["single_dup"], outcomes["single_null"]) == (0, 1)
    assert isinstance(outcomes["missing"], StreamNotFound) and isinstance(outcomes["missing2"], StreamNotFound)
    assert "d1" not in stored_ids(backend)
    assert len(stored_ids(backend)) == 300 + 70 + 2 + 1000 + 2
    assert summary_matches_events(path)
    with sqlite3.connect(path) as conn:  # the typed rows are those of the stored events of stream s, once each
        typed = conn.execute("SELECT count(*), count(DISTINCT seq) FROM typed_1").fetchone()
        sid = conn.execute("SELECT id FROM streams WHERE name = 's'").fetchone()[0]
        expected = conn.execute("SELECT count(*) FROM events WHERE stream_id = ?", (sid,)).fetchone()[0]
        assert sid == 1 and typed == (expected, expected)
        same = conn.execute("SELECT count(*) FROM typed_1 t JOIN events e ON e.seq = t.seq AND "
                            "e.timestamp = t.timestamp AND json_extract(e.data, '$.n') IS t.c0").fetchone()[0]
        assert same == expected
        c1 = json.loads(conn.execute("SELECT data FROM events WHERE id = 'c1'").fetchone()[0])
    assert c1 == {"n": 2}
    backend.close()


@pytest.mark.parametrize("size", [1, 255, 257, 1000])
def test_batches_of_any_size_are_stored_whole(tmp_path: Path, size: int) -> None:
    backend = open_backend(tmp_path / "sizes.db")
    backend.create_stream(Stream(T, P, "s", schema=(FieldSpec("v", "string"),)))
    events = [event(f"{size}-{i}", 1_700_000_000_000 + i, "t", data={"v": f"value {i}"}) for i in range(size)]
    assert backend.append(events) == size
    assert backend.append(events) == 0
    assert stored_ids(backend) == sorted(e.id for e in events)
    assert summary_matches_events(tmp_path / "sizes.db")
    backend.close()


def test_typed_rows_prepared_for_an_older_layout_are_made_again(tmp_path: Path) -> None:
    """A batch prepared before the lock with the stream's layout of then, committed after a field was added: its
    typed rows are made for the current layout (the new column holds the batch's values, none is lost)."""
    path = tmp_path / "stale.db"
    backend = open_backend(path)
    backend.create_stream(Stream(T, P, "s", schema=(FieldSpec("a", "integer"),)))
    assert backend.append([event("first", 1, data={"a": 1, "b": "x"})]) == 1  # the writer has seen the layout
    events = [event(f"p{i}", 10 + i, data={"a": i, "b": f"b{i}"}) for i in range(5)]
    rows = [(e.tenant, e.plugin, e.stream, e.id, e.type, e.timestamp, e.received_at, e.user_id, e.session_id,
             json.dumps(e.data, separators=(",", ":"))) for e in events]
    prepared = prepare(rows, [e.data for e in events], backend._typed)
    assert prepared is not None and prepared.typed is not None and len(prepared.typed.cells) == 5 * 2
    backend.update_stream_schema(T, P, "s", (FieldSpec("a", "integer"), FieldSpec("b", "string")),
                                 expected=(FieldSpec("a", "integer"),))
    assert backend._commit_batches([(rows, [], [e.data for e in events], prepared)]) == [5]
    with sqlite3.connect(path) as conn:
        cells = conn.execute("SELECT t.c0, t.c1 FROM typed_1 t JOIN events e ON e.seq = t.seq "
                             "WHERE e.id LIKE 'p%' ORDER BY t.c0").fetchall()
    assert cells == [(i, f"b{i}") for i in range(5)]
    assert summary_matches_events(path)
    backend.close()


_EDGES = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, "abc", "é", "a\x00b", "", True, 0.5]
_SCALARS = st.one_of(st.sampled_from(_EDGES), st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                     st.text(max_size=4))
_VALUES = st.one_of(_SCALARS, st.lists(_SCALARS, max_size=2), st.dictionaries(st.sampled_from(["x", "y"]), _SCALARS,
                                                                                max_size=2))
_DOCS = st.one_of(st.dictionaries(st.sampled_from(["a", "b", "c", "n"]), _VALUES, max_size=4),
                  st.dictionaries(st.sampled_from([1, "a"]), _SCALARS, max_size=2))


@settings(max_examples=300, deadline=None)
@given(st.lists(_DOCS, min_size=1, max_size=12), st.booleans())
def test_cells_by_column_equal_the_row_rules(docs: list[dict], uniform: bool) -> None:
    """`flat_cells` (column checks) gives exactly the cells and inexact columns of `typed_rows` (value rules)."""
    if uniform:  # the common case: top-level plain values only
        docs = [{k: v for k, v in d.items() if k in ("a", "b") and type(v) in (float, str, int, type(None))}
                for d in docs]
    layout = typed.Layout(1, "typed_1", [(0, ("a",)), (1, ("b",)), (2, ("n", "x")), (4, ("c",))])
    items = [(1000 + i, doc) for i, doc in enumerate(docs)]
    by_rows: set[int] = set()
    rows = typed.typed_rows(layout, [(ts, 0, doc) for ts, doc in items], by_rows)
    by_columns: set[int] = set()
    flat = typed.flat_cells(layout, items, by_columns)
    assert by_columns == by_rows
    expected = [cell for row in rows for cell in (row[0], *row[2:])]
    assert len(flat) == len(expected)
    assert all(a is b or (type(a) is type(b) and a == b) for a, b in zip(flat, expected, strict=True)), (flat, expected)
