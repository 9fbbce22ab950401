"""The ADQL execution engine: one analysed query over one schema's stored events -> the response's columns/rows.

Why: the HTTP views parse, authorise and render; this module runs the query. It compiles ADQL to the core
query model (:mod:`.adql.compile`), asks the backend (which answers natively what it can and lets the core
evaluate the rest over its scan), then finishes what is ADQL's own: column values (math, functions), the
per-level order of grouped rows where it is not the core's default, HAVING over finished rows, and scroll
tokens. Storage layout (see ``/work/notes/appd-storage.md``): one core stream per schema, ``eventTimestamp``
= ``Event.timestamp``, ``pickupTimestamp`` = ``Event.received_at``, user fields nested in ``data`` under their
stored path (``FieldSpec.path``, else the name).

Where ADQL differs from the core query model, the difference lives in the plugin (compile, values, here):

- time: inclusive ``end`` (the core's is exclusive); SINCE/UNTIL override the request's bounds.
- raw order: nulls last in both directions (the core puts missing first ascending); ties on
  ``eventTimestamp`` go newest stored first (the core breaks ties by insertion order).
- grouped order: per level, ORDER BY keys, then event count descending, then key ascending (the core orders
  by one key, ties by key); HAVING filters finished rows after every level's LIMIT (the core's ``having``
  runs before ``size``); ``range`` and ``funnel`` are computed from core ``terms``.
- values: booleans are not numbers (the core reads them as 1/0, so boolean keys come back as 1/0 and are
  turned back here); ``sum`` of nothing is 0 (the core: null); math and scalar functions are ADQL's
  (:mod:`.adql.values`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from gateway.events import Stream
from gateway.query import QueryError
from gateway.storage import Backend

from .adql import ast as A
from .adql import compile as compiler
from .adql.compile import (
    IMPLICIT,
    Context,
    Level,
    Metrics,
    TooManyGroups,
    aggregations,
    base_query,
    build_levels,
    key_getter,
    raw_sort,
)
from .adql.errors import AdqlError
from .adql.semantics import MAX_RAW_LIMIT, Analysis
from .adql.values import Evaluator, range_labels
from .results import (
    CANNOT_COERCE,
    check_scrollable,
    coerce_literal,
    column_roles,
    fields_json,
    full_schema,
    render_rows,
    scroll_batch_size,
)

__all__ = ["QueryAnswer", "ScrollIdError", "TooManyGroups", "run_query", "stream_fields"]


@dataclass
class QueryAnswer:
    """One query's answer as the response needs it (``fields``/``results`` already rendered)."""

    fields: list[dict]
    results: list[list]
    more_data: bool
    total: int
    scrollid: str | None


class ScrollIdError(ValueError):
    """A ``scrollid`` that is not one this engine made for the same query, schema and request (400)."""


def stream_fields(stream: Stream) -> tuple[dict[str, str], dict[str, str]]:
    """The schema's logical ``{name: type}`` (user fields, definition order) and ``{name: core field}`` for
    every field ADQL may name, implicit ones included."""
    schema: dict[str, str] = {}
    paths: dict[str, str] = dict(IMPLICIT)
    for spec in stream.schema or ():
        schema[spec.name] = spec.type
        paths[spec.name] = "data." + (getattr(spec, "path", None) or spec.name)
    return schema, paths


