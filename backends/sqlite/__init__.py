"""SQLite storage backend: durable single-file storage for one machine, safe under several workers.

Modules: `backend` (the class: catalog, durable append), `connections` (per process/thread connections,
sessions, migrations), `schema` (tables, triggers, migrations, URL parsing), `compiler` (neutral query ->
SQL fragments), `reader` (one query's total, page and aggregations in a read transaction), `aggregate`
(aggregations in SQL and from the day summary), `group_commit` (concurrent appends share one transaction
and one fsync), `batch` (one batch's events, typed rows and day counts, prepared before the write lock),
`multirow` (many rows per INSERT statement), `typed` (the declared fields of streams with a schema in typed
columns, read instead of JSON), `fills` (copying older events into new typed columns in the background).

URL forms: ``sqlite:///relative/path.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
and ``sqlite://`` or ``sqlite:///:memory:`` for a private in-memory database (one connection behind a
lock; not shared between processes).
"""

from __future__ import annotations

from gateway.hookspecs import hookimpl
from gateway.storage import Backend

from .backend import DELETE_CHUNK, SQLiteBackend
from .schema import MIGRATIONS, TOMBSTONE, parse_url

__all__ = ["DELETE_CHUNK", "MIGRATIONS", "TOMBSTONE", "SQLiteBackend", "parse_url", "storage_backends"]


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `SQLiteBackend` for ``sqlite://`` URLs."""
    return [SQLiteBackend]
