"""In-process storage backend, and the reference implementation of the `gateway.query` semantics.

`MemoryBackend` keeps everything in Python structures: for tests, demos and a single-process gateway
that may lose its data on restart. Events of each stream are kept sorted by (timestamp, insertion
sequence), and so are the events of each type, so a time-range page without data filters, or with a
filter on the type, costs a few binary searches whatever the size of the store, and so do the total and
counts by type and calendar period of such a query. An event is stored as a tuple of plain values with
its document as compact JSON text (decoded when read or filtered on), which the garbage collector does
not track: a million events do not make every full collection walk millions of objects.

The module-level helpers (field access, filter matching, sort keys, cursors, percentiles, calendar
buckets and the aggregation engine) are the executable form of the contract in `gateway.query`; other
backends reuse them where they have to evaluate something in Python (the SQLite backend uses them for
cursors, percentiles and constant fields), so every backend shares one reading of the semantics.
"""

from __future__ import annotations

import base64
import bisect
import dataclasses
import heapq
import itertools
import json
import math
import operator
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.events import Event, Stream
from gateway.hookspecs import hookimpl
from gateway.query import Aggregation, Filter, Query, QueryError, QueryResult, Sort
from gateway.storage import Backend, StreamExists, StreamNotFound

#: Marker for a field the event does not have (distinct from a stored JSON null).
MISSING: Any = object()

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
DAY_MS = 24 * HOUR_MS
WEEK_MS = 7 * DAY_MS
#: 1969-12-29T00:00Z, the Monday before the epoch: ISO weeks are aligned on it.
WEEK_ORIGIN_MS = -3 * DAY_MS
FIXED_INTERVALS_MS = {"minute": MINUTE_MS, "hour": HOUR_MS, "day": DAY_MS, "week": WEEK_MS}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# Big batches are merged by re-sorting instead of inserting one by one (insort is O(n) per event).
_MERGE_THRESHOLD = 64
# Most types whose time-ordered runs a page merges (more: it walks the stream's records instead).
_MAX_MERGED_TYPES = 64


# -- field access ------------------------------------------------------------------------------------
def field_raw(event: Event, field: str) -> Any:
    """The raw value of a field reference (`MISSING` when absent); ``data.a.b`` walks objects only."""
    if not field.startswith("data."):
        return getattr(event, field)
    node: Any = event.data
    for key in field.split(".")[1:]:
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
    raise QueryError(f"unknown filter operator [{op}]")


def _getter(field: str) -> Callable[[Event], Any]:
    """A fast accessor of a field's raw value (`MISSING` when absent)."""
    if not field.startswith("data."):
        return operator.attrgetter(field)
    keys = field.split(".")[1:]
    if len(keys) == 1:
        key = keys[0]
        return lambda event: event.data.get(key, MISSING)
    return lambda event: field_raw(event, field)


def _compile(flt: Filter, get: Callable[[Any], Any] | None = None) -> Callable[[Any], bool]:
    """One filter as a callable (on an event, or on what `get` reads the field's raw value from); the
    common string equality tests skip the generic path."""
    op, value = flt.op, flt.value
    if get is None:
        get = _getter(flt.field)
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
    return lambda event: value_matches(get(event), op, value)


def make_predicate(filters: Sequence[Filter]) -> Callable[[Event], bool] | None:
    """One callable testing every filter of a query on an event, or None when there are none."""
    if not filters:
        return None
    checks = [_compile(f) for f in filters]
    if len(checks) == 1:
        return checks[0]

    def predicate(event: Event) -> bool:
        for check in checks:  # noqa: SIM110 - a plain loop is cheaper than all() over a generator
            if not check(event):
                return False
        return True

    return predicate


# -- sorting and cursors -----------------------------------------------------------------------------
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


def encode_cursor(values: Sequence[Any], seq: int) -> str:
    """The opaque cursor naming a position: the last row's sort values and sequence number."""
    raw = json.dumps({"v": list(values), "s": seq}, separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n_values: int) -> tuple[list[Any], int]:
    """Inverse of `encode_cursor`; a cursor that was not made for this query is a `QueryError`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values, seq = doc["v"], doc["s"]
    except (ValueError, TypeError, KeyError) as exc:
        raise QueryError("invalid cursor") from exc
    if not isinstance(values, list) or len(values) != n_values or not isinstance(seq, int):
        raise QueryError("invalid cursor: it belongs to a query with other sort keys")
    if not all(v is None or is_scalar(v) for v in values):
        raise QueryError("invalid cursor")
    return values, seq


# -- aggregations ------------------------------------------------------------------------------------
def percentile(sorted_values: Sequence[float], percent: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default method) over sorted values."""
    if not sorted_values:
        return None
    position = (len(sorted_values) - 1) * percent / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_values) - 1)
    fraction = position - lower
    low, high = sorted_values[lower], sorted_values[upper]
    return float(low + (high - low) * fraction)


