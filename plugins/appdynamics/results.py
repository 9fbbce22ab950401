"""The query response shape: ``fields`` from an analysed query and a schema, rows rendered as the API renders them.

Why a module of its own: every backend and the reference evaluator hand back plain Python rows (dates as epoch
milliseconds); this module is the single place that decides column types, labels, the ``aggregation`` key, ISO
date strings with milliseconds, ``moreData``/``total`` and the scroll-mode element (lowercase ``scrollid``, no
``scrollid`` on the last batch). It also rejects queries that do not fit the schema (unknown fields, ``avg`` of a
string) with an :class:`~.adql.AdqlError` that points at the field.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from .adql import ast as A
from .adql.errors import AdqlError, error_at
from .adql.semantics import Analysis, Column
from .schema_types import IMPLICIT_FIELDS

SCROLL_BATCH_MAX = 1_000
NUMERIC = ("integer", "float")


def full_schema(schema: Mapping[str, str]) -> dict[str, str]:
    """A stored schema plus the implicit ``eventTimestamp``/``pickupTimestamp`` (user fields first)."""
    out = dict(schema)
    for name, kind in IMPLICIT_FIELDS.items():
        out.setdefault(name, kind)
    return out


def output_columns(analysis: Analysis, schema: Mapping[str, str]) -> list[tuple[str, str, str | None, str]]:
    """``(label, field, aggregation, type)`` per output column. ``SELECT *`` lists the schema's fields in
    definition order, then ``eventTimestamp`` and ``pickupTimestamp``. Raises :class:`AdqlError` for fields the
    schema lacks and for type errors (math on strings, ``avg`` of a string, ``%`` on floats...)."""
    types = full_schema(schema)
    check_types(analysis, types)
    if analysis.select.star:
        return [(name, name, None, kind) for name, kind in types.items()]
    return [(c.label, c.field, c.aggregation, column_type(c, types)) for c in analysis.columns]


def fields_json(analysis: Analysis, schema: Mapping[str, str]) -> list[dict[str, str]]:
    """The response's ``fields``: ``label``, ``field``, ``type`` and ``aggregation`` on aggregate columns."""
    out = []
    for label, field, aggregation, kind in output_columns(analysis, schema):
        entry = {"label": label, "field": field, "type": kind}
        if aggregation is not None:
            entry["aggregation"] = aggregation
        out.append(entry)
    return out


# ---------------------------------------------------------------------------------------------- typing
def column_type(column: Column, types: Mapping[str, str]) -> str:
    """The ``type`` of one output column (bucket keys of a time ``series`` are ``date``)."""
    expr = column.expr
    if isinstance(expr, A.Aggregate) and expr.kind == "stats":
        return _aggregate_type(A.Aggregate(kind=str(column.part), args=expr.args), types)
    if isinstance(expr, A.Funnel):
        return "integer"
    if isinstance(expr, A.Series):
        return "date" if expr.time else ("float" if isinstance(expr.interval, float) else expr_type(expr.expr, types))
    if isinstance(expr, A.RangeBuckets):
        return "string"
    return expr_type(expr, types)


def expr_type(expr: A.Node, types: Mapping[str, str]) -> str:
    """Static type of an expression: ``string | integer | float | boolean | date``."""
    if isinstance(expr, A.Field):
        if expr.name not in types:
            raise error_at(f"unknown field {expr.name}", expr)
        return types[expr.name]
    if isinstance(expr, A.Literal):
        value = expr.value
        if isinstance(value, bool):
            return "boolean"
        return "integer" if isinstance(value, int) else "float" if isinstance(value, float) else "string"
    if isinstance(expr, A.Negate):
        kind = expr_type(expr.operand, types)
        if kind not in NUMERIC:
            raise error_at(f"unary minus needs a number, not a {kind}", expr)
        return kind
    if isinstance(expr, A.BinaryOp):
        left, right = expr_type(expr.left, types), expr_type(expr.right, types)
        for kind, side in ((left, expr.left), (right, expr.right)):
            if kind not in (*NUMERIC, "date"):
                raise error_at(f"math needs numbers or dates, not a {kind}", side)
        if expr.op == "%" and "float" in (left, right):
            raise error_at("% works on integers only", expr)
        return "float" if "float" in (left, right) else "integer"
    if isinstance(expr, A.FuncCall):
        arg_types = [expr_type(a, types) for a in expr.args]
        if expr.name in ("substring", "indexof", "length", "trim") and arg_types[0] != "string":
            raise error_at(f"{expr.name}() needs a string, not a {arg_types[0]}", expr.args[0])
        if expr.name in ("substring",) and any(t != "integer" for t in arg_types[1:]):
            raise error_at("substring() positions must be integers", expr)
        return {"substring": "string", "trim": "string", "concat": "string", "indexof": "integer",
                "length": "integer", "now": "date"}[expr.name]  # fmt: skip
    if isinstance(expr, A.Aggregate):
        return _aggregate_type(expr, types)
    if isinstance(expr, A.Funnel):
        return "integer"
    if isinstance(expr, A.Star):
        return "integer"
    raise error_at("not a value expression", expr)


