"""Connections: one psycopg pool per process, bounded retries, and `BackendUnavailable` when out of luck.

Each process builds its own `psycopg_pool.ConnectionPool` on first use (a pool made before a fork is
never used by the child). Connections are autocommit (statements that must be atomic run in explicit
``conn.transaction()`` blocks, committed before the caller is answered), carry the statement timeout and
UTC time zone, and are checked when taken from the pool, so connections cut by a database restart are
replaced instead of failing a request.

`Database.run` retries an operation a bounded number of times (``retries``, waiting ``retry_wait_ms``,
doubled each time) when the server cannot be reached or the connection breaks, then raises
`BackendUnavailable` (the core answers 503 in the vendor's format). After such a failure the pool is
replaced, so the next request connects afresh: the gateway recovers as soon as the database is back,
without a restart. Until then each request first tries one direct connection (refused at once while the
server is down) and answers `BackendUnavailable` straight away, instead of waiting ``pool_timeout_ms`` per
attempt for a pooled connection that cannot come. Retrying an append is safe: ids are unique per stream
and inserts skip conflicts. A statement cancelled by ``statement_timeout`` is not retried.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg
from psycopg.types.json import set_json_loads
from psycopg_pool import ConnectionPool, PoolTimeout

from gateway.storage import BackendUnavailable

from . import codec, schema
from .settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


#: The per-connection temporary table large batches are COPYed into (emptied at each commit).
INCOMING = "pg_temp.event_gateway_incoming"


def _configure(conn: psycopg.Connection) -> None:
    """Per-connection setup: jsonb decodes with the escape-aware loader; the COPY staging table exists."""
    set_json_loads(codec.loads, conn)
    conn.execute(f"CREATE TEMP TABLE IF NOT EXISTS {INCOMING.split('.')[1]} (ord bigint GENERATED ALWAYS AS "
                 "IDENTITY, t text, p text, n text, id text, type jsonb, timestamp bigint, received_at bigint, "
                 "user_id jsonb, session_id jsonb, data jsonb, doc text) ON COMMIT DELETE ROWS")


def _close_quietly(pool: ConnectionPool, pid: int) -> None:
    """Close a pool, in the process that made it only (a forked child must not touch its connections)."""
    if os.getpid() == pid:
        with contextlib.suppress(Exception):
            pool.close(timeout=1.0)


class Database:
    """The process's pool, the migration state and the retry policy of one backend instance."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._pool: ConnectionPool | None = None
        self._pid = 0
        self._migrated = False
        #: Set when a request ran out of attempts on an unreachable server; cleared by the next success.
        self._outage = False

    # -- connections -------------------------------------------------------------------------------
    def connect(self) -> psycopg.Connection:
        """A new connection outside the pool (migrations, health); the caller closes it."""
        conn = psycopg.connect(self.settings.conninfo, autocommit=True, **self.settings.connect_kwargs())
        _configure(conn)
        return conn

    def _check_outage(self) -> None:
        """During an outage, one direct connection decides (refused at once while the server is down) before
        the pool makes the request wait ``pool_timeout_ms`` per attempt."""
        if not self._outage:
            return
        try:
            self.connect().close()
        except psycopg.OperationalError as exc:
            raise BackendUnavailable(f"PostgreSQL {self.settings.display} unavailable: {exc}") from exc
        self._outage = False

    def _get_pool(self) -> ConnectionPool:
        pid = os.getpid()
        with self._lock:
            if self._pool is None or self._pid != pid:
                s = self.settings
                kwargs = {"autocommit": True, **s.connect_kwargs()}
                self._pool = ConnectionPool(s.conninfo, kwargs=kwargs, min_size=s.pool_min_size, max_size=s.pool_size,
                                            configure=_configure, check=ConnectionPool.check_connection,
                                            timeout=s.pool_timeout_ms / 1000, name=f"event-gateway-{pid}",
                                            open=False)
                self._pool.open(wait=False)
                self._pid = pid
                # Closed when this object is collected (a backend nobody closed): left to the pool's own
                # __del__, the close could run in one of its worker threads, which cannot join itself.
                weakref.finalize(self, _close_quietly, self._pool, pid)
            return self._pool

    def _drop_pool(self, pool: ConnectionPool) -> None:
        """Forget a pool after connection failures (the next request builds a fresh one)."""
        with self._lock:
            if self._pool is pool:
                self._pool = None
        threading.Thread(target=pool.close, kwargs={"timeout": 1.0}, daemon=True).start()

    def ensure_schema(self) -> None:
        """Apply migrations once per process (through a connection of its own)."""
        if self._migrated:
            return
        with self.connect() as conn:
            conn.execute("SET statement_timeout = 0")  # a migration may rewrite big tables: no request waits on it
            schema.migrate(conn, self.settings.schema)
        self._migrated = True

    # -- the retry policy ----------------------------------------------------------------------------
    def run(self, work: Callable[[psycopg.Connection], T]) -> T:
        """Run `work` with a pooled connection; retry connection failures, then raise `BackendUnavailable`."""
        s = self.settings
        self._check_outage()
        failure: Exception | None = None
        for attempt in range(s.retries + 1):
            if attempt:
                time.sleep(s.retry_wait_ms * 2 ** (attempt - 1) / 1000)
            pool = None
            try:
                self.ensure_schema()
                pool = self._get_pool()
                with pool.connection() as conn:
                    return work(conn)
            except psycopg.errors.QueryCanceled as exc:
                raise BackendUnavailable(f"PostgreSQL {s.display}: statement cancelled ({exc})") from exc
            except (psycopg.OperationalError, PoolTimeout) as exc:
                failure = exc
                log.warning("PostgreSQL %s: attempt %d failed: %s", s.display, attempt + 1, exc)
                if pool is not None and not isinstance(exc, psycopg.errors.TransactionRollback):
                    self._drop_pool(pool)
            except RuntimeError as exc:  # schema newer than this gateway
                raise BackendUnavailable(f"PostgreSQL {s.display}: {exc}") from exc
        self._outage = not isinstance(failure, psycopg.errors.TransactionRollback)
        raise BackendUnavailable(f"PostgreSQL {s.display} unavailable after {s.retries + 1} attempt(s): "
                                 f"{failure}") from failure

    @contextmanager
    def session(self) -> Iterator[psycopg.Connection]:
        """A pooled connection for a long read (a scan, streamed to the caller): not retried once rows
        flowed; failures become `BackendUnavailable`."""
        pool = None
        self._check_outage()
        try:
            self.ensure_schema()
            pool = self._get_pool()
            with pool.connection() as conn:
                yield conn
        except psycopg.errors.QueryCanceled as exc:
            raise BackendUnavailable(f"PostgreSQL {self.settings.display}: statement cancelled ({exc})") from exc
        except (psycopg.OperationalError, PoolTimeout) as exc:
            if pool is not None:
                self._drop_pool(pool)
            self._outage = True
            raise BackendUnavailable(f"PostgreSQL {self.settings.display} unavailable: {exc}") from exc

    def stats(self) -> dict[str, Any]:
        """Pool figures safe to show."""
        pool = self._pool
        if pool is None or self._pid != os.getpid():
            return {}
        stats = pool.get_stats()
        return {"pool_size": stats.get("pool_size", 0), "pool_available": stats.get("pool_available", 0)}

    def close(self) -> None:
        """Close this process's pool."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None and self._pid == os.getpid():
            pool.close()
