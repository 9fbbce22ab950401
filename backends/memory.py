"""In-process storage backend, and the reference implementation of the `gateway.query` semantics.

`MemoryBackend` keeps everything in Python structures: for tests, demos and a single-process gateway
that may lose its data on restart. Events of each stream are kept sorted by (timestamp, insertion
sequence), so a time-range page without data filters costs a few binary searches whatever the size of
the store.

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


def _compile(flt: Filter) -> Callable[[Event], bool]:
    """One filter as a callable; the common string equality tests skip the generic path."""
    get, op, value = _getter(flt.field), flt.op, flt.value
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


def _single_key(agg: Aggregation) -> Callable[[Event], Any] | None:
    """For buckets over an integer event time or a scalar top-level attribute: the one key of an event
    (None for no bucket); None when events may fall into several buckets (data fields)."""
    field = agg.source
    if field.startswith("data."):
        return None
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


def check_event(event: Event) -> None:
    """Reject events no backend could index: the time must be integer epoch ms, the id a string."""
    if not isinstance(event.timestamp, int) or isinstance(event.timestamp, bool):
        raise ValueError(f"event [{event.id}]: timestamp must be integer epoch milliseconds")
    if not isinstance(event.received_at, int) or isinstance(event.received_at, bool):
        raise ValueError(f"event [{event.id}]: received_at must be integer epoch milliseconds")
    if not isinstance(event.id, str):
        raise ValueError("event id must be a string")


def copy_stream(stream: Stream) -> Stream:
    """A detached copy of a stream (stored catalog entries must not be mutated by callers)."""
    return dataclasses.replace(stream)


# -- the backend -------------------------------------------------------------------------------------
class _StreamData:
    """One stream's events, sorted by (timestamp, seq) in three parallel lists, plus its id set."""

    __slots__ = ("events", "ids", "seqs", "stream", "ts")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.ts: list[int] = []
        self.seqs: list[int] = []
        self.events: list[Event] = []
        self.ids: set[str] = set()

    def insert(self, batch: list[tuple[int, Event]]) -> None:
        """Insert (seq, event) pairs whose seqs are larger than any stored one."""
        if not batch:
            return
        in_order = all(batch[i][1].timestamp <= batch[i + 1][1].timestamp for i in range(len(batch) - 1))
        if in_order and (not self.ts or self.ts[-1] <= batch[0][1].timestamp):
            self.ts.extend(event.timestamp for _, event in batch)
            self.seqs.extend(seq for seq, _ in batch)
            self.events.extend(event for _, event in batch)
        elif len(batch) < _MERGE_THRESHOLD:
            for seq, event in batch:
                at = bisect.bisect_right(self.ts, event.timestamp)
                self.ts.insert(at, event.timestamp)
                self.seqs.insert(at, seq)
                self.events.insert(at, event)
        else:
            rows = sorted(itertools.chain(zip(self.ts, self.seqs, self.events, strict=True),
                                          ((e.timestamp, s, e) for s, e in batch)),
                          key=lambda row: (row[0], row[1]))
            self.ts = [row[0] for row in rows]
            self.seqs = [row[1] for row in rows]
            self.events = [row[2] for row in rows]

    def bounds(self, start: int | None, end: int | None) -> tuple[int, int]:
        """Index range of events with ``start <= timestamp < end``."""
        lo = 0 if start is None else bisect.bisect_left(self.ts, start)
        hi = len(self.ts) if end is None else bisect.bisect_left(self.ts, end)
        return lo, max(lo, hi)

    def position(self, timestamp: int | float, seq: int, lo: int, hi: int, after: bool = True) -> int:
        """Index within [lo, hi) of the first event after (or, with `after` False, at or after)
        the position (timestamp, seq) in ascending order."""
        run_lo = bisect.bisect_left(self.ts, timestamp, lo, hi)
        run_hi = bisect.bisect_right(self.ts, timestamp, run_lo, hi)
        find = bisect.bisect_right if after else bisect.bisect_left
        return find(self.seqs, seq, run_lo, run_hi)


def _walk(data: _StreamData, lo: int, hi: int, descending: bool) -> Iterator[tuple[int, int, _StreamData, int]]:
    """(timestamp, seq, stream, index) of the events in [lo, hi), in time order or reversed."""
    indices = range(hi - 1, lo - 1, -1) if descending else range(lo, hi)
    for i in indices:
        yield data.ts[i], data.seqs[i], data, i


def _export(event: Event) -> Event:
    """A copy of a stored event safe to hand out."""
    return Event(tenant=event.tenant, plugin=event.plugin, stream=event.stream, type=event.type,
                 data=copy_json(event.data), timestamp=event.timestamp, received_at=event.received_at,
                 id=event.id, user_id=event.user_id, session_id=event.session_id)