def run_query(backend: Backend, stream: Stream, analysis: Analysis, *, start_ms: int | None, end_ms: int | None,
              limit: int, now_ms: int, scroll: str | None = None, scroll_mode: bool = False) -> QueryAnswer:
    """Run one analysed ADQL query over ``stream``. ``start_ms``/``end_ms`` are the request's inclusive bounds
    (SINCE/UNTIL override them), ``limit`` the request's limit (raw queries without LIMIT). Scroll mode
    (``scroll_mode`` or a ``scroll`` token) pages raw rows in batches of at most 1,000. Raises
    :class:`AdqlError` for queries the schema does not fit, :class:`ScrollIdError` for a foreign scrollid."""
    schema, paths = stream_fields(stream)
    fields = fields_json(analysis, schema)  # also the schema type check
    ctx = Context(full_schema(schema), paths, now_ms)
    if scroll_mode or scroll is not None:
        check_scrollable(analysis)
        rows, more, total, token = _scroll(backend, stream, analysis, ctx, start_ms, end_ms, limit, scroll)
    else:
        start, end = analysis.time_bounds(now_ms, start_ms, end_ms)
        base = base_query(stream.tenant, stream.name, analysis, ctx, start, end)
        if analysis.aggregated:
            rows, total = _grouped(backend, base, analysis, ctx)
            more = False
        else:
            cap = analysis.row_limit if analysis.row_limit is not None else max(0, min(limit, MAX_RAW_LIMIT))
            result = backend.query(replace(base, sort=raw_sort(analysis, ctx), limit=cap))
            rows = _raw_rows(result.events, analysis, ctx)
            total = result.total or 0
            more = total > len(rows)
        token = None
    results = render_rows(rows, [f["type"] for f in fields], column_roles(analysis, schema))
    return QueryAnswer(fields=fields, results=results, more_data=more, total=total, scrollid=token)


# ---------------------------------------------------------------------------------------------- raw rows
def _raw_rows(events: list, analysis: Analysis, ctx: Context) -> list[list]:
    if analysis.select.star:
        getters = [ctx.event_getter(A.Field(tuple(name.split(".")))) for name in ctx.types]
    else:
        getters = [ctx.evaluator.value(column.expr) for column in analysis.columns]
    return [[get(event) for get in getters] for event in events]


def _scroll(backend: Backend, stream: Stream, analysis: Analysis, ctx: Context, start_ms: int | None,
            end_ms: int | None, limit: int, token: str | None) -> tuple[list[list], bool, int, str | None]:
    """One scroll batch. The token carries the core cursor, the rows handed out so far and the time bounds
    resolved by the first batch (a relative SINCE must not move between batches), bound to the query by a
    digest of the schema, the query text and the request's parameters."""
    identity = [stream.tenant, stream.name, stream.created_at, analysis.select.text, start_ms, end_ms, limit]
    if token is None:
        start, end = analysis.time_bounds(ctx.now_ms, start_ms, end_ms)
        cursor, delivered = None, 0
    else:
        start, end, cursor, delivered = _read_token(token, identity)
    batch = scroll_batch_size(limit)
    if analysis.row_limit is not None:
        batch = max(0, min(batch, analysis.row_limit - delivered))
    base = base_query(stream.tenant, stream.name, analysis, ctx, start, end)
    try:
        result = backend.query(replace(base, sort=raw_sort(analysis, ctx), limit=batch, cursor=cursor))
    except QueryError as exc:
        raise ScrollIdError(f"invalid scrollid: {exc}") from None
    rows = _raw_rows(result.events, analysis, ctx)
    delivered += len(rows)
    more = result.next_cursor is not None and (analysis.row_limit is None or delivered < analysis.row_limit)
    following = _make_token(identity, start, end, result.next_cursor, delivered) if more else None
    return rows, more, result.total or 0, following


