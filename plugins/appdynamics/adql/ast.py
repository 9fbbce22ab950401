"""The ADQL syntax tree: frozen dataclasses built by :mod:`.parser`, read by the semantic pass and the compilers.

Why a tree of our own instead of lark's: the compiler to the core query model and the reference evaluator must
not depend on grammar details (rule names, token types). Every node carries ``pos`` (line, column, start offset,
end offset) for error messages; ``pos`` is excluded from equality so tests compare shapes, not positions.

Expressions: :class:`Field`, :class:`Literal`, :class:`Star`, :class:`Negate`, :class:`BinaryOp`,
:class:`FuncCall` (scalar string/time functions), :class:`Aggregate` (metric functions, optionally filtered),
:class:`Series` / :class:`RangeBuckets` (bucketing functions), :class:`Funnel`, :class:`ColumnRef` (only in a
resolved HAVING/ORDER BY, made by the semantic pass).
Conditions: :class:`Compare`, :class:`InList`, :class:`Between`, :class:`Like`, :class:`Regexp`, :class:`IsNull`,
:class:`Not`, :class:`And`, :class:`Or`. A bare expression used as a condition (``WHERE isError``) stays an
expression; the evaluator treats it as ``expr = true``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

Pos = tuple[int, int, int, int]  # line (1-based), column (1-based), start offset, end offset

#: Metric functions: one value per group. ``stats`` and multi-``p`` ``percentile`` give several columns.
AGGREGATE_KINDS = ("count", "sum", "avg", "min", "max", "distinctcount", "percentile", "stdev", "stats")
#: Scalar functions evaluated per event.
SCALAR_FUNCTIONS = ("substring", "indexof", "length", "trim", "concat", "now")
#: Sub-columns of ``stats(x)``, in column order.
STATS_PARTS = ("count", "min", "max", "avg", "sum")
#: Time units of ``SINCE``/``UNTIL`` and of a ``series`` interval, in milliseconds.
TIME_UNITS_MS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}

#: Words the docs reserve; ``'between'`` in single quotes is a field name in a field position (see parser._subject).
RESERVED = frozenset(
    ("select", "from", "where", "orderby", "and", "or", "exists", "not", "like", "regex", "regexp", "compare", "list",
     "in", "between", "count", "distinct", "min", "max", "stats", "sum", "avg", "stdev", "filter", "percentile",
     "range", "series", "substring", "indexof", "length", "trim", "concat", "now", "having", "since", "until",
     "limit", "order", "by", "as", "asc", "desc", "is", "null")
)  # fmt: skip
#: The grammar's own keywords: never a bare field name (a later path segment, ``x.from``, is fine).
KEYWORDS = frozenset(
    ("select", "distinct", "from", "where", "since", "until", "having", "order", "by", "orderby", "asc", "desc",
     "limit", "as", "and", "or", "not", "in", "between", "like", "regexp", "regex", "is", "null", "true", "false")
)  # fmt: skip
#: Unit words of SINCE/UNTIL -> unit letter; ``series`` intervals also take seconds.
TIME_UNIT_WORDS = {
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "week": "w", "weeks": "w",
}  # fmt: skip
SERIES_UNIT_WORDS = {**TIME_UNIT_WORDS, "s": "s", "sec": "s", "second": "s", "seconds": "s"}


@dataclass(frozen=True)
class Node:
    """Base of every node: only the source position, ignored by ``==``."""

    pos: Pos | None = field(default=None, compare=False, repr=False, kw_only=True)


# ---------------------------------------------------------------------------------------------- expressions
@dataclass(frozen=True)
class Field(Node):
    """A field by its path: ``segments.userData.X`` -> ``("segments", "userData", "X")``; back-quoted segments
    are unquoted (``metrics.`End User Response Time (ms)` `` -> ``("metrics", "End User Response Time (ms)")``)."""

    path: tuple[str, ...]

    @property
    def name(self) -> str:
        """The dotted name as the schema stores it."""
        return ".".join(self.path)


@dataclass(frozen=True)
class Literal(Node):
    """A constant: ``str``, ``int``, ``float`` or ``bool``. Negative numbers are folded (``-4`` is ``Literal(-4)``)."""

    value: str | int | float | bool


@dataclass(frozen=True)
class Star(Node):
    """The ``*`` of ``count(*)``."""


@dataclass(frozen=True)
class Negate(Node):
    """Unary minus over a non-literal: ``-(a + b)``."""

    operand: Expr


@dataclass(frozen=True)
class BinaryOp(Node):
    """Math: ``op`` is one of ``+ - * / %``. Integer operands give integer division; ``/ 0`` and ``% 0`` give null."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class FuncCall(Node):
    """A scalar function (lower-cased ``name`` in :data:`SCALAR_FUNCTIONS`) applied per event."""

    name: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Aggregate(Node):
    """A metric function. ``kind`` in :data:`AGGREGATE_KINDS`; ``args[0]`` is the measured expression
    (:class:`Star` only for ``count(*)``); for ``percentile`` ``args[1:]`` are the ``p`` literals (0 < p <= 100).
    ``filter`` is the condition of an enclosing ``filter(agg, WHERE cond)``: only events matching it count."""

    kind: str
    args: tuple[Expr, ...]
    filter: Cond | None = None