def percentiles(sorted_values: Sequence[float], percents: Iterable[float]) -> dict[float, float | None]:
    """The ``percentiles`` aggregation result for already sorted values."""
    return {p: percentile(sorted_values, p) for p in percents}


def bucket_start(value: int | float, interval: str | int) -> int:
    """The start (epoch ms, UTC) of the date-histogram bucket holding `value` (truncated to whole ms)."""
    ms = int(value)
    if isinstance(interval, int):
        return ms - ms % interval
    if interval == "week":
        return ms - (ms - WEEK_ORIGIN_MS) % WEEK_MS
    if interval in FIXED_INTERVALS_MS:
        step = FIXED_INTERVALS_MS[interval]
        return ms - ms % step
    moment = _EPOCH + timedelta(milliseconds=ms - ms % 1000)
    if interval == "month":
        start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    elif interval == "year":
        start = moment.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    else:
        raise QueryError(f"unknown date_histogram interval [{interval}]")
    return (start - _EPOCH) // timedelta(milliseconds=1)


def empty_metric(agg: Aggregation) -> Any:
    """The result of a metric aggregation over no events."""
    if agg.kind in ("count", "distinct_count"):
        return 0
    if agg.kind == "percentiles":
        return {p: None for p in agg.percents}
    return None


def bucket_keys(event: Event, agg: Aggregation) -> set[Any]:
    """The distinct bucket keys an event falls into for a terms or date_histogram aggregation."""
    raw = field_raw(event, agg.source)
    if agg.kind == "terms":
        return {normalize_key(v) for v in scalar_values(raw)}
    assert agg.interval is not None
    return {bucket_start(v, agg.interval) for v in numeric_values(raw)}


def _single_key(agg: Aggregation, get: Callable[[Any], Any] | None = None) -> Callable[[Any], Any] | None:
    """For buckets over an integer event time or a scalar top-level attribute: the one key of an event
    (None for no bucket); None when events may fall into several buckets (data fields). `get` reads the
    field from what the returned callable is given (default: the attribute of an event)."""
    field = agg.source
    if field.startswith("data."):
        return None
    if get is None:
        get = operator.attrgetter(field)
    if agg.kind == "terms":
        return lambda event: normalize_key(v) if is_scalar(v := get(event)) else None
    if field not in ("timestamp", "received_at"):
        return None
    interval = agg.interval
    assert interval is not None
    if isinstance(interval, int) or interval in FIXED_INTERVALS_MS:
        step = interval if isinstance(interval, int) else FIXED_INTERVALS_MS[interval]
        origin = WEEK_ORIGIN_MS if interval == "week" else 0
        return lambda event: (ms := get(event)) - (ms - origin) % step
    by_day: dict[int, int] = {}

    def calendar(event: Event) -> int:
        day = get(event) // DAY_MS
        start = by_day.get(day)
        if start is None:
            start = by_day[day] = bucket_start(day * DAY_MS, interval)
        return start

    return calendar


def order_buckets(agg: Aggregation, counts: Mapping[Any, int]) -> list[tuple[Any, int]]:
    """Terms: most frequent first then by key, the first `size`; histograms: every bucket by key."""
    if agg.kind == "terms":
        ordered = sorted(counts.items(), key=lambda kv: (-kv[1], rank(kv[0])))
        return ordered[: agg.size]
    return sorted(counts.items(), key=lambda kv: kv[0])


