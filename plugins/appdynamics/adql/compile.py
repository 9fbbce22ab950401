"""ADQL -> the core query model: an analysed statement becomes one core `Query` plus what the engine finishes.

Why: every backend answers the core model with the same semantics and pushes down what it can, so ADQL
is compiled into it as far as it maps, and only ADQL's own rules stay in the plugin:

- WHERE: top-level ANDs become separate core filters (a backend pushes down the plain ones); a comparison of
  a field with literals becomes a core `Filter` (the literal read as the field's type); ``LIKE``/``REGEXP``
  become core ``regex`` filters; ``IS NULL`` is ``Not(exists)``; anything between expressions becomes a
  `Filter` on a `Computed` value (see :mod:`.values`).
- time: SINCE/UNTIL or the request's start/end, inclusive both ends (the core's end is exclusive: ``+1``).
- raw queries: the core sorts and pages; ADQL puts nulls last in both directions, so an ascending key is
  preceded by a computed "is null" key. Ties: newest ``eventTimestamp`` first, then newest stored first.
- aggregated queries: one core bucket aggregation per group-by term, nested (``terms``; ``series`` on a date
  -> ``date_histogram`` with a fixed interval; numeric ``series`` -> ``histogram``; ``range`` -> ``terms`` of
  a computed label), metrics as core metric sub-aggregations (``filter(agg, WHERE c)`` -> ``where``;
  ``funnel`` -> ``terms`` of the count field with one filtered ``count`` per step). A term level in the
  core's default order (count descending, key ascending) is cut by the core (``size``); a level that ADQL
  orders otherwise (ORDER BY, ``range``) asks for every bucket (at most :data:`MAX_GROUPS`) and the engine
  orders and cuts it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from gateway.query import MISSING, Aggregation, AllOf, AnyOf, Computed, Filter, Not, Query, QueryError, Sort
from gateway.query.semantics import field_getter

from ..results import CANNOT_COERCE, coerce_literal, column_type, expr_type
from . import ast as A
from .errors import AdqlError, error_at
from .semantics import Analysis
from .values import Evaluator, like_pattern, range_label, range_labels, regexp_pattern

PLUGIN = "appdynamics"
#: Buckets a level asks for when the engine orders it (or a funnel counts its ids); more is a 400.
MAX_GROUPS = 100_000
#: Core attributes standing for ADQL's implicit fields.
IMPLICIT = {"eventTimestamp": "timestamp", "pickupTimestamp": "received_at"}


class TooManyGroups(AdqlError):
    """A level or a funnel would need more than :data:`MAX_GROUPS` buckets."""


@dataclass
class Context:
    """What compiling needs besides the statement: the field types (logical names, implicit fields
    included), the core field of each logical name, and the query's ``now``."""

    types: Mapping[str, str]
    paths: Mapping[str, str]
    now_ms: int
    evaluator: Evaluator = field(init=False)

    def __post_init__(self) -> None:
        self.evaluator = Evaluator(self.event_getter, self.types, self.now_ms, coerce_literal, CANNOT_COERCE)

    def core_field(self, node: A.Field) -> str:
        """The core field of an ADQL field (``data.<stored path>`` or an event attribute)."""
        try:
            return self.paths[node.name]
        except KeyError:
            raise error_at(f"unknown field {node.name}", node) from None

    def event_getter(self, node: A.Node):
        """A getter of a field's value on a core event (None when absent)."""
        if not isinstance(node, A.Field):
            raise ValueError("column references only exist in HAVING")
        get = field_getter(self.core_field(node))
        return lambda event: None if (v := get(event)) is MISSING else v

    def computed(self, node: A.Node) -> Computed:
        """A per-event expression as a core `Computed` value (null -> missing)."""
        get = self.evaluator.value(node)
        return Computed(f"adql:{node!r}", lambda event: MISSING if (v := get(event)) is None else v)

    def source(self, node: A.Node) -> str | Computed:
        """A field's core name, or a computed value for an expression."""
        return self.core_field(node) if isinstance(node, A.Field) else self.computed(node)