def _digest(identity: list[Any], start: int | None, end: int | None) -> str:
    text = json.dumps([*identity, start, end], separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _make_token(identity: list[Any], start: int | None, end: int | None, cursor: str | None, delivered: int) -> str:
    doc = {"h": _digest(identity, start, end), "s": start, "e": end, "c": cursor, "n": delivered}
    return base64.urlsafe_b64encode(json.dumps(doc, separators=(",", ":")).encode()).decode().rstrip("=")


def _read_token(token: str, identity: list[Any]) -> tuple[int | None, int | None, str | None, int]:
    try:
        doc = json.loads(base64.urlsafe_b64decode((token + "=" * (-len(token) % 4)).encode()))
        start, end, cursor, delivered, digest = doc["s"], doc["e"], doc["c"], doc["n"], doc["h"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError, AttributeError):
        raise ScrollIdError("invalid scrollid") from None
    bounds_ok = all(v is None or (isinstance(v, int) and not isinstance(v, bool)) for v in (start, end))
    if not (bounds_ok and isinstance(cursor, str) and isinstance(delivered, int) and delivered >= 0):
        raise ScrollIdError("invalid scrollid")
    if digest != _digest(identity, start, end):
        raise ScrollIdError("this scrollid belongs to another query, schema or request")
    return start, end, cursor, delivered


# ---------------------------------------------------------------------------------------------- grouped rows
def _grouped(backend: Backend, base: Any, analysis: Analysis, ctx: Context) -> tuple[list[list], int]:
    levels = build_levels(analysis, ctx)
    metrics = Metrics(analysis, ctx)
    every_level = any(kind == "metric" for level in levels for kind, _, _ in level.sort_keys)
    query = replace(base, sort=(), limit=0, aggregations=aggregations(levels, metrics, ctx, every_level))
    result = backend.query(query)
    total = result.total or 0
    columns = analysis.columns
    rows: list[list] = []

    def walk(depth: int, values: Mapping[str, Any], count: int, keys: dict[int, Any]) -> None:
        if depth == len(levels):
            rows.append([keys[i] if c.role in ("group", "bucket") else metrics.value(c.expr, values, count, c.part)
                         for i, c in enumerate(columns)])
            return
        level = levels[depth]
        buckets = values[level.name]
        if level.engine_ordered:
            buckets = _order_level(level, buckets, analysis, metrics)
        key = key_getter(level)
        for bucket in buckets:
            walk(depth + 1, bucket, bucket["count"], {**keys, level.column: key(bucket)})

    walk(0, result.aggregations, total, {})
    if analysis.having is not None:
        keep = _row_evaluator(ctx.now_ms).condition(analysis.having)
        rows = [row for row in rows if keep(row)]
    return rows, total


def _order_level(level: Level, buckets: list[dict], analysis: Analysis, metrics: Metrics) -> list[dict]:
    """ADQL's order of one level the core could not order: the ORDER BY keys concerning it (nulls last),
    then event count descending and key ascending (buckets: key ascending; ``range``: bound order)."""
    if level.kind == "terms" and len(buckets) > compiler.MAX_GROUPS:
        raise TooManyGroups(f"ordering groups by a metric works on at most {compiler.MAX_GROUPS:,} distinct values "
                            f"of a group-by term")
    key = key_getter(level)
    items = list(buckets)
    if level.kind == "range":
        labels = range_labels(level.node.bounds)
        items.sort(key=lambda b: labels.index(b["key"]))
    elif level.kind in ("date_histogram", "histogram"):
        items.sort(key=lambda b: _sortable(key(b)))
    else:
        items.sort(key=lambda b: _sortable(key(b)))
        items.sort(key=lambda b: b["count"], reverse=True)
    for kind, column, descending in reversed(level.sort_keys):
        if kind == "key":
            value_of = key
        else:
            col = analysis.columns[column]
            def value_of(b: dict, c: Any = col) -> Any:
                return metrics.value(c.expr, b, b["count"], c.part)
        values = [(value_of(b), b) for b in items]
        present = [pair for pair in values if pair[0] is not None]
        present.sort(key=lambda pair: _sortable(pair[0]), reverse=descending)
        items = [b for _, b in present] + [b for v, b in values if v is None]
    return items if level.limit is None else items[: level.limit]


def _sortable(value: Any) -> tuple:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


def _row_evaluator(now_ms: int) -> Evaluator:
    """HAVING over finished rows: column references read the row; literals are compared as they are."""
    def resolve(node: A.Node):
        if isinstance(node, A.ColumnRef):
            index = node.index
            return lambda row: row[index]
        raise AdqlError("HAVING can only use SELECT columns")

    return Evaluator(resolve, {}, now_ms, coerce_literal, CANNOT_COERCE)