def aggregate(events: Sequence[Event], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Compute aggregations over events in Python: the reference for every backend."""
    return {agg.name: _aggregate_one(events, agg) for agg in aggs}


def _aggregate_one(events: Sequence[Event], agg: Aggregation) -> Any:
    kind = agg.kind
    if kind == "count" and agg.field is None:
        return len(events)
    if kind in ("terms", "date_histogram"):
        members: dict[Any, list[Event]] = {}
        key_of = _single_key(agg)
        if key_of is not None and not agg.aggs:
            counts = Counter(map(key_of, events))
            counts.pop(None, None)
            return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
        for event in events:
            for key in ((key_of(event),) if key_of is not None else bucket_keys(event, agg)):
                if key is not None:
                    members.setdefault(key, []).append(event)
        ordered = order_buckets(agg, {key: len(group) for key, group in members.items()})
        return [{"key": key, "count": count, **aggregate(members[key], agg.aggs)} for key, count in ordered]
    assert agg.field is not None
    raws = [field_raw(event, agg.field) for event in events]
    if kind == "count":
        return sum(1 for raw in raws if field_exists(raw))
    if kind == "distinct_count":
        return len({normalize_key(v) for raw in raws for v in scalar_values(raw)})
    numbers = [n for raw in raws for n in numeric_values(raw)]
    if kind == "percentiles":
        return percentiles(sorted(numbers), agg.percents)
    if not numbers:
        return None
    if kind == "sum":
        return sum(numbers)
    if kind == "avg":
        return sum(numbers) / len(numbers)
    if kind == "min":
        return min(numbers)
    if kind == "max":
        return max(numbers)
    raise QueryError(f"unknown aggregation kind [{kind}]")


# -- copying -----------------------------------------------------------------------------------------
def copy_json(value: Any) -> Any:
    """A deep copy of JSON-shaped data (dicts, lists, scalars): cheaper than `copy.deepcopy`."""
    if isinstance(value, dict):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def normalize_data(data: Mapping[str, Any]) -> dict[str, Any]:
    """The event document as a JSON round trip would return it (what a persistent backend stores)."""
    return json.loads(json.dumps(data, allow_nan=False))


def encode_document(data: Mapping[str, Any]) -> str:
    """The stored text of an event document: compact, ASCII-only JSON (one escape per character, which
    makes the substring pre-test of `string_needles` sound)."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def string_needles(flt: Filter) -> tuple[str, ...] | None:
    """Substrings of which the stored text (`encode_document`) of any event matching a ``data.`` filter
    must contain at least one, or None when the filter allows no such pre-test.

    Sound because every string is encoded character by character: a matching value's (or, for
    ``contains``, substring's) encoding appears verbatim in the document's text.
    """
    op, value = flt.op, flt.value
    if op == "eq" and isinstance(value, str):
        return (json.dumps(value),)
    if op == "in" and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(json.dumps(v) for v in value))
    if op == "prefix" and isinstance(value, str):
        return (json.dumps(value)[:-1],)
    if op == "contains" and isinstance(value, str) and value:
        return (json.dumps(value)[1:-1],)
    return None


_INT64 = range(-(2**63), 2**63)


def check_event(event: Event) -> None:
    """Reject events no backend could index: the time must be integer epoch ms (64 bits), the id a string."""
    if not isinstance(event.timestamp, int) or isinstance(event.timestamp, bool) or event.timestamp not in _INT64:
        raise ValueError(f"event [{event.id}]: timestamp must be integer epoch milliseconds")
    if not isinstance(event.received_at, int) or isinstance(event.received_at, bool) \
            or event.received_at not in _INT64:
        raise ValueError(f"event [{event.id}]: received_at must be integer epoch milliseconds")
    if not isinstance(event.id, str):
        raise ValueError("event id must be a string")


def copy_stream(stream: Stream) -> Stream:
    """A detached copy of a stream (stored catalog entries must not be mutated by callers)."""
    return dataclasses.replace(stream)


def bucket_end(start: int, interval: str | int) -> int:
    """The end (exclusive, epoch ms) of the date-histogram bucket starting at `start`."""
    if isinstance(interval, int):
        return start + interval
    if interval in FIXED_INTERVALS_MS:
        return start + FIXED_INTERVALS_MS[interval]
    if interval not in ("month", "year"):
        raise QueryError(f"unknown date_histogram interval [{interval}]")
    moment = _EPOCH + timedelta(milliseconds=start)
    try:
        if interval == "month":
            following = (moment + timedelta(days=32)).replace(day=1)
        else:
            following = moment.replace(year=moment.year + 1)
    except (OverflowError, ValueError):  # the last month or year datetime can represent
        return 2**63
    return (following - _EPOCH) // timedelta(milliseconds=1)


# -- stored records ----------------------------------------------------------------------------------
# An event is stored as a tuple of atomic values, its document as JSON text: such tuples are untracked by
# the garbage collector, so a million stored events add next to nothing to its full collections.
_ID, _TYPE, _TS, _RECEIVED, _USER, _SESSION, _DATA = range(7)
_RECORD_FIELDS = {"id": _ID, "type": _TYPE, "timestamp": _TS, "received_at": _RECEIVED, "user_id": _USER,
                  "session_id": _SESSION}
_CONSTANT_FIELDS = ("tenant", "plugin", "stream")
Record = tuple[Any, ...]