# ---------------------------------------------------------------------------------------------- conditions
def compile_condition(cond: A.Node, ctx: Context) -> Any:
    """An ADQL condition as a core condition tree (a `Filter` on a computed predicate where nothing else
    fits)."""
    if isinstance(cond, A.And):
        return AllOf(tuple(compile_condition(c, ctx) for c in cond.operands))
    if isinstance(cond, A.Or):
        return AnyOf(tuple(compile_condition(c, ctx) for c in cond.operands))
    if isinstance(cond, A.Not):
        return Not(compile_condition(cond.operand, ctx))
    direct = _direct(cond, ctx)
    if direct is not None:
        return direct
    predicate = ctx.evaluator.condition(cond)
    return Filter(Computed(f"adql-cond:{cond!r}", predicate), "eq", True)


def top_filters(cond: A.Node | None, ctx: Context) -> tuple[Any, ...]:
    """WHERE as the query's filters (a top-level AND split so that each part is pushed down on its own)."""
    if cond is None:
        return ()
    if isinstance(cond, A.And):
        return tuple(f for c in cond.operands for f in top_filters(c, ctx))
    return (compile_condition(cond, ctx),)


def _literal_for(subject: A.Node, literal: A.Node, ctx: Context) -> Any:
    """A literal as the subject's type (fields and now()), or MISSING when it cannot be one."""
    if not isinstance(literal, A.Literal):
        return MISSING
    kind = ctx.evaluator.kind(subject)
    if kind is None:
        return literal.value
    value = coerce_literal(literal.value, kind)
    return MISSING if value is CANNOT_COERCE else value


def _filter(subject: A.Node, op: str, value: Any, ctx: Context) -> Filter:
    try:
        return Filter(ctx.source(subject), op, value)
    except QueryError as exc:
        raise error_at(str(exc), subject) from None


def _direct(cond: A.Node, ctx: Context) -> Any:
    """A leaf condition with a field or per-event expression against literals as core filters, else None."""
    from .values import CORE_OPS

    if isinstance(cond, A.Compare):
        if isinstance(cond.left, A.Literal):
            return None
        value = _literal_for(cond.left, cond.right, ctx)
        if value is MISSING or isinstance(value, bool) != (ctx.evaluator.kind(cond.left) == "boolean"):
            return None
        return _filter(cond.left, CORE_OPS[cond.op], value, ctx)
    if isinstance(cond, A.InList):
        values = [_literal_for(cond.expr, v, ctx) for v in cond.values]
        if isinstance(cond.expr, A.Literal) or any(v is MISSING for v in values):
            return None
        if any(isinstance(v, bool) != (ctx.evaluator.kind(cond.expr) == "boolean") for v in values):
            return None
        return _filter(cond.expr, "not_in" if cond.negated else "in", values, ctx)
    if isinstance(cond, A.Between):
        low, high = _literal_for(cond.expr, cond.low, ctx), _literal_for(cond.expr, cond.high, ctx)
        if isinstance(cond.expr, A.Literal) or MISSING in (low, high) or any(isinstance(v, bool) for v in (low, high)):
            return None
        both = AllOf((_filter(cond.expr, "gte" if cond.low_inclusive else "gt", low, ctx),
                      _filter(cond.expr, "lte" if cond.high_inclusive else "lt", high, ctx)))
        return Not(both) if cond.negated else both
    if isinstance(cond, A.Like | A.Regexp):
        if isinstance(cond.expr, A.Literal):
            return None
        pattern = like_pattern(cond.pattern) if isinstance(cond, A.Like) else regexp_pattern(cond.pattern)
        hit = _filter(cond.expr, "regex", pattern, ctx)
        return Not(hit) if cond.negated else hit
    if isinstance(cond, A.IsNull):
        if isinstance(cond.expr, A.Literal):
            return None
        present = _filter(cond.expr, "exists", None, ctx)
        return present if cond.negated else Not(present)
    if isinstance(cond, A.Field) and ctx.types.get(cond.name) == "boolean":
        return _filter(cond, "eq", True, ctx)
    return None