def _aggregate_type(agg: A.Aggregate, types: Mapping[str, str]) -> str:
    measured = agg.args[0]
    kind = "integer" if isinstance(measured, A.Star) else expr_type(measured, types)
    if agg.kind in ("count", "distinctcount"):
        return "integer"
    if kind not in (*NUMERIC, "date"):
        raise error_at(f"{agg.kind}() needs a number or a date, not a {kind}", measured)
    if agg.kind in ("avg", "stdev", "percentile"):
        return "float"
    if agg.kind == "sum":
        return "float" if kind == "float" else "integer"
    return kind  # min, max keep the field's type (dates stay dates)


def check_types(analysis: Analysis, types: Mapping[str, str]) -> None:
    """Type-check every field reference and expression of the query against the schema."""
    select = analysis.select
    for item in select.items:
        for node in A.walk(item.expr):
            if isinstance(node, A.Field):
                expr_type(node, types)
    for column in analysis.columns:
        column_type(column, types)
        expr = column.expr
        if isinstance(expr, A.Series | A.RangeBuckets) and expr_type(expr.expr, types) not in (*NUMERIC, "date"):
            raise error_at("bucketing functions need a number or a date", expr.expr)
        if isinstance(expr, A.Series) and expr.time and expr_type(expr.expr, types) != "date":
            raise error_at("a time interval like '1m' needs a date field such as eventTimestamp", expr.expr)
    for cond in _conditions(analysis):
        for node in A.walk(cond):
            if isinstance(node, A.Field | A.BinaryOp | A.Negate | A.FuncCall):
                expr_type(node, types)
            elif isinstance(node, A.Compare | A.Between | A.InList):
                _check_comparable(node, types)
    for spec in analysis.order_by:
        if spec.column is None:
            expr_type(spec.expr, types)


def _conditions(analysis: Analysis):
    if analysis.where is not None:
        yield analysis.where
    for node in analysis.metrics:
        if isinstance(node, A.Aggregate) and node.filter is not None:
            yield node.filter
        if isinstance(node, A.Funnel):
            yield from node.steps


def _check_comparable(node: A.Node, types: Mapping[str, str]) -> None:
    """A field compared with a literal must be able to take that literal (numbers with numeric strings, dates
    with ISO strings or epoch ms)."""
    if isinstance(node, A.Compare):
        subject, others = node.left, [node.right]
    elif isinstance(node, A.Between):
        subject, others = node.expr, [node.low, node.high]
    else:
        subject, others = node.expr, list(node.values)
    if isinstance(subject, A.ColumnRef):
        return
    kind = expr_type(subject, types)
    for other in others:
        if isinstance(other, A.Literal) and coerce_literal(other.value, kind) is CANNOT_COERCE:
            raise error_at(f"cannot compare a {kind} with {other.value!r}", other)


#: Returned by :func:`coerce_literal` when a literal cannot be read as the field's type.
CANNOT_COERCE = object()


