"""How the memory backend reads a query: per stream, a time range in the sorted runs, and the aggregations
that binary searches or record fields answer without decoding documents.

A `Plan` selects one stream's records in the query's time range and, when the type index serves, the same
range in each selected type's run (`Slice`s). Counts, terms on the type and histograms of the event time
are then computed from run boundaries (`slice_aggregate`) or record fields (`group_aggregate`); anything
else goes through `RecordView`s and the reference engine (`gateway.query.aggregate`).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
import operator
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gateway.query import MISSING, Aggregation, Filter, Query
from gateway.query.aggregate import aggregate_one, order_buckets, single_key
from gateway.query.calendar import bucket_end, bucket_start

from .columns import column_aggregate, column_positions
from .records import CONSTANT_FIELDS, RECORD_FIELDS, Record, RecordView, SortedRecords, StreamData

# Most types whose time-ordered runs a page merges (more: it walks the stream's records instead).
MAX_MERGED_TYPES = 64


#: A run of one type's records of one stream: (stream, type, its sorted records, lo, hi).
Slice = tuple[StreamData, str, SortedRecords, int, int]


class Plan:
    """How a query reads one stream: the time range in its records and, when the type index serves,
    the same range in each selected type's records (`slices`; None when unused)."""

    __slots__ = ("hi", "lo", "restricted", "sd", "slices")

    def __init__(self, sd: StreamData, query: Query, on_type: Sequence[Filter], by_type: bool) -> None:
        self.sd = sd
        self.lo, self.hi = sd.all.bounds(query.start, query.end)
        self.slices: list[Slice] | None = None
        self.restricted = False
        if by_type and not sd.odd:
            kinds = sd.types(on_type) if on_type else list(sd.by_type)
            # Pages merge the selected types' runs unless there are so many that one walk is cheaper.
            self.restricted = bool(on_type) and len(kinds) < len(sd.by_type) and len(kinds) <= MAX_MERGED_TYPES
            self.slices = []
            for kind in kinds:
                records = sd.by_type[kind]
                lo, hi = records.bounds(query.start, query.end)
                if hi > lo:
                    self.slices.append((sd, kind, records, lo, hi))


#: The matching events of one stream, in time order: (stream, their seqs, their records).
Matches = tuple[StreamData, Sequence[int], list[Record]]


def plan_matches(plan: Plan, full: Callable[[Record], bool] | None,
                 residual: Callable[[Record], bool] | None) -> Matches:
    """The events of a stream's plan that pass the filters (without a tuple per event)."""
    if plan.restricted:
        if not plan.slices:
            return plan.sd, [], []
        rows = list(slice_rows(plan.slices))
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


def column_matches(plan: Plan, filters: Sequence[Filter]) -> Matches | None:
    """The events of an unrestricted plan that pass the filters, tested on columns of the stream's
    records (`backends.memory.columns`); None when a data field's column cannot answer."""
    if plan.restricted:
        return None
    run = plan.sd.all

    def record_value(field: str) -> Callable[[int], Any]:
        index, records = RECORD_FIELDS[field], run.records
        return lambda position: records[position][index]

    positions = column_positions(filters, plan.lo, plan.hi, run.column, record_value)
    if positions is None:
        return None
    return plan.sd, [run.seqs[p] for p in positions], [run.records[p] for p in positions]


def walk_records(records: SortedRecords, lo: int, hi: int, descending: bool, sd: StreamData,
                 predicate: Callable[[Record], bool] | None) -> Iterator[tuple[int, int, Record, StreamData]]:
    """(timestamp, seq, record, stream) of the records in [lo, hi) passing the predicate, in time order
    or reversed."""
    ts, seqs, stored = records.ts, records.seqs, records.records
    for i in (range(hi - 1, lo - 1, -1) if descending else range(lo, hi)):
        record = stored[i]
        if predicate is None or predicate(record):
            yield ts[i], seqs[i], record, sd


