"""The backend-neutral query model: the dataclasses plugins build and backends answer.

Their meaning is the contract in the package docstring (`gateway.query`); the executable reference is
`gateway.query.semantics` and `gateway.query.aggregate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..events import EVENT_FIELDS, Event

FILTER_OPS = frozenset({"eq", "ne", "in", "not_in", "lt", "lte", "gt", "gte", "exists", "prefix", "contains"})
METRIC_KINDS = frozenset({"count", "sum", "avg", "min", "max", "distinct_count", "percentiles"})
BUCKET_KINDS = frozenset({"terms", "date_histogram"})
CALENDAR_INTERVALS = ("minute", "hour", "day", "week", "month", "year")


class QueryError(ValueError):
    """A query that no backend could answer (unknown operator, field or aggregation kind)."""


def check_field(name: str) -> str:
    """Validate a field reference: a top-level attribute or a ``data.`` path without empty segments."""
    if name in EVENT_FIELDS:
        return name
    if name.startswith("data.") and all(name.split(".")[1:]):
        return name
    raise QueryError(f"unknown field [{name}]: use one of {', '.join(EVENT_FIELDS)} or data.<path>")


@dataclass(frozen=True, slots=True)
class Filter:
    """One condition on a field; a query's filters must all hold."""

    field: str
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


@dataclass(frozen=True, slots=True)
class Sort:
    """One sort key."""

    field: str
    descending: bool = False

    def __post_init__(self) -> None:
        check_field(self.field)


@dataclass(frozen=True, slots=True)
class Aggregation:
    """A metric or bucket aggregation; see the module docstring for each kind's meaning."""

    name: str
    kind: str
    field: str | None = None
    percents: tuple[float, ...] = (50.0, 95.0, 99.0)
    size: int = 10
    interval: str | int | None = None
    aggs: tuple[Aggregation, ...] = ()

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
        if self.aggs and self.kind not in BUCKET_KINDS:
            raise QueryError(f"aggregation [{self.name}]: only terms and date_histogram take sub-aggregations")

    @property
    def source(self) -> str:
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
    filters: tuple[Filter, ...] = ()
    sort: tuple[Sort, ...] = (Sort("timestamp"),)
    limit: int = 100
    offset: int = 0
    cursor: str | None = None
    aggregations: tuple[Aggregation, ...] = ()
    count_total: bool = True

    def __post_init__(self) -> None:
        if self.limit < 0 or self.offset < 0:
            raise QueryError("limit and offset must not be negative")
        if self.cursor is not None and self.offset:
            raise QueryError("use either a cursor or an offset, not both")


@dataclass(slots=True)
class QueryResult:
    """A page of events, the total number matching (when asked), the next page's cursor and aggregations.

    Aggregation results by kind: metrics give a number (or None when no value was seen);
    ``percentiles`` a dict {percent: value}; bucket kinds a list of ``{"key", "count", <sub-aggs>}``.
    """

    events: list[Event] = field(default_factory=list)
    total: int | None = None
    next_cursor: str | None = None
    aggregations: dict[str, Any] = field(default_factory=dict)