def coerce_literal(value: Any, kind: str) -> Any:
    """A literal as a value of ``kind`` for comparison: dates as epoch ms (from ISO 8601 or a number), numbers
    from numeric strings, strings from numbers/booleans; :data:`CANNOT_COERCE` when it cannot be one."""
    from .schema_types import parse_date

    if kind == "date":
        if isinstance(value, bool):
            return CANNOT_COERCE
        if isinstance(value, int | float):
            return int(value)
        try:
            return parse_date(value)
        except ValueError:
            return CANNOT_COERCE
    if kind in NUMERIC:
        if isinstance(value, bool):
            return CANNOT_COERCE
        if isinstance(value, int | float):
            return value
        try:
            return int(value) if value.strip().lstrip("+-").isdigit() else float(value)
        except ValueError:
            return CANNOT_COERCE
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        return CANNOT_COERCE
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else str(value)
    return str(value)


# ---------------------------------------------------------------------------------------------- rows
def iso_millis(epoch_ms: int | float) -> str:
    """``2015-12-01T10:15:00.000Z``: the API's rendering of a date."""
    ms = int(epoch_ms)
    m = datetime.fromtimestamp(ms // 1000, tz=UTC)
    return f"{m.year:04d}-{m.month:02d}-{m.day:02d}T{m.hour:02d}:{m.minute:02d}:{m.second:02d}.{ms % 1000:03d}Z"


def render_rows(rows: Sequence[Sequence[Any]], types: Sequence[str], roles: Sequence[str]) -> list[list[Any]]:
    """Rows with dates as ISO strings (except time-bucket keys, which stay epoch ms numbers)."""
    date_cols = [i for i, (t, r) in enumerate(zip(types, roles, strict=True)) if t == "date" and r != "bucket"]
    out = []
    for row in rows:
        rendered = list(row)
        for i in date_cols:
            if rendered[i] is not None:
                rendered[i] = iso_millis(rendered[i])
        out.append(rendered)
    return out


def column_roles(analysis: Analysis, schema: Mapping[str, str]) -> list[str]:
    """Per output column, its role (``value`` for every column of ``SELECT *``)."""
    if analysis.select.star:
        return ["value"] * len(full_schema(schema))
    return [c.role for c in analysis.columns]


def query_result(
    label: str,
    analysis: Analysis,
    schema_name: str,
    schema: Mapping[str, str],
    rows: Sequence[Sequence[Any]],
    total: int,
    more_data: bool,
) -> dict[str, Any]:
    """One element of the response array (normal mode). ``rows`` hold raw values (dates as epoch ms)."""
    fields = fields_json(analysis, schema)
    results = render_rows(rows, [f["type"] for f in fields], column_roles(analysis, schema))
    return {"label": label, "fields": fields, "results": results, "moreData": more_data, "schema": schema_name,
            "total": total}  # fmt: skip


def scroll_result(
    label: str,
    analysis: Analysis,
    schema_name: str,
    schema: Mapping[str, str],
    rows: Sequence[Sequence[Any]],
    total: int,
    scroll_id: str | None,
) -> dict[str, Any]:
    """One scroll-mode batch: ``moreData`` true with a lowercase ``scrollid`` while rows remain; the last batch
    has ``moreData`` false and no ``scrollid``. A batch holds at most :data:`SCROLL_BATCH_MAX` rows."""
    if len(rows) > SCROLL_BATCH_MAX:
        raise ValueError(f"a scroll batch holds at most {SCROLL_BATCH_MAX} rows")
    element = query_result(label, analysis, schema_name, schema, rows, total, scroll_id is not None)
    if scroll_id is not None:
        element["scrollid"] = scroll_id
    return element


def check_scrollable(analysis: Analysis) -> None:
    """Scroll mode pages raw events only: aggregation and math are refused (as the vendor documents)."""
    if analysis.aggregated:
        raise AdqlError("scroll mode does not support aggregation (metric, bucketing functions or DISTINCT)")
    if analysis.has_math:
        raise AdqlError("scroll mode does not support math or functions in SELECT")


def scroll_batch_size(limit: int | None) -> int:
    """Rows per scroll batch: the request's ``limit`` when smaller, else 1,000."""
    return SCROLL_BATCH_MAX if not limit or limit <= 0 else min(limit, SCROLL_BATCH_MAX)
