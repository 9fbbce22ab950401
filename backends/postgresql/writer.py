"""Appends: a batch of events in one statement (small batches) or one COPY transaction (large ones).

Each event becomes a row of text values (`row`); stream ids are resolved inside the INSERT by a LEFT JOIN
on the catalog, so a batch naming a missing stream produces a NULL ``stream_id``, which the NOT NULL
constraint rejects: the whole statement (or transaction) fails, nothing is stored, and the caller raises
`StreamNotFound`. A stream deleted concurrently fails the foreign key the same way. ``ON CONFLICT
(stream_id, id) DO NOTHING`` skips ids a stream already holds, also under racing inserts from other hosts;
the row count is the number of new events. Rows are inserted in batch order (``ORDER BY ord``), so
insertion order (``seq``) breaks sort ties as in the other backends.

* Up to `VALUES_ROWS` events (the one-event requests of most APIs): a single autocommit statement, one
  round trip, committed before it returns. With ``create_streams`` the missing streams are inserted by a
  data-modifying CTE of the same statement.
* More: in one transaction, the missing streams are inserted (with ``create_streams``), the rows COPYed
  into the connection's temporary table (`pool.INCOMING`, emptied at commit), then inserted from it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg

from gateway.events import Event, now_ms

from . import codec
from .pool import INCOMING
from .reference import check_event

#: Batches up to this size are one statement; larger ones go through COPY.
VALUES_ROWS = 32
#: Columns of a row: the stream's (tenant, plugin, stored name), then the event's values.
COLUMNS = "t, p, n, id, type, timestamp, received_at, user_id, session_id, data, doc"
_TYPES = ("text", "text", "text", "text", "jsonb", "bigint", "bigint", "jsonb", "jsonb", "jsonb", "text")
_VALUES_ROW = "(" + ", ".join(f"%s::{t}" for t in _TYPES) + ", %s::int)"
_TARGET = "stream_id, id, type, timestamp, received_at, user_id, session_id, data, doc"


def row(event: Event) -> list[Any]:
    """The stored values of an event (`ValueError` for an event no backend stores)."""
    text = check_event(event)  # the document's canonical text: compact ASCII JSON
    return [event.tenant, event.plugin, codec.encode_str(event.stream), codec.encode_str(event.id),
            codec.scalar_text(event.type, "type"), event.timestamp, event.received_at,
            codec.scalar_text(event.user_id, "user_id"), codec.scalar_text(event.session_id, "session_id"),
            codec.document_text(event.data, text), text]


class Writer:
    """The INSERT statements of one schema's tables."""

    def __init__(self, streams: str, events: str) -> None:
        self.streams, self.events = streams, events

    def _new_streams(self, source: str) -> str:
        """INSERT of the streams named in `source` (rows t, p, n) that the catalog lacks."""
        return (f"INSERT INTO {self.streams} (tenant, plugin, name, created_at) SELECT DISTINCT w.t, w.p, w.n, "
                f"%s::bigint FROM {source} AS w WHERE NOT EXISTS (SELECT 1 FROM {self.streams} s WHERE "
                "s.tenant = w.t AND s.plugin = w.p AND s.name = w.n) ON CONFLICT DO NOTHING")

    def _select(self, source: str, made: bool) -> str:
        """SELECT of the events' target columns from `source` (aliased v), stream ids joined in."""
        stream_id = "coalesce(m.id, s.id)" if made else "s.id"
        join = " LEFT JOIN made m ON m.tenant = v.t AND m.plugin = v.p AND m.name = v.n" if made else ""
        return (f"SELECT {stream_id}, v.id, v.type, v.timestamp, v.received_at, v.user_id, v.session_id, v.data, "
                f"v.doc FROM {source} LEFT JOIN {self.streams} s ON s.tenant = v.t AND s.plugin = v.p "
                f"AND s.name = v.n{join} ORDER BY v.ord")

    def insert(self, conn: psycopg.Connection, rows: Sequence[list[Any]], create_streams: bool) -> int:
        """Store the rows; the number of new events. Raises `psycopg.errors.NotNullViolation` or
        `ForeignKeyViolation` (nothing stored) when a stream is missing."""
        if len(rows) <= VALUES_ROWS:
            return self._statement(conn, rows, create_streams)
        with conn.transaction():
            if create_streams:
                names = list(dict.fromkeys(tuple(r[:3]) for r in rows))
                source = "(SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) AS u(t, p, n))"
                conn.execute(self._new_streams(source), (now_ms(), *map(list, zip(*names, strict=True))))
            with conn.cursor().copy(f"COPY {INCOMING} ({COLUMNS}) FROM STDIN") as copy:
                for values in rows:
                    copy.write_row(values)
            return conn.execute(f"INSERT INTO {self.events} ({_TARGET}) {self._select(INCOMING + ' v', False)} "
                                "ON CONFLICT (stream_id, id) DO NOTHING").rowcount

    def _statement(self, conn: psycopg.Connection, rows: Sequence[list[Any]], create_streams: bool) -> int:
        values = ", ".join([_VALUES_ROW] * len(rows))
        params: list[Any] = [v for i, values_ in enumerate(rows) for v in (*values_, i)]
        source = f"(VALUES {values}) AS v({COLUMNS}, ord)"
        if not create_streams:
            return conn.execute(f"INSERT INTO {self.events} ({_TARGET}) {self._select(source, False)} "
                                "ON CONFLICT (stream_id, id) DO NOTHING", params).rowcount
        sql = (f"WITH batch AS (SELECT * FROM {source}), made AS ({self._new_streams('batch')} "
               f"RETURNING id, tenant, plugin, name) INSERT INTO {self.events} ({_TARGET}) "
               f"{self._select('batch v', True)} ON CONFLICT (stream_id, id) DO NOTHING")
        params.append(now_ms())
        try:
            return conn.execute(sql, params).rowcount
        except psycopg.errors.NotNullViolation:
            # Another host created one of the streams after this statement's snapshot: it exists now.
            return conn.execute(sql, params).rowcount