@dataclass(frozen=True)
class Series(Node):
    """``series(expr, interval)``: a bucketing (group-by) term. ``interval`` is either a time interval in ms
    (``'1m'`` -> 60000, ``time=True``: buckets aligned on the epoch, keys epoch ms) or a numeric bucket width
    (``series(x, 10)``, ``time=False``: key = ``floor(x / width) * width``)."""

    expr: Expr
    interval: int | float
    time: bool


@dataclass(frozen=True)
class RangeBuckets(Node):
    """``range(expr, b1, b2, ..., bn)``: buckets ``[-inf, b1), [b1, b2), ..., [bn, +inf)``; key is the label
    ``"*-b1"``, ``"b1-b2"``, ..., ``"bn-*"``."""

    expr: Expr
    bounds: tuple[int | float, ...]


@dataclass(frozen=True)
class Funnel(Node):
    """``funnel(countField, cond1, cond2, ...)``: step k = number of distinct non-null ``count_field`` values
    that have, for every step 1..k, at least one event matching that step's condition. One column per step."""

    count_field: Expr
    steps: tuple[Cond, ...]


@dataclass(frozen=True)
class ColumnRef(Node):
    """Made by the semantic pass in HAVING/ORDER BY: the value of output column ``index``."""

    index: int


# ---------------------------------------------------------------------------------------------- conditions
@dataclass(frozen=True)
class Compare(Node):
    """``left op right`` with ``op`` in ``= != < <= > >=`` (``<>`` is read as ``!=``)."""

    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class InList(Node):
    """``expr [NOT] IN (v1, v2, ...)``."""

    expr: Expr
    values: tuple[Expr, ...]
    negated: bool = False


@dataclass(frozen=True)
class Between(Node):
    """``expr BETWEEN low AND high`` (both inclusive) or the bracket forms ``[low, high)`` etc."""

    expr: Expr
    low: Expr
    high: Expr
    low_inclusive: bool = True
    high_inclusive: bool = True
    negated: bool = False


@dataclass(frozen=True)
class Like(Node):
    """``expr [NOT] LIKE 'pattern'``: ``*`` (or ``%``) any run, ``?`` one character; whole value,
    case-insensitive."""

    expr: Expr
    pattern: str
    negated: bool = False


@dataclass(frozen=True)
class Regexp(Node):
    """``expr [NOT] REGEXP 'regex'`` (also spelled ``REGEX``): the regex must match the whole value."""

    expr: Expr
    pattern: str
    negated: bool = False


@dataclass(frozen=True)
class IsNull(Node):
    """``expr IS [NOT] NULL``."""

    expr: Expr
    negated: bool = False


@dataclass(frozen=True)
class Not(Node):
    """``NOT cond``."""

    operand: Cond


@dataclass(frozen=True)
class And(Node):
    """``a AND b AND ...`` (flattened, at least two operands)."""

    operands: tuple[Cond, ...]


@dataclass(frozen=True)
class Or(Node):
    """``a OR b OR ...`` (flattened, at least two operands)."""

    operands: tuple[Cond, ...]


Expr = Union[Field, Literal, Star, Negate, BinaryOp, FuncCall, Aggregate, Series, RangeBuckets, Funnel, ColumnRef]  # noqa: UP007
Cond = Union[Compare, InList, Between, Like, Regexp, IsNull, Not, And, Or, Expr]  # noqa: UP007
CONDITION_TYPES = (Compare, InList, Between, Like, Regexp, IsNull, Not, And, Or)


# ---------------------------------------------------------------------------------------------- statement
@dataclass(frozen=True)
class TimeValue(Node):
    """A ``SINCE``/``UNTIL`` value: ``unit`` None means ``amount`` is epoch ms, else one of ``m h d w`` and the
    instant is ``now - amount * unit``."""

    amount: int
    unit: str | None = None

    def resolve(self, now_ms: int) -> int:
        """The instant in epoch ms."""
        return self.amount if self.unit is None else now_ms - self.amount * TIME_UNITS_MS[self.unit]


@dataclass(frozen=True)
class SelectItem(Node):
    """One SELECT expression, its alias (unquoted) and its source text (the default column label)."""

    expr: Expr
    alias: str | None = None
    text: str = ""

    @property
    def label(self) -> str:
        """The column label of the response: the alias, else the expression as written."""
        return self.alias if self.alias is not None else self.text


@dataclass(frozen=True)
class OrderKey(Node):
    """One ORDER BY key (an alias reads as ``Field((alias,))``); ascending unless ``descending``."""

    expr: Expr
    descending: bool = False


@dataclass(frozen=True)
class Select(Node):
    """A whole ADQL statement. ``items`` is empty for ``SELECT *`` (``star`` True)."""

    items: tuple[SelectItem, ...]
    from_schema: str
    star: bool = False
    distinct: bool = False
    where: Cond | None = None
    since: TimeValue | None = None
    until: TimeValue | None = None
    having: Cond | None = None
    order_by: tuple[OrderKey, ...] = ()
    limits: tuple[int, ...] = ()
    text: str = ""


def children(node: Node) -> tuple[Node, ...]:
    """The direct sub-nodes of an expression or condition (for generic walks)."""
    out: list[Node] = []
    for name in node.__dataclass_fields__:
        if name == "pos":
            continue
        value = getattr(node, name)
        if isinstance(value, Node):
            out.append(value)
        elif isinstance(value, tuple):
            out.extend(v for v in value if isinstance(v, Node))
    return tuple(out)


def walk(node: Node):
    """Every node of the sub-tree, pre-order."""
    yield node
    for child in children(node):
        yield from walk(child)
