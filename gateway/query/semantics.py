"""The reference semantics of `gateway.query`: how a field is read, compared, matched and sorted.

This is the executable form of the contract in the package docstring. The memory backend evaluates every
query with these functions; the other backends use them wherever they evaluate something in Python
(constant fields, cursors, the core evaluator of what they cannot push down), and the contract suite
(`gateway.testing.contract`) checks that their SQL or DSL agrees with them.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..events import Event
from .model import MISSING, AllOf, AnyOf, Computed, Condition, FieldRef, Filter, Having, Not, QueryError, Sort


# -- field access ------------------------------------------------------------------------------------
def field_raw(event: Event, field: FieldRef) -> Any:
    """The raw value of a field reference (`MISSING` when absent); ``data.a.b`` walks objects only."""
    if field.__class__ is not str:
        return field.fn(event)  # type: ignore[union-attr]  # a Computed value
    if not field.startswith("data."):  # type: ignore[union-attr]
        return getattr(event, field)
    node: Any = event.data
    for key in field.split(".")[1:]:  # type: ignore[union-attr]
        if not isinstance(node, dict) or key not in node:
            return MISSING
        node = node[key]
    return node


def is_scalar(value: Any) -> bool:
    """True for the values queries compare: strings, numbers and booleans (null is no value)."""
    return isinstance(value, str | int | float)


def scalar_values(raw: Any) -> list[Any]:
    """The comparable values of a raw field: the scalar itself, or the scalar elements of an array."""
    if isinstance(raw, list):
        return [v for v in raw if is_scalar(v)]
    if is_scalar(raw):
        return [raw]
    return []


def value_class(value: Any) -> str | None:
    """'num' for numbers (booleans count as 1/0, as SQLite's JSON functions read them), 'str', else None."""
    if isinstance(value, str):
        return "str"
    if isinstance(value, int | float):
        return "num"
    return None


def normalize_key(value: Any) -> Any:
    """A bucket key or distinct value: booleans become 1/0 so every backend reports the same key."""
    return int(value) if isinstance(value, bool) else value


def numeric_values(raw: Any) -> list[int | float]:
    """The numbers among a raw field's values (what sum/avg/min/max/percentiles read)."""
    return [normalize_key(v) for v in scalar_values(raw) if value_class(v) == "num"]


def field_exists(raw: Any) -> bool:
    """``exists``: present and not null; an array counts when it holds a non-null element."""
    if raw is MISSING or raw is None:
        return False
    if isinstance(raw, list):
        return any(v is not None for v in raw)
    return True


# -- filters -----------------------------------------------------------------------------------------
def _same_class_eq(a: Any, b: Any) -> bool:
    return value_class(a) is not None and value_class(a) == value_class(b) and a == b


_RANGE_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}


def value_matches(raw: Any, op: str, value: Any) -> bool:
    """Whether a raw field value satisfies one filter, with the array-any semantics of `gateway.query`.

    ``ne`` and ``not_in`` are the negations of ``eq`` and ``in`` (as Elasticsearch's ``must_not``): they
    hold for a missing field and fail for an array holding the value.
    """
    if op == "exists":
        return field_exists(raw)
    if op == "ne":
        return not value_matches(raw, "eq", value)
    if op == "not_in":
        return not value_matches(raw, "in", value)
    values = scalar_values(raw)
    if op == "eq":
        return any(_same_class_eq(v, value) for v in values)
    if op == "in":
        wanted = list(value)
        return any(_same_class_eq(v, w) for v in values for w in wanted)
    if op in _RANGE_OPS:
        cls = value_class(value)
        if cls is None:
            return False
        compare = _RANGE_OPS[op]
        return any(value_class(v) == cls and compare(v, value) for v in values)
    if op == "prefix":
        return isinstance(value, str) and any(isinstance(v, str) and v.startswith(value) for v in values)
    if op == "contains":
        return isinstance(value, str) and any(isinstance(v, str) and value in v for v in values)
    if op == "regex":
        return isinstance(value, str) and any(isinstance(v, str) and re.fullmatch(value, v) is not None
                                              for v in values)
    raise QueryError(f"unknown filter operator [{op}]")


def field_getter(field: FieldRef) -> Callable[[Event], Any]:
    """A fast accessor of a field's raw value (`MISSING` when absent)."""
    if isinstance(field, Computed):
        return field.fn
    if not field.startswith("data."):
        return operator.attrgetter(field)
    keys = field.split(".")[1:]
    if len(keys) == 1:
        key = keys[0]
        return lambda event: event.data.get(key, MISSING)
    return lambda event: field_raw(event, field)


