"""ADQL's own value semantics: math, scalar functions, comparisons and per-event / per-row evaluation.

Why a module of its own: the compiler (:mod:`.compile`) hands the core query model what it can express
(field filters, aggregations) and wraps everything else (math, string functions, conditions between two
expressions, HAVING over result rows) in callables built here. Where ADQL's rules differ from the core's they
live here and nowhere else:

- math: ints stay ints, ``/`` truncates toward zero, ``%`` keeps the dividend's sign, ``x / 0`` and ``x % 0``
  are null, null in -> null out (the core has no math);
- comparisons: a boolean never equals a number (the core reads booleans as 1/0) and a literal is read as the
  field's type only when the other side is a field (or ``now()``); everything else is the core's
  ``gateway.query.semantics.value_matches``;
- ``LIKE``: ``*``/``%`` any run, ``?`` one character, whole value, case-insensitive; ``REGEXP``: whole value,
  ``.`` matching newlines -- both as core ``regex`` patterns (so a backend could push them down one day).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from gateway.query.semantics import value_matches

from . import ast as A

#: ADQL comparison operator -> core filter operator.
CORE_OPS = {"=": "eq", "!=": "ne", "<": "lt", "<=": "lte", ">": "gt", ">=": "gte"}
#: A value getter: a node (field or column reference) -> a function of the evaluated thing (event or row).
Resolver = Callable[[A.Node], Callable[[Any], Any]]


def arith(op: str, left: Any, right: Any) -> Any:
    """ADQL math on two values (ints stay ints; ``/`` and ``%`` by zero give null; null in, null out)."""
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return None
    if op == "/":
        if isinstance(left, int) and isinstance(right, int):
            quotient = abs(left) // abs(right)
            return quotient if (left >= 0) == (right >= 0) else -quotient
        return left / right
    if op == "%":
        remainder = abs(left) % abs(right)
        return remainder if left >= 0 else -remainder
    raise ValueError(f"unknown operator {op}")


def scalar_function(name: str, args: list[Any], now_ms: int) -> Any:
    """``substring``, ``indexof``, ``length``, ``trim``, ``concat``, ``now`` (null in any argument: null)."""
    if name == "now":
        return now_ms
    if any(a is None for a in args):
        return None
    if name == "length":
        return len(args[0])
    if name == "trim":
        return args[0].strip()
    if name == "concat":
        return "".join(str(a) for a in args)
    if name == "indexof":
        return args[0].find(str(args[1]))
    if name == "substring":
        begin = max(0, args[1])
        return args[0][begin : begin + max(0, args[2])] if len(args) == 3 else args[0][begin:]
    raise ValueError(f"unknown function {name}()")


def like_pattern(pattern: str) -> str:
    """A ``LIKE`` pattern as a core ``regex`` (whole value, case-insensitive, ``.`` matches newlines)."""
    return "(?is)" + "".join(".*" if ch in "*%" else "." if ch == "?" else re.escape(ch) for ch in pattern)


def regexp_pattern(pattern: str) -> str:
    """A ``REGEXP`` pattern as a core ``regex`` (whole value, ``.`` matches newlines)."""
    return "(?s)" + pattern


def compare(op: str, left: Any, right: Any) -> bool:
    """``left op right`` for two non-null values: the core's comparison, except that booleans and numbers
    never compare (ADQL keeps them apart; the core reads booleans as 1/0)."""
    if left is None or right is None or isinstance(left, bool) != isinstance(right, bool):
        return False
    return value_matches(left, CORE_OPS[op], right)


def range_labels(bounds: tuple[int | float, ...]) -> list[str]:
    """Bucket labels of ``range(x, b1, ..., bn)``: ``*-b1``, ``b1-b2``, ..., ``bn-*`` in that order."""
    text = [str(int(b)) if float(b).is_integer() else str(b) for b in bounds]
    return [f"*-{text[0]}"] + [f"{text[i]}-{text[i + 1]}" for i in range(len(text) - 1)] + [f"{text[-1]}-*"]


def range_label(value: Any, bounds: tuple[int | float, ...], labels: list[str]) -> str | None:
    """The ``range`` bucket label of a value (None for null)."""
    if value is None:
        return None
    for i, bound in enumerate(bounds):
        if value < bound:
            return labels[i]
    return labels[-1]


class Evaluator:
    """Compiles ADQL expressions and conditions into Python callables over one thing (an event, a row).

    ``resolve`` turns a :class:`~.ast.Field` or :class:`~.ast.ColumnRef` into a getter of its value (None
    when absent); ``types`` gives the static type of a field (to read literals as the field's type);
    ``coerce`` reads a literal as a type (``results.coerce_literal``; its failure marker is ``cannot``)."""

    def __init__(self, resolve: Resolver, types: Mapping[str, str], now_ms: int,
                 coerce: Callable[[Any, str], Any], cannot: object) -> None:
        self.resolve, self.types, self.now_ms = resolve, types, now_ms
        self.coerce, self.cannot = coerce, cannot

    # ---- expressions
    def value(self, node: A.Node) -> Callable[[Any], Any]:
        """A function of the thing giving the expression's value (None for null)."""
        if isinstance(node, A.Field | A.ColumnRef):
            return self.resolve(node)
        if isinstance(node, A.Literal):
            constant = node.value
            return lambda thing: constant
        if isinstance(node, A.Negate):
            inner = self.value(node.operand)
            return lambda thing: None if (v := inner(thing)) is None else -v
        if isinstance(node, A.BinaryOp):
            left, right, op = self.value(node.left), self.value(node.right), node.op
            return lambda thing: arith(op, left(thing), right(thing))
        if isinstance(node, A.FuncCall):
            args, name, now = [self.value(a) for a in node.args], node.name, self.now_ms
            return lambda thing: scalar_function(name, [a(thing) for a in args], now)
        raise ValueError(f"not a per-event expression: {type(node).__name__}")

    def kind(self, node: A.Node) -> str | None:
        """The type a literal compared with ``node`` is read as (fields and ``now()`` only)."""
        if isinstance(node, A.Field):
            return self.types.get(node.name)
        if isinstance(node, A.FuncCall) and node.name == "now":
            return "date"
        return None

    def operand(self, subject: A.Node, other: A.Node) -> Callable[[Any], Any]:
        """The other side of a comparison with ``subject``: a literal read as the subject's type."""
        kind = self.kind(subject)
        if isinstance(other, A.Literal) and kind is not None:
            value = self.coerce(other.value, kind)
            value = None if value is self.cannot else value
            return lambda thing: value
        return self.value(other)

    # ---- conditions
    def condition(self, node: A.Node) -> Callable[[Any], bool]:
        """A predicate with ADQL's null rules (predicates on null are false; negated forms complement)."""
        if isinstance(node, A.And):
            parts = [self.condition(c) for c in node.operands]
            return lambda thing: all(p(thing) for p in parts)
        if isinstance(node, A.Or):
            parts = [self.condition(c) for c in node.operands]
            return lambda thing: any(p(thing) for p in parts)
        if isinstance(node, A.Not):
            inner = self.condition(node.operand)
            return lambda thing: not inner(thing)
        if isinstance(node, A.IsNull):
            get, negated = self.value(node.expr), node.negated
            return lambda thing: (get(thing) is None) != negated
        if isinstance(node, A.Compare):
            left, right = self.value(node.left), self.operand(node.left, node.right)
            if node.op == "!=":
                return lambda thing: not compare("=", left(thing), right(thing))
            op = node.op
            return lambda thing: compare(op, left(thing), right(thing))
        if isinstance(node, A.InList):
            get = self.value(node.expr)
            values = [self.operand(node.expr, v) for v in node.values]
            negated = node.negated
            return lambda thing: any(compare("=", get(thing), v(thing)) for v in values) != negated
        if isinstance(node, A.Between):
            get = self.value(node.expr)
            low, high = self.operand(node.expr, node.low), self.operand(node.expr, node.high)
            low_op, high_op = (">=" if node.low_inclusive else ">"), ("<=" if node.high_inclusive else "<")
            negated = node.negated

            def between(thing: Any) -> bool:
                value = get(thing)
                return (compare(low_op, value, low(thing)) and compare(high_op, value, high(thing))) != negated

            return between
        if isinstance(node, A.Like | A.Regexp):
            get = self.value(node.expr)
            pattern = like_pattern(node.pattern) if isinstance(node, A.Like) else regexp_pattern(node.pattern)
            negated = node.negated
            return lambda thing: value_matches(_present(get(thing)), "regex", pattern) != negated
        get = self.value(node)  # a bare expression used as a condition: ``expr = true``
        return lambda thing: get(thing) is True


def _present(value: Any) -> Any:
    from gateway.query import MISSING

    return MISSING if value is None else value
