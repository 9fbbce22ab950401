"""The semantic pass: what an ADQL statement means, independent of any schema or backend.

Why: ADQL has no GROUP BY; whether a SELECT item is a group-by term, a bucketing term, a metric or a plain value
follows from the items beside it, and LIMIT, ORDER BY and HAVING are read against that classification. The
compiler to the core query model and the reference evaluator both start from :class:`Analysis`, so the rules
live in one place. Every rule that rejects a query raises :class:`~.parser.AdqlError` at the node's position.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast as A
from .errors import AdqlError, error_at
from .parser import parse

MAX_GROUP_TERMS = 5
DEFAULT_TERM_LIMIT = 10
FIRST_TERM_MAX = 1_000
LATER_TERM_MAX = 100
MAX_RAW_LIMIT = 10_000


@dataclass(frozen=True)
class Column:
    """One column of the response, in order. ``role`` is ``value`` (a raw query's column), ``group`` (a field or
    expression group-by term), ``bucket`` (``series``/``range``) or ``metric``. ``item`` indexes
    ``Select.items``; several columns share an item when it expands (``stats`` -> 5, ``percentile(x, 50, 90)``
    -> 2, ``funnel`` -> one per step), and ``part`` says which: the stats part name, the percentile ``p`` or the
    0-based funnel step. ``aggregation`` is the response's ``aggregation`` (``None`` except on metrics;
    ``"expression"`` for math over metrics). ``field`` is the response's ``field``."""

    label: str
    item: int
    expr: A.Expr
    role: str
    aggregation: str | None = None
    part: str | int | float | None = None
    field: str = ""


@dataclass(frozen=True)
class GroupTerm:
    """A group-by level, outermost first: ``column`` indexes :attr:`Analysis.columns`; ``limit`` is the top-N
    kept at this level (``None`` for bucketing terms, which take a LIMIT slot but keep every bucket)."""

    column: int
    expr: A.Expr
    limit: int | None


@dataclass(frozen=True)
class OrderSpec:
    """An ORDER BY key resolved to an output column; ``column`` is ``None`` only for a raw (non-aggregated)
    query ordered by a field it does not select (``expr`` is then that :class:`~.ast.Field`)."""

    column: int | None
    expr: A.Expr
    descending: bool


@dataclass(frozen=True)
class Analysis:
    """The meaning of one statement.

    - ``aggregated``: the query groups (DISTINCT, a metric or a bucketing function in SELECT).
    - ``columns``: output columns (empty for ``SELECT *``: the caller lists the schema's fields).
    - ``group_terms``: the implicit GROUP BY, in SELECT order (nested: term 2 within each term-1 group).
    - ``metrics``: every distinct :class:`~.ast.Aggregate` / :class:`~.ast.Funnel` the metric columns need.
    - ``where``: the WHERE condition with SELECT aliases of plain columns replaced by their expressions.
    - ``having``: the HAVING condition over :class:`~.ast.ColumnRef` (and literals) only.
    - ``order_by``: resolved keys; empty means the default order (raw: newest ``eventTimestamp`` first;
      grouped: per level by event count descending, then key ascending; buckets by key ascending).
    - ``row_limit``: a raw query's ``LIMIT`` clamped to 10,000; ``None`` means the request's ``limit``.
    - ``has_math``: SELECT uses math or scalar functions (scroll mode refuses that, as it refuses aggregation).
    """

    select: A.Select
    aggregated: bool
    columns: tuple[Column, ...]
    group_terms: tuple[GroupTerm, ...]
    metrics: tuple[A.Node, ...]
    where: A.Cond | None
    having: A.Cond | None
    order_by: tuple[OrderSpec, ...]
    row_limit: int | None
    has_math: bool

    def time_bounds(self, now_ms: int, start: int | None, end: int | None) -> tuple[int | None, int | None]:
        """The inclusive ``eventTimestamp`` range: ``SINCE``/``UNTIL`` (UNTIL defaulting to now) override the
        request's ``start``/``end``; without SINCE the request's bounds apply (``None`` = unbounded)."""
        if self.select.since is None:
            return start, end
        until = self.select.until.resolve(now_ms) if self.select.until is not None else now_ms
        return self.select.since.resolve(now_ms), until


    def referenced_fields(self) -> frozenset[str]:
        """Every field name the query reads (SELECT, WHERE, metric filters, funnel steps, unselected ORDER BY
        keys), plus ``eventTimestamp``; for ``SELECT *`` the caller adds the whole schema."""
        roots: list[A.Node] = [item.expr for item in self.select.items]
        roots += [self.where] if self.where is not None else []
        roots += [spec.expr for spec in self.order_by if spec.column is None]
        names = {"eventTimestamp"}
        for root in roots:
            names.update(node.name for node in A.walk(root) if isinstance(node, A.Field))
        return frozenset(names)


