"""Typed columns: the declared fields of a stream with a schema, kept out of the JSON documents in a table of
their own, so that filters and aggregations over them read plain columns instead of parsing JSON per row.

Why: reading a field with ``json_extract`` parses the whole document, about 1 µs per row and field on SQLite
3.40; a grouped average over a million events parsed every document three times. A stream whose `Stream.schema`
declares fields (`FieldSpec`: the values live in `Event.data` under ``path or name``) gets a table
``typed_<stream id>`` with one row per event::

    (timestamp, seq, c0, c1, ...)  PRIMARY KEY (timestamp, seq), WITHOUT ROWID

clustered by event time, so a time range is one contiguous read of the table alone, and joined to ``events``
on ``(timestamp, seq)`` when a query also needs the documents. The catalog (``typed_tables``,
``typed_columns``: migration 3) maps each stored path to its column.

Rules that keep results identical to reading the JSON (`gateway.query.semantics` is the reference):

- A column holds exactly what ``json_extract`` returns for the path when that is a scalar (text, integer,
  real; booleans as 1/0; absent or null as NULL), whatever type the schema declares. The declared type is a
  hint only: a value of another type is stored as it is and compares as it would in JSON.
- A value a column cannot represent (an array, an object, an integer beyond 64 bits, text SQLite would not
  return as it is) marks the column inexact (``typed_columns.exact = 0``) in the appending transaction; an
  inexact column is never read again (the JSON is), so it costs nothing to be conservative.
- Rows are written by `append` in the same transaction (and savepoint) as the events, only for events that
  were new (a duplicate id adds no row). A table or column added for a stream that already has events is
  filled by `backfill` in chunks of `BACKFILL_CHUNK` events, each its own transaction (the write lock is never
  held long); until the fill is complete (``typed_tables.backfill_to`` is NULL) no query reads the table, so
  a crash mid-fill only delays its use (the backend finishes the fill when the database is next opened).
- Renaming a field changes no path, so it touches nothing here; adding fields is ``ALTER TABLE ADD COLUMN``
  plus a fill; deleting the stream drops the table in the transaction that tombstones the stream.
- Writers cache the catalog per connection state, keyed by SQLite's ``PRAGMA schema_version``: every change
  of which streams have which columns is DDL, which bumps it, so a worker never writes with a stale layout.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from gateway.events import FieldSpec

from . import multirow

BACKFILL_CHUNK = 5000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
#: Marks a value no column can hold (see the module docstring).
IRREGULAR: Any = object()


@dataclass(frozen=True)
class TypedTable:
    """What a read may use: the table of one stream (complete) and its exact columns by ``data.`` field."""

    name: str
    columns: dict[str, str]


@dataclass
class Layout:
    """What a writer needs of one typed stream: its table and every column's path (as keys)."""

    stream_id: int
    table: str
    columns: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)

    def insert(self, replace: bool = False) -> str:
        """The INSERT of a row (`replace`: over an older copy, when filling)."""
        return f"{self.head(replace)} VALUES ({', '.join('?' * (2 + len(self.columns)))})"

    def head(self, replace: bool = False, seq_first: bool = False) -> str:
        """The INSERT statement up to its VALUES (for `multirow`: rows of ``2 + len(columns)`` values, the seq
        first when `seq_first`)."""
        names = ["seq", "timestamp"] if seq_first else ["timestamp", "seq"]
        names += [f"c{pos}" for pos, _ in self.columns]
        return f"INSERT{' OR REPLACE' if replace else ''} INTO {self.table} ({', '.join(names)})"


@dataclass
class Prepared:
    """Typed rows built before the write lock (`Writer.prepare`): for `layout`, ``timestamp, c...`` per event."""

    layout: Layout
    cells: list[Any]
    irregular: set[int]


def table_name(stream_id: int) -> str:
    return f"typed_{int(stream_id)}"


def usable_path(path: str) -> bool:
    """Whether a stored path gets a column: the paths the JSON compiler can address (no empty segment, no
    double quote), so that a query gives the same answer (or the same error) with or without the column."""
    keys = path.split(".")
    return all(keys) and not any('"' in key for key in keys)


def wanted_paths(schema: Sequence[FieldSpec] | None) -> list[str]:
    """The stored paths of a schema that get columns, in schema order (object fields hold no scalar)."""
    paths: list[str] = []
    for spec in schema or ():
        path = spec.path or spec.name
        if spec.type != "object" and usable_path(path) and path not in paths:
            paths.append(path)
    return paths


