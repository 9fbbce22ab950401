"""The SQLite file's schema: tables, the day-summary triggers, the versioned migrations, and URL parsing.

`MIGRATIONS` is applied in order (table ``schema_version`` holds the last applied number); never edit an
applied migration, append a new one. Table ``event_days`` counts events per stream, type and UTC day, kept
in the transaction that inserts or deletes the events: by the appending code for inserts (`backends.sqlite.batch`;
migration 4 dropped the per-row insert trigger), by triggers for deletes and updates.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from urllib.parse import unquote, urlsplit

from gateway.query.calendar import DAY_MS

from .typed import declare_missing


def day_of(ms: str) -> str:
    """SQL of the UTC epoch day number (floor) of an integer epoch-ms expression."""
    return f"({ms} / {DAY_MS} - ({ms} % {DAY_MS} < 0))"


DAY_INCREMENT = (
    "INSERT INTO event_days (stream_id, type, day, n) "
    f"VALUES ({{row}}.stream_id, {{row}}.type, {day_of('{row}.timestamp')}, 1) "
    "ON CONFLICT (stream_id, type, day) DO UPDATE SET n = n + 1;"
)
DAY_DECREMENT = (
    "UPDATE event_days SET n = n - 1 WHERE rowid = (SELECT rowid FROM event_days WHERE stream_id = {row}.stream_id "
    f"AND type IS {{row}}.type AND day = {day_of('{row}.timestamp')} LIMIT 1); "
    "DELETE FROM event_days WHERE stream_id = {row}.stream_id AND type IS {row}.type "
    f"AND day = {day_of('{row}.timestamp')} AND n <= 0;"
)

#: Schema migrations, applied in order; the number of the last applied one is in ``schema_version``.
#: Never edit an applied migration: append a new one.
MIGRATIONS: list[tuple[str, ...]] = [
    (
        """CREATE TABLE streams (
               id INTEGER PRIMARY KEY,
               tenant TEXT NOT NULL,
               plugin TEXT NOT NULL,
               name TEXT NOT NULL,
               created_at INTEGER NOT NULL,
               schema TEXT,
               UNIQUE (tenant, plugin, name))""",
        # type, user_id and session_id have no declared type (no affinity): values keep their JSON type,
        # so comparisons are as strict as in the other backends.
        """CREATE TABLE events (
               seq INTEGER PRIMARY KEY,
               stream_id INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
               id TEXT NOT NULL,
               type,
               timestamp INTEGER NOT NULL,
               received_at INTEGER NOT NULL,
               user_id,
               session_id,
               data TEXT NOT NULL,
               UNIQUE (stream_id, id))""",
        "CREATE INDEX events_by_time ON events (stream_id, timestamp)",
        "CREATE INDEX events_by_type ON events (stream_id, type, timestamp)",
    ),
    (
        # Events per stream, type and UTC day (epoch day number), kept by triggers in the inserting or
        # deleting transaction; counts and calendar histograms over type/time read it instead of the events.
        # A NULL type never conflicts in the UNIQUE index, so NULL-type events may spread over several rows
        # of one day: readers sum, and deletions decrement one of them.
        """CREATE TABLE event_days (
               stream_id INTEGER NOT NULL REFERENCES streams (id) ON DELETE CASCADE,
               type,
               day INTEGER NOT NULL,
               n INTEGER NOT NULL,
               UNIQUE (stream_id, type, day))""",
        f"""CREATE TRIGGER event_days_insert AFTER INSERT ON events BEGIN
               {DAY_INCREMENT.format(row="NEW")}
           END""",
        f"""CREATE TRIGGER event_days_delete AFTER DELETE ON events BEGIN
               {DAY_DECREMENT.format(row="OLD")}
           END""",
        f"""CREATE TRIGGER event_days_update AFTER UPDATE OF stream_id, type, timestamp ON events BEGIN
               {DAY_DECREMENT.format(row="OLD")}
               {DAY_INCREMENT.format(row="NEW")}
           END""",
        f"""INSERT INTO event_days (stream_id, type, day, n)
               SELECT stream_id, type, {day_of("timestamp")}, count(*) FROM events GROUP BY 1, 2, 3""",
    ),
    (
        # The catalog of typed columns (`backends.sqlite.typed`): which streams have a table ``typed_<id>``,
        # which range of it is still to be filled, and the column (``c<position>``) of each stored path.
        # The tables of streams that already have a schema are declared by `AFTER_MIGRATION`.
        """CREATE TABLE typed_tables (
               stream_id INTEGER PRIMARY KEY REFERENCES streams (id) ON DELETE CASCADE,
               backfill_from INTEGER NOT NULL DEFAULT 0,
               backfill_to INTEGER)""",
        """CREATE TABLE typed_columns (
               stream_id INTEGER NOT NULL REFERENCES typed_tables (stream_id) ON DELETE CASCADE,
               position INTEGER NOT NULL,
               path TEXT NOT NULL,
               exact INTEGER NOT NULL DEFAULT 1,
               PRIMARY KEY (stream_id, position),
               UNIQUE (stream_id, path))""",
    ),
    (
        # Appends count their events into event_days themselves, one upsert per (stream, type, day) of a batch
        # (`backends.sqlite.batch`): with a trigger per inserted row, a 1,000-event insert and commit cost 5.2 us
        # of CPU per event, 3.5 us with the upsert. Deletes and updates keep their triggers (rare; any writer's count).
        "DROP TRIGGER IF EXISTS event_days_insert",
    ),
]

DEFAULT_BUSY_TIMEOUT_MS = 10_000
#: Settings of a process's appending connection (a file's): a page cache holding every page a group commit touches
#: (the default 2 MiB spills dirty pages to the WAL mid-transaction once the indexes outgrow it), and a checkpoint
#: every 10,000 WAL pages rather than 1,000, so pages rewritten by successive commits are copied back once.
WRITER_PRAGMAS = ("PRAGMA cache_size = -65536", "PRAGMA wal_autocheckpoint = 10000")

#: Creates a missing stream in the appending transaction (``append(..., create_streams=True)``).
INSERT_STREAM = ("INSERT INTO streams (tenant, plugin, name, created_at) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (tenant, plugin, name) DO NOTHING")
#: tenant of a stream being deleted (no configured tenant can have it: tenants match [A-Za-z0-9_.-]+)
TOMBSTONE = "\x00deleted"
#: Python steps run right after a migration's statements, in its transaction (by migration number).
AFTER_MIGRATION: dict[int, Callable[[sqlite3.Connection], None]] = {3: lambda conn: declare_missing(conn, TOMBSTONE)}
UNAVAILABLE_MESSAGES = ("unable to open", "disk i/o", "locked", "busy", "readonly", "read-only", "disk is full",
                         "malformed", "not a database", "out of memory")


def is_unavailable(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error means the store is unreachable or failing (rather than a bug)."""
    if type(exc) is sqlite3.DatabaseError:
        return True
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(m in message for m in UNAVAILABLE_MESSAGES)


def parse_url(url: str) -> str:
    """The database path of a ``sqlite://`` URL (``:memory:`` for an in-memory database)."""
    parts = urlsplit(url)
    if parts.scheme != "sqlite":
        raise ValueError(f"not an sqlite:// URL: {url}")
    if parts.netloc:
        raise ValueError(f"sqlite URLs have no host: use sqlite:///relative.db or sqlite:////abs.db, not {url}")
    path = unquote(parts.path)
    if path in ("", "/", "/:memory:"):
        return ":memory:"
    return os.path.abspath(path[1:])
