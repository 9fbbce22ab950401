"""Connection management of `SQLiteBackend`: one connection per process and thread, made anew after a fork
or when the file was deleted or replaced, and the session/transaction helpers every operation runs in.

Why a module of its own: the rules of when a connection may be reused (never across a fork, never on a
deleted or replaced inode, reopened read-write once the file is writable again) are subtle and independent
of what the backend stores; `SQLiteBackend` mixes `Connections` in.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from gateway.events import now_ms
from gateway.query.deadline import QueryTimeout, expired, suspended
from gateway.storage import BackendUnavailable

from .schema import AFTER_MIGRATION, MIGRATIONS, is_unavailable

#: SQLite virtual-machine steps between two calls of the progress handler that cancels a query past its
#: deadline (a call costs a context-variable read and a clock read: well under 1% of the work).
PROGRESS_STEPS = 100_000
# Connections inherited through fork: kept referenced so that garbage collection never closes them in the
# child (closing a parent's SQLite connection in a child can corrupt the parent's locks).
_INHERITED: list[sqlite3.Connection] = []


class Connections:
    """Per-process, per-thread connections to one SQLite file (or the one connection of a private in-memory
    database, used under a lock). The backend sets the attributes below in its ``__init__``."""

    path: str
    memory: bool
    busy_timeout_ms: int
    synchronous: str
    query_timeout: float | None
    _local: threading.local
    _generation: int
    _connections: list[tuple[int, sqlite3.Connection]]
    _memory_lock: threading.RLock
    _memory_conn: sqlite3.Connection | None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout_ms / 1000, cached_statements=256)
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        if not self.memory:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file; a no-op once set
        # A statement running past the current query's deadline (gateway.query.deadline) is interrupted
        # from inside SQLite: it fails with "interrupted", which `_session` turns into `QueryTimeout`.
        conn.set_progress_handler(expired, PROGRESS_STEPS)
        return conn

    def _connection(self, local: Any = None) -> sqlite3.Connection:
        """This process's and thread's connection, made on first use (and anew in a forked child).

        `local`: where the connection is kept, when not in the calling thread's slot: appends use one
        connection per process whichever thread leads the group commit (its page cache stays warm, and
        the writer settings are made once)."""
        if self.memory:
            if self._memory_conn is None:
                self._memory_conn = self._connect()
            return self._memory_conn
        local = self._local if local is None else local
        pid = os.getpid()
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == pid and local.generation != self._generation:
            self._forget_connection(stale=True, local=local)  # another thread found the file gone or replaced
            conn = None
        if conn is not None and local.pid == pid:
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            # Reuse it unless the file was deleted or replaced (never write into the old inode), or the
            # connection was opened read-only while the file was not writable and the file is writable now.
            if current == local.inode and not (local.readonly and os.access(self.path, os.W_OK)):
                return conn
            self._forget_connection(local=local)
            conn = None
        if conn is not None:
            _INHERITED.append(conn)
        conn = self._connect()
        self._migrate(conn)  # cheap when current; gives the schema to a file that appeared at the path anew
        local.conn, local.pid, local.inode = conn, pid, os.stat(self.path).st_ino
        local.readonly = not os.access(self.path, os.W_OK)  # SQLite falls back to a read-only open
        local.generation = self._generation
        self._connections.append((pid, conn))
        return conn

    def _forget_connection(self, stale: bool = False, local: Any = None) -> None:
        """Drop this thread's connection (or the one kept in `local`) after a failure, so that the next call
        reconnects.

        A failure found by one connection (often the appending one) also marks every other connection stale
        (`stale` is set when dropping one for that reason).
        """
        if self.memory:
            return
        if not stale:
            self._generation += 1
        local = self._local if local is None else local
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == os.getpid():
            local.conn = None
            with suppress(sqlite3.Error):
                conn.close()

    @contextmanager
    def _session(self, local: Any = None) -> Iterator[sqlite3.Connection]:
        """A connection for one operation (kept in `local`, see `_connection`); SQLite failures of the store
        become `BackendUnavailable`."""
        lock = self._memory_lock if self.memory else None
        if lock is not None:
            lock.acquire()
        try:
            try:
                try:
                    conn = self._connection(local)
                except FileNotFoundError as exc:  # deleted while open: acknowledging into it would lose events
                    self._forget_connection(local=local)
                    raise BackendUnavailable(f"SQLite database {self.path} was deleted while open") from exc
                yield conn
            except sqlite3.Error as exc:
                if isinstance(exc, sqlite3.OperationalError) and str(exc) == "interrupted":
                    raise QueryTimeout(self.query_timeout) from None  # cancelled by the progress handler
                if is_unavailable(exc):
                    self._forget_connection(local=local)
                    raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc
                raise
        finally:
            if lock is not None:
                lock.release()

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, begin: str = "BEGIN") -> Iterator[None]:
        """Run the block in a transaction: committed when it returns, rolled back when it raises."""
        conn.execute(begin)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                with suspended():  # a cancelled read still rolls back
                    conn.execute("ROLLBACK")
            raise

    def _migrate(self, conn: sqlite3.Connection) -> None:
        """Bring the schema to the latest version; concurrent starters serialize on BEGIN IMMEDIATE."""
        with self._transaction(conn, "BEGIN IMMEDIATE"):
            conn.execute("CREATE TABLE IF NOT EXISTS schema_version "
                         "(version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)")
            current = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]
            if current > len(MIGRATIONS):
                raise BackendUnavailable(f"SQLite database {self.path} has schema version {current}, newer "
                                         f"than this gateway knows ({len(MIGRATIONS)})")
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement)
                if version in AFTER_MIGRATION:
                    AFTER_MIGRATION[version](conn)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (version, now_ms()))
