"""SQLite storage backend: durable single-file storage for one machine, safe under several workers.

The file is in WAL mode with ``synchronous=FULL``, so an acknowledged append survives a SIGKILL of the
worker (and a power cut). Every process and thread has its own connection (a connection made before a
gunicorn fork is never used by the child); writers serialize with ``BEGIN IMMEDIATE`` and wait up to
``busy_timeout_ms`` for each other. The schema is versioned (`MIGRATIONS`, table ``schema_version``).

Queries are compiled to SQL with the semantics of `gateway.query`: data fields are read with SQLite's
JSON functions (``json_each`` when the stored value is an array), and aggregations are computed in SQL
except percentiles, which read the sorted values. Table ``event_days`` (kept by triggers, in the
transaction that inserts or deletes the events) counts events per stream, type and UTC day: the total of
a query filtered only on the type, and its counts by type and calendar period, sum whole days from it
and count only the partial days at the edges of the range in the events. The Python reference for every rule lives in
`backends.memory`, which this module reuses for cursors, bucket ordering and percentiles.

URL forms: ``sqlite:///relative/path.db`` (relative to the working directory), ``sqlite:////abs/path.db``,
and ``sqlite://`` or ``sqlite:///:memory:`` for a private in-memory database (one connection behind a
lock; not shared between processes).
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import unquote, urlsplit

from gateway.events import EVENT_FIELDS, Event, FieldSpec, Stream, now_ms
from gateway.hookspecs import hookimpl
from gateway.query import Aggregation, Filter, Query, QueryError, QueryResult, Sort
from gateway.storage import Backend, BackendUnavailable, StreamExists, StreamNotFound

from .group_commit import GroupCommitter
from .memory import (
    FIXED_INTERVALS_MS,
    WEEK_ORIGIN_MS,
    aggregate,
    bucket_start,
    check_event,
    decode_cursor,
    empty_metric,
    encode_cursor,
    normalize_key,
    order_buckets,
    percentiles,
    value_class,
    value_matches,
)

DAY_MS = 86_400_000


def _day_of(ms: str) -> str:
    """SQL of the UTC epoch day number (floor) of an integer epoch-ms expression."""
    return f"({ms} / {DAY_MS} - ({ms} % {DAY_MS} < 0))"


_DAY_INCREMENT = (
    "INSERT INTO event_days (stream_id, type, day, n) "
    f"VALUES ({{row}}.stream_id, {{row}}.type, {_day_of('{row}.timestamp')}, 1) "
    "ON CONFLICT (stream_id, type, day) DO UPDATE SET n = n + 1;"
)
_DAY_DECREMENT = (
    "UPDATE event_days SET n = n - 1 WHERE rowid = (SELECT rowid FROM event_days WHERE stream_id = {row}.stream_id "
    f"AND type IS {{row}}.type AND day = {_day_of('{row}.timestamp')} LIMIT 1); "
    "DELETE FROM event_days WHERE stream_id = {row}.stream_id AND type IS {row}.type "
    f"AND day = {_day_of('{row}.timestamp')} AND n <= 0;"
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
               {_DAY_INCREMENT.format(row="NEW")}
           END""",
        f"""CREATE TRIGGER event_days_delete AFTER DELETE ON events BEGIN
               {_DAY_DECREMENT.format(row="OLD")}
           END""",
        f"""CREATE TRIGGER event_days_update AFTER UPDATE OF stream_id, type, timestamp ON events BEGIN
               {_DAY_DECREMENT.format(row="OLD")}
               {_DAY_INCREMENT.format(row="NEW")}
           END""",
        f"""INSERT INTO event_days (stream_id, type, day, n)
               SELECT stream_id, type, {_day_of("timestamp")}, count(*) FROM events GROUP BY 1, 2, 3""",
    ),
]

DEFAULT_BUSY_TIMEOUT_MS = 10_000

_INSERT = (
    "INSERT INTO events (stream_id, id, type, timestamp, received_at, user_id, session_id, data) "
    "VALUES ((SELECT id FROM streams WHERE tenant = ? AND plugin = ? AND name = ?), ?, ?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (stream_id, id) DO NOTHING"
)
#: tenant of a stream being deleted (no configured tenant can have it: tenants match [A-Za-z0-9_.-]+)
TOMBSTONE = "\x00deleted"
DELETE_CHUNK = 5000
_MISSING_STREAM = "the batch names a stream that does not exist; nothing was stored"
_EVENT_COLUMNS = "e.seq, e.stream_id, e.id, e.type, e.timestamp, e.received_at, e.user_id, e.session_id, e.data"
_UNAVAILABLE_MESSAGES = ("unable to open", "disk i/o", "locked", "busy", "readonly", "read-only", "disk is full",
                         "malformed", "not a database", "out of memory")
_NUM_TYPES = "('integer', 'real', 'true', 'false')"  # json_type() of numbers (booleans read as 1/0)
_SQL_NUM_TYPES = "('integer', 'real')"  # typeof() of numbers
_SCALAR_ELEMENT = "j.type NOT IN ('object', 'array', 'null')"
# Up to this many streams, a time-ordered page over several streams reads each stream's index in order.
_MAX_UNION_STREAMS = 32
# Connections inherited through fork: kept referenced so that garbage collection never closes them in the
# child (closing a parent's SQLite connection in a child can corrupt the parent's locks).
_INHERITED: list[sqlite3.Connection] = []


def _is_unavailable(exc: sqlite3.Error) -> bool:
    """Whether an SQLite error means the store is unreachable or failing (rather than a bug)."""
    if type(exc) is sqlite3.DatabaseError:
        return True
    message = str(exc).lower()
    return isinstance(exc, sqlite3.OperationalError) and any(m in message for m in _UNAVAILABLE_MESSAGES)


