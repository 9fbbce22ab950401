"""The backend-neutral query model: the dataclasses plugins build and backends answer.

Their meaning is the contract in the package docstring (`gateway.query`); the executable reference is
`gateway.query.semantics` and `gateway.query.aggregate`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Union

from ..events import EVENT_FIELDS, Event

FILTER_OPS = frozenset({"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "exists", "prefix", "contains",
                        "regex"})
METRIC_KINDS = frozenset({"count", "sum", "avg", "min", "max", "distinct_count", "percentiles", "stats", "stdev"})
BUCKET_KINDS = frozenset({"terms", "date_histogram", "histogram"})
CALENDAR_INTERVALS = ("minute", "hour", "day", "week", "month", "year")
#: Operators a `Having` may use (on one metric value of a bucket).
HAVING_OPS = frozenset({"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "exists"})
#: What a bucket's `order`/`Having` may name besides its metric sub-aggregations.
BUCKET_PROPERTIES = ("_count", "_key")

#: Marker for a field the event does not have (distinct from a stored JSON null).
MISSING: Any = object()


class QueryError(ValueError):
    """A query that no backend could answer (unknown operator, field or aggregation kind)."""


@dataclass(frozen=True, slots=True)
class Computed:
    """A value computed from each event by a Python function (math, string functions of a vendor language).

    Usable wherever a field name is (`Filter`, `Sort`, `Aggregation`); `fn(event)` returns the raw value
    as a field would hold it (a scalar, a list, None, or `MISSING`). `name` identifies it in messages and
    equality. No backend can push it down: the core evaluates queries that use one over a scan.
    """

    name: str
    fn: Callable[[Any], Any] = field(compare=False)

    def __str__(self) -> str:
        return self.name


#: A field reference: a top-level attribute, a ``data.`` path, or a `Computed` value.
FieldRef = Union[str, Computed]  # noqa: UP007 - a runtime alias (isinstance checks and annotations)


def check_field(name: FieldRef) -> FieldRef:
    """Validate a field reference: a top-level attribute, a ``data.`` path without empty segments, or a
    `Computed` value."""
    if isinstance(name, Computed):
        if not callable(name.fn):
            raise QueryError(f"computed field [{name.name}] needs a function")
        return name
    if name in EVENT_FIELDS:
        return name
    if isinstance(name, str) and name.startswith("data.") and all(name.split(".")[1:]):
        return name
    raise QueryError(f"unknown field [{name}]: use one of {', '.join(EVENT_FIELDS)} or data.<path>")


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition on a field; a query's filters must all hold."""

    field: FieldRef
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        check_field(self.field)
        if self.op not in FILTER_OPS:
            raise QueryError(f"unknown filter operator [{self.op}]")
        if self.op in ("in", "not_in") and not isinstance(self.value, list | tuple | set | frozenset):
            raise QueryError(f"operator [{self.op}] needs a list of values")
        if self.op == "exists" and self.value not in (None, True):
            raise QueryError("operator [exists] takes no value (negate it with a separate query)")
        if self.op == "regex":
            _check_regex(self.value)


def _check_regex(value: Any) -> None:
    import re

    if not isinstance(value, str):
        raise QueryError("operator [regex] needs a pattern string")
    try:
        re.compile(value)
    except re.error as exc:
        raise QueryError(f"invalid regular expression [{value}]: {exc}") from exc


@dataclass(frozen=True, slots=True)
class Having:
    """A condition on a bucket's value: a metric sub-aggregation's result (``name``, or ``name.key`` for one
    value of ``stats``/``percentiles``), ``_count`` or ``_key``; compared like a field's value."""

    metric: str
    op: str
    value: Any = None

    def __post_init__(self) -> None:
        if self.op not in HAVING_OPS:
            raise QueryError(f"unknown having operator [{self.op}]")
        if self.op in ("in", "not_in") and not isinstance(self.value, list | tuple | set | frozenset):
            raise QueryError(f"operator [{self.op}] needs a list of values")