def slice_rows(slices: Sequence[Slice]) -> Iterator[tuple[int, int, Record]]:
    """(timestamp, seq, record) of one stream's slices, merged in time order."""
    runs = [zip(s[2].ts[s[3]:s[4]], s[2].seqs[s[3]:s[4]], s[2].records[s[3]:s[4]], strict=True) for s in slices]
    return runs[0] if len(runs) == 1 else heapq.merge(*runs)  # (timestamp, seq) pairs are unique


def slice_groups(slices: Sequence[Slice], order: Mapping[int, int]) -> list[Group]:
    """The records of slices grouped by stream, in the order of the general path (stream by stream, in
    time order)."""
    by_stream: dict[int, list[Slice]] = {}
    for s in slices:
        by_stream.setdefault(id(s[0]), []).append(s)
    groups: list[Group] = []
    for key in sorted(by_stream, key=order.__getitem__):
        runs = by_stream[key]
        groups.append((runs[0][0], [record for _, _, record in slice_rows(runs)]))
    return groups


#: Records of one stream, in time order.
Group = tuple[StreamData, list[Record]]
#: Fields every stored event has (a ``count`` of them counts events); with a string type, the type too.
PRESENT = frozenset({"id", "timestamp", "received_at", *CONSTANT_FIELDS})
ALWAYS_PRESENT = PRESENT | {"type"}


def group_aggregate(groups: Sequence[Group], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Aggregations over records grouped by stream: bucket keys of top-level fields are read from the
    records; anything needing the document goes through views and the reference `aggregate_one`."""
    return {agg.name: group_aggregate_one(groups, agg) for agg in aggs}


def group_aggregate_one(groups: Sequence[Group], agg: Aggregation) -> Any:
    if agg.kind == "count" and (agg.field is None or agg.field in PRESENT):
        return sum(len(records) for _, records in groups)
    key_of = None
    if agg.kind in ("terms", "date_histogram") and agg.source in RECORD_FIELDS:
        key_of = single_key(agg, operator.itemgetter(RECORD_FIELDS[agg.source]))
    if key_of is None:
        return aggregate_one([RecordView(record, sd) for sd, records in groups for record in records], agg)
    if not agg.aggs:
        counts: Counter[Any] = Counter()
        for _, records in groups:
            counts.update(map(key_of, records))
        counts.pop(None, None)
        return [{"key": key, "count": count} for key, count in order_buckets(agg, counts)]
    members: dict[Any, list[Group]] = {}
    for sd, records in groups:
        split: dict[Any, list[Record]] = {}
        for record in records:
            key = key_of(record)
            if key is not None:
                split.setdefault(key, []).append(record)
        for key, part in split.items():
            members.setdefault(key, []).append((sd, part))
    ordered = order_buckets(agg, {key: sum(len(part) for _, part in group) for key, group in members.items()})
    return [{"key": key, "count": count, **group_aggregate(members[key], agg.aggs)} for key, count in ordered]


def slice_aggregate(slices: Sequence[Slice], aggs: Sequence[Aggregation],
                    order: Mapping[int, int]) -> dict[str, Any]:
    """Aggregations over the events of slices: counts, terms on the type and histograms of the event
    time by binary search in the sorted runs; anything else by the reference over the events."""
    return {agg.name: slice_aggregate_one(slices, agg, order) for agg in aggs}


def slice_aggregate_one(slices: Sequence[Slice], agg: Aggregation, order: Mapping[int, int]) -> Any:
    groups: dict[Any, list[Slice]] = {}
    if agg.kind == "count" and (agg.field is None or agg.field in ALWAYS_PRESENT):
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
        found = column_aggregate(agg, [(s[2], s[3], s[4]) for s in slices])
        if found is not MISSING:
            return found
        return group_aggregate_one(slice_groups(slices, order), agg)
    counts = {key: sum(s[4] - s[3] for s in group) for key, group in groups.items()}
    return [{"key": key, "count": count, **slice_aggregate(groups[key], agg.aggs, order)}
            for key, count in order_buckets(agg, counts)]