def encode_data(data: Mapping[str, Any]) -> str:
    """The stored JSON text of an event document.

    String filters pre-test rows with a substring search for the JSON encoding of the wanted value
    (`_Compiler._prefiltered`), which relies on this exact encoding: ASCII-only, compact, one escape per
    character. Changing it needs a migration rewriting every stored document.
    """
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


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


# -- query compilation -------------------------------------------------------------------------------
#: Top-level columns: SQL expression and what they can hold ("int" and "text" are never null).
_COLUMNS = {
    "id": ("e.id", "text"),
    "type": ("e.type", "any"),
    "timestamp": ("e.timestamp", "int"),
    "received_at": ("e.received_at", "int"),
    "user_id": ("e.user_id", "any"),
    "session_id": ("e.session_id", "any"),
}
_CONSTANT_FIELDS = ("tenant", "plugin", "stream")
assert set(_COLUMNS) | set(_CONSTANT_FIELDS) == set(EVENT_FIELDS)


def _json_path(field: str) -> str:
    """The SQL string literal of the JSON path of a ``data.`` field (``data.a.b`` -> ``'$."a"."b"'``)."""
    keys = field.split(".")[1:]
    if any('"' in key for key in keys):
        raise QueryError(f"field [{field}]: the SQLite backend cannot address keys containing '\"'")
    path = "$" + "".join(f'."{key}"' for key in keys)
    return "'" + path.replace("'", "''") + "'"