def _record(event: Event) -> Record:
    return (event.id, event.type, event.timestamp, event.received_at, event.user_id, event.session_id,
            encode_document(event.data))


def _data_getter(field: str) -> Callable[[dict[str, Any]], Any]:
    """The raw value of a ``data.`` field read from a decoded document (`MISSING` when absent)."""
    keys = field.split(".")[1:]
    if len(keys) == 1:
        key = keys[0]
        return lambda data: data.get(key, MISSING)

    def walk(node: Any) -> Any:
        for key in keys:
            if not isinstance(node, dict) or key not in node:
                return MISSING
            node = node[key]
        return node

    return walk


def record_predicate(filters: Sequence[Filter]) -> Callable[[Record], bool] | None:
    """One callable testing filters (none on a constant field) on a stored record, or None when there
    are none. The document is decoded once, and only after its text passed the substring pre-tests."""
    if not filters:
        return None
    top = [_compile(f, operator.itemgetter(_RECORD_FIELDS[f.field])) for f in filters
           if not f.field.startswith("data.")]
    on_data = [f for f in filters if f.field.startswith("data.")]
    needles = [found for f in on_data if (found := string_needles(f)) is not None]
    checks = [_compile(f, _data_getter(f.field)) for f in on_data]
    loads = json.loads
    if not checks and len(top) == 1:
        return top[0]

    def predicate(record: Record) -> bool:
        for check in top:
            if not check(record):
                return False
        if checks:
            text = record[_DATA]
            for options in needles:
                for needle in options:
                    if needle in text:
                        break
                else:
                    return False
            data = loads(text)
            for check in checks:
                if not check(data):
                    return False
        return True

    return predicate


class _View:
    """A stored record read as an `Event` (for the reference functions): the document is decoded on
    first use and kept for the life of the view (one query)."""

    __slots__ = ("_data", "record", "sd")

    def __init__(self, record: Record, sd: _StreamData) -> None:
        self.record = record
        self.sd = sd
        self._data: dict[str, Any] | None = None

    tenant = property(lambda self: self.sd.stream.tenant)
    plugin = property(lambda self: self.sd.stream.plugin)
    stream = property(lambda self: self.sd.stream.name)
    id = property(lambda self: self.record[_ID])
    type = property(lambda self: self.record[_TYPE])
    timestamp = property(lambda self: self.record[_TS])
    received_at = property(lambda self: self.record[_RECEIVED])
    user_id = property(lambda self: self.record[_USER])
    session_id = property(lambda self: self.record[_SESSION])

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.record[_DATA])
        return self._data


def _export(record: Record, sd: _StreamData) -> Event:
    """A stored record as an event safe to hand out (its document freshly decoded)."""
    stream = sd.stream
    return Event(tenant=stream.tenant, plugin=stream.plugin, stream=stream.name, type=record[_TYPE],
                 data=json.loads(record[_DATA]), timestamp=record[_TS], received_at=record[_RECEIVED],
                 id=record[_ID], user_id=record[_USER], session_id=record[_SESSION])


# -- the backend -------------------------------------------------------------------------------------
class _Sorted:
    """Records sorted by (timestamp, seq), in three parallel sequences (the numbers in int64 arrays,
    which the garbage collector never walks)."""

    __slots__ = ("records", "seqs", "ts")

    def __init__(self) -> None:
        self.ts = array("q")
        self.seqs = array("q")
        self.records: list[Record] = []

    def insert(self, batch: Sequence[tuple[int, Record]]) -> None:
        """Insert (seq, record) pairs whose seqs are larger than any stored one."""
        if not batch:
            return
        in_order = all(batch[i][1][_TS] <= batch[i + 1][1][_TS] for i in range(len(batch) - 1))
        if in_order and (not self.ts or self.ts[-1] <= batch[0][1][_TS]):
            self.ts.extend(record[_TS] for _, record in batch)
            self.seqs.extend(seq for seq, _ in batch)
            self.records.extend(record for _, record in batch)
        elif len(batch) < _MERGE_THRESHOLD:
            for seq, record in batch:
                at = bisect.bisect_right(self.ts, record[_TS])
                self.ts.insert(at, record[_TS])
                self.seqs.insert(at, seq)
                self.records.insert(at, record)
        else:
            rows = sorted(itertools.chain(zip(self.ts, self.seqs, self.records, strict=True),
                                          ((r[_TS], s, r) for s, r in batch)),
                          key=lambda row: (row[0], row[1]))
            self.ts = array("q", [row[0] for row in rows])
            self.seqs = array("q", [row[1] for row in rows])
            self.records = [row[2] for row in rows]

    def bounds(self, start: int | None, end: int | None) -> tuple[int, int]:
        """Index range of records with ``start <= timestamp < end``."""
        lo = 0 if start is None else bisect.bisect_left(self.ts, start)
        hi = len(self.ts) if end is None else bisect.bisect_left(self.ts, end)
        return lo, max(lo, hi)

    def position(self, timestamp: int | float, seq: int, lo: int, hi: int, after: bool = True) -> int:
        """Index within [lo, hi) of the first record after (or, with `after` False, at or after)
        the position (timestamp, seq) in ascending order."""
        run_lo = bisect.bisect_left(self.ts, timestamp, lo, hi)
        run_hi = bisect.bisect_right(self.ts, timestamp, run_lo, hi)
        find = bisect.bisect_right if after else bisect.bisect_left
        return find(self.seqs, seq, run_lo, run_hi)


