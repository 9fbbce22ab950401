"""ADQL function calls -> AST nodes: metric, bucketing (``series``, ``range``), ``filter``, ``funnel`` and scalar
functions, with their arity and literal-argument checks.

Why: the grammar sees every call as ``name(args)``; which names exist and what their arguments must be is ADQL
vocabulary, kept apart from the tree-to-AST plumbing in :mod:`.parser`.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from lark import Token

from . import ast as A
from .errors import AdqlError, error_at

_SERIES_INTERVAL = re.compile(r"\s*(\d+)\s*([a-zA-Z]+)\s*")


class WhereArg:
    """``WHERE cond`` inside a function's arguments (only ``filter`` takes one)."""

    def __init__(self, cond: A.Cond, pos: A.Pos | None) -> None:
        self.cond, self.pos = cond, pos


def build_call(name: str, tok: Token, args: tuple, subject: Callable[[A.Node], A.Node], pos: A.Pos | None) -> A.Node:
    """A function call by (lower-cased) name: metric, bucketing, modifier, funnel or scalar. ``subject`` turns a
    first argument written as a single-quoted reserved word into a field."""
    where_args = [a for a in args if isinstance(a, WhereArg)]
    if where_args and name != "filter":
        raise AdqlError(f"WHERE is only allowed inside filter(...), not in {name}(...)", tok.line, tok.column)
    if any(isinstance(a, A.Star) for a in args) and not (name == "count" and len(args) == 1):
        raise AdqlError("'*' is only allowed as count(*)", tok.line, tok.column)

    def need(low: int, high: int | None, shape: str) -> None:
        if len(args) < low or (high is not None and len(args) > high):
            raise AdqlError(f"{name}() takes {shape}; got {len(args)} argument(s)", tok.line, tok.column)

    if name in A.AGGREGATE_KINDS:
        if name == "percentile":
            need(2, None, "a field and one or more percentiles, e.g. percentile(responseTime, 50, 90)")
            for p in args[1:]:
                if not (isinstance(p, A.Literal) and _is_num(p.value) and 0 < p.value <= 100):
                    raise error_at("percentile() values must be numbers above 0 and at most 100", p)
        else:
            need(1, 1, "exactly one argument")
        return A.Aggregate(kind=name, args=(subject(args[0]), *args[1:]), pos=pos)
    if name == "filter":
        need(2, 2, "an aggregate and a WHERE condition, e.g. filter(count(*), WHERE x = 1)")
        if not isinstance(args[1], WhereArg):
            raise AdqlError("filter()'s second argument must start with WHERE", tok.line, tok.column)
        inner, cond = args[0], args[1].cond
        if not any(isinstance(n, A.Aggregate) for n in A.walk(inner)):
            raise error_at("filter()'s first argument must be a metric function such as count(*)", inner)
        return _apply_filter(inner, cond)
    if name == "series":
        need(2, 2, "a field and an interval, e.g. series(eventTimestamp, '1m') or series(price, 10)")
        return _series(subject(args[0]), args[1], pos)
    if name == "range":
        need(2, None, "a field and ascending bucket bounds, e.g. range(responseTime, 100, 500, 1000)")
        bounds = []
        for b in args[1:]:
            if not (isinstance(b, A.Literal) and _is_num(b.value)):
                raise error_at("range() bounds must be numbers", b)
            if bounds and b.value <= bounds[-1]:
                raise error_at("range() bounds must be strictly ascending", b)
            bounds.append(b.value)
        return A.RangeBuckets(expr=subject(args[0]), bounds=tuple(bounds), pos=pos)
    if name == "funnel":
        need(2, None, "a count field and one or more step conditions")
        return A.Funnel(count_field=subject(args[0]), steps=tuple(args[1:]), pos=pos)
    if name in A.SCALAR_FUNCTIONS:
        arity = {
            "substring": (2, 3),
            "indexof": (2, 2),
            "length": (1, 1),
            "trim": (1, 1),
            "concat": (2, None),
            "now": (0, 0),
        }[name]
        need(
            arity[0],
            arity[1],
            {
                "substring": "(text, start[, length])",
                "indexof": "(text, search)",
                "length": "(text)",
                "trim": "(text)",
                "concat": "(text, text, ...)",
                "now": "no arguments",
            }[name],
        )
        return A.FuncCall(name=name, args=tuple(subject(a) if i == 0 else a for i, a in enumerate(args)), pos=pos)
    if name == "distinct":
        raise AdqlError("DISTINCT must come right after SELECT", tok.line, tok.column)
    if name == "exists":
        raise AdqlError("EXISTS is reserved but not supported; use IS NOT NULL", tok.line, tok.column)
    raise AdqlError(f"unknown function {tok.value}()", tok.line, tok.column)


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _series(expr: A.Expr, interval: A.Node, pos: A.Pos | None) -> A.Series:
    if isinstance(interval, A.Literal) and isinstance(interval.value, str):
        m = _SERIES_INTERVAL.fullmatch(interval.value)
        unit = A.SERIES_UNIT_WORDS.get(m.group(2).lower()) if m else None
        if m is None or unit is None or int(m.group(1)) <= 0:
            raise error_at(
                f"series() interval {interval.value!r} must look like '30s', '1m', '6h', '1d' or '1w'", interval
            )
        return A.Series(expr=expr, interval=int(m.group(1)) * A.TIME_UNITS_MS[unit], time=True, pos=pos)
    if isinstance(interval, A.Literal) and _is_num(interval.value) and interval.value > 0:
        return A.Series(expr=expr, interval=interval.value, time=False, pos=pos)
    raise error_at("series() interval must be a time string like '1m' or a positive number", interval)


def _apply_filter(node: A.Node, cond: A.Cond) -> A.Node:
    """Attach ``cond`` to every aggregate inside ``node`` (ANDed with a filter it already has)."""
    if isinstance(node, A.Aggregate):
        merged = cond if node.filter is None else A.And(operands=(node.filter, cond), pos=cond.pos)
        return A.Aggregate(kind=node.kind, args=node.args, filter=merged, pos=node.pos)
    if isinstance(node, A.BinaryOp):
        return A.BinaryOp(
            op=node.op, left=_apply_filter(node.left, cond), right=_apply_filter(node.right, cond), pos=node.pos
        )
    if isinstance(node, A.Negate):
        return A.Negate(operand=_apply_filter(node.operand, cond), pos=node.pos)
    return node