# ---------------------------------------------------------------------------------------------- raw queries
def raw_sort(analysis: Analysis, ctx: Context) -> tuple[Sort, ...]:
    """ORDER BY (nulls last both ways), then newest first."""
    sorts: list[Sort] = []
    for spec in analysis.order_by:
        expr = spec.expr if spec.column is None else analysis.columns[spec.column].expr
        source = ctx.source(expr)
        always = isinstance(expr, A.Field) and expr.name in IMPLICIT  # never null: the core sorts it natively
        if not spec.descending and not always:  # the core puts missing values first ascending; ADQL last
            get = ctx.evaluator.value(expr)
            sorts.append(Sort(Computed(f"adql-null:{expr!r}", lambda e, get=get: int(get(e) is None))))
        sorts.append(Sort(source, spec.descending))
    sorts.append(Sort("timestamp", descending=True))
    return tuple(sorts)


def base_query(tenant: str, stream: str, analysis: Analysis, ctx: Context, start: int | None,
               end: int | None) -> Query:
    """The query's events: stream, inclusive time range, WHERE."""
    return Query(tenant=tenant, plugin=PLUGIN, streams=(stream,), start=start,
                 end=None if end is None else end + 1, filters=top_filters(analysis.where, ctx))


# ---------------------------------------------------------------------------------------------- aggregations
@dataclass
class Level:
    """One group-by level: its output column, the core aggregation's name, how the engine finishes it."""

    column: int
    name: str
    node: A.Node
    kind: str  # terms | date_histogram | histogram | range
    limit: int | None
    engine_ordered: bool
    sort_keys: list[tuple[str, Any, bool]]  # ("key", None, desc) | ("metric", column index, desc)
    key_type: str


class Metrics:
    """The distinct metric nodes of a statement as core aggregations, and their values per bucket."""

    def __init__(self, analysis: Analysis, ctx: Context) -> None:
        self.ctx = ctx
        self.names: dict[A.Node, str] = {}
        self.aggs: list[Aggregation] = []
        self.types: dict[A.Node, str] = {}
        for i, node in enumerate(analysis.metrics):
            name = f"m{i}"
            if isinstance(node, A.Funnel):
                steps = tuple(Aggregation(f"s{k}", "count", where=compile_condition(c, ctx))
                              for k, c in enumerate(node.steps))
                agg = Aggregation(name, "terms", field=ctx.source(node.count_field), size=MAX_GROUPS + 1,
                                  aggs=steps)
            elif node.kind == "count" and isinstance(node.args[0], A.Star) and node.filter is None:
                self.names[node] = ""  # the bucket's own count
                self.types[node] = "integer"
                continue
            else:
                agg = self._metric(name, node)
                self.types[node] = expr_type(node, ctx.types) if node.kind != "stats" else "stats"
            self.names[node] = name
            self.aggs.append(agg)

    def _metric(self, name: str, node: A.Aggregate) -> Aggregation:
        where = None if node.filter is None else compile_condition(node.filter, self.ctx)
        measured = node.args[0]
        source = None if isinstance(measured, A.Star) else self.ctx.source(measured)
        kind = {"distinctcount": "distinct_count", "percentile": "percentiles"}.get(node.kind, node.kind)
        percents = tuple(float(p.value) for p in node.args[1:]) if node.kind == "percentile" else (50.0,)
        return Aggregation(name, kind, field=source, percents=percents, where=where)

    def value(self, node: A.Node, values: Mapping[str, Any], count: int, part: Any = None) -> Any:
        """A metric node's ADQL value in one bucket (``values``: the bucket's sub-results; ``count``: its
        event count); ``part`` picks a stats part, a percentile or a funnel step."""
        if isinstance(node, A.Literal):
            return node.value
        if isinstance(node, A.Negate):
            inner = self.value(node.operand, values, count)
            return None if inner is None else -inner
        if isinstance(node, A.BinaryOp):
            from .values import arith

            return arith(node.op, self.value(node.left, values, count), self.value(node.right, values, count))
        name = self.names[node]
        if name == "":
            return count
        found = values[name]
        if isinstance(node, A.Funnel):
            if len(found) > MAX_GROUPS:
                raise TooManyGroups(f"funnel() counts at most {MAX_GROUPS:,} distinct values", *_where(node))
            step = 0 if part is None else part
            return sum(1 for bucket in found if all(bucket[f"s{k}"] > 0 for k in range(step + 1)))
        if node.kind == "stats":
            stat = found.get(part)
            if part == "sum" and stat is None:
                stat = 0
            kind = "integer" if part == "count" else expr_type(A.Aggregate(kind=part, args=node.args), self.ctx.types)
            return typed(stat, kind)
        if node.kind == "percentile":
            p = float(node.args[1].value if part is None else part)
            return typed(found.get(p), "float")
        if node.kind == "sum" and found is None:
            found = 0
        return typed(found, self.types[node])