class _StreamData:
    """One stream: its records in time order, the same split by type (for string types), its id set.

    `odd` counts the records whose type is not a string: while there are any, the stream answers every
    query from its time-ordered records alone.
    """

    __slots__ = ("all", "by_type", "ids", "odd", "stream")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.all = _Sorted()
        self.by_type: dict[str, _Sorted] = {}
        # A dict of str keys and None values is untracked by the garbage collector (a set is not).
        self.ids: dict[str, None] = {}
        self.odd = 0

    def insert(self, batch: list[tuple[int, Record]]) -> None:
        """Insert (seq, record) pairs whose seqs are larger than any stored one."""
        self.all.insert(batch)
        groups: dict[str, list[tuple[int, Record]]] = {}
        for item in batch:
            kind = item[1][_TYPE]
            if kind.__class__ is str:
                groups.setdefault(kind, []).append(item)
            else:
                self.odd += 1
        for kind, items in groups.items():
            target = self.by_type.get(kind)
            if target is None:
                target = self.by_type[kind] = _Sorted()
            target.insert(items)

    def types(self, filters: Sequence[Filter]) -> list[str]:
        """The stored types satisfying every filter on ``type`` (each type once)."""
        if len(filters) == 1 and filters[0].op in ("eq", "in"):
            value = filters[0].value
            wanted = [value] if filters[0].op == "eq" else list(value)
            return [v for v in dict.fromkeys(w for w in wanted if isinstance(w, str)) if v in self.by_type]
        return [kind for kind in self.by_type if all(value_matches(kind, f.op, f.value) for f in filters)]


#: A run of one type's records of one stream: (stream, type, its sorted records, lo, hi).
_Slice = tuple[_StreamData, str, _Sorted, int, int]


class _Plan:
    """How a query reads one stream: the time range in its records and, when the type index serves,
    the same range in each selected type's records (`slices`; None when unused)."""

    __slots__ = ("hi", "lo", "restricted", "sd", "slices")

    def __init__(self, sd: _StreamData, query: Query, on_type: Sequence[Filter], by_type: bool) -> None:
        self.sd = sd
        self.lo, self.hi = sd.all.bounds(query.start, query.end)
        self.slices: list[_Slice] | None = None
        self.restricted = False
        if by_type and not sd.odd:
            kinds = sd.types(on_type) if on_type else list(sd.by_type)
            # Pages merge the selected types' runs unless there are so many that one walk is cheaper.
            self.restricted = bool(on_type) and len(kinds) < len(sd.by_type) and len(kinds) <= _MAX_MERGED_TYPES
            self.slices = []
            for kind in kinds:
                records = sd.by_type[kind]
                lo, hi = records.bounds(query.start, query.end)
                if hi > lo:
                    self.slices.append((sd, kind, records, lo, hi))


#: The matching events of one stream, in time order: (stream, their seqs, their records).
_Matches = tuple[_StreamData, Sequence[int], list[Record]]


def _matches(plan: _Plan, full: Callable[[Record], bool] | None,
             residual: Callable[[Record], bool] | None) -> _Matches:
    """The events of a stream's plan that pass the filters (without a tuple per event)."""
    if plan.restricted:
        if not plan.slices:
            return plan.sd, [], []
        rows = list(_slice_rows(plan.slices))
        seqs: Sequence[int] = [row[1] for row in rows]
        records = [row[2] for row in rows]
        predicate = residual
    else:
        seqs, records = plan.sd.all.seqs[plan.lo:plan.hi], plan.sd.all.records[plan.lo:plan.hi]
        predicate = full
    if predicate is not None:
        keep = list(map(predicate, records))
        seqs, records = list(itertools.compress(seqs, keep)), list(itertools.compress(records, keep))
    return plan.sd, seqs, records


