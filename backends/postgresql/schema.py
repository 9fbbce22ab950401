"""The PostgreSQL schema and its versioned migrations, safe when several gateway instances start at once.

Every table lives in the configured schema (option ``schema``, default ``event_gateway``). `migrate`
applies the missing entries of `MIGRATIONS` in one transaction, begun while holding a session advisory
lock derived from the schema name, so instances (and gunicorn workers) starting together apply each migration
exactly once and the others wait, then find the schema current. Never edit an applied migration: append one.

Layout:

* ``streams``: the catalog, unique on (tenant, plugin, name).
* ``events``: one row per event; ``seq`` (identity) is the insertion order that breaks sort ties;
  ``UNIQUE (stream_id, id)`` makes id de-duplication hold under racing inserts from any number of hosts
  (appends use ``INSERT ... ON CONFLICT DO NOTHING``). ``type``, ``user_id`` and ``session_id`` are
  ``jsonb`` scalars (they keep their JSON type, as in the other backends; NULL when absent), ``data``
  the vendor document as ``jsonb`` (what queries read) and ``doc`` its exact compact JSON text (what is
  handed back: jsonb would reorder keys and respell numbers, and the other backends return documents
  exactly as stored). Indexes: (stream_id, timestamp, seq) for time ranges and pages,
  (stream_id, type, timestamp, seq) for the type filters every vendor uses; tenant and plugin select
  streams through the catalog's unique index.
"""

from __future__ import annotations

import zlib
from typing import Any

from gateway.events import now_ms

#: Statements per version; ``{s}`` is the quoted schema name.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE {s}.streams (
               id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               tenant text NOT NULL,
               plugin text NOT NULL,
               name text NOT NULL,
               created_at bigint NOT NULL,
               schema jsonb,
               UNIQUE (tenant, plugin, name))""",
        """CREATE TABLE {s}.events (
               seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
               stream_id bigint NOT NULL REFERENCES {s}.streams (id) ON DELETE CASCADE,
               id text NOT NULL,
               type jsonb,
               timestamp bigint NOT NULL,
               received_at bigint NOT NULL,
               user_id jsonb,
               session_id jsonb,
               data jsonb NOT NULL,
               doc text NOT NULL,
               UNIQUE (stream_id, id))""",
        "CREATE INDEX events_by_time ON {s}.events (stream_id, timestamp, seq)",
        "CREATE INDEX events_by_type ON {s}.events (stream_id, type, timestamp, seq)",
    ),
]


def quoted(schema: str) -> str:
    """The schema name as an SQL identifier (validated by `settings` to [a-z_][a-z0-9_]*)."""
    return f'"{schema}"'


def lock_key(schema: str) -> int:
    """The advisory-lock key serializing migrations of one schema (same on every host)."""
    return zlib.crc32(f"event-gateway:migrate:{schema}".encode())


def current_version(conn: Any, schema: str) -> int:
    """The last applied migration (0 when the schema has none yet)."""
    row = conn.execute("SELECT to_regclass(%s)", (f"{quoted(schema)}.schema_version",)).fetchone()
    if row[0] is None:
        return 0
    return conn.execute(f"SELECT coalesce(max(version), 0) FROM {quoted(schema)}.schema_version").fetchone()[0]


def migrate(conn: Any, schema: str) -> int:
    """Bring the schema to the latest version; returns it. `conn` is an autocommit psycopg connection.

    Raises `RuntimeError` when the database was migrated by a newer gateway than this one.
    """
    latest = len(MIGRATIONS)
    if current_version(conn, schema) == latest:
        return latest
    s = quoted(schema)
    # A session lock taken before the transaction begins: the transaction then starts after the previous
    # holder committed and sees its catalog changes (a lock taken inside it could still see the old schema).
    conn.execute("SELECT pg_advisory_lock(%s)", (lock_key(schema),))
    try:
        with conn.transaction():
            conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            conn.execute(f"CREATE TABLE IF NOT EXISTS {s}.schema_version "
                         "(version integer PRIMARY KEY, applied_at bigint NOT NULL)")
            current = conn.execute(f"SELECT coalesce(max(version), 0) FROM {s}.schema_version").fetchone()[0]
            if current > latest:
                raise RuntimeError(f"schema {schema} has version {current}, newer than this gateway knows "
                                   f"({latest})")
            for version, statements in enumerate(MIGRATIONS, start=1):
                if version <= current:
                    continue
                for statement in statements:
                    conn.execute(statement.format(s=s))
                conn.execute(f"INSERT INTO {s}.schema_version (version, applied_at) VALUES (%s, %s)",
                             (version, now_ms()))
    finally:
        if not conn.closed:
            conn.execute("SELECT pg_advisory_unlock(%s)", (lock_key(schema),))
    return latest
