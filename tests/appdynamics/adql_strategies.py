"""Hypothesis strategies for random schemas, events and well-typed ADQL queries, plus an AST -> ADQL printer.

Why: the property tests compare the plugin with the reference evaluator (``adql_oracle``) on random inputs drawn
from the whole supported grammar. ``queries(schema)`` draws a :class:`~plugins.appdynamics.adql.ast.Select` that
passes the semantic pass and the schema type check; :func:`to_adql` prints it so that ``parse(to_adql(q))`` gives
the same tree back (checked by ``test_adql_properties``).
"""

from __future__ import annotations

import re

from hypothesis import strategies as st

from plugins.appdynamics.adql import ast as A
from plugins.appdynamics.adql.ast import KEYWORDS

T0 = 1_700_000_000_000
FIELD_NAMES = ["name", "brand", "rating", "price", "flag", "when", "seg.user.step", "metrics.Resp Time (ms)",
               "count", "x.from"]  # fmt: skip
TYPES = ["string", "integer", "float", "boolean", "date"]
WORDS = ["ACME", "Widget", "acme", "watch", "new watch", "2015 watch", "", "x", "O'Neil", 'say "hi"', "a\\b"]
NUMERIC = ("integer", "float")
_PLAIN = re.compile(r"(?!\d)\w+")


# ---------------------------------------------------------------------------------------------- printer
def _name(segment: str, first: bool) -> str:
    if _PLAIN.fullmatch(segment) and not (first and segment.lower() in KEYWORDS):
        return segment
    return "`" + segment.replace("`", "``") + "`"


def _field(field: A.Field) -> str:
    return ".".join(_name(seg, i == 0) for i, seg in enumerate(field.path))