def _walk(records: _Sorted, lo: int, hi: int, descending: bool, sd: _StreamData,
          predicate: Callable[[Record], bool] | None) -> Iterator[tuple[int, int, Record, _StreamData]]:
    """(timestamp, seq, record, stream) of the records in [lo, hi) passing the predicate, in time order
    or reversed."""
    ts, seqs, stored = records.ts, records.seqs, records.records
    for i in (range(hi - 1, lo - 1, -1) if descending else range(lo, hi)):
        record = stored[i]
        if predicate is None or predicate(record):
            yield ts[i], seqs[i], record, sd


def _slice_rows(slices: Sequence[_Slice]) -> Iterator[tuple[int, int, Record]]:
    """(timestamp, seq, record) of one stream's slices, merged in time order."""
    runs = [zip(s[2].ts[s[3]:s[4]], s[2].seqs[s[3]:s[4]], s[2].records[s[3]:s[4]], strict=True) for s in slices]
    return runs[0] if len(runs) == 1 else heapq.merge(*runs)  # (timestamp, seq) pairs are unique


def _slice_groups(slices: Sequence[_Slice], order: Mapping[int, int]) -> list[_Group]:
    """The records of slices grouped by stream, in the order of the general path (stream by stream, in
    time order)."""
    by_stream: dict[int, list[_Slice]] = {}
    for s in slices:
        by_stream.setdefault(id(s[0]), []).append(s)
    groups: list[_Group] = []
    for key in sorted(by_stream, key=order.__getitem__):
        runs = by_stream[key]
        groups.append((runs[0][0], [record for _, _, record in _slice_rows(runs)]))
    return groups


#: Records of one stream, in time order.
_Group = tuple[_StreamData, list[Record]]
#: Fields every stored event has (a ``count`` of them counts events); with a string type, the type too.
_PRESENT = frozenset({"id", "timestamp", "received_at", *_CONSTANT_FIELDS})
_ALWAYS_PRESENT = _PRESENT | {"type"}