def compile_filter(flt: Filter, get: Callable[[Any], Any] | None = None) -> Callable[[Any], bool]:
    """One filter as a callable (on an event, or on what `get` reads the field's raw value from); the
    common string equality tests skip the generic path."""
    op, value = flt.op, flt.value
    if get is None:
        get = field_getter(flt.field)
    if op in ("ne", "not_in"):  # the negations, compiled like what they negate (so set-based too)
        positive = compile_filter(Filter(flt.field, "eq" if op == "ne" else "in", value), get)
        return lambda event: not positive(event)
    if op == "eq" and isinstance(value, str):
        def equal(event: Event) -> bool:
            raw = get(event)
            if raw.__class__ is str:
                return raw == value
            return isinstance(raw, list) and value in raw
        return equal
    if op == "in" and all(isinstance(v, str) for v in value):
        wanted = frozenset(value)

        def member(event: Event) -> bool:
            raw = get(event)
            if raw.__class__ is str:
                return raw in wanted
            return isinstance(raw, list) and any(isinstance(v, str) and v in wanted for v in raw)
        return member
    if op == "in":  # a set lookup per value, whatever the length of the list (keys as `_same_class_eq` compares)
        keyed = frozenset((value_class(w), w) for w in value if value_class(w) is not None)

        def keyed_member(event: Event) -> bool:
            return any((value_class(v), v) in keyed for v in scalar_values(get(event)))
        return keyed_member
    if op == "regex":
        pattern = re.compile(value)

        def matches(event: Event) -> bool:
            raw = get(event)
            values = raw if isinstance(raw, list) else (raw,)
            return any(isinstance(v, str) and pattern.fullmatch(v) is not None for v in values)
        return matches
    return lambda event: value_matches(get(event), op, value)


def compile_condition(condition: Condition) -> Callable[[Any], bool]:
    """A condition tree of `Filter`s as one callable on an event."""
    if isinstance(condition, Filter):
        return compile_filter(condition)
    if isinstance(condition, Not):
        inner = compile_condition(condition.condition)
        return lambda event: not inner(event)
    parts = [compile_condition(c) for c in condition.conditions]  # type: ignore[union-attr]
    if isinstance(condition, AllOf):
        return lambda event: all(part(event) for part in parts)
    if isinstance(condition, AnyOf):
        return lambda event: any(part(event) for part in parts)
    raise QueryError(f"not a filter condition: {type(condition).__name__}")


def having_matches(condition: Condition, value_of: Callable[[str], Any]) -> bool:
    """Whether a condition tree of `Having`s holds for a bucket whose values `value_of(name)` reads."""
    if isinstance(condition, Having):
        value = value_of(condition.metric)
        return value_matches(MISSING if value is None else value, condition.op, condition.value)
    if isinstance(condition, Not):
        return not having_matches(condition.condition, value_of)
    if isinstance(condition, AllOf):
        return all(having_matches(c, value_of) for c in condition.conditions)
    if isinstance(condition, AnyOf):
        return any(having_matches(c, value_of) for c in condition.conditions)
    raise QueryError(f"not a having condition: {type(condition).__name__}")


def make_predicate(filters: Sequence[Condition]) -> Callable[[Event], bool] | None:
    """One callable testing every filter (or condition tree) of a query on an event, or None when there
    are none."""
    if not filters:
        return None
    checks = [compile_condition(f) for f in filters]
    if len(checks) == 1:
        return checks[0]

    def predicate(event: Event) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop is cheaper than all() over a generator
            if not check(event):
                return False
        return True

    return predicate


# -- sorting --------------------------------------------------------------------------------------------
def sort_value(raw: Any, descending: bool) -> Any:
    """The value an event sorts by: arrays sort by their smallest (ascending) or largest element."""
    if isinstance(raw, list):
        values = [normalize_key(v) for v in raw if is_scalar(v)]
        if not values:
            return None
        return (max if descending else min)(values, key=rank)
    if is_scalar(raw):
        return normalize_key(raw)
    return None


def rank(value: Any) -> tuple[Any, ...]:
    """A total order over sort values: missing first, then numbers, then strings (SQLite's order)."""
    if value is None:
        return (0,)
    if isinstance(value, str):
        return (2, value)
    return (1, value)


def compare_positions(a: tuple[Sequence[Any], int], b: tuple[Sequence[Any], int],
                      sorts: Sequence[Sort]) -> int:
    """Compare two (sort values, seq) positions in query order; ties go by seq in the last key's order."""
    for va, vb, sort in zip(a[0], b[0], sorts, strict=True):
        ra, rb = rank(va), rank(vb)
        if ra != rb:
            result = -1 if ra < rb else 1
            return -result if sort.descending else result
    if a[1] == b[1]:
        return 0
    result = -1 if a[1] < b[1] else 1
    return -result if sorts and sorts[-1].descending else result
