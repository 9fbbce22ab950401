"""`SQLiteBackend`: durable single-file storage for one machine, safe under several workers.

The file is in WAL mode with ``synchronous=FULL``, so an acknowledged append survives a SIGKILL of the
worker (and a power cut). Every process and thread has its own connection (a connection made before a
gunicorn fork is never used by the child); writers serialize with ``BEGIN IMMEDIATE`` and wait up to
``busy_timeout_ms`` for each other, and concurrent appends of one process share a transaction
(`backends.sqlite.group_commit`); connections are managed by `backends.sqlite.connections`. Reads are
compiled to SQL (`backends.sqlite.reader`) and cancelled from a progress handler once the query's deadline
has passed (`gateway.query.deadline`).
"""

from __future__ import annotations

import itertools
import json
import os
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from gateway.events import Event, FieldSpec, Stream, now_ms
from gateway.query import Condition, Query, QueryResult
from gateway.query.checks import check_event
from gateway.query.cursor import decode_position
from gateway.query.evaluate import native_tree
from gateway.storage import (
    Backend,
    BackendUnavailable,
    SchemaConflict,
    StreamExists,
    StreamNotFound,
    schema_from_json,
    schema_to_json,
)

from . import typed
from .batch import DAY_UPSERT_BY_NAME, MissingStream, Prepared, insert_events, insert_single, is_single, prepare
from .connections import Connections
from .fills import BackgroundFills
from .group_commit import GroupCommitter
from .probe import check_files_writable
from .reader import run_query, scan_rows
from .schema import (
    DEFAULT_BUSY_TIMEOUT_MS,
    INSERT_STREAM,
    TOMBSTONE,
    WRITER_PRAGMAS,
    parse_url,
)

DELETE_CHUNK = 5000
_MISSING_STREAM = "the batch names a stream that does not exist; nothing was stored"
# Databases whose directory this process (or the master it was forked from) already made or found. Only the
# first open makes a missing directory: a gunicorn worker booting (or rebooted) after the directory was
# removed must not make it again with an empty database in it, which would end the outage health reports
# for the other workers and have them acknowledge into a database the operator did not restore.
_PREPARED: set[str] = set()
#: What `append` hands the group committer: the event rows, the streams to create first, the events' data, and
#: what could be prepared of their writing before the write lock (`backends.sqlite.batch.prepare`).
_Batch = tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[Any], Prepared | None]
#: The batch of a write probe (`probe_write`): no rows, no streams.
_PROBE: _Batch = ([], [], [], None)