class _Compiler:
    """Builds SQL fragments for one query; values are bound as named parameters in `params`."""

    def __init__(self, query: Query, stream_names: Mapping[int, str]) -> None:
        self.query = query
        self.stream_names = stream_names
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        """A placeholder bound to `value`."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    def bind_list(self, values: Sequence[Any]) -> str:
        """Comma-separated placeholders for a list of values."""
        return ", ".join(self.bind(v) for v in values)

    # -- field access ----------------------------------------------------------------------------
    def column(self, field: str) -> tuple[str, str]:
        """SQL expression and kind of a top-level field (constant fields become expressions too)."""
        if field in _COLUMNS:
            return _COLUMNS[field]
        if field == "stream":
            cases = " ".join(f"WHEN {sid} THEN {self.bind(name)}" for sid, name in self.stream_names.items())
            return (f"(CASE e.stream_id {cases} END)" if cases else "NULL"), "any"
        return self.bind(getattr(self.query, field)), "any"

    @staticmethod
    def numeric(expr: str, kind: str) -> str:
        """The expression where it holds a number, else NULL."""
        if kind == "int":
            return expr
        if kind == "text":
            return "NULL"
        return f"(CASE WHEN typeof({expr}) IN ('integer', 'real') THEN {expr} END)"

    # -- filters ---------------------------------------------------------------------------------
    def filter(self, flt: Filter) -> str:
        """The SQL condition of one filter on a column or a data field.

        It may be NULL where it does not hold (NULL is false in WHERE) and stays plain where it can, so
        that ``type = ?`` or a timestamp range can use an index; negations therefore COALESCE first.
        """
        if flt.op == "ne":
            return f"NOT COALESCE({self.filter(Filter(flt.field, 'eq', flt.value))}, 0)"
        if flt.op == "not_in":
            return f"NOT COALESCE({self.filter(Filter(flt.field, 'in', flt.value))}, 0)"
        if flt.field.startswith("data."):
            return self._data_filter(flt)
        expr, kind = self.column(flt.field)
        op, value = flt.op, flt.value
        if op == "exists":
            return "1" if kind in ("int", "text") else f"({expr} IS NOT NULL)"
        if op in ("eq", "in"):
            values = [value] if op == "eq" else list(value)
            wanted = {"int": "num", "text": "str"}.get(kind)
            values = [v for v in values if value_class(v) is not None and wanted in (None, value_class(v))]
            if not values:
                return "0"
            if len(values) == 1:
                return f"{expr} = {self.bind(values[0])}"
            return f"{expr} IN ({self.bind_list(values)})"
        return self._scalar_condition(expr, f"typeof({expr})", kind, op, value, sql_types=True)

    def _scalar_condition(self, expr: str, type_expr: str, kind: str, op: str, value: Any,
                          sql_types: bool) -> str:
        """Range, prefix and contains on one scalar; `type_expr` gives typeof()/json_type() of it."""
        cls = value_class(value)
        if op in ("prefix", "contains") and cls != "str":
            return "0"
        if cls is None or (kind == "int" and cls != "num") or (kind == "text" and cls != "str"):
            return "0"
        if cls == "str":
            guard = "" if kind == "text" else f"{type_expr} = 'text' AND "
        elif kind == "int":
            guard = ""
        else:
            guard = f"{type_expr} IN {_SQL_NUM_TYPES if sql_types else _NUM_TYPES} AND "
        if op == "prefix":
            return f"({guard}substr({expr}, 1, {len(value)}) = {self.bind(value)})"
        if op == "contains":
            return f"({guard}instr({expr}, {self.bind(value)}) > 0)"
        sql_op = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return f"({guard}{expr} {sql_op} {self.bind(value)})"

    def _data_filter(self, flt: Filter) -> str:
        """A filter on a data field: the scalar, or any scalar element when the value is an array."""
        data, path = "e.data", _json_path(flt.field)
        jtype, jvalue = f"json_type({data}, {path})", f"json_extract({data}, {path})"
        each = f"json_each({data}, {path}) AS j"
        op, value = flt.op, flt.value
        if op == "exists":
            return (f"(CASE IFNULL({jtype}, 'null') WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} "
                    f"WHERE j.type <> 'null') WHEN 'null' THEN 0 ELSE 1 END)")
        if op in ("eq", "in"):
            values = [v for v in ([value] if op == "eq" else list(value)) if value_class(v) is not None]
            if not values:
                return "0"
            test = f"= {self.bind(values[0])}" if len(values) == 1 else f"IN ({self.bind_list(values)})"
            condition = (f"(CASE {jtype} WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} WHERE "
                         f"{_SCALAR_ELEMENT} AND j.value {test}) WHEN 'object' THEN 0 ELSE {jvalue} {test} END)")
            if all(isinstance(v, str) for v in values):
                return self._prefiltered([json.dumps(v) for v in values], condition)
            return condition
        scalar = self._scalar_condition(jvalue, jtype, "any", op, value, sql_types=False)
        element = self._scalar_condition("j.value", "j.type", "any", op, value, sql_types=False)
        if scalar == "0":
            return "0"
        condition = (f"(CASE {jtype} WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} WHERE {element}) "
                     f"WHEN 'object' THEN 0 ELSE {scalar} END)")
        if op == "prefix":
            return self._prefiltered([json.dumps(value)[:-1]], condition)
        if op == "contains" and value:
            return self._prefiltered([json.dumps(value)[1:-1]], condition)
        return condition

    def _prefiltered(self, needles: Sequence[str], condition: str) -> str:
        """Guard a string condition with a substring test on the stored JSON text, so that rows which
        cannot match are rejected without parsing their document. Sound because `encode_data` escapes
        every character on its own: a matching string's encoding always appears in the text."""
        test = " OR ".join(f"instr(e.data, {self.bind(needle)}) > 0" for needle in needles)
        return f"(({test}) AND {condition})"

    # -- sorting ---------------------------------------------------------------------------------
    def sort_expr(self, sort: Sort) -> tuple[str, bool]:
        """The SQL sort value of a key (arrays: smallest element ascending, largest descending) and
        whether it is never NULL."""
        if not sort.field.startswith("data."):
            expr, kind = self.column(sort.field)
            return expr, kind in ("int", "text")
        data, path = "e.data", _json_path(sort.field)
        pick = "max" if sort.descending else "min"
        return (f"(CASE json_type({data}, {path}) WHEN 'array' THEN (SELECT {pick}(j.value) FROM "
                f"json_each({data}, {path}) AS j WHERE {_SCALAR_ELEMENT}) WHEN 'object' THEN NULL "
                f"ELSE json_extract({data}, {path}) END)"), False

    def after_cursor(self, exprs: Sequence[tuple[str, bool]], sorts: Sequence[Sort], values: Sequence[Any],
                     seq: int) -> str:
        """The condition selecting rows after the cursor position, in query order."""
        last_desc = bool(sorts) and sorts[-1].descending
        if all(not_null for _, not_null in exprs) and all(s.descending == last_desc for s in sorts) \
                and None not in values:
            row = ", ".join([e for e, _ in exprs] + ["e.seq"])
            bound = ", ".join([self.bind(v) for v in values] + [self.bind(seq)])
            return f"(({row}) {'<' if last_desc else '>'} ({bound}))"
        branches, equal = [], []
        for (expr, _), sort, value in zip(exprs, sorts, values, strict=True):
            if value is None:
                after = "0" if sort.descending else f"{expr} IS NOT NULL"
                same = f"{expr} IS NULL"
            else:
                bound = self.bind(value)
                after = f"({expr} < {bound} OR {expr} IS NULL)" if sort.descending else f"{expr} > {bound}"
                same = f"{expr} = {bound}"
            branches.append(" AND ".join([*equal, after]))
            equal.append(same)
        branches.append(" AND ".join([*equal, f"e.seq {'<' if last_desc else '>'} {self.bind(seq)}"]))
        return "(" + " OR ".join(f"({b})" for b in branches) + ")"

    # -- aggregations ----------------------------------------------------------------------------
    def values_join(self, field: str, alias: str, numeric: bool) -> tuple[str, str]:
        """A join expanding a data field into its scalar values (one row per array element)."""
        types = f"{alias}.type IN {_NUM_TYPES}" if numeric else \
            f"{alias}.type NOT IN ('object', 'array', 'null')"
        join = (f"JOIN json_each(e.data, {_json_path(field)}) AS {alias} "
                f"ON ({alias}.key IS NULL OR typeof({alias}.key) = 'integer') AND {types}")
        return join, f"{alias}.value"

    def metric_columns(self, agg: Aggregation) -> list[str]:
        """SQL aggregate expressions for a metric computable without expanding arrays into rows."""
        if agg.kind == "count" and agg.field is None:
            return ["count(*)"]
        assert agg.field is not None
        if not agg.field.startswith("data."):
            expr, kind = self.column(agg.field)
            number = self.numeric(expr, kind)
            return {
                "count": [f"sum({expr} IS NOT NULL)"],
                "sum": [f"sum({number})"],
                "avg": [f"sum({number})", f"count({number})"],
                "min": [f"min({number})"],
                "max": [f"max({number})"],
                "distinct_count": [f"count(DISTINCT {expr})"],
            }[agg.kind]
        data, path = "e.data", _json_path(agg.field)
        if agg.kind == "count":
            return [f"sum({self._data_filter(Filter(agg.field, 'exists'))})"]

        def per_event(fn: str, scalar: str) -> str:
            return (f"(CASE json_type({data}, {path}) WHEN 'array' THEN (SELECT {fn} FROM json_each({data}, "
                    f"{path}) AS j WHERE j.type IN {_NUM_TYPES}) WHEN 'integer' THEN {scalar} WHEN 'real' THEN "
                    f"{scalar} WHEN 'true' THEN {scalar} WHEN 'false' THEN {scalar} END)")

        value = f"json_extract({data}, {path})"
        return {
            "sum": [f"sum({per_event('sum(j.value)', value)})"],
            "avg": [f"sum({per_event('sum(j.value)', value)})", f"sum({per_event('count(*)', '1')})"],
            "min": [f"min({per_event('min(j.value)', value)})"],
            "max": [f"max({per_event('max(j.value)', value)})"],
        }[agg.kind]

    def bucket_expr(self, value: str, interval: str | int) -> str:
        """The SQL start (epoch ms, UTC) of the date-histogram bucket of an integer ms expression."""
        if isinstance(interval, int) or interval in FIXED_INTERVALS_MS:
            step = interval if isinstance(interval, int) else FIXED_INTERVALS_MS[interval]
            origin = WEEK_ORIGIN_MS if interval == "week" else 0
            shifted = f"({value} - ({origin}))" if origin else value
            return f"({value} - ((({shifted}) % {step}) + {step}) % {step})"
        seconds = f"(({value} - ((({value}) % 1000) + 1000) % 1000) / 1000)"
        start = {"month": "start of month", "year": "start of year"}[interval]
        return f"(CAST(strftime('%s', {seconds}, 'unixepoch', '{start}') AS INTEGER) * 1000)"


