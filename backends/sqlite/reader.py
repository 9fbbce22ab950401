"""Reading events from SQLite: one query's stream selection, total, page and aggregations, in one read
transaction.

Table ``event_days`` (`backends.sqlite.schema`) answers the total of a query filtered only on the type, and
its counts by type and calendar period: whole days are summed from it and only the partial days at the
edges of the range are counted in the events. Pages over a few streams in time order read each stream's
time index in order and merge (`MAX_UNION_STREAMS`). A stream with typed columns (`backends.sqlite.typed`)
is read from its typed table alone when the total and aggregations need nothing else, and through the
typed table joined to the events when they or the page also need the documents (`compiler_for`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Mapping
from dataclasses import replace
from typing import Any

from gateway.events import Event
from gateway.query import Aggregation, Condition, Filter, Query, QueryResult
from gateway.query.aggregate import aggregate, fill
from gateway.query.calendar import DAY_MS
from gateway.query.cursor import encode_position
from gateway.query.model import leaves
from gateway.query.semantics import value_matches

from .aggregate import day_aggregate, day_computable, sql_aggregate
from .compiler import CONSTANT_FIELDS, Compiler
from .schema import day_of
from .typed import TypedTable, readable

EVENT_COLUMNS = "e.seq, e.stream_id, e.id, e.type, e.timestamp, e.received_at, e.user_id, e.session_id, e.data"
# Up to this many streams, a time-ordered page over several streams reads each stream's index in order.
MAX_UNION_STREAMS = 32


def _is_constant(condition: Condition) -> bool:
    """A top-level filter on tenant, plugin or stream (answered when the streams are selected)."""
    return isinstance(condition, Filter) and condition.field in CONSTANT_FIELDS


def _on_type(condition: Condition) -> bool:
    return isinstance(condition, Filter) and condition.field == "type"


def _conditions(c: Compiler, query: Query, sids: Mapping[int, str]) -> tuple[str, str, str]:
    """(stream condition, the rest, both) of the WHERE clause selecting the query's events."""
    if c.alone:
        stream_cond = "1"  # the typed table holds one stream's events
    elif len(sids) == 1:
        stream_cond = f"e.stream_id = {c.bind(next(iter(sids)))}"
    else:
        stream_cond = f"e.stream_id IN ({c.bind_list(list(sids))})"
    conds = []
    if query.start is not None:
        conds.append(f"e.timestamp >= {c.bind(query.start)}")
    if query.end is not None:
        conds.append(f"e.timestamp < {c.bind(query.end)}")
    conds.extend(c.filter(f) for f in query.filters if not _is_constant(f))
    rest = " AND ".join(conds) or "1"
    return stream_cond, rest, f"{stream_cond} AND {rest}"


def _fields(query: Query, page: bool) -> set[str]:
    """The fields the query's filters, aggregations (and, for a page, sort keys) read."""
    found = {str(leaf.field) for condition in query.filters for leaf in leaves(condition)}

    def walk(agg: Aggregation) -> None:
        found.add(str(agg.source))
        for sub in agg.aggs:
            walk(sub)

    for agg in query.aggregations:
        walk(agg)
    if page:
        found.update(str(s.field) for s in query.sort)
    return found


def compiler_for(query: Query, sids: Mapping[int, str], typed: TypedTable | None, page: bool) -> Compiler:
    """A compiler reading typed columns where the stream has them: from the typed table alone when every field
    is there (not for a page: it returns the documents), else joined to the events."""
    if typed is None:
        return Compiler(query, sids)
    fields = _fields(query, page)
    if not fields & typed.columns.keys():
        return Compiler(query, sids)
    alone = not page and fields <= {"timestamp", "tenant", "plugin", *typed.columns}
    return Compiler(query, sids, typed, alone)


def typed_table(conn: sqlite3.Connection, sids: Mapping[int, str]) -> TypedTable | None:
    """The typed table of a query over one stream, when it has a complete one."""
    return readable(conn, next(iter(sids))) if len(sids) == 1 else None