class MemoryBackend(Backend):
    """Streams and events in this process's memory, guarded by one lock; lost when the process exits."""

    schemes = ("memory",)
    multiprocess_safe = False

    def __init__(self, url: str = "memory://", options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
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
        """Delete the stream and its events; False when it did not exist."""
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
            prepared.append(dataclasses.replace(event, data=normalize_data(event.data)))
        with self._lock:
            targets = []
            for event in prepared:
                data = self._catalog.get((event.tenant, event.plugin), {}).get(event.stream)
                if data is None:
                    raise StreamNotFound(f"stream [{event.stream}] does not exist")
                targets.append(data)
            by_stream: dict[int, tuple[_StreamData, list[tuple[int, Event]]]] = {}
            for data, event in zip(targets, prepared, strict=True):
                if event.id in data.ids:
                    continue
                data.ids.add(event.id)
                by_stream.setdefault(id(data), (data, []))[1].append((next(self._seq), event))
            for data, batch in by_stream.values():
                data.insert(batch)
            return sum(len(batch) for _, batch in by_stream.values())

    def query(self, query: Query) -> QueryResult:
        """Answer a query with the semantics documented in `gateway.query`."""
        cursor = decode_cursor(query.cursor, len(query.sort)) if query.cursor is not None else None
        predicate = make_predicate(query.filters)
        with self._lock:
            streams = self._catalog.get((query.tenant, query.plugin), {})
            names = sorted(streams) if query.streams is None else [n for n in query.streams if n in streams]
            ranges = [(streams[n], *streams[n].bounds(query.start, query.end)) for n in dict.fromkeys(names)]
            result = QueryResult()
            matching: list[tuple[int, Event]] | None = None
            if predicate is not None and (query.aggregations or query.count_total):
                matching = [(data.seqs[i], data.events[i]) for data, lo, hi in ranges
                            for i in range(lo, hi) if predicate(data.events[i])]
            if query.count_total:
                result.total = len(matching) if matching is not None else sum(hi - lo for _, lo, hi in ranges)
            if query.aggregations:
                pool = [e for _, e in matching] if matching is not None else \
                    [data.events[i] for data, lo, hi in ranges for i in range(lo, hi)]
                result.aggregations = aggregate(pool, query.aggregations)
            if query.limit:
                if len(query.sort) == 1 and query.sort[0].field == "timestamp":
                    page = self._time_page(query, ranges, predicate, cursor)
                else:
                    page = self._sorted_page(query, ranges, predicate, matching, cursor)
                if len(page) > query.limit:
                    page = page[: query.limit]
                    result.next_cursor = encode_cursor(page[-1][0], page[-1][1])
                result.events = [_export(event) for _, _, event in page]
            return result

    def _time_page(self, query: Query, ranges: list[tuple[_StreamData, int, int]],
                   predicate: Callable[[Event], bool] | None,
                   cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Event]]:
        """One page in timestamp order by walking the sorted lists from a binary-searched start."""
        descending = query.sort[0].descending
        if cursor is not None and (not isinstance(cursor[0][0], int | float) or isinstance(cursor[0][0], bool)):
            raise QueryError("invalid cursor")
        walks: list[Iterator[tuple[int, int, _StreamData, int]]] = []
        for data, lo, hi in ranges:
            if cursor is not None:
                (timestamp,), seq = cursor
                if descending:
                    hi = max(lo, min(hi, data.position(timestamp, seq, lo, hi, after=False)))
                else:
                    lo = min(hi, max(lo, data.position(timestamp, seq, lo, hi)))
            walks.append(_walk(data, lo, hi, descending))
        if not walks:
            return []
        merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, key=lambda w: (w[0], w[1]),
                                                               reverse=descending)
        wanted = query.offset + query.limit + 1
        page: list[tuple[list[Any], int, Event]] = []
        for timestamp, seq, data, i in merged:
            event = data.events[i]
            if predicate is not None and not predicate(event):
                continue
            page.append(([timestamp], seq, event))
            if len(page) == wanted:
                break
        return page[query.offset:]

    def _sorted_page(self, query: Query, ranges: list[tuple[_StreamData, int, int]],
                     predicate: Callable[[Event], bool] | None, matching: list[tuple[int, Event]] | None,
                     cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Event]]:
        """One page for any sort: sort every matching event, then cut after the cursor or offset."""
        if matching is None:
            matching = [(data.seqs[i], data.events[i]) for data, lo, hi in ranges for i in range(lo, hi)
                        if predicate is None or predicate(data.events[i])]
        sorts = query.sort
        rows = [([sort_value(field_raw(event, s.field), s.descending) for s in sorts], seq, event)
                for seq, event in matching]
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
                    "events": sum(len(data.events) for data in streams)}


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `MemoryBackend` for ``memory://`` URLs."""
    return [MemoryBackend]