def _literal(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _interval(ms: int) -> str:
    for unit, size in (("w", 604_800_000), ("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1_000)):
        if ms % size == 0:
            return f"'{ms // size}{unit}'"
    raise ValueError(ms)


def _wrap(node: A.Node) -> str:
    text = expr_text(node)
    return text if isinstance(node, A.Field | A.Literal | A.FuncCall | A.Aggregate | A.Star) else f"({text})"


def expr_text(node: A.Node) -> str:
    """ADQL for an expression or condition (parenthesised so that precedence never matters)."""
    if isinstance(node, A.Field):
        return _field(node)
    if isinstance(node, A.Literal):
        return _literal(node.value)
    if isinstance(node, A.Star):
        return "*"
    if isinstance(node, A.Negate):
        return f"-{_wrap(node.operand)}"
    if isinstance(node, A.BinaryOp):
        return f"{_wrap(node.left)} {node.op} {_wrap(node.right)}"
    if isinstance(node, A.FuncCall):
        return f"{node.name}({', '.join(expr_text(a) for a in node.args)})"
    if isinstance(node, A.Aggregate):
        inner = f"{node.kind}({', '.join(expr_text(a) for a in node.args)})"
        return inner if node.filter is None else f"filter({inner}, WHERE {expr_text(node.filter)})"
    if isinstance(node, A.Series):
        interval = _interval(node.interval) if node.time else _literal(node.interval)
        return f"series({expr_text(node.expr)}, {interval})"
    if isinstance(node, A.RangeBuckets):
        return f"range({expr_text(node.expr)}, {', '.join(_literal(b) for b in node.bounds)})"
    if isinstance(node, A.Funnel):
        return f"funnel({expr_text(node.count_field)}, {', '.join(expr_text(s) for s in node.steps)})"
    if isinstance(node, A.Compare):
        return f"{_wrap(node.left)} {node.op} {_wrap(node.right)}"
    if isinstance(node, A.InList):
        values = ", ".join(_wrap(v) for v in node.values)
        return f"{_wrap(node.expr)} {'NOT IN' if node.negated else 'IN'} ({values})"
    if isinstance(node, A.Between):
        neg = "NOT " if node.negated else ""
        if node.low_inclusive and node.high_inclusive:
            return f"{_wrap(node.expr)} {neg}BETWEEN {_wrap(node.low)} AND {_wrap(node.high)}"
        opening = "[" if node.low_inclusive else "("
        closing = "]" if node.high_inclusive else ")"
        return f"{_wrap(node.expr)} {neg}BETWEEN {opening}{expr_text(node.low)}, {expr_text(node.high)}{closing}"
    if isinstance(node, A.Like):
        return f"{_wrap(node.expr)} {'NOT ' if node.negated else ''}LIKE {_literal(node.pattern)}"
    if isinstance(node, A.Regexp):
        return f"{_wrap(node.expr)} {'NOT ' if node.negated else ''}REGEXP {_literal(node.pattern)}"
    if isinstance(node, A.IsNull):
        return f"{_wrap(node.expr)} IS {'NOT ' if node.negated else ''}NULL"
    if isinstance(node, A.Not):
        return f"NOT ({expr_text(node.operand)})"
    if isinstance(node, A.And | A.Or):
        word = " AND " if isinstance(node, A.And) else " OR "
        return word.join(f"({expr_text(o)})" for o in node.operands)
    raise TypeError(node)


def to_adql(select: A.Select) -> str:
    """ADQL text for a statement tree."""
    if select.star:
        head = "SELECT *"
    else:
        items = []
        for item in select.items:
            text = expr_text(item.expr)
            items.append(text if item.alias is None else f"{text} AS `{item.alias.replace('`', '``')}`")
        head = "SELECT " + ("DISTINCT " if select.distinct else "") + ", ".join(items)
    parts = [head, "FROM", _name(select.from_schema, True)]
    if select.where is not None:
        parts += ["WHERE", expr_text(select.where)]
    if select.since is not None:
        parts += ["SINCE", _time(select.since)]
        if select.until is not None:
            parts += ["UNTIL", _time(select.until)]
    if select.having is not None:
        parts += ["HAVING", expr_text(select.having)]
    if select.order_by:
        keys = [expr_text(k.expr) + (" DESC" if k.descending else " ASC") for k in select.order_by]
        parts += ["ORDER BY", ", ".join(keys)]
    if select.limits:
        parts += ["LIMIT", ", ".join(str(n) for n in select.limits)]
    return " ".join(parts)


def _time(value: A.TimeValue) -> str:
    return str(value.amount) if value.unit is None else f"{value.amount} {value.unit}"


def shape(select: A.Select) -> tuple:
    """A statement without its source texts (what a printed-then-parsed tree must reproduce)."""
    return (tuple((i.expr, i.alias) for i in select.items), select.from_schema, select.star, select.distinct,
            select.where, select.since, select.until, select.having, select.order_by, select.limits)  # fmt: skip


# ---------------------------------------------------------------------------------------------- data
@st.composite
def schemas(draw) -> dict[str, str]:
    """1-6 user fields with names from a pool (dotted, spaced, keyword-ish) and random types."""
    names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=6, unique=True))
    return {name: draw(st.sampled_from(TYPES)) for name in names}


def values_of(kind: str):
    """Small value pools so that groups, equalities and ties actually happen."""
    if kind == "string":
        return st.sampled_from(WORDS)
    if kind == "integer":
        return st.integers(-20, 20)
    if kind == "float":
        return st.sampled_from([-2.5, -1.0, 0.0, 0.5, 1.5, 2.0, 3.25, 10.0])
    if kind == "boolean":
        return st.booleans()
    return st.integers(0, 50).map(lambda k: T0 + k * 60_000)


@st.composite
def events(draw, schema: dict[str, str], max_size: int = 25) -> list[dict]:
    """Stored-form events (flat, typed, dates as epoch ms) with distinct eventTimestamps and random nulls."""
    size = draw(st.integers(0, max_size))
    stamps = draw(st.lists(st.integers(0, 3_000), min_size=size, max_size=size, unique=True))
    out = []
    for stamp in stamps:
        event = {"eventTimestamp": T0 + stamp * 1_000, "pickupTimestamp": T0 + 4_000_000}
        for name, kind in schema.items():
            value = draw(st.none() | values_of(kind))
            if value is not None:
                event[name] = value
        out.append(event)
    return out


# ---------------------------------------------------------------------------------------------- queries
def _fields_of(schema: dict[str, str], *kinds: str) -> list[A.Field]:
    full = {**schema, "eventTimestamp": "date"}
    return [A.Field(tuple(name.split("."))) for name, kind in full.items() if kind in kinds]


@st.composite
def numeric_exprs(draw, schema: dict[str, str], depth: int = 2) -> A.Node:
    """A per-event numeric expression (integer or float fields, literals, + - * / %, unary minus)."""
    fields = _fields_of(schema, *NUMERIC)
    leaves = [st.sampled_from(fields)] if fields else []
    leaves.append(st.integers(-5, 9).map(A.Literal))
    leaf = st.one_of(*leaves)
    if depth == 0 or not draw(st.booleans()):
        return draw(leaf)
    left = draw(numeric_exprs(schema, depth - 1))
    right = draw(numeric_exprs(schema, depth - 1))
    op = draw(st.sampled_from(["+", "-", "*", "/"] + (["%"] if _all_int(left, right, schema) else [])))
    node = A.BinaryOp(op, left, right)
    return A.Negate(node) if draw(st.integers(0, 5)) == 0 else node


def _all_int(left: A.Node, right: A.Node, schema: dict[str, str]) -> bool:
    def ok(node):
        for n in A.walk(node):
            if isinstance(n, A.Field) and schema.get(n.name) != "integer":
                return False
            if isinstance(n, A.Literal) and not isinstance(n.value, int):
                return False
        return True

    return ok(left) and ok(right)


@st.composite
def conditions(draw, schema: dict[str, str], depth: int = 2) -> A.Node:
    """A well-typed condition: comparisons against literals of the field's type, IN, BETWEEN (both forms), LIKE,
    REGEXP, IS [NOT] NULL, math comparisons, NOT/AND/OR."""
    full = {**schema, "eventTimestamp": "date"}
    if depth > 0 and draw(st.integers(0, 3)) == 0:
        kind = draw(st.sampled_from(["and", "or", "not"]))
        if kind == "not":
            return A.Not(draw(conditions(schema, depth - 1)))
        parts = tuple(draw(st.lists(conditions(schema, depth - 1), min_size=2, max_size=3)))
        return A.And(parts) if kind == "and" else A.Or(parts)
    name = draw(st.sampled_from(sorted(full)))
    kind = full[name]
    field = A.Field(tuple(name.split(".")))
    value = values_of(kind).map(A.Literal)
    if kind == "date" and draw(st.booleans()):
        value = values_of("date").map(lambda ms: A.Literal(_iso(ms)))
    form = draw(st.integers(0, 7))
    if form == 0:
        return A.IsNull(field, negated=draw(st.booleans()))
    if form == 1:
        return A.InList(field, tuple(draw(st.lists(value, min_size=1, max_size=3))), negated=draw(st.booleans()))
    if form == 2 and kind in (*NUMERIC, "date"):
        low, high = sorted([draw(values_of(kind)), draw(values_of(kind))])
        return A.Between(field, A.Literal(low), A.Literal(high), draw(st.booleans()), draw(st.booleans()),
                         negated=draw(st.booleans()))  # fmt: skip
    if form == 3 and kind == "string":
        pattern = draw(st.sampled_from(["*watch*", "ACME", "a*", "?idget", "%e%", "x"]))
        return A.Like(field, pattern, negated=draw(st.booleans()))
    if form == 4 and kind == "string":
        return A.Regexp(field, draw(st.sampled_from(["A.*", ".*watch", "[a-z]+", "x"])), negated=draw(st.booleans()))
    if form == 5 and any(t in NUMERIC for t in schema.values()):
        return A.Compare(draw(st.sampled_from(["<", ">=", "="])), draw(numeric_exprs(schema, 1)),
                         A.Literal(draw(st.integers(-10, 10))))  # fmt: skip
    ops = ["=", "!="] if kind in ("string", "boolean") else ["=", "!=", "<", "<=", ">", ">="]
    return A.Compare(draw(st.sampled_from(ops)), field, draw(value))


def _iso(ms: int) -> str:
    from plugins.appdynamics.results import iso_millis

    return iso_millis(ms)


@st.composite
def metrics(draw, schema: dict[str, str]) -> A.Node:
    """One metric SELECT item: an aggregate (maybe filtered) or math over aggregates."""
    numeric = _fields_of(schema, *NUMERIC)
    anything = _fields_of(schema, *TYPES)
    choices = [A.Aggregate("count", (A.Star(),)), A.Aggregate("count", (draw(st.sampled_from(anything)),)),
               A.Aggregate("distinctcount", (draw(st.sampled_from(anything)),))]  # fmt: skip
    if numeric:
        target = draw(st.sampled_from(numeric))
        kind = draw(st.sampled_from(["sum", "avg", "min", "max", "stdev"]))
        choices.append(A.Aggregate(kind, (target,)))
        choices.append(A.Aggregate("percentile", (target, A.Literal(draw(st.sampled_from([25, 50, 90, 100]))))))
        choices.append(A.Aggregate("sum", (draw(numeric_exprs(schema, 1)),)))
    node = draw(st.sampled_from(choices))
    if draw(st.integers(0, 3)) == 0:
        node = A.Aggregate(node.kind, node.args, draw(conditions(schema, 1)))
    if draw(st.integers(0, 3)) == 0:
        other = draw(st.sampled_from(choices))
        if other.kind != "percentile" and node.kind != "percentile":
            node = A.BinaryOp(draw(st.sampled_from(["+", "-", "*", "/"])), node, other)
    return node


@st.composite
def queries(draw, schema: dict[str, str], schema_name: str = "t") -> A.Select:
    """A statement that the semantic pass and the schema type check accept."""
    full = {**schema, "eventTimestamp": "date"}
    where = draw(st.none() | conditions(schema))
    since = until = None
    if draw(st.integers(0, 4)) == 0:
        since = A.TimeValue(T0 + draw(st.integers(0, 1_500)) * 1_000)
        until = draw(st.none() | st.just(A.TimeValue(T0 + 2_000_000)))
    if draw(st.booleans()):  # raw
        if draw(st.integers(0, 4)) == 0:
            order = tuple(A.OrderKey(A.Field(tuple(n.split("."))), draw(st.booleans()))
                          for n in draw(st.lists(st.sampled_from(sorted(full)), max_size=2, unique=True)))  # fmt: skip
            return A.Select((), schema_name, star=True, where=where, since=since, until=until, order_by=order,
                            limits=draw(st.sampled_from([(), (3,), (50,)])))  # fmt: skip
        names = draw(st.lists(st.sampled_from(sorted(full)), min_size=1, max_size=4, unique=True))
        items = [A.SelectItem(A.Field(tuple(n.split(".")))) for n in names]
        if any(t in NUMERIC for t in schema.values()) and draw(st.booleans()):
            items.append(A.SelectItem(draw(numeric_exprs(schema)), alias="calc"))
        order = tuple(A.OrderKey(A.Field(tuple(n.split("."))), draw(st.booleans()))
                      for n in draw(st.lists(st.sampled_from(names), max_size=2, unique=True)))  # fmt: skip
        return A.Select(tuple(items), schema_name, where=where, since=since, until=until, order_by=order,
                        limits=draw(st.sampled_from([(), (1,), (5,), (20_000,)])))  # fmt: skip
    groupable = [n for n, k in full.items() if k in ("string", "integer", "boolean")]
    term_names = draw(st.lists(st.sampled_from(groupable), max_size=2, unique=True)) if groupable else []
    items = [A.SelectItem(A.Field(tuple(n.split(".")))) for n in term_names]
    if draw(st.integers(0, 3)) == 0:
        if draw(st.booleans()):
            items.insert(0, A.SelectItem(A.Series(A.Field(("eventTimestamp",)), draw(st.sampled_from(
                [60_000, 600_000, 3_600_000])), True)))  # fmt: skip
        elif _fields_of(schema, *NUMERIC):
            items.insert(0, A.SelectItem(A.RangeBuckets(draw(st.sampled_from(_fields_of(schema, *NUMERIC))),
                                                        (0, 2))))  # fmt: skip
    distinct = False
    n_metrics = draw(st.integers(0 if items else 1, 3))
    if n_metrics == 0:
        distinct = True
    for i in range(n_metrics):
        items.append(A.SelectItem(draw(metrics(schema)), alias=f"m{i}"))
    limits = tuple(draw(st.lists(st.sampled_from([1, 2, 3, 10, 2_000]), max_size=len(items))))
    having = None
    order: tuple = ()
    if n_metrics and draw(st.integers(0, 3)) == 0:
        bound = A.Literal(draw(st.integers(0, 5)))
        having = A.Compare(draw(st.sampled_from([">", "<=", "!="])), A.Field(("m0",)), bound)
    orderable = [f"m{i}" for i in range(n_metrics)
                 if not (isinstance(items[-n_metrics + i].expr, A.Aggregate)
                         and items[-n_metrics + i].expr.kind == "percentile")]  # fmt: skip
    if orderable and draw(st.booleans()):
        order = (A.OrderKey(A.Field((draw(st.sampled_from(orderable)),)), draw(st.booleans())),)
    return A.Select(tuple(items), schema_name, distinct=distinct, where=where, since=since, until=until,
                    having=having, order_by=order, limits=limits)  # fmt: skip