def run_query(conn: sqlite3.Connection, query: Query, cursor: tuple[list[Any], int] | None) -> QueryResult:
    """Answer a query (its cursor decoded) inside the caller's read transaction."""
    sids = stream_ids(conn, query)
    if not sids:
        return QueryResult(total=0 if query.count_total else None, aggregations=aggregate([], query.aggregations))
    c = Compiler(query, sids)
    stream_cond, _, _ = _conditions(c, query, sids)
    typed = typed_table(conn, sids)
    result = QueryResult()
    # Filters only on the type (and the constant fields): counts come from the day summary.
    by_days = all(_on_type(f) or _is_constant(f) for f in query.filters)
    # The total and aggregations (no page): from the typed table alone when it has every field they read.
    a = compiler_for(query, sids, typed, page=False)
    _, _, where = _conditions(a, query, sids)
    if query.count_total:
        if by_days:
            result.total = day_total(conn, c, query, stream_cond)
        else:
            result.total = conn.execute(f"SELECT count(*) FROM {a.source} WHERE {where}", a.params).fetchone()[0]
    if query.limit:
        p = compiler_for(query, sids, typed, page=True)
        _, page_rest, page_where = _conditions(p, query, sids)
        fetch_page(conn, p, query, sids, page_rest, page_where, cursor, result)
    if query.aggregations:
        if by_days and all(map(day_computable, query.aggregations)):
            rows = day_rows(conn, c, query, stream_cond)
            result.aggregations = day_aggregate(rows, query.aggregations)
        else:
            found = sql_aggregate(conn, a, where, query.aggregations, [])
            result.aggregations = fill(query.aggregations, found.get((), {}))
    return result


def scan_rows(conn: sqlite3.Connection, query: Query) -> Iterator[tuple[int, Event]]:
    """``(seq, event)`` of the events of the query's streams and range matching its filters, read in
    batches from one statement (for the core evaluator)."""
    sids = stream_ids(conn, query)
    if not sids:
        return
    c = compiler_for(replace(query, aggregations=()), sids, typed_table(conn, sids), page=True)
    _, _, where = _conditions(c, query, sids)
    rows = conn.execute(f"SELECT {EVENT_COLUMNS} FROM {c.source} WHERE {where}", c.params)
    while batch := rows.fetchmany(1000):
        for row in batch:
            yield row[0], Event(tenant=query.tenant, plugin=query.plugin, stream=sids[row[1]], id=row[2],
                                type=row[3], timestamp=row[4], received_at=row[5], user_id=row[6],
                                session_id=row[7], data=json.loads(row[8]))


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


def day_parts(c: Compiler, query: Query, stream_cond: str) -> tuple[str | None, list[str]]:
    """Conditions reading the query's range as whole UTC days from ``event_days`` (None when the
    range holds no whole day) and as partial edge ranges from ``events``, each on alias ``e``."""
    base = " AND ".join([stream_cond, *(c.filter(f) for f in query.filters if _on_type(f))])
    days, edges = split_days(query.start, query.end)
    whole = None
    if days is not None and (days[0] is None or days[1] is None or days[0] < days[1]):
        whole = base + "".join(f" AND e.day {op} {c.bind(day)}"
                               for op, day in ((">=", days[0]), ("<", days[1])) if day is not None)
    return whole, [f"{base} AND e.timestamp >= {c.bind(lo)} AND e.timestamp < {c.bind(hi)}" for lo, hi in edges]


def day_total(conn: sqlite3.Connection, c: Compiler, query: Query, stream_cond: str) -> int:
    """Events matching a query filtered on type only: whole days summed from the summary, plus the
    partial edge days counted in the events (through the type or time index)."""
    whole, edges = day_parts(c, query, stream_cond)
    total = 0
    if whole is not None:
        total += conn.execute(f"SELECT coalesce(sum(e.n), 0) FROM event_days e WHERE {whole}",
                              c.params).fetchone()[0]
    for edge in edges:
        total += conn.execute(f"SELECT count(*) FROM events e WHERE {edge}", c.params).fetchone()[0]
    return total