@dataclass(frozen=True, slots=True)
class AllOf:
    """Every condition holds (an empty AllOf always holds)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class AnyOf:
    """At least one condition holds (an empty AnyOf never holds)."""

    conditions: tuple[Condition, ...]


@dataclass(frozen=True, slots=True)
class Not:
    """The condition does not hold (a missing field fails ``eq``, so ``Not(eq)`` holds for it, like ``ne``)."""

    condition: Condition


#: A boolean tree of leaves: `Filter`s in a query's filters and an aggregation's `where`, `Having`s in a
#: bucket aggregation's `having`.
Condition = Union[Filter, Having, AllOf, AnyOf, Not]  # noqa: UP007


def leaves(condition: Condition) -> list[Filter | Having]:
    """The leaves of a condition tree, left to right."""
    if isinstance(condition, AllOf | AnyOf):
        return [leaf for c in condition.conditions for leaf in leaves(c)]
    if isinstance(condition, Not):
        return leaves(condition.condition)
    return [condition]


def _check_condition(condition: Any, leaf: type, where: str) -> None:
    """Every leaf of the tree is of type `leaf` (Filter or Having), and every node a known one."""
    if isinstance(condition, AllOf | AnyOf):
        if not isinstance(condition.conditions, tuple):
            raise QueryError(f"{where}: AllOf/AnyOf take a tuple of conditions")
        for c in condition.conditions:
            _check_condition(c, leaf, where)
    elif isinstance(condition, Not):
        _check_condition(condition.condition, leaf, where)
    elif not isinstance(condition, leaf):
        raise QueryError(f"{where}: expected {leaf.__name__} conditions, got {type(condition).__name__}")


@dataclass(frozen=True, slots=True)
class Sort:
    """One sort key."""

    field: FieldRef
    descending: bool = False

    def __post_init__(self) -> None:
        check_field(self.field)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """A metric or bucket aggregation; see the package docstring for each kind's meaning.

    `where` restricts the events the aggregation reads (ADQL's ``filter(count(*), WHERE ...)``). On bucket
    kinds, `order` names what buckets are ordered by (``_count``, ``_key`` or a metric sub-aggregation,
    ``name.key`` for one value of ``stats``/``percentiles``), `descending` its direction (None: the kind's
    default), `having` drops buckets whose values fail it (before `size` cuts), and `size` keeps the first
    buckets (terms always; histograms only when `order` or `having` is given, else every bucket).
    """

    name: str
    kind: str
    field: FieldRef | None = None
    percents: tuple[float, ...] = (50.0, 95.0, 99.0)
    size: int = 10
    interval: str | int | float | None = None
    aggs: tuple[Aggregation, ...] = ()
    where: Condition | None = None
    order: str | None = None
    descending: bool | None = None
    having: Condition | None = None

    def __post_init__(self) -> None:
        if self.kind not in METRIC_KINDS | BUCKET_KINDS:
            raise QueryError(f"unknown aggregation kind [{self.kind}]")
        if self.field is not None:
            check_field(self.field)
        elif self.kind not in ("count",) and self.kind != "date_histogram":
            raise QueryError(f"aggregation [{self.name}] of kind [{self.kind}] needs a field")
        if self.kind == "date_histogram":
            ok = self.interval in CALENDAR_INTERVALS or (isinstance(self.interval, int) and self.interval > 0)
            if not ok:
                raise QueryError(f"aggregation [{self.name}]: interval must be one of "
                                 f"{', '.join(CALENDAR_INTERVALS)} or a positive number of ms")
        if self.kind == "histogram":
            interval = self.interval
            if isinstance(interval, bool) or not isinstance(interval, int | float) or not interval > 0 \
                    or interval == float("inf"):
                raise QueryError(f"aggregation [{self.name}]: interval must be a positive number")
        if self.size < 0:
            raise QueryError(f"aggregation [{self.name}]: size must not be negative")
        bucket = self.kind in BUCKET_KINDS
        if self.aggs and not bucket:
            raise QueryError(f"aggregation [{self.name}]: only bucket kinds take sub-aggregations")
        if not bucket and (self.order is not None or self.descending is not None or self.having is not None):
            raise QueryError(f"aggregation [{self.name}]: order and having apply to bucket kinds only")
        if self.where is not None:
            _check_condition(self.where, Filter, f"aggregation [{self.name}] where")
        names = {a.name for a in self.aggs}
        if self.order is not None:
            self._check_reference(self.order, names)
        if self.having is not None:
            _check_condition(self.having, Having, f"aggregation [{self.name}] having")
            for leaf in leaves(self.having):
                self._check_reference(leaf.metric, names)  # type: ignore[union-attr]

    def _check_reference(self, name: str, sub_names: set[str]) -> None:
        if name in BUCKET_PROPERTIES or name in sub_names or name.split(".", 1)[0] in sub_names:
            return
        raise QueryError(f"aggregation [{self.name}]: [{name}] is neither _count, _key nor a sub-aggregation")

    @property
    def source(self) -> FieldRef:
        """The field the aggregation reads (date histograms default to the event time)."""
        return self.field or "timestamp"


@dataclass(frozen=True, slots=True)
class Query:
    """Which events of one tenant and plugin to return and aggregate.

    `streams` None means every stream of the plugin for the tenant. `limit` 0 returns no events (an
    aggregation-only query). `cursor` is the opaque `QueryResult.next_cursor` of the previous page, and
    excludes `offset`.
    """

    tenant: str
    plugin: str
    streams: tuple[str, ...] | None = None
    start: int | None = None
    end: int | None = None
    filters: tuple[Condition, ...] = ()
    sort: tuple[Sort, ...] = (Sort("timestamp"),)
    limit: int = 100
    offset: int = 0
    cursor: str | None = None
    aggregations: tuple[Aggregation, ...] = ()
    count_total: bool = True

    def __post_init__(self) -> None:
        if self.limit < 0 or self.offset < 0:
            raise QueryError("limit and offset must not be negative")
        for condition in self.filters:
            _check_condition(condition, Filter, "query filters")
        if self.cursor is not None and self.offset:
            raise QueryError("use either a cursor or an offset, not both")


@dataclass(slots=True)
class QueryResult:
    """A page of events, the total number matching (when asked), the next page's cursor and aggregations.

    Aggregation results by kind: metrics give a number (or None when no value was seen);
    ``percentiles`` a dict {percent: value}; ``stats`` a dict {count, min, max, avg, sum}; bucket kinds a
    list of ``{"key", "count", <sub-aggs>}``.
    """

    events: list[Event] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    aggregations: dict[str, Any] = field(default_factory=dict)
