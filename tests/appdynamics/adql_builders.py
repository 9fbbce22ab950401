"""Short constructors for expected ADQL syntax trees in the parser tables (positions are ignored by ``==``)."""

from __future__ import annotations

from plugins.appdynamics.adql import ast as A

STAR = A.Star()
TS = A.Field(("eventTimestamp",))


def F(name: str) -> A.Field:
    """A field from its dotted name (no back-quoted segments)."""
    return A.Field(tuple(name.split(".")))


def P(*segments: str) -> A.Field:
    """A field from explicit path segments (for back-quoted names holding dots or spaces)."""
    return A.Field(segments)


def L(value) -> A.Literal:
    return A.Literal(value)


def agg(kind: str, *args, where=None) -> A.Aggregate:
    return A.Aggregate(kind, tuple(args), where)


def count() -> A.Aggregate:
    return A.Aggregate("count", (STAR,))


def op(symbol: str, left, right) -> A.BinaryOp:
    return A.BinaryOp(symbol, left, right)


def cmp(symbol: str, left, right) -> A.Compare:
    return A.Compare(symbol, left, right)


def eq(name: str, value) -> A.Compare:
    return A.Compare("=", F(name), L(value))


def AND(*operands) -> A.And:
    return A.And(tuple(operands))


def OR(*operands) -> A.Or:
    return A.Or(tuple(operands))


def fn(name: str, *args) -> A.FuncCall:
    return A.FuncCall(name, tuple(args))


def item(expr, alias: str | None = None) -> tuple:
    """(expr, alias) pairs, compared with the parsed items' expr and alias."""
    return (expr, alias)
