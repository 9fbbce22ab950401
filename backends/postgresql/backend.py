"""`PostgresBackend`: streams and events in PostgreSQL, shared by any number of gateway hosts.

Appends are atomic per batch (`writer`: one statement, or one COPY transaction for large batches) and
return only after COMMIT (``synchronous_commit`` as the server is configured: on by default). A batch
naming a missing stream stores nothing (`StreamNotFound`).

Queries run in one read-only REPEATABLE READ transaction (page, total and aggregations see one snapshot);
`compiler` and `aggregate` hold the SQL.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import psycopg

from gateway.events import Event, FieldSpec, Stream
from gateway.query import Condition, Filter, Query, QueryResult
from gateway.storage import (
    Backend,
    SchemaConflict,
    StreamExists,
    StreamNotFound,
    schema_from_json,
    schema_to_json,
)

from . import codec, settings, writer
from .aggregate import Aggregator
from .compiler import CONSTANT_FIELDS, Compiler, sort_value
from .pool import Database
from .reference import decode_position, encode_position, fill, native_tree, value_matches
from .schema import quoted

_MISSING_STREAM = "the batch names a stream that does not exist; nothing was stored"
_EVENT_COLUMNS = "e.seq, e.stream_id, e.id, e.type, e.timestamp, e.received_at, e.user_id, e.session_id, e.doc"
# Rows a scan fetches per round trip.
_SCAN_BATCH = 2000
# Up to this many streams, a page in time order reads each stream's time index in order and merges.
_MAX_UNION_STREAMS = 32


class PostgresBackend(Backend):
    """The ``postgresql://`` and ``postgres://`` backend (options: `backends.postgresql.settings`)."""

    schemes = settings.SCHEMES
    multiprocess_safe = True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.settings = settings.parse(url, self.options)
        self.db = Database(self.settings)
        s = quoted(self.settings.schema)
        self.streams_table, self.events_table = f"{s}.streams", f"{s}.events"
        self.writer = writer.Writer(self.streams_table, self.events_table)
        # Migrate now when the server answers; otherwise on first use (the gateway starts anyway).
        with contextlib.suppress(psycopg.OperationalError):
            self.db.ensure_schema()

    # -- catalog -----------------------------------------------------------------------------------
    @staticmethod
    def _stream(row: Sequence[Any]) -> Stream:
        tenant, plugin, name, created_at, schema = row
        fields = schema_from_json(schema)
        return Stream(tenant=tenant, plugin=plugin, name=codec.decode_str(name), created_at=created_at, schema=fields)

    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""
        schema = None if stream.schema is None else json.dumps(schema_to_json(stream.schema))

        def work(conn: psycopg.Connection) -> int:
            return conn.execute(f"INSERT INTO {self.streams_table} (tenant, plugin, name, created_at, schema) "
                                "VALUES (%s, %s, %s, %s, %s::jsonb) ON CONFLICT DO NOTHING",
                                (stream.tenant, stream.plugin, codec.encode_str(stream.name), stream.created_at,
                                 schema)).rowcount

        if not self.db.run(work):
            raise StreamExists(f"stream [{stream.name}] already exists")
        return Stream(tenant=stream.tenant, plugin=stream.plugin, name=stream.name, created_at=stream.created_at,
                      schema=stream.schema)

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """The stream, or None."""
        row = self.db.run(lambda conn: conn.execute(
            f"SELECT tenant, plugin, name, created_at, schema FROM {self.streams_table} "
            "WHERE tenant = %s AND plugin = %s AND name = %s", (tenant, plugin, codec.encode_str(name))).fetchone())
        return None if row is None else self._stream(row)

    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Every stream of the tenant for the plugin, ordered by name (code point order)."""
        rows = self.db.run(lambda conn: conn.execute(
            f"SELECT tenant, plugin, name, created_at, schema FROM {self.streams_table} "
            'WHERE tenant = %s AND plugin = %s ORDER BY name COLLATE "C"', (tenant, plugin)).fetchall())
        return sorted((self._stream(row) for row in rows), key=lambda s: s.name)

    def update_stream_schema(self, tenant: str, plugin: str, name: str, schema: tuple[FieldSpec, ...] | None, *,
                             expected: tuple[FieldSpec, ...] | None) -> Stream:
        """Replace the schema if it is still `expected`: the row is read ``FOR UPDATE`` and written in one
        transaction (a raise rolls it back)."""
        text = None if schema is None else json.dumps(schema_to_json(schema))

        def work(conn: psycopg.Connection) -> int:
            row = conn.execute(f"SELECT tenant, plugin, name, created_at, schema FROM {self.streams_table} "
                               "WHERE tenant = %s AND plugin = %s AND name = %s FOR UPDATE",
                               (tenant, plugin, codec.encode_str(name))).fetchone()
            if row is None:
                raise StreamNotFound(f"stream [{name}] does not exist")
            if self._stream(row).schema != (None if expected is None else tuple(expected)):
                raise SchemaConflict(f"the schema of stream [{name}] changed meanwhile")
            conn.execute(f"UPDATE {self.streams_table} SET schema = %s::jsonb "
                         "WHERE tenant = %s AND plugin = %s AND name = %s",
                         (text, tenant, plugin, codec.encode_str(name)))
            return row[3]

        created_at = self.db.run(work)
        return Stream(tenant=tenant, plugin=plugin, name=name, created_at=created_at,
                      schema=None if schema is None else tuple(schema))

    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream and, by cascade in the same transaction, its events."""
        deleted = self.db.run(lambda conn: conn.execute(
            f"DELETE FROM {self.streams_table} WHERE tenant = %s AND plugin = %s AND name = %s",
            (tenant, plugin, codec.encode_str(name))).rowcount)
        return bool(deleted)

    def plugins_of(self, tenant: str) -> list[str]:
        """The plugins that have streams for the tenant, sorted."""
        rows = self.db.run(lambda conn: conn.execute(
            f"SELECT DISTINCT plugin FROM {self.streams_table} WHERE tenant = %s", (tenant,)).fetchall())
        return sorted(row[0] for row in rows)

    # -- events ------------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], create_streams: bool = False) -> int:
        """Store the batch atomically (`writer`); return how many events were new (duplicate ids skipped)."""
        rows = [writer.row(event) for event in events]
        if not rows:
            return 0

        def work(conn: psycopg.Connection) -> int:
            try:
                return self.writer.insert(conn, rows, create_streams)
            except (psycopg.errors.NotNullViolation, psycopg.errors.ForeignKeyViolation) as exc:
                raise StreamNotFound(_MISSING_STREAM) from exc

        return self.db.run(work)

    # -- queries -----------------------------------------------------------------------------------
    def pushable(self, condition: Condition) -> bool:
        """Native filters and AND/OR/NOT trees of them compile to SQL (``regex`` and computed fields do
        not: the core evaluates those over `scan`)."""
        return native_tree(condition)

    def answer(self, query: Query) -> QueryResult:
        """Answer a native query (`native`) with the semantics documented in `gateway.query`, in SQL."""
        position = decode_position(query.cursor, len(query.sort)) if query.cursor is not None else None
        return self.db.run(lambda conn: self._query(conn, query, position))

    def _query(self, conn: psycopg.Connection, query: Query, position: tuple[list[Any], int] | None) -> QueryResult:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            sids = self._query_streams(conn, query)
            if not sids:
                return QueryResult(total=0 if query.count_total else None, aggregations=fill(query.aggregations, {}))
            c = Compiler(query, sids)
            stream_cond, rest = self._conditions(c, query, sids)
            where = f"{stream_cond} AND {rest}"
            result = QueryResult()

            def rows(sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
                return conn.execute(sql, params).fetchall()

            if query.count_total:
                result.total = rows(f"SELECT count(*) FROM {self.events_table} e WHERE {where}", c.params)[0][0]
            if query.limit:
                self._page(rows, c, query, sids, rest, where, position, result)
            if query.aggregations:
                result.aggregations = Aggregator(rows, c, self.events_table, where).run(query.aggregations)
            return result

    def scan(self, query: Query) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of the events of the query's streams and range matching its filters, streamed
        through a server-side cursor in one read-only snapshot (for the core evaluator)."""
        with self.db.session() as conn, conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            sids = self._query_streams(conn, query)
            if not sids:
                return
            c = Compiler(query, sids)
            stream_cond, rest = self._conditions(c, query, sids)
            with conn.cursor(name="event_gateway_scan") as cursor:
                cursor.itersize = _SCAN_BATCH
                cursor.execute(f"SELECT {_EVENT_COLUMNS} FROM {self.events_table} e WHERE {stream_cond} AND {rest}",
                               c.params)
                for row in cursor:
                    yield row[0], self._event(query, sids, row)

    @staticmethod
    def _conditions(c: Compiler, query: Query, sids: Mapping[int, str]) -> tuple[str, str]:
        """The WHERE of a query's events: the stream condition, and the time range and filters."""
        # One stream: a plain equality, so that the indexes also give the page order.
        stream_cond = f"e.stream_id = {c.bind(next(iter(sids)))}" if len(sids) == 1 else \
            f"e.stream_id = ANY({c.bind(list(sids), '::bigint[]')})"
        conds = []
        if query.start is not None:
            conds.append(f"e.timestamp >= {c.bind(query.start)}")
        if query.end is not None:
            conds.append(f"e.timestamp < {c.bind(query.end)}")
        conds.extend(c.filters(query.filters))
        return stream_cond, " AND ".join(conds) or "true"

    def _event(self, query: Query, sids: Mapping[int, str], row: Sequence[Any]) -> Event:
        """An event from a row of `_EVENT_COLUMNS`."""
        return Event(tenant=query.tenant, plugin=query.plugin, stream=sids[row[1]], id=codec.decode_str(row[2]),
                     type=row[3], timestamp=row[4], received_at=row[5], user_id=row[6], session_id=row[7],
                     data=json.loads(row[8]))

    def _query_streams(self, conn: psycopg.Connection, query: Query) -> dict[int, str]:
        """Ids and names of the streams a query reads, after its filters on tenant, plugin and stream."""
        sql = f"SELECT id, name FROM {self.streams_table} WHERE tenant = %s AND plugin = %s"
        params: list[Any] = [query.tenant, query.plugin]
        if query.streams is not None:
            if not query.streams:
                return {}
            sql += " AND name = ANY(%s::text[])"
            params.append([codec.encode_str(name) for name in query.streams])
        constant = [f for f in query.filters if isinstance(f, Filter) and f.field in CONSTANT_FIELDS]
        found = {}
        for sid, stored in conn.execute(sql + " ORDER BY id", params).fetchall():
            name = codec.decode_str(stored)
            values = {"tenant": query.tenant, "plugin": query.plugin, "stream": name}
            if all(value_matches(values[f.field], f.op, f.value) for f in constant):
                found[sid] = name
        return found

    def _page(self, rows: Any, c: Compiler, query: Query, sids: Mapping[int, str], rest: str, where: str,
              position: tuple[list[Any], int] | None, result: QueryResult) -> None:
        """One page of events (one row more than asked, to know whether a next page exists)."""
        keys = [c.sort_key(sort, f"o{i}") for i, sort in enumerate(query.sort)]
        joins = "".join(f" {k.join}" for k in keys if k.join)
        if position is not None:
            after = c.after_cursor(keys, position[0], position[1])
            rest, where = f"{rest} AND {after}", f"{where} AND {after}"
        last = "DESC" if query.sort and query.sort[-1].descending else "ASC"
        order = [term for k in keys for term in k.order()] + [f"e.seq {last}"]
        columns = _EVENT_COLUMNS + "".join(f", {col} AS s{i}" for i, col in enumerate(col for k in keys
                                                                                      for col in k.columns()))
        limit, offset = c.bind(query.limit + 1), c.bind(query.offset)
        if [s.field for s in query.sort] == ["timestamp"] and 1 < len(sids) <= _MAX_UNION_STREAMS:
            arm_limit = c.bind(query.offset + query.limit + 1)
            arms = [f"(SELECT {columns} FROM {self.events_table} e WHERE e.stream_id = {c.bind(sid)} AND {rest} "
                    f"ORDER BY {', '.join(order)} LIMIT {arm_limit})" for sid in sids]
            outer = [f"s1 {'DESC' if query.sort[0].descending else 'ASC'}", f"seq {last}"]
            sql = f"{' UNION ALL '.join(arms)} ORDER BY {', '.join(outer)} LIMIT {limit} OFFSET {offset}"
        else:
            sql = (f"SELECT {columns} FROM {self.events_table} e{joins} WHERE {where} ORDER BY {', '.join(order)} "
                   f"LIMIT {limit} OFFSET {offset}")
        found = rows(sql, c.params)
        if len(found) > query.limit:
            found = found[: query.limit]
            last_row = found[-1]
            values = [sort_value(*last_row[9 + 3 * i: 12 + 3 * i]) for i in range(len(keys))]
            result.next_cursor = encode_position(values, last_row[0])
        result.events = [self._event(query, sids, row) for row in found]

    # -- operations --------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Server version, schema and its version, pool figures (no credentials, no database name)."""
        def work(conn: psycopg.Connection) -> tuple[str, int]:
            version = conn.execute("SHOW server_version").fetchone()[0]
            current = conn.execute(f"SELECT coalesce(max(version), 0) FROM {quoted(self.settings.schema)}"
                                   ".schema_version").fetchone()[0]
            return version, current

        version, current = self.db.run(work)
        return {"backend": "postgresql", "server_version": version,
                "schema": self.settings.schema, "schema_version": current, **self.db.stats()}

    def close(self) -> None:
        """Close this process's connections."""
        self.db.close()