def _where(node: A.Node) -> tuple[int, int]:
    return (node.pos[0], node.pos[1]) if node.pos is not None else (1, 1)


def typed(value: Any, kind: str) -> Any:
    """A value from a backend in the column's type (SQL engines may hand back 3.0 for an integer sum)."""
    if value is None:
        return None
    if kind in ("integer", "date") and isinstance(value, float) and value.is_integer():
        return int(value)
    if kind == "float" and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind == "boolean" and isinstance(value, int):
        return bool(value)
    return value


def build_levels(analysis: Analysis, ctx: Context) -> list[Level]:
    """The group-by levels, outermost first, with how each one is ordered and cut."""
    levels = []
    for depth, term in enumerate(analysis.group_terms):
        column = analysis.columns[term.column]
        node = term.expr
        sort_keys: list[tuple[str, Any, bool]] = []
        for spec in analysis.order_by:
            if spec.column == term.column:
                sort_keys.append(("key", None, spec.descending))
            elif spec.column is not None and analysis.columns[spec.column].role == "metric":
                sort_keys.append(("metric", spec.column, spec.descending))
        if isinstance(node, A.Series):
            kind = "date_histogram" if node.time else "histogram"
        elif isinstance(node, A.RangeBuckets):
            kind = "range"
        else:
            kind = "terms"
        levels.append(Level(column=term.column, name=f"g{depth}", node=node, kind=kind, limit=term.limit,
                            engine_ordered=bool(sort_keys) or kind == "range", sort_keys=sort_keys,
                            key_type=column_type(column, ctx.types)))
    return levels


def level_aggregation(level: Level, ctx: Context, subs: tuple[Aggregation, ...]) -> Aggregation:
    """The core bucket aggregation of one level."""
    node = level.node
    if level.kind == "date_histogram":
        return Aggregation(level.name, "date_histogram", field=ctx.source(node.expr), interval=int(node.interval),
                           aggs=subs)
    if level.kind == "histogram":
        return Aggregation(level.name, "histogram", field=ctx.source(node.expr), interval=node.interval, aggs=subs)
    if level.kind == "range":
        get = ctx.evaluator.value(node.expr)
        bounds, labels = node.bounds, range_labels(node.bounds)
        label = Computed(f"adql-range:{node!r}", lambda e: range_label(get(e), bounds, labels) or MISSING)
        return Aggregation(level.name, "terms", field=label, size=len(labels), aggs=subs)
    size = MAX_GROUPS + 1 if level.engine_ordered else level.limit
    return Aggregation(level.name, "terms", field=ctx.source(node), size=size, aggs=subs)


def aggregations(levels: list[Level], metrics: Metrics, ctx: Context, every_level: bool) -> tuple[Aggregation, ...]:
    """The nested core aggregations: metrics at the innermost level (at every level when an ORDER BY on
    a metric orders the outer ones too)."""
    if not levels:
        return tuple(metrics.aggs)
    child: Aggregation | None = None
    for depth in range(len(levels) - 1, -1, -1):
        subs = tuple(metrics.aggs) if child is None else (*(metrics.aggs if every_level else ()), child)
        child = level_aggregation(levels[depth], ctx, subs)
    assert child is not None
    return (child,)


def key_getter(level: Level):
    """How the engine reads an ADQL key from a core bucket (booleans come back as 1/0)."""
    kind = level.key_type
    return lambda bucket: typed(bucket["key"], kind)


__all__ = ["IMPLICIT", "MAX_GROUPS", "PLUGIN", "Context", "Level", "Metrics", "TooManyGroups", "aggregations",
           "base_query", "build_levels", "compile_condition", "key_getter", "raw_sort", "top_filters", "typed"]