# -- values --------------------------------------------------------------------------------------------------
def column_value(data: Any, keys: tuple[str, ...]) -> Any:
    """What ``json_extract`` returns for the path in the stored document of `data` (None for absent or null),
    or `IRREGULAR` when no column may stand for it."""
    node = data
    for key in keys:
        if not isinstance(node, dict):
            return IRREGULAR if isinstance(node, list | tuple) else None
        if key in node:
            node = node[key]
        elif any(not isinstance(k, str) for k in node):
            return IRREGULAR  # a key the JSON text spells as this one (1 -> "1") may be there
        else:
            return None
    cls = node.__class__
    if cls is str:
        if node.isascii():
            return node if "\x00" not in node else IRREGULAR
        try:
            node.encode("utf-8")
        except UnicodeEncodeError:
            return IRREGULAR
        return node
    if cls is int:
        return node if _INT64_MIN <= node <= _INT64_MAX else IRREGULAR
    if cls is float or cls is bool or node is None:
        return node if cls is not bool else int(node)
    if isinstance(node, str):
        return column_value({"v": str(node)}, ("v",))
    if isinstance(node, bool):
        return int(node)
    if isinstance(node, int):
        return column_value({"v": int(node)}, ("v",))
    if isinstance(node, float):
        return float(node)
    return IRREGULAR


def typed_rows(layout: Layout, items: Iterable[tuple[int, int, Any]], irregular: set[int]) -> list[tuple[Any, ...]]:
    """The table rows of ``(timestamp, seq, data)`` items; positions of columns meeting an irregular value are
    added to `irregular` (their cell is NULL)."""
    rows = []
    columns = [(pos, keys, keys[0] if len(keys) == 1 else None) for pos, keys in layout.columns]
    for timestamp, seq, data in items:
        row = [timestamp, seq]
        top = data.__class__ is dict
        for pos, keys, key in columns:
            if key is not None and top:  # the common case inline: a top-level float, plain text, int64 or null
                value = data.get(key, IRREGULAR)
                cls = value.__class__
                if cls is float or value is None or (cls is str and value.isascii() and "\x00" not in value) \
                        or (cls is int and _INT64_MIN <= value <= _INT64_MAX):
                    row.append(value)
                    continue
            value = column_value(data, keys)
            if value is IRREGULAR:
                irregular.add(pos)
                value = None
            row.append(value)
        rows.append(tuple(row))
    return rows


def flat_cells(layout: Layout, items: Sequence[tuple[int, Any]], irregular: set[int]) -> list[Any]:
    """``timestamp, c0, c1, ...`` of each ``(timestamp, data)`` item, one flat list: the cells `typed_rows` gives
    (same rules), computed column by column, so that the common case (top-level keys holding floats, plain
    text, 64-bit integers or nulls) is checked by set, join, min and max over the column instead of value by
    value. What `Writer.prepare` builds away from the write lock."""
    datas = [data for _, data in items]
    flat_dicts = all(data.__class__ is dict for data in datas)
    columns: list[list[Any]] = [[timestamp for timestamp, _ in items]]
    for pos, keys in layout.columns:
        values = [data.get(keys[0], IRREGULAR) for data in datas] if flat_dicts and len(keys) == 1 else None
        if values is None or not _plain_column(values):
            values = [column_value(data, keys) for data in datas]
            if any(value is IRREGULAR for value in values):
                irregular.add(pos)
                values = [None if value is IRREGULAR else value for value in values]
        columns.append(values)
    return list(chain.from_iterable(zip(*columns, strict=True)))


_PLAIN = frozenset((float, str, int, type(None)))


def _plain_column(values: list[Any]) -> bool:
    """Whether every value is a float, null, ASCII text without NUL or a 64-bit integer (a column holds them
    as they are; `column_value` returns each unchanged)."""
    classes = set(map(type, values))
    if not classes <= _PLAIN:
        return False
    if str in classes:
        text = "".join([value for value in values if value.__class__ is str])
        if not text.isascii() or "\x00" in text:
            return False
    if int in classes:
        ints = [value for value in values if value.__class__ is int]
        if min(ints) < _INT64_MIN or max(ints) > _INT64_MAX:
            return False
    return True


def mark_inexact(conn: sqlite3.Connection, stream_id: int, positions: Iterable[int]) -> None:
    conn.executemany("UPDATE typed_columns SET exact = 0 WHERE stream_id = ? AND position = ? AND exact = 1",
                     [(stream_id, pos) for pos in sorted(positions)])