def _group_aggregate(groups: Sequence[_Group], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Aggregations over records grouped by stream: bucket keys of top-level fields are read from the
    records; anything needing the document goes through views and the reference `_aggregate_one`."""
    return {agg.name: _group_aggregate_one(groups, agg) for agg in aggs}


def _group_aggregate_one(groups: Sequence[_Group], agg: Aggregation) -> Any:
    if agg.kind == "count" and (agg.field is None or agg.field in _PRESENT):
        return sum(len(records) for _, records in groups)
    key_of = None
    if agg.kind in ("terms", "date_histogram") and agg.source in _RECORD_FIELDS:
        key_of = _single_key(agg, operator.itemgetter(_RECORD_FIELDS[agg.source]))
    if key_of is None:
        return _aggregate_one([_View(record, sd) for sd, records in groups for record in records], agg)
    if not agg.aggs:
        counts: Counter[Any] = Counter()
        for _, records in groups:
            counts.update(map(key_of, records))
        counts.pop(None, None)
        return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
    members: dict[Any, list[_Group]] = {}
    for sd, records in groups:
        split: dict[Any, list[Record]] = {}
        for record in records:
            key = key_of(record)
            if key is not None:
                split.setdefault(key, []).append(record)
        for key, part in split.items():
            members.setdefault(key, []).append((sd, part))
    ordered = order_buckets(agg, {key: sum(len(part) for _, part in group) for key, group in members.items()})
    return [{"key": key, "count": count, **_group_aggregate(members[key], agg.aggs)} for key, count in ordered]


def _slice_aggregate(slices: Sequence[_Slice], aggs: Sequence[Aggregation],
                     order: Mapping[int, int]) -> dict[str, Any]:
    """Aggregations over the events of slices: counts, terms on the type and histograms of the event
    time by binary search in the sorted runs; anything else by the reference over the events."""
    return {agg.name: _slice_aggregate_one(slices, agg, order) for agg in aggs}


def _slice_aggregate_one(slices: Sequence[_Slice], agg: Aggregation, order: Mapping[int, int]) -> Any:
    groups: dict[Any, list[_Slice]] = {}
    if agg.kind == "count" and (agg.field is None or agg.field in _ALWAYS_PRESENT):
        return sum(s[4] - s[3] for s in slices)
    if agg.kind == "terms" and agg.field == "type":
        for s in slices:
            groups.setdefault(s[1], []).append(s)
    elif agg.kind == "date_histogram" and agg.source == "timestamp":
        interval = agg.interval
        assert interval is not None
        for sd, kind, records, lo, hi in slices:
            ts, i = records.ts, lo
            while i < hi:
                key = bucket_start(ts[i], interval)
                j = bisect.bisect_left(ts, bucket_end(key, interval), i + 1, hi)
                groups.setdefault(key, []).append((sd, kind, records, i, j))
                i = j
    else:
        return _group_aggregate_one(_slice_groups(slices, order), agg)
    counts = {key: sum(s[4] - s[3] for s in group) for key, group in groups.items()}
    return [{"key": key, "count": count, **_slice_aggregate(groups[key], agg.aggs, order)}
            for key, count in order_buckets(agg, counts)]


class MemoryBackend(Backend):
    """Streams and events in this process's memory, guarded by one lock; lost when the process exits.

    Each stream keeps its records sorted by (timestamp, seq), and the same per string type, so that a
    page, a total or a count by type and period over a time range filtered on the type costs binary
    searches and a merge of the selected types' runs instead of a scan.
    """

    schemes = ("memory",)
    multiprocess_safe = False

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        if self.options:
            raise ValueError(f"storage.options: the memory backend takes no options "
                             f"(got {', '.join(sorted(self.options))})")
        self._lock = threading.RLock()
        self._catalog: dict[tuple[str, str], dict[str, _StreamData]] = {}
        self._seq = itertools.count(1)

    # -- catalog ---------------------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""
        with self._lock:
            streams = self._catalog.setdefault((stream.tenant, stream.plugin), {})
            if stream.name in streams:
                raise StreamExists(f"stream [{stream.name}] already exists")
            stored = copy_stream(stream)
            streams[stream.name] = _StreamData(stored)
            return copy_stream(stored)

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """The stream, or None."""
        with self._lock:
            data = self._catalog.get((tenant, plugin), {}).get(name)
            return None if data is None else copy_stream(data.stream)

    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Every stream of the tenant for the plugin, ordered by name."""
        with self._lock:
            streams = self._catalog.get((tenant, plugin), {})
            return [copy_stream(streams[name].stream) for name in sorted(streams)]

    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream, its events and their type index; False when it did not exist."""
        with self._lock:
            streams = self._catalog.get((tenant, plugin))
            if not streams or name not in streams:
                return False
            del streams[name]
            if not streams:
                del self._catalog[(tenant, plugin)]
            return True

    def plugins_of(self, tenant: str) -> list[str]:
        """The plugins that have streams for the tenant, sorted."""
        with self._lock:
            return sorted(plugin for (owner, plugin), streams in self._catalog.items()
                          if owner == tenant and streams)

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> int:
        """Store the batch atomically; return how many events were new (duplicate ids are skipped)."""
        prepared = []
        for event in events:
            check_event(event)
            prepared.append((event, _record(event)))
        with self._lock:
            targets = []
            for event, _ in prepared:
                data = self._catalog.get((event.tenant, event.plugin), {}).get(event.stream)
                if data is None:
                    raise StreamNotFound(f"stream [{event.stream}] does not exist")
                targets.append(data)
            by_stream: dict[int, tuple[_StreamData, list[tuple[int, Record]]]] = {}
            for data, (event, record) in zip(targets, prepared, strict=True):
                if event.id in data.ids:
                    continue
                data.ids[event.id] = None
                by_stream.setdefault(id(data), (data, []))[1].append((next(self._seq), record))
            for data, batch in by_stream.values():
                data.insert(batch)
            return sum(len(batch) for _, batch in by_stream.values())

    def query(self, query: Query) -> QueryResult:
        """Answer a query with the semantics documented in `gateway.query`."""
        cursor = decode_cursor(query.cursor, len(query.sort)) if query.cursor is not None else None
        constant = [f for f in query.filters if f.field in _CONSTANT_FIELDS]
        on_type = [f for f in query.filters if f.field == "type"]
        rest = [f for f in query.filters if f.field not in _CONSTANT_FIELDS and f.field != "type"]
        full, residual = record_predicate([*on_type, *rest]), record_predicate(rest)
        # The type index answers totals and aggregations alone when only the type is filtered on.
        by_type = bool(on_type) or (bool(query.aggregations) and not rest)
        with self._lock:
            streams = self._catalog.get((query.tenant, query.plugin), {})
            names = sorted(streams) if query.streams is None else [n for n in query.streams if n in streams]
            plans = []
            for name in dict.fromkeys(names):
                sd = streams[name]
                values = {"tenant": query.tenant, "plugin": query.plugin, "stream": name}
                if all(value_matches(values[f.field], f.op, f.value) for f in constant):
                    plans.append(_Plan(sd, query, on_type, by_type))
            order = {id(plan.sd): i for i, plan in enumerate(plans)}
            exact = not rest and all(plan.slices is not None for plan in plans)
            slices = [s for plan in plans for s in plan.slices or ()] if exact else []
            found: list[_Matches] | None = None

            def matching() -> list[_Matches]:
                nonlocal found
                if found is None:
                    found = [_matches(plan, full, residual) for plan in plans]
                return found

            result = QueryResult()
            if query.count_total:
                if not on_type and not rest:
                    result.total = sum(plan.hi - plan.lo for plan in plans)
                elif exact:
                    result.total = sum(s[4] - s[3] for s in slices)
                else:
                    result.total = sum(len(records) for _, _, records in matching())
            if query.aggregations:
                if exact:
                    result.aggregations = _slice_aggregate(slices, query.aggregations, order)
                else:
                    groups = [(sd, records) for sd, _, records in matching()]
                    result.aggregations = _group_aggregate(groups, query.aggregations)
            if query.limit:
                if len(query.sort) == 1 and query.sort[0].field == "timestamp":
                    page = self._time_page(query, plans, full, residual, cursor)
                else:
                    page = self._sorted_page(query, matching(), cursor)
                if len(page) > query.limit:
                    page = page[: query.limit]
                    result.next_cursor = encode_cursor(page[-1][0], page[-1][1])
                result.events = [_export(record, sd) for _, _, record, sd in page]
            return result

    def _time_page(self, query: Query, plans: Sequence[_Plan], full: Callable[[Record], bool] | None,
                   residual: Callable[[Record], bool] | None,
                   cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Record, _StreamData]]:
        """One page in timestamp order by walking sorted runs from a binary-searched start: each
        stream's records, or the runs of its selected types merged when a type filter narrows them."""
        descending = query.sort[0].descending
        if cursor is not None and (not isinstance(cursor[0][0], int | float) or isinstance(cursor[0][0], bool)):
            raise QueryError("invalid cursor")
        walks: list[Iterator[tuple[int, int, Record, _StreamData]]] = []
        for plan in plans:
            if plan.restricted:
                runs = [(records, lo, hi) for _, _, records, lo, hi in plan.slices or ()]
                predicate = residual
            else:
                runs = [(plan.sd.all, plan.lo, plan.hi)]
                predicate = full
            for records, lo, hi in runs:
                if cursor is not None:
                    (timestamp,), seq = cursor
                    if descending:
                        hi = max(lo, min(hi, records.position(timestamp, seq, lo, hi, after=False)))
                    else:
                        lo = min(hi, max(lo, records.position(timestamp, seq, lo, hi)))
                walks.append(_walk(records, lo, hi, descending, plan.sd, predicate))
        if not walks:
            return []
        merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, key=lambda w: (w[0], w[1]),
                                                               reverse=descending)
        wanted = query.offset + query.limit + 1
        page: list[tuple[list[Any], int, Record, _StreamData]] = []
        for timestamp, seq, record, sd in merged:
            page.append(([timestamp], seq, record, sd))
            if len(page) == wanted:
                break
        return page[query.offset:]

    def _sorted_page(self, query: Query, matching: Sequence[_Matches],
                     cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Record, _StreamData]]:
        """One page for any sort: sort every matching event, then cut after the cursor or offset."""
        sorts = query.sort
        rows = []
        for sd, seqs, records in matching:
            for seq, record in zip(seqs, records, strict=True):
                view = _View(record, sd)
                rows.append(([sort_value(field_raw(view, s.field), s.descending) for s in sorts], seq, record, sd))
        rows.sort(key=lambda row: row[1], reverse=bool(sorts) and sorts[-1].descending)
        for i in range(len(sorts) - 1, -1, -1):
            rows.sort(key=lambda row, i=i: rank(row[0][i]), reverse=sorts[i].descending)
        start = query.offset
        if cursor is not None:
            start = len(rows)
            for index, row in enumerate(rows):
                if compare_positions((row[0], row[1]), cursor, sorts) > 0:
                    start = index
                    break
        return rows[start:start + query.limit + 1]

    # -- operations ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Counts of streams and events (always reachable)."""
        with self._lock:
            streams = [data for group in self._catalog.values() for data in group.values()]
            return {"backend": "memory", "streams": len(streams),
                    "events": sum(len(data.all.ts) for data in streams)}


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `MemoryBackend` for ``memory://`` URLs."""
    return [MemoryBackend]