def analyze_text(text: str) -> Analysis:
    """Parse and analyse in one step."""
    return analyze(parse(text))


def analyze(select: A.Select) -> Analysis:
    """Classify a parsed statement; raises :class:`AdqlError` for rule violations."""
    kinds = [_classify(item) for item in select.items]
    aggregated = select.distinct or any(k in ("metric", "bucket") for k in kinds)
    columns: list[Column] = []
    terms: list[tuple[int, A.Expr, str]] = []
    for index, (item, kind) in enumerate(zip(select.items, kinds, strict=True)):
        role = kind if aggregated else "value"
        if aggregated and kind == "value":
            role = "group"
        if role in ("group", "bucket"):
            terms.append((len(columns), item.expr, role))
        columns.extend(_columns_of(select, index, item, role))
    if len(terms) > MAX_GROUP_TERMS:
        raise error_at(
            f"at most {MAX_GROUP_TERMS} group-by terms (fields beside aggregates, or bucketing functions); "
            f"this query has {len(terms)}",
            select.items[columns[terms[MAX_GROUP_TERMS][0]].item],
        )
    group_terms = tuple(
        GroupTerm(column=col, expr=expr, limit=None if role == "bucket" else _term_limit(select.limits, i))
        for i, (col, expr, role) in enumerate(terms)
    )
    metrics: list[A.Node] = []
    for column in columns:
        if column.role == "metric":
            for node in _metric_nodes(column.expr):
                if node not in metrics:
                    metrics.append(node)
    where = _resolve_where(select, columns) if select.where is not None else None
    having = None
    if select.having is not None:
        if not aggregated:
            raise error_at("HAVING needs an aggregation (a metric function or DISTINCT in SELECT)", select.having)
        having = _resolve_having(select.having, select, columns)
    order_by = tuple(_resolve_order(key, select, columns, aggregated) for key in select.order_by)
    row_limit = None
    if not aggregated and select.limits:
        if len(select.limits) > 1:
            raise error_at("LIMIT takes several values only for group-by terms; this query does not group", select)
        row_limit = min(select.limits[0], MAX_RAW_LIMIT)
    has_math = any(
        isinstance(node, A.BinaryOp | A.Negate | A.FuncCall) for item in select.items for node in A.walk(item.expr)
    )
    return Analysis(
        select=select, aggregated=aggregated, columns=tuple(columns), group_terms=group_terms,
        metrics=tuple(metrics), where=where, having=having, order_by=order_by, row_limit=row_limit,
        has_math=has_math,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------- SELECT items
def _classify(item: A.SelectItem) -> str:
    """``value``, ``metric`` or ``bucket``; raises for shapes ADQL does not allow."""
    expr = item.expr
    if isinstance(expr, A.CONDITION_TYPES):
        raise error_at("a condition is not a SELECT expression; count matching events with filter(count(*), WHERE ...)",
                       expr)  # fmt: skip
    if isinstance(expr, A.Series | A.RangeBuckets):
        _check_row_expr(expr.expr, "inside a bucketing function")
        return "bucket"
    if isinstance(expr, A.Funnel):
        _check_row_expr(expr.count_field, "inside funnel()")
        for step in expr.steps:
            _check_condition(step, "a funnel step")
        return "metric"
    if isinstance(expr, A.Aggregate):
        _check_aggregate(expr)
        return "metric"
    has_metric = _check_metric_math(expr)
    return "metric" if has_metric else "value"


def _check_metric_math(expr: A.Expr) -> bool:
    """Math over metrics, or a per-event expression. Returns whether metrics are involved; raises on mixes."""
    metrics, loose = [], []
    for node in _outside_aggregates(expr):
        if isinstance(node, A.Aggregate):
            _check_aggregate(node)
            if node.kind == "stats" or (node.kind == "percentile" and len(node.args) > 2):
                raise error_at(f"{node.kind}() gives several values and cannot be used in math", node)
            metrics.append(node)
        elif isinstance(node, A.Series | A.RangeBuckets | A.Funnel):
            raise error_at("bucketing functions and funnel() must stand alone in SELECT", node)
        elif isinstance(node, A.CONDITION_TYPES):
            raise error_at("a condition is not a SELECT expression", node)
        elif isinstance(node, A.Field):
            loose.append(node)
    if metrics and loose:
        raise error_at(
            f"{loose[0].name} is outside an aggregate in an expression with metrics; list it as its own SELECT item "
            "to group by it",
            loose[0],
        )
    if metrics:
        for node in _outside_aggregates(expr):
            if isinstance(node, A.FuncCall):
                raise error_at(f"{node.name}() cannot be applied to metrics; only + - * / % can", node)
    return bool(metrics)


def _outside_aggregates(expr: A.Node):
    """Nodes of ``expr`` without descending into aggregates."""
    yield expr
    if isinstance(expr, A.Aggregate):
        return
    for child in A.children(expr):
        yield from _outside_aggregates(child)


def _check_aggregate(agg: A.Aggregate) -> None:
    measured = agg.args[0]
    if isinstance(measured, A.Star):
        if agg.kind != "count":
            raise error_at(f"{agg.kind}(*) is not allowed; only count(*)", agg)
    else:
        _check_row_expr(measured, f"inside {agg.kind}()")
    if agg.filter is not None:
        _check_condition(agg.filter, "a filter() condition")


def _check_row_expr(expr: A.Node, where: str) -> None:
    for node in A.walk(expr):
        if isinstance(node, A.Aggregate | A.Funnel):
            raise error_at(f"metric functions are not allowed {where}", node)
        if isinstance(node, A.Series | A.RangeBuckets):
            raise error_at(f"bucketing functions are not allowed {where}", node)
        if isinstance(node, A.CONDITION_TYPES):
            raise error_at(f"a condition is not allowed {where}", node)


def _check_condition(cond: A.Node, where: str) -> None:
    for node in A.walk(cond):
        if isinstance(node, A.Aggregate | A.Funnel):
            raise error_at(f"metric functions are only allowed in SELECT and HAVING, not in {where}", node)
        if isinstance(node, A.Series | A.RangeBuckets):
            raise error_at(f"bucketing functions are only allowed in SELECT, not in {where}", node)


def _columns_of(select: A.Select, index: int, item: A.SelectItem, role: str) -> list[Column]:
    expr = item.expr
    label = item.label
    if isinstance(expr, A.Aggregate) and expr.kind == "stats":
        arg = _text(select, expr.args[0])
        return [
            Column(label=f"{part}({arg})", item=index, expr=expr, role=role, aggregation=part, part=part,
                   field=_field_of(select, expr.args[0]))
            for part in A.STATS_PARTS
        ]  # fmt: skip
    if isinstance(expr, A.Aggregate) and expr.kind == "percentile" and len(expr.args) > 2:
        arg = _text(select, expr.args[0])
        return [
            Column(label=f"percentile({arg}, {_fmt_number(p.value)})", item=index, expr=expr, role=role,
                   aggregation="percentile", part=p.value, field=_field_of(select, expr.args[0]))
            for p in expr.args[1:]
        ]  # fmt: skip
    if isinstance(expr, A.Funnel):
        names = [n.strip() for n in item.alias.split(",")] if item.alias else []
        if len(names) != len(expr.steps):
            names = [f"{label} step {k + 1}" for k in range(len(expr.steps))]
        return [
            Column(label=names[k], item=index, expr=expr, role=role, aggregation="funnel", part=k,
                   field=_field_of(select, expr.count_field))
            for k in range(len(expr.steps))
        ]  # fmt: skip
    if role == "metric":
        if isinstance(expr, A.Aggregate):
            part = expr.args[1].value if expr.kind == "percentile" else None
            return [Column(label=label, item=index, expr=expr, role=role, aggregation=expr.kind, part=part,
                           field=_field_of(select, expr.args[0]))]  # fmt: skip
        return [Column(label=label, item=index, expr=expr, role=role, aggregation="expression", field=item.text)]
    if role == "bucket":
        return [Column(label=label, item=index, expr=expr, role=role, field=_field_of(select, expr.expr))]
    return [Column(label=label, item=index, expr=expr, role=role, field=_field_of(select, expr))]


def _field_of(select: A.Select, expr: A.Node) -> str:
    if isinstance(expr, A.Star):
        return "*"
    if isinstance(expr, A.Field):
        return expr.name
    return _text(select, expr)


def _text(select: A.Select, node: A.Node) -> str:
    if isinstance(node, A.Field):
        return node.name
    if node.pos is not None and select.text:
        return select.text[node.pos[2] : node.pos[3]]
    return repr(node)


def _fmt_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def _term_limit(limits: tuple[int, ...], slot: int) -> int:
    value = limits[slot] if slot < len(limits) else DEFAULT_TERM_LIMIT
    return min(value, FIRST_TERM_MAX if slot == 0 else LATER_TERM_MAX)


def _metric_nodes(expr: A.Node) -> list[A.Node]:
    return [n for n in _outside_aggregates(expr) if isinstance(n, A.Aggregate | A.Funnel)]


# ---------------------------------------------------------------------------------------------- WHERE / HAVING
def _resolve_where(select: A.Select, columns: list[Column]) -> A.Cond:
    _check_condition(select.where, "WHERE")
    aliases = {}
    for column in columns:
        item = select.items[column.item]
        if column.role in ("value", "group") and item.alias and item.expr != A.Field(path=(item.alias,)):
            aliases.setdefault(item.alias, item.expr)
    if not aliases:
        return select.where
    return _substitute(select.where, lambda n: aliases.get(n.path[0]) if isinstance(n, A.Field)
                       and len(n.path) == 1 else None)  # fmt: skip


def _substitute(node, replace):
    """Rebuild ``node`` bottom-up, replacing every sub-node for which ``replace`` returns a node."""
    found = replace(node)
    if found is not None:
        return found
    if not isinstance(node, A.Node) or isinstance(node, A.Field | A.Literal | A.Star | A.ColumnRef):
        return node
    values = {}
    for name in node.__dataclass_fields__:
        if name == "pos":
            continue
        value = getattr(node, name)
        if isinstance(value, A.Node):
            value = _substitute(value, replace)
        elif isinstance(value, tuple):
            value = tuple(_substitute(v, replace) if isinstance(v, A.Node) else v for v in value)
        values[name] = value
    return type(node)(**values, pos=node.pos)


def _find_column(expr: A.Node, select: A.Select, columns: list[Column], clause: str) -> int | None:
    """The output column ``expr`` names: an alias, or the same expression as a SELECT item (the first one when
    the same expression is selected twice)."""
    matches: list[int] = []
    if isinstance(expr, A.Field) and len(expr.path) == 1:
        matches = [i for i, c in enumerate(columns) if select.items[c.item].alias == expr.path[0]]
    if not matches:
        matches = [i for i, c in enumerate(columns) if c.expr == expr]
    if not matches and isinstance(expr, A.Field):
        matches = [i for i, c in enumerate(columns) if c.label == expr.name]
    if matches and sum(columns[i].item == columns[matches[0]].item for i in matches) > 1:
        first = columns[matches[0]]  # one SELECT item expanded to several columns (stats, percentile, funnel)
        kind = first.expr.kind if isinstance(first.expr, A.Aggregate) else first.aggregation
        raise error_at(f"{clause} cannot use {kind}(), which gives several values", expr)
    if matches and columns[matches[0]].aggregation in ("percentile", "stats", "funnel") and clause == "ORDER BY":
        raise error_at(f"ORDER BY cannot use {columns[matches[0]].aggregation}()", expr)
    return matches[0] if matches else None


def _resolve_having(cond: A.Cond, select: A.Select, columns: list[Column]) -> A.Cond:
    def replace(node):
        if isinstance(node, (*A.CONDITION_TYPES, A.Literal)):
            return None
        if isinstance(node, A.Field | A.Aggregate | A.Funnel | A.BinaryOp | A.Negate | A.FuncCall):
            index = _find_column(node, select, columns, "HAVING")
            if index is not None:
                return A.ColumnRef(index=index, pos=node.pos)
            if isinstance(node, A.Field | A.Aggregate | A.Funnel):
                raise error_at(f"HAVING can only use SELECT columns (by alias or as written); "
                               f"{_text(select, node)} is not one", node)  # fmt: skip
        return None

    return _substitute(cond, replace)


def _resolve_order(key: A.OrderKey, select: A.Select, columns: list[Column], aggregated: bool) -> OrderSpec:
    if select.star:
        if not isinstance(key.expr, A.Field):
            raise error_at("ORDER BY after SELECT * takes field names", key.expr)
        return OrderSpec(column=None, expr=key.expr, descending=key.descending)
    index = _find_column(key.expr, select, columns, "ORDER BY")
    if index is not None:
        return OrderSpec(column=index, expr=columns[index].expr, descending=key.descending)
    if not aggregated and isinstance(key.expr, A.Field):
        return OrderSpec(column=None, expr=key.expr, descending=key.descending)
    raise error_at(f"ORDER BY {_text(select, key.expr)}: only fields and aliases listed in SELECT can be ordered",
                   key.expr)  # fmt: skip


__all__ = ["AdqlError", "Analysis", "Column", "GroupTerm", "OrderSpec", "analyze", "analyze_text"]