# -- catalog -------------------------------------------------------------------------------------------------
def declare(conn: sqlite3.Connection, stream_id: int, schema: Sequence[FieldSpec] | None) -> bool:
    """Give the stream the columns its schema declares (inside the caller's write transaction); True when a
    fill is due. A schema without usable fields drops the table; columns no longer declared are kept (still
    exact copies, and dropping them would be DDL for nothing)."""
    paths = wanted_paths(schema)
    table = table_name(stream_id)
    exists = conn.execute("SELECT 1 FROM typed_tables WHERE stream_id = ?", (stream_id,)).fetchone() is not None
    if not paths:
        if exists:
            drop(conn, stream_id)
        return False
    known = dict(conn.execute("SELECT path, position FROM typed_columns WHERE stream_id = ?", (stream_id,)))
    new = [path for path in paths if path not in known]
    if exists and not new:
        return False
    first = max(known.values(), default=-1) + 1
    positions = list(range(first, first + len(new)))
    if not exists:
        cells = "".join(f", c{pos}" for pos in positions)
        conn.execute(f"CREATE TABLE {table} (timestamp INTEGER NOT NULL, seq INTEGER NOT NULL{cells}, "
                     "PRIMARY KEY (timestamp, seq)) WITHOUT ROWID")
    else:
        for pos in positions:
            conn.execute(f"ALTER TABLE {table} ADD COLUMN c{pos}")
    last = conn.execute("SELECT max(seq) FROM events WHERE stream_id = ?", (stream_id,)).fetchone()[0]
    conn.execute("INSERT INTO typed_tables (stream_id, backfill_from, backfill_to) VALUES (?, 0, ?) "
                 "ON CONFLICT (stream_id) DO UPDATE SET backfill_from = 0, backfill_to = excluded.backfill_to",
                 (stream_id, last))
    conn.executemany("INSERT INTO typed_columns (stream_id, position, path) VALUES (?, ?, ?)",
                     [(stream_id, pos, path) for pos, path in zip(positions, new, strict=True)])
    return last is not None


def drop(conn: sqlite3.Connection, stream_id: int) -> None:
    """Remove the stream's table and catalog rows (inside the caller's write transaction)."""
    conn.execute(f"DROP TABLE IF EXISTS {table_name(stream_id)}")
    conn.execute("DELETE FROM typed_columns WHERE stream_id = ?", (stream_id,))
    conn.execute("DELETE FROM typed_tables WHERE stream_id = ?", (stream_id,))


def declare_missing(conn: sqlite3.Connection, tombstone: str) -> None:
    """Declare the columns of every stream whose schema has fields without one (a database written before
    typed columns existed), except streams being deleted (tenant `tombstone`); the fills run later (`pending`)."""
    rows = conn.execute("SELECT id, schema FROM streams WHERE schema IS NOT NULL AND tenant <> ?",
                        (tombstone,)).fetchall()
    for stream_id, text in rows:
        schema = [FieldSpec(d["name"], d["type"], d.get("path")) for d in json.loads(text)]
        declare(conn, stream_id, schema)


def pending(conn: sqlite3.Connection) -> list[int]:
    """Streams whose table still has to be filled."""
    return [row[0] for row in conn.execute("SELECT stream_id FROM typed_tables WHERE backfill_to IS NOT NULL "
                                           "ORDER BY stream_id")]


def layout_of(conn: sqlite3.Connection, stream_id: int) -> Layout:
    layout = Layout(stream_id, table_name(stream_id))
    for pos, path in conn.execute("SELECT position, path FROM typed_columns WHERE stream_id = ? ORDER BY position",
                                  (stream_id,)):
        layout.columns.append((pos, tuple(path.split("."))))
    return layout


def backfill_step(conn: sqlite3.Connection, stream_id: int, chunk: int = BACKFILL_CHUNK) -> bool:
    """Fill the next chunk of the stream's table (inside the caller's write transaction); True when more
    remains. Reads the stored documents, so the values are the ones a reader of the JSON sees."""
    row = conn.execute("SELECT backfill_from, backfill_to FROM typed_tables WHERE stream_id = ?",
                       (stream_id,)).fetchone()
    if row is None or row[1] is None:
        return False
    start, end = row
    # By seq range (the rowid), not the stream's time index: that would sort all its events for every chunk.
    events = conn.execute("SELECT seq, timestamp, data FROM events WHERE seq >= ? AND seq <= ? AND +stream_id = ? "
                          "ORDER BY seq LIMIT ?", (start, end, stream_id, chunk)).fetchall()
    layout = layout_of(conn, stream_id)
    irregular: set[int] = set()
    rows = typed_rows(layout, ((ts, seq, json.loads(text)) for seq, ts, text in events), irregular)
    if rows:
        conn.executemany(layout.insert(replace=True), rows)
    mark_inexact(conn, stream_id, irregular)
    more = len(events) == chunk and events[-1][0] < end
    if more:
        conn.execute("UPDATE typed_tables SET backfill_from = ? WHERE stream_id = ?", (events[-1][0] + 1, stream_id))
    else:
        conn.execute("UPDATE typed_tables SET backfill_from = 0, backfill_to = NULL WHERE stream_id = ?",
                     (stream_id,))
    return more