def day_rows(conn: sqlite3.Connection, c: Compiler, query: Query,
             stream_cond: str) -> list[tuple[Any, int, int]]:
    """(type, UTC day, events) of a query filtered on type only, from the summary and the edges."""
    whole, edges = day_parts(c, query, stream_cond)
    rows: list[tuple[Any, int, int]] = []
    if whole is not None:
        rows += conn.execute(f"SELECT e.type, e.day, sum(e.n) FROM event_days e WHERE {whole} "
                             "GROUP BY e.type, e.day", c.params).fetchall()
    for edge in edges:
        rows += conn.execute(f"SELECT e.type, {day_of('e.timestamp')}, count(*) FROM events e WHERE {edge} "
                             "GROUP BY 1, 2", c.params).fetchall()
    return [row for row in rows if row[2]]


def stream_ids(conn: sqlite3.Connection, query: Query) -> dict[int, str]:
    """Ids and names of the streams the query reads, after filters on tenant/plugin/stream."""
    sql = "SELECT id, name FROM streams WHERE tenant = ? AND plugin = ?"
    params: list[Any] = [query.tenant, query.plugin]
    if query.streams is not None:
        if not query.streams:
            return {}
        sql += f" AND name IN ({', '.join('?' * len(query.streams))})"
        params.extend(query.streams)
    constant_filters = [f for f in query.filters if _is_constant(f)]
    found = {}
    for sid, name in conn.execute(sql + " ORDER BY id", params):
        values = {"tenant": query.tenant, "plugin": query.plugin, "stream": name}
        if all(value_matches(values[f.field], f.op, f.value) for f in constant_filters):
            found[sid] = name
    return found


def fetch_page(conn: sqlite3.Connection, c: Compiler, query: Query, sids: Mapping[int, str], rest: str,
               where: str, cursor: tuple[list[Any], int] | None, result: QueryResult) -> None:
    """Fetch one page of events (one row more than asked, to know whether a next page exists)."""
    exprs = [c.sort_expr(s) for s in query.sort]
    if cursor is not None:
        after = c.after_cursor(exprs, query.sort, cursor[0], cursor[1])
        rest, where = f"{rest} AND {after}", f"{where} AND {after}"
    last = "DESC" if query.sort and query.sort[-1].descending else "ASC"
    order = [f"{expr} {'DESC' if s.descending else 'ASC'}" for (expr, _), s in zip(exprs, query.sort,
                                                                                    strict=True)]
    columns = EVENT_COLUMNS + "".join(f", {expr} AS s{i}" for i, (expr, _) in enumerate(exprs))
    limit, offset = c.bind(query.limit + 1), c.bind(query.offset)
    by_time = [s.field for s in query.sort] == ["timestamp"]
    if by_time and 1 < len(sids) <= MAX_UNION_STREAMS:
        # Each arm reads one stream's time index in order; the union is merged and cut.
        arm_limit = c.bind(query.offset + query.limit + 1)
        arms = [f"SELECT * FROM (SELECT {columns} FROM events e WHERE e.stream_id = {c.bind(sid)} AND {rest} "
                f"ORDER BY {', '.join(order)}, e.seq {last} LIMIT {arm_limit})" for sid in sids]
        outer = [f"s{i} {'DESC' if s.descending else 'ASC'}" for i, s in enumerate(query.sort)]
        sql = f"{' UNION ALL '.join(arms)} ORDER BY {', '.join(outer)}, seq {last} LIMIT {limit} OFFSET {offset}"
    else:
        sql = (f"SELECT {columns} FROM {c.source} WHERE {where} ORDER BY {', '.join([*order, 'e.seq ' + last])} "
               f"LIMIT {limit} OFFSET {offset}")
    rows = conn.execute(sql, c.params).fetchall()
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        result.next_cursor = encode_position(list(rows[-1][9:]), rows[-1][0])
    result.events = [Event(tenant=query.tenant, plugin=query.plugin, stream=sids[row[1]], id=row[2],
                           type=row[3], timestamp=row[4], received_at=row[5], user_id=row[6],
                           session_id=row[7], data=json.loads(row[8])) for row in rows]