class _KeySpec:
    """A bucket aggregation as a grouping key: its SQL expression, join, condition and kept keys."""

    def __init__(self, agg: Aggregation, expr: str, join: str = "", cond: str = "",
                 fold: Callable[[Any], Any] | None = None) -> None:
        self.agg = agg
        self.expr = expr
        self.join = join
        self.cond = cond
        self.selected: list[Any] | None = None
        #: Maps a value of `expr` to the bucket key when `expr` groups finer than the buckets (days).
        self.fold = fold


def _day_folder(interval: str | int) -> Callable[[int], int]:
    """Day start (epoch ms) -> start of its calendar bucket, memoized (one datetime computation per day)."""
    starts: dict[int, int] = {}

    def fold(day_start: int) -> int:
        key = starts.get(day_start)
        if key is None:
            key = starts[day_start] = bucket_start(day_start, interval)
        return key

    return fold


def _time_leaf(agg: Aggregation) -> bool:
    """A histogram of the event or receipt time without sub-aggregations: one key for every event."""
    return agg.kind == "date_histogram" and not agg.aggs and agg.source in ("timestamp", "received_at")


# -- the backend -------------------------------------------------------------------------------------
class SQLiteBackend(Backend):
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
        self._connections: list[tuple[int, sqlite3.Connection]] = []
        self._memory_lock = threading.RLock()
        self._memory_conn: sqlite3.Connection | None = None
        self.synchronous = str(self.options.get("synchronous", "full")).upper()
        if self.synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"storage.options.synchronous: expected full, normal or extra, got {self.synchronous!r}")
        self._committer = GroupCommitter(self._commit_batches,
                                         lock_path=None if self.memory else f"{self.path}-writelock")
        if self.memory:
            # An in-memory database exists per connection: one connection, used under a lock.
            self.multiprocess_safe = False
        try:
            if not self.memory:
                os.makedirs(os.path.dirname(self.path), exist_ok=True)
            with self._session() as conn:
                if self.memory:
                    self._migrate(conn)
                self._finish_deletes(conn)
        except OSError as exc:
            raise BackendUnavailable(f"cannot open SQLite database {self.path}: {exc}") from exc

    # -- connections -----------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=self.busy_timeout_ms / 1000, cached_statements=256)
        conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        if not self.memory:
            conn.execute("PRAGMA journal_mode = WAL")  # persistent in the file; a no-op once set
        return conn

    def _connection(self) -> sqlite3.Connection:
        """This process's and thread's connection, made on first use (and anew in a forked child)."""
        if self.memory:
            if self._memory_conn is None:
                self._memory_conn = self._connect()
            return self._memory_conn
        local = self._local
        pid = os.getpid()
        conn = getattr(local, "conn", None)
        if conn is not None and local.pid == pid:
            if os.stat(self.path).st_ino == local.inode:  # FileNotFoundError: the file was deleted
                return conn
            self._forget_connection()  # the file was replaced under us: never write into the old inode
            raise BackendUnavailable(f"SQLite database {self.path} was replaced while open; reconnecting")
        if conn is not None:
            _INHERITED.append(conn)
        conn = self._connect()
        self._migrate(conn)  # cheap when current; gives the schema to a file that appeared at the path anew
        local.conn, local.pid, local.inode = conn, pid, os.stat(self.path).st_ino
        self._connections.append((pid, conn))
        return conn

    def _forget_connection(self) -> None:
        """Drop this thread's connection after a failure, so that the next call reconnects."""
        if self.memory:
            return
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.pid == os.getpid():
            self._local.conn = None
            with suppress(sqlite3.Error):
                conn.close()

    @contextmanager
    def _session(self) -> Iterator[sqlite3.Connection]:
        """A connection for one operation; SQLite failures of the store become `BackendUnavailable`."""
        lock = self._memory_lock if self.memory else None
        if lock is not None:
            lock.acquire()
        try:
            try:
                try:
                    conn = self._connection()
                except FileNotFoundError as exc:  # deleted while open: acknowledging into it would lose events
                    self._forget_connection()
                    raise BackendUnavailable(f"SQLite database {self.path} was deleted while open") from exc
                yield conn
            except sqlite3.Error as exc:
                if _is_unavailable(exc):
                    self._forget_connection()
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
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (version, now_ms()))

    def close(self) -> None:
        """Close this process's connections (connections of other threads included)."""
        pid = os.getpid()
        for owner, conn in self._connections:
            if owner == pid:
                conn.close()
        self._connections = [(owner, c) for owner, c in self._connections if owner != pid]
        self._local = threading.local()
        self._committer.close()
        if self._memory_conn is not None:
            self._memory_conn.close()
            self._memory_conn = None

    # -- catalog ---------------------------------------------------------------------------------
    @staticmethod
    def _stream(row: Sequence[Any]) -> Stream:
        tenant, plugin, name, created_at, schema = row
        fields = None if schema is None else tuple(FieldSpec(f["name"], f["type"]) for f in json.loads(schema))
        return Stream(tenant=tenant, plugin=plugin, name=name, created_at=created_at, schema=fields)

    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""
        schema = None if stream.schema is None else json.dumps([{"name": f.name, "type": f.type}
                                                                for f in stream.schema])
        with self._session() as conn:
            try:
                conn.execute("INSERT INTO streams (tenant, plugin, name, created_at, schema) VALUES (?, ?, ?, ?, ?)",
                             (stream.tenant, stream.plugin, stream.name, stream.created_at, schema))
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
    def append(self, events: Sequence[Event]) -> int:
        """Store the batch in one transaction, durably; return how many events were new.

        The stream id is resolved by a subquery in the INSERT; a missing stream makes it NULL, which the
        NOT NULL constraint rejects, so the batch is rolled back and `StreamNotFound` raised. Concurrent
        appends of one process are committed together (`backends.group_commit`), each batch in its own
        savepoint, so one disk sync serves several requests and a bad batch never affects another.
        """
        rows = []
        for event in events:
            check_event(event)
            rows.append((event.tenant, event.plugin, event.stream, event.id, event.type, event.timestamp,
                         event.received_at, event.user_id, event.session_id,
                         encode_data(event.data)))
        if not rows:
            return 0
        try:
            return self._committer.submit(rows)
        except OSError as exc:  # the writer lock file cannot be opened: the store's directory is gone
            raise BackendUnavailable(f"SQLite database {self.path}: {exc}") from exc

    def _commit_batches(self, batches: Sequence[list[tuple[Any, ...]]]) -> list[Any]:
        """One transaction for a group of batches; per batch, its count of new rows or its exception.

        Each batch runs in a savepoint when the group has several, so a failing one is undone alone.
        """
        results: list[Any] = []
        alone = len(batches) == 1
        with self._session() as conn, self._transaction(conn, "BEGIN IMMEDIATE"):
            for rows in batches:
                if not alone:
                    conn.execute("SAVEPOINT batch")
                try:
                    # rowcount, not total_changes: the event_days trigger's writes must not count.
                    if len(rows) == 1:
                        added = conn.execute(_INSERT, rows[0]).rowcount
                    else:
                        added = conn.executemany(_INSERT, rows).rowcount
                except sqlite3.IntegrityError as exc:
                    if "events.stream_id" not in str(exc):
                        raise
                    if alone:
                        raise StreamNotFound(_MISSING_STREAM) from exc
                    conn.execute("ROLLBACK TO batch")
                    results.append(StreamNotFound(_MISSING_STREAM))
                else:
                    results.append(added)
                if not alone:
                    conn.execute("RELEASE batch")
        return results

    def query(self, query: Query) -> QueryResult:
        """Answer a query with the semantics documented in `gateway.query`, in SQL."""
        cursor = decode_cursor(query.cursor, len(query.sort)) if query.cursor is not None else None
        with self._session() as conn, self._transaction(conn):
            sids = self._stream_ids(conn, query)
            if not sids:
                return QueryResult(total=0 if query.count_total else None,
                                   aggregations=aggregate([], query.aggregations))
            c = _Compiler(query, sids)
            stream_cond = f"e.stream_id = {c.bind(next(iter(sids)))}" if len(sids) == 1 else \
                f"e.stream_id IN ({c.bind_list(list(sids))})"
            conds = []
            if query.start is not None:
                conds.append(f"e.timestamp >= {c.bind(query.start)}")
            if query.end is not None:
                conds.append(f"e.timestamp < {c.bind(query.end)}")
            conds.extend(c.filter(f) for f in query.filters if f.field not in _CONSTANT_FIELDS)
            rest = " AND ".join(conds) or "1"
            where = f"{stream_cond} AND {rest}"
            result = QueryResult()
            # Filters only on the type (and the constant fields): counts come from the day summary.
            by_days = all(f.field == "type" or f.field in _CONSTANT_FIELDS for f in query.filters)
            if query.count_total:
                if by_days:
                    result.total = self._day_total(conn, c, query, stream_cond)
                else:
                    result.total = conn.execute(f"SELECT count(*) FROM events e WHERE {where}",
                                                c.params).fetchone()[0]
            if query.limit:
                self._page(conn, c, query, sids, rest, where, cursor, result)
            if query.aggregations:
                if by_days and all(map(_day_computable, query.aggregations)):
                    rows = self._day_rows(conn, c, query, stream_cond)
                    result.aggregations = _day_aggregate(rows, query.aggregations)
                else:
                    found = self._aggregate(conn, c, where, query.aggregations, [])
                    result.aggregations = _fill(query.aggregations, found.get((), {}))
            return result

    # -- the day summary -------------------------------------------------------------------------
    @staticmethod
    def _day_parts(c: _Compiler, query: Query, stream_cond: str) -> tuple[str | None, list[str]]:
        """Conditions reading the query's range as whole UTC days from ``event_days`` (None when the
        range holds no whole day) and as partial edge ranges from ``events``, each on alias ``e``."""
        base = " AND ".join([stream_cond, *(c.filter(f) for f in query.filters if f.field == "type")])
        days, edges = split_days(query.start, query.end)
        whole = None
        if days is not None and (days[0] is None or days[1] is None or days[0] < days[1]):
            whole = base + "".join(f" AND e.day {op} {c.bind(day)}"
                                   for op, day in ((">=", days[0]), ("<", days[1])) if day is not None)
        return whole, [f"{base} AND e.timestamp >= {c.bind(lo)} AND e.timestamp < {c.bind(hi)}" for lo, hi in edges]

    def _day_total(self, conn: sqlite3.Connection, c: _Compiler, query: Query, stream_cond: str) -> int:
        """Events matching a query filtered on type only: whole days summed from the summary, plus the
        partial edge days counted in the events (through the type or time index)."""
        whole, edges = self._day_parts(c, query, stream_cond)
        total = 0
        if whole is not None:
            total += conn.execute(f"SELECT coalesce(sum(e.n), 0) FROM event_days e WHERE {whole}",
                                  c.params).fetchone()[0]
        for edge in edges:
            total += conn.execute(f"SELECT count(*) FROM events e WHERE {edge}", c.params).fetchone()[0]
        return total

    def _day_rows(self, conn: sqlite3.Connection, c: _Compiler, query: Query,
                  stream_cond: str) -> list[tuple[Any, int, int]]:
        """(type, UTC day, events) of a query filtered on type only, from the summary and the edges."""
        whole, edges = self._day_parts(c, query, stream_cond)
        rows: list[tuple[Any, int, int]] = []
        if whole is not None:
            rows += conn.execute(f"SELECT e.type, e.day, sum(e.n) FROM event_days e WHERE {whole} "
                                 "GROUP BY e.type, e.day", c.params).fetchall()
        for edge in edges:
            rows += conn.execute(f"SELECT e.type, {_day_of('e.timestamp')}, count(*) FROM events e WHERE {edge} "
                                 "GROUP BY 1, 2", c.params).fetchall()
        return [row for row in rows if row[2]]

    def _stream_ids(self, conn: sqlite3.Connection, query: Query) -> dict[int, str]:
        """Ids and names of the streams the query reads, after filters on tenant/plugin/stream."""
        sql = "SELECT id, name FROM streams WHERE tenant = ? AND plugin = ?"
        params: list[Any] = [query.tenant, query.plugin]
        if query.streams is not None:
            if not query.streams:
                return {}
            sql += f" AND name IN ({', '.join('?' * len(query.streams))})"
            params.extend(query.streams)
        constant_filters = [f for f in query.filters if f.field in _CONSTANT_FIELDS]
        found = {}
        for sid, name in conn.execute(sql + " ORDER BY id", params):
            values = {"tenant": query.tenant, "plugin": query.plugin, "stream": name}
            if all(value_matches(values[f.field], f.op, f.value) for f in constant_filters):
                found[sid] = name
        return found

    def _page(self, conn: sqlite3.Connection, c: _Compiler, query: Query, sids: Mapping[int, str], rest: str,
              where: str, cursor: tuple[list[Any], int] | None, result: QueryResult) -> None:
        """Fetch one page of events (one row more than asked, to know whether a next page exists)."""
        exprs = [c.sort_expr(s) for s in query.sort]
        if cursor is not None:
            after = c.after_cursor(exprs, query.sort, cursor[0], cursor[1])
            rest, where = f"{rest} AND {after}", f"{where} AND {after}"
        last = "DESC" if query.sort and query.sort[-1].descending else "ASC"
        order = [f"{expr} {'DESC' if s.descending else 'ASC'}" for (expr, _), s in zip(exprs, query.sort,
                                                                                        strict=True)]
        columns = _EVENT_COLUMNS + "".join(f", {expr} AS s{i}" for i, (expr, _) in enumerate(exprs))
        limit, offset = c.bind(query.limit + 1), c.bind(query.offset)
        by_time = [s.field for s in query.sort] == ["timestamp"]
        if by_time and 1 < len(sids) <= _MAX_UNION_STREAMS:
            # Each arm reads one stream's time index in order; the union is merged and cut.
            arm_limit = c.bind(query.offset + query.limit + 1)
            arms = [f"SELECT * FROM (SELECT {columns} FROM events e WHERE e.stream_id = {c.bind(sid)} AND {rest} "
                    f"ORDER BY {', '.join(order)}, e.seq {last} LIMIT {arm_limit})" for sid in sids]
            outer = [f"s{i} {'DESC' if s.descending else 'ASC'}" for i, s in enumerate(query.sort)]
            sql = f"{' UNION ALL '.join(arms)} ORDER BY {', '.join(outer)}, seq {last} LIMIT {limit} OFFSET {offset}"
        else:
            sql = (f"SELECT {columns} FROM events e WHERE {where} ORDER BY {', '.join([*order, 'e.seq ' + last])} "
                   f"LIMIT {limit} OFFSET {offset}")
        rows = conn.execute(sql, c.params).fetchall()
        if len(rows) > query.limit:
            rows = rows[: query.limit]
            result.next_cursor = encode_cursor(list(rows[-1][9:]), rows[-1][0])
        result.events = [Event(tenant=query.tenant, plugin=query.plugin, stream=sids[row[1]], id=row[2],
                               type=row[3], timestamp=row[4], received_at=row[5], user_id=row[6],
                               session_id=row[7], data=json.loads(row[8])) for row in rows]

    # -- aggregations ----------------------------------------------------------------------------
    def _key_spec(self, c: _Compiler, agg: Aggregation, depth: int, fine: bool = False) -> _KeySpec:
        """How a bucket aggregation groups rows: an expression of the event, or of its expanded values.

        With `fine`, a month or year histogram of a top-level field (one value per event) groups by day
        instead, and `_KeySpec.fold` rolls days up in Python: no date function runs per row.
        """
        field = agg.source
        if fine and agg.kind == "date_histogram" and agg.interval in ("month", "year") \
                and not field.startswith("data."):
            spec = self._key_spec(c, Aggregation(agg.name, agg.kind, field=field, interval="day"), depth)
            spec.agg, spec.fold = agg, _day_folder(agg.interval)
            return spec
        alias = f"k{depth}"
        if field.startswith("data."):
            join, value = c.values_join(field, alias, numeric=agg.kind == "date_histogram")
            if agg.kind == "terms":
                key = value
                dup = (f"SELECT 1 FROM json_each(e.data, {_json_path(field)}) AS j WHERE j.key < {alias}.key "
                       f"AND {_SCALAR_ELEMENT} AND j.value = {alias}.value")
            else:
                assert agg.interval is not None
                key = c.bucket_expr(f"CAST({value} AS INTEGER)", agg.interval)
                other = c.bucket_expr("CAST(j.value AS INTEGER)", agg.interval)
                dup = (f"SELECT 1 FROM json_each(e.data, {_json_path(field)}) AS j WHERE j.key < {alias}.key "
                       f"AND j.type IN {_NUM_TYPES} AND {other} = {key}")
            # An event counts once per key even when its array repeats a value.
            join += f" AND ({alias}.key IS NULL OR NOT EXISTS ({dup}))"
            return _KeySpec(agg, key, join=join)
        expr, kind = c.column(field)
        if agg.kind == "terms":
            return _KeySpec(agg, expr, cond="" if kind in ("int", "text") else f"{expr} IS NOT NULL")
        assert agg.interval is not None
        if kind == "int":
            return _KeySpec(agg, c.bucket_expr(expr, agg.interval))
        if kind == "text":
            return _KeySpec(agg, "NULL", cond="0")
        key = c.bucket_expr(f"CAST({expr} AS INTEGER)", agg.interval)
        return _KeySpec(agg, key, cond=f"typeof({expr}) IN ('integer', 'real')")

    @staticmethod
    def _level_source(c: _Compiler, where: str, ctx: Sequence[_KeySpec]) -> tuple[str, str]:
        """FROM and WHERE of the rows of one aggregation level: events joined with expanded keys."""
        joins = "".join(f" {spec.join}" for spec in ctx if spec.join)
        conds = [where] + [spec.cond for spec in ctx if spec.cond]
        conds += [f"{spec.expr} IN ({c.bind_list(spec.selected)})" for spec in ctx if spec.selected is not None]
        return f"events e{joins}", " AND ".join(conds)

    def _aggregate(self, conn: sqlite3.Connection, c: _Compiler, where: str, aggs: Sequence[Aggregation],
                   ctx: list[_KeySpec]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Results of `aggs` for every group of the parent buckets in `ctx`, keyed by the parent keys."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        depth = len(ctx)
        keys = [spec.expr for spec in ctx]
        source, cond = self._level_source(c, where, ctx)
        select_keys = "".join(f"{k}, " for k in keys)
        group = f" GROUP BY {', '.join(keys)}" if keys else ""

        def put(anc: tuple[Any, ...], name: str, value: Any) -> None:
            out.setdefault(anc, {})[name] = value

        simple = [a for a in aggs if a.kind in ("count", "sum", "avg", "min", "max")
                  or (a.kind == "distinct_count" and not (a.field or "").startswith("data."))]
        if simple:
            columns = [col for a in simple for col in c.metric_columns(a)]
            sql = f"SELECT {select_keys}{', '.join(columns)} FROM {source} WHERE {cond}{group}"
            for row in conn.execute(sql, c.params):
                anc, values = tuple(row[:depth]), list(row[depth:])
                for a in simple:
                    if a.kind == "avg":
                        total, count = values.pop(0), values.pop(0)
                        put(anc, a.name, total / count if count else None)
                    else:
                        value = values.pop(0)
                        put(anc, a.name, 0 if value is None and a.kind == "count" else value)
        for a in aggs:
            if a.kind == "distinct_count" and a.field and a.field.startswith("data."):
                join, value = c.values_join(a.field, "m", numeric=False)
                sql = f"SELECT {select_keys}count(DISTINCT {value}) FROM {source} {join} WHERE {cond}{group}"
                for row in conn.execute(sql, c.params):
                    put(tuple(row[:depth]), a.name, row[depth])
            elif a.kind == "percentiles":
                assert a.field is not None
                if a.field.startswith("data."):
                    join, value = c.values_join(a.field, "m", numeric=True)
                else:
                    expr, kind = c.column(a.field)
                    join, value = "", c.numeric(expr, kind)
                sql = (f"SELECT {select_keys}{value} FROM {source} {join} WHERE {cond} AND {value} IS NOT NULL "
                       f"ORDER BY {value}")
                groups: dict[tuple[Any, ...], list[Any]] = {}
                for row in conn.execute(sql, c.params):
                    groups.setdefault(tuple(row[:depth]), []).append(row[depth])
                for anc, values in groups.items():
                    put(anc, a.name, percentiles(values, a.percents))
            elif a.kind in ("terms", "date_histogram"):
                spec = self._key_spec(c, a, depth, fine=not a.aggs)
                sub_ctx = [*ctx, spec]
                sub_source, sub_cond = self._level_source(c, where, sub_ctx)
                # A single time histogram below: one scan grouped by both keys gives both levels' counts
                # (every event of a bucket has exactly one time), instead of a scan per level.
                leaf = a.aggs[0] if len(a.aggs) == 1 and _time_leaf(a.aggs[0]) else None
                child = self._key_spec(c, leaf, depth + 1, fine=True) if leaf is not None else None
                group_by = [*keys, spec.expr, *([child.expr] if child is not None else [])]
                sql = (f"SELECT {', '.join(group_by)}, count(*) FROM {sub_source} WHERE {sub_cond} "
                       f"GROUP BY {', '.join(group_by)}")
                counts: dict[tuple[Any, ...], dict[Any, int]] = {}
                below: dict[tuple[Any, ...], dict[Any, int]] = {}
                for row in conn.execute(sql, c.params):
                    anc, key, n = tuple(row[:depth]), row[depth], row[-1]
                    if spec.fold is not None:
                        key = spec.fold(key)
                    group_counts = counts.setdefault(anc, {})
                    group_counts[key] = group_counts.get(key, 0) + n
                    if child is not None:
                        sub_key = row[depth + 1] if child.fold is None else child.fold(row[depth + 1])
                        child_counts = below.setdefault((*anc, key), {})
                        child_counts[sub_key] = child_counts.get(sub_key, 0) + n
                chosen = {anc: order_buckets(a, group_counts) for anc, group_counts in counts.items()}
                sub: dict[tuple[Any, ...], dict[str, Any]] = {}
                if leaf is not None:
                    sub = {path: {leaf.name: [{"key": normalize_key(k), "count": n}
                                              for k, n in order_buckets(leaf, child_counts)]}
                           for path, child_counts in below.items()}
                elif a.aggs and chosen:
                    truncated = any(len(chosen[anc]) < len(group_counts) for anc, group_counts in counts.items())
                    if a.kind == "terms" and truncated:
                        kept = list({key: None for buckets in chosen.values() for key, _ in buckets})
                        spec.selected = kept if len(kept) <= 500 else None
                    sub = self._aggregate(conn, c, where, a.aggs, sub_ctx)
                for anc, buckets in chosen.items():
                    put(anc, a.name, [{"key": normalize_key(key), "count": count,
                                       **_fill(a.aggs, sub.get((*anc, key), {}))} for key, count in buckets])
        return out

    # -- operations ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Path, journal mode and schema version (cheap: no counting)."""
        with self._session() as conn:
            version = conn.execute("SELECT max(version) FROM schema_version").fetchone()[0]
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        return {"backend": "sqlite", "path": self.path, "journal_mode": mode, "schema_version": version}


def split_days(start: int | None, end: int | None) -> tuple[tuple[int | None, int | None] | None,
                                                            list[tuple[int, int]]]:
    """A time range ``start <= t < end`` as whole UTC days ``[first, last)`` (None: open; the pair is
    None when both bounds fall inside one day) and the partial ranges at its edges."""
    first = None if start is None else -(-start // DAY_MS)
    last = None if end is None else end // DAY_MS
    if start is not None and end is not None and first is not None and last is not None and first > last:
        return None, [(start, end)]
    edges = []
    if start is not None and first is not None and start < first * DAY_MS:
        edges.append((start, first * DAY_MS))
    if end is not None and last is not None and last * DAY_MS < end:
        edges.append((last * DAY_MS, end))
    return (first, last), edges


def _day_computable(agg: Aggregation) -> bool:
    """Whether (type, day, count) rows determine an aggregation: counts, terms on the type and calendar
    histograms of the event time with day-aligned buckets, nested only in one another."""
    if agg.kind == "count":
        return agg.field in (None, "type", "timestamp", "id", *_CONSTANT_FIELDS)
    if agg.kind == "terms":
        ok = agg.field == "type"
    elif agg.kind == "date_histogram":
        interval = agg.interval
        ok = agg.source == "timestamp" and (interval in ("day", "week", "month", "year")
                                            or (isinstance(interval, int) and interval % DAY_MS == 0))
    else:
        ok = False
    return ok and all(map(_day_computable, agg.aggs))


def _day_aggregate(rows: Sequence[tuple[Any, int, int]], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Aggregations accepted by `_day_computable`, over (type, day, events) rows, in Python."""
    return {agg.name: _day_aggregate_one(rows, agg) for agg in aggs}


def _day_aggregate_one(rows: Sequence[tuple[Any, int, int]], agg: Aggregation) -> Any:
    if agg.kind == "count":
        return sum(n for kind, _, n in rows if kind is not None or agg.field != "type")
    groups: dict[Any, list[tuple[Any, int, int]]] = {}
    if agg.kind == "terms":
        for row in rows:
            if row[0] is not None:
                groups.setdefault(row[0], []).append(row)
    else:
        assert agg.interval is not None
        starts: dict[int, int] = {}
        for row in rows:
            key = starts.get(row[1])
            if key is None:
                key = starts[row[1]] = bucket_start(row[1] * DAY_MS, agg.interval)
            groups.setdefault(key, []).append(row)
    counts = {key: sum(n for _, _, n in group) for key, group in groups.items()}
    return [{"key": normalize_key(key), "count": count, **_day_aggregate(groups[key], agg.aggs)}
            for key, count in order_buckets(agg, counts)]


def _fill(aggs: Sequence[Aggregation], found: Mapping[str, Any]) -> dict[str, Any]:
    """Every aggregation's result, with the empty result for those that saw no rows."""
    return {a.name: found.get(a.name, [] if a.kind in ("terms", "date_histogram") else empty_metric(a))
            for a in aggs}


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `SQLiteBackend` for ``sqlite://`` URLs."""
    return [SQLiteBackend]