def readable(conn: sqlite3.Connection, stream_id: int) -> TypedTable | None:
    """The stream's table for a read (inside the reading transaction), or None: none, or not filled yet."""
    rows = conn.execute("SELECT t.backfill_to IS NULL, c.position, c.path, c.exact FROM typed_tables t "
                        "JOIN typed_columns c ON c.stream_id = t.stream_id WHERE t.stream_id = ?",
                        (stream_id,)).fetchall()
    if not rows or not rows[0][0]:
        return None
    return TypedTable(table_name(stream_id), {f"data.{path}": f"c{pos}" for _, pos, path, exact in rows if exact})


class Writer:
    """The typed layouts of one connection's database, reloaded whenever its schema version changes."""

    def __init__(self) -> None:
        self.version: tuple[int, int] | None = None
        self.layouts: dict[tuple[str, str, str], Layout] = {}

    def refresh(self, conn: sqlite3.Connection) -> dict[tuple[str, str, str], Layout]:
        """The layouts by (tenant, plugin, name), current for the caller's write transaction (the cache is
        also keyed by the connection: a file replaced at the path is opened by a new one)."""
        version = (id(conn), conn.execute("PRAGMA schema_version").fetchone()[0])
        if version != self.version:
            layouts = {}
            for tenant, plugin, name, sid in conn.execute(
                    "SELECT s.tenant, s.plugin, s.name, s.id FROM typed_tables t JOIN streams s ON s.id = t.stream_id"):
                layouts[(tenant, plugin, name)] = layout_of(conn, sid)
            self.layouts, self.version = layouts, version
        return self.layouts

    def prepare(self, key: tuple[str, str, str], items: Sequence[tuple[int, Any]]) -> Prepared | None:
        """The typed rows of a one-stream batch's ``(timestamp, data)`` items, for the stream's layout as last seen
        (None: the stream has no table, as far as known). Called by the appending thread, before the write lock;
        `write_prepared` uses them only if that layout is still the current one."""
        layout = self.layouts.get(key)
        if layout is None:
            return None
        irregular: set[int] = set()
        return Prepared(layout, flat_cells(layout, items, irregular), irregular)

    def write_prepared(self, conn: sqlite3.Connection, key: tuple[str, str, str], prepared: Prepared | None,
                       first_seq: int) -> bool:
        """Insert prepared typed rows of a batch whose events were all new, with seqs ``first_seq + i``; False
        (nothing written) when the stream's current layout is not the one they were prepared for."""
        layout = self.layouts.get(key)
        if prepared is None or layout is not prepared.layout:
            return layout is None and prepared is None
        width = 1 + len(layout.columns)
        multirow.insert_sequenced(conn, layout.head(seq_first=True), (), width, prepared.cells, first_seq)
        if prepared.irregular:
            mark_inexact(conn, layout.stream_id, prepared.irregular)
        return True

    def write(self, conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], datas: Sequence[Any],
              first_seq: int, inserted: set[int] | None) -> None:
        """Typed rows of a batch just inserted with seqs ``first_seq + i`` (`inserted`: the seqs that were new,
        None when all were); `rows` are the event rows (tenant, plugin, stream, id, type, timestamp, ...)."""
        groups: dict[tuple[str, str, str], list[tuple[int, int, Any]]] = {}
        for i, (row, data) in enumerate(zip(rows, datas, strict=True)):
            layout = self.layouts.get(row[:3])
            seq = first_seq + i
            if layout is not None and (inserted is None or seq in inserted):
                groups.setdefault(row[:3], []).append((row[5], seq, data))
        for key, items in groups.items():
            layout = self.layouts[key]
            irregular: set[int] = set()
            multirow.insert(conn, layout.head(), 2 + len(layout.columns), typed_rows(layout, items, irregular))
            if irregular:
                mark_inexact(conn, layout.stream_id, irregular)