class SQLiteBackend(Connections, Backend):
    """Streams and events in one SQLite file (or a private in-memory database)."""

    schemes = ("sqlite",)
    multiprocess_safe = True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.path = parse_url(url)
        self.memory = self.path == ":memory:"
        unknown = set(self.options) - {"busy_timeout_ms", "synchronous"}
        if unknown:
            raise ValueError(f"storage.options: unknown SQLite option(s) {', '.join(sorted(unknown))} "
                             "(known: busy_timeout_ms, synchronous)")
        self.busy_timeout_ms = int(self.options.get("busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS))
        self._local = threading.local()
        self._writer_slot = SimpleNamespace()  # the appending connection: one per process (`_commit_batches`)
        self._generation = 0  # bumped when a thread finds the file gone: every thread's connection is stale
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._memory_lock = threading.RLock()
        self._memory_conn: sqlite3.Connection | None = None
        self.synchronous = str(self.options.get("synchronous", "full")).upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"storage.options.synchronous: expected full, normal or extra, got {self.synchronous!r}")
        self._probes = itertools.count(int(time.time()))
        self._writer_conn: sqlite3.Connection | None = None  # the connection WRITER_PRAGMAS were set on
        self._typed = typed.Writer()
        self.fills = BackgroundFills(self._fill_in_thread)
        self._committer = GroupCommitter(self._commit_batches,
                                         lock_path=None if self.memory else f"{self.path}-writelock")
        if self.memory:
            # An in-memory database exists per connection: one connection, used under a lock.
            self.multiprocess_safe = False
        directory = os.path.dirname(self.path)
        if not self.memory and self.path in _PREPARED and not os.path.isdir(directory):
            return  # removed since: a fault health reports until it is made again (never made anew here)
        try:
            if not self.memory:
                os.makedirs(directory, exist_ok=True)
                _PREPARED.add(self.path)
            with self._session() as conn:
                if self.memory:
                    self._migrate(conn)
                self._finish_deletes(conn)
                self._finish_fills(conn)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    def close(self) -> None:
        """Close this process's connections (connections of other threads included)."""
        self.fills.stop()
        pid = os.getpid()
        for owner, conn in self._connections:
            if owner == pid:
                conn.close()
        self._connections = [(owner, c) for owner, c in self._connections if owner != pid]
        self._local = threading.local()
        self._writer_slot = SimpleNamespace()
        self._committer.close()
        if self._memory_conn is not None:
            self._memory_conn.close()
            self._memory_conn = None

    # -- catalog ---------------------------------------------------------------------------------
    @staticmethod
    def _stream(row: Sequence[Any]) -> Stream:
        tenant, plugin, name, created_at, schema = row
        fields = None if schema is None else schema_from_json(json.loads(schema))
        return Stream(tenant=tenant, plugin=plugin, name=name, created_at=created_at, schema=fields)

    @staticmethod
    def _schema_text(schema: Sequence[FieldSpec] | None) -> str | None:
        return None if schema is None else json.dumps(schema_to_json(schema))

    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""
        schema = self._schema_text(stream.schema)
        with self._session() as conn:
            try:
                with self._transaction(conn, "BEGIN IMMEDIATE"):
                    sid = conn.execute("INSERT INTO streams (tenant, plugin, name, created_at, schema) "
                                       "VALUES (?, ?, ?, ?, ?)", (stream.tenant, stream.plugin, stream.name,
                                                                  stream.created_at, schema)).lastrowid
                    typed.declare(conn, sid, stream.schema)  # a new stream: nothing to fill
            except sqlite3.IntegrityError as exc:
                raise StreamExists(f"stream [{stream.name}] already exists") from exc
        return Stream(tenant=stream.tenant, plugin=stream.plugin, name=stream.name,
                      created_at=stream.created_at, schema=stream.schema)

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """The stream, or None."""
        with self._session() as conn:
            row = conn.execute("SELECT tenant, plugin, name, created_at, schema FROM streams "
                               "WHERE tenant = ? AND plugin = ? AND name = ?", (tenant, plugin, name)).fetchone()
        return None if row is None else self._stream(row)

    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Every stream of the tenant for the plugin, ordered by name."""
        with self._session() as conn:
            rows = conn.execute("SELECT tenant, plugin, name, created_at, schema FROM streams "
                                "WHERE tenant = ? AND plugin = ? ORDER BY name", (tenant, plugin)).fetchall()
        return [self._stream(row) for row in rows]

    def update_stream_schema(self, tenant: str, plugin: str, name: str, schema: tuple[FieldSpec, ...] | None, *,
                             expected: tuple[FieldSpec, ...] | None) -> Stream:
        """Replace the schema if it is still `expected`: read and write in one write transaction, with the typed
        columns it declares (`backends.sqlite.typed`); existing events are then copied into new columns by a
        background fill (`backends.sqlite.fills`), so the call does not take time proportional to the stream."""
        with self._session() as conn, self._transaction(conn, "BEGIN IMMEDIATE"):
            row = conn.execute("SELECT tenant, plugin, name, created_at, schema, id FROM streams "
                               "WHERE tenant = ? AND plugin = ? AND name = ?", (tenant, plugin, name)).fetchone()
            if row is None:
                raise StreamNotFound(f"stream [{name}] does not exist")
            if self._stream(row[:5]).schema != (None if expected is None else tuple(expected)):
                raise SchemaConflict(f"the schema of stream [{name}] changed meanwhile")
            conn.execute("UPDATE streams SET schema = ? WHERE id = ?", (self._schema_text(schema), row[5]))
            fill = typed.declare(conn, row[5], schema)
        if fill:
            self._start_fill(row[5])
        return Stream(tenant=tenant, plugin=plugin, name=name, created_at=row[3],
                      schema=None if schema is None else tuple(schema))

    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream and its events; False when it did not exist.

        The stream first becomes a tombstone in one short transaction (its name is free and appends to it
        fail from then on); its events then go in chunks of `DELETE_CHUNK`, each its own transaction, so a
        stream of millions of events never holds the write lock for long (appends of other streams
        interleave, instead of waiting out the busy timeout). A delete cut short by a crash is finished
        when the database is next opened.
        """
        with self._session() as conn:
            with self._transaction(conn, "BEGIN IMMEDIATE"):
                row = conn.execute("SELECT id FROM streams WHERE tenant = ? AND plugin = ? AND name = ?",
                                   (tenant, plugin, name)).fetchone()
                if row is None:
                    return False
                conn.execute("UPDATE streams SET tenant = ?, name = ? WHERE id = ?", (TOMBSTONE, str(row[0]), row[0]))
                typed.drop(conn, row[0])
            self._purge(conn, row[0])
        return True

    def _purge(self, conn: sqlite3.Connection, stream_id: int) -> None:
        """Delete a tombstoned stream's events chunk by chunk, then the stream."""
        while True:
            with self._transaction(conn, "BEGIN IMMEDIATE"):
                deleted = conn.execute("DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE stream_id = ? "
                                       "LIMIT ?)", (stream_id, DELETE_CHUNK)).rowcount
                if deleted < DELETE_CHUNK:
                    conn.execute("DELETE FROM streams WHERE id = ?", (stream_id,))
                    return

    def _fill(self, conn: sqlite3.Connection, stream_id: int, stopping: Callable[[], bool] = bool) -> None:
        """Copy a stream's existing events into its typed table, a chunk per write transaction."""
        more = True
        while more and not stopping():
            with self._transaction(conn, "BEGIN IMMEDIATE"):
                more = typed.backfill_step(conn, stream_id)

    def _start_fill(self, stream_id: int) -> None:
        """A fill in the background; inline for an in-memory database (one connection, used under a lock)."""
        if self.memory:
            with self._session() as conn:
                self._fill(conn, stream_id)
        else:
            self.fills.start(stream_id)

    def _fill_in_thread(self, stream_id: int, stopping: Callable[[], bool]) -> None:
        try:
            with self._session() as conn:
                self._fill(conn, stream_id, stopping)
        finally:
            self._forget_connection(stale=True)  # this thread ends: close its connection

    def _finish_fills(self, conn: sqlite3.Connection) -> None:
        """Resume typed-table fills a crash or a stop interrupted, or that an upgrade of the database declared."""
        for stream_id in typed.pending(conn):
            self._start_fill(stream_id)

    def _finish_deletes(self, conn: sqlite3.Connection) -> None:
        """Complete deletes a crash interrupted (tombstones left behind)."""
        for (stream_id,) in conn.execute("SELECT id FROM streams WHERE tenant = ?", (TOMBSTONE,)).fetchall():
            self._purge(conn, stream_id)

    def plugins_of(self, tenant: str) -> list[str]:
        """The plugins that have streams for the tenant, sorted."""
        with self._session() as conn:
            rows = conn.execute("SELECT DISTINCT plugin FROM streams WHERE tenant = ? ORDER BY plugin",
                                (tenant,)).fetchall()
        return [row[0] for row in rows]

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], create_streams: bool = False) -> int:
        """Store the batch in one transaction, durably; return how many events were new.

        The stream id is resolved by a subquery in the INSERT; a missing stream makes it NULL, which the
        NOT NULL constraint rejects, so the batch is rolled back and `StreamNotFound` raised. With
        `create_streams`, missing streams are first inserted in the same transaction (a batch is never
        stored without its streams, nor its streams without it). Concurrent appends of one process are
        committed together (`backends.sqlite.group_commit`), each batch in its own savepoint, so one disk
        sync serves several requests and a bad batch never affects another.
        """
        rows, datas = [], []
        for event in events:
            rows.append((event.tenant, event.plugin, event.stream, event.id, event.type, event.timestamp,
                         event.received_at, event.user_id, event.session_id, check_event(event)))
            datas.append(event.data)
        if not rows:
            return 0
        streams: list[tuple[Any, ...]] = []
        if create_streams:
            created_at = now_ms()
            streams = [(*key, created_at) for key in dict.fromkeys(row[:3] for row in rows)]
        try:
            return self._committer.submit((rows, streams, datas, prepare(rows, datas, self._typed)))
        except OSError as exc:  # the writer lock file cannot be opened: the store's directory is gone
            raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def _commit_batches(self, batches: Sequence[_Batch]) -> list[Any]:
        """One transaction for a group of batches; per batch, its count of new rows or its exception.

        Each batch runs in a savepoint when the group has several, so a failing one is undone alone.
        """
        results: list[Any] = []
        alone = len(batches) == 1
        days: Counter[tuple[Any, ...]] = Counter()  # of the single events, upserted once for the group
        with self._session(self._writer_slot) as conn, self._transaction(conn, "BEGIN IMMEDIATE"):
            if conn is not self._writer_conn and not self.memory:
                for pragma in WRITER_PRAGMAS:  # connection settings: allowed inside the transaction
                    conn.execute(pragma)
                self._writer_conn = conn
            layouts = self._typed.refresh(conn)
            for rows, streams, datas, prepared in batches:
                if not rows and not streams:  # a write probe: the smallest real write (the header page)
                    conn.execute(f"PRAGMA user_version = {next(self._probes) % 2**31}")
                    results.append(0)
                    continue
                single = is_single(rows, layouts)
                savepoint = not alone and not single
                if savepoint:
                    conn.execute("SAVEPOINT batch")
                try:
                    if streams:
                        conn.executemany(INSERT_STREAM, streams)
                    if single:
                        added = insert_single(conn, rows[0], days)
                    else:
                        added = insert_events(conn, rows, datas, self._typed, prepared)
                except MissingStream as exc:
                    if alone:
                        raise StreamNotFound(_MISSING_STREAM) from exc
                    if savepoint:
                        conn.execute("ROLLBACK TO batch")
                    results.append(StreamNotFound(_MISSING_STREAM))
                else:
                    results.append(added)
                if savepoint:
                    conn.execute("RELEASE batch")
            if days:
                conn.executemany(DAY_UPSERT_BY_NAME, [(*key, n) for key, n in days.items()])
        return results

    def pushable(self, condition: Condition) -> bool:
        """Native filters and AND/OR/NOT trees of them compile to SQL."""
        return native_tree(condition)

    def answer(self, query: Query) -> QueryResult:
        """Answer a native query in SQL (`backends.sqlite.reader`)."""
        cursor = decode_position(query.cursor, len(query.sort)) if query.cursor is not None else None
        with self._session() as conn, self._transaction(conn):
            return run_query(conn, query, cursor)

    def scan(self, query: Query) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of the matching events, from one SELECT in a read transaction."""
        with self._session() as conn, self._transaction(conn):
            yield from scan_rows(conn, query)

    # -- operations ------------------------------------------------------------------------------
    def probe_write(self) -> None:
        """Raise `BackendUnavailable` when an append would fail: the files are not writable or the disk is
        full (`check_files_writable`), or a real write fails. The write goes the way appends go (the group
        committer, its lock file and a committed transaction setting ``PRAGMA user_version``), so it also
        reopens what is stale: a lock file or connection left on a deleted inode, a file that appeared anew."""
        if self.memory:
            return
        check_files_writable(self.path)
        try:
            self._committer.submit(_PROBE)
        except OSError as exc:
            raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def health(self) -> dict[str, Any]:
        """Path, journal mode and schema version (cheap: no counting)."""
        with self._session() as conn:
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return {"backend": "sqlite", "path": self.path, "journal_mode": mode, "schema_version": version}
