"""`MemoryBackend`: streams and events in this process's memory (tests, demos, a single-process gateway).

It answers every query with the reference semantics of `gateway.query`; the storage layout
(`backends.memory.records`) and the per-stream plans (`backends.memory.plan`) make a time-range page,
total or count by type and calendar period cost a few binary searches whatever the size of the store;
columns of data fields (`backends.memory.columns`), decoded on first use, answer terms, metrics and filters
on those fields without decoding every document again.
Filtering and sorting read the query's deadline as they go (`gateway.query.deadline`), so a query stops
at ``storage.query_timeout`` and releases the store's lock.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from gateway.events import Event, FieldSpec, Stream
from gateway.query import Query, QueryError, QueryResult
from gateway.query.checks import check_event
from gateway.query.cursor import decode_position, encode_position
from gateway.query.deadline import Ticker
from gateway.query.deadline import check as check_deadline
from gateway.query.semantics import compare_positions, field_raw, rank, sort_value, value_matches
from gateway.storage import Backend, SchemaConflict, StreamExists, StreamNotFound

from .plan import Matches, Plan, column_matches, group_aggregate, plan_matches, slice_aggregate, walk_records
from .records import CONSTANT_FIELDS, Record, RecordView, StreamData, export, record_predicate, to_record


def ticking(predicate: Callable[[Record], bool] | None) -> Callable[[Record], bool] | None:
    """The predicate, reading the query's deadline every `CHECK_EVERY` records (`gateway.query.deadline`):
    filtering is where a memory query spends its time, and it holds the store's lock meanwhile."""
    if predicate is None:
        return None
    ticker = Ticker()
    tick = ticker.tick

    def checked(record: Record) -> bool:
        tick()
        return predicate(record)

    return checked


def copy_stream(stream: Stream) -> Stream:
    """A detached copy of a stream (stored catalog entries must not be mutated by callers)."""
    return dataclasses.replace(stream)


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
        self._catalog: dict[tuple[str, str], dict[str, StreamData]] = {}
        self._seq = itertools.count(1)

    # -- catalog ---------------------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""
        with self._lock:
            streams = self._catalog.setdefault((stream.tenant, stream.plugin), {})
            if stream.name in streams:
                raise StreamExists(f"stream [{stream.name}] already exists")
            stored = copy_stream(stream)
            streams[stream.name] = StreamData(stored)
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

    def update_stream_schema(self, tenant: str, plugin: str, name: str, schema: tuple[FieldSpec, ...] | None, *,
                             expected: tuple[FieldSpec, ...] | None) -> Stream:
        """Replace the schema if it is still `expected` (under the lock: compare-and-set)."""
        with self._lock:
            data = self._catalog.get((tenant, plugin), {}).get(name)
            if data is None:
                raise StreamNotFound(f"stream [{name}] does not exist")
            if data.stream.schema != expected:
                raise SchemaConflict(f"the schema of stream [{name}] changed meanwhile")
            data.stream = dataclasses.replace(data.stream, schema=None if schema is None else tuple(schema))
            return copy_stream(data.stream)

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
    def append(self, events: Sequence[Event], create_streams: bool = False) -> int:
        """Store the batch atomically; return how many events were new (duplicate ids are skipped).

        With `create_streams`, missing streams are created under the same lock (no one sees them empty
        before the batch, and a failing batch creates none)."""
        if len(events) == 1:
            return self._append_one(events[0], create_streams)
        prepared = []
        for event in events:
            prepared.append((event, to_record(event, check_event(event))))
        with self._lock:
            targets = []
            missing: dict[tuple[str, str, str], StreamData] = {}
            for event, _ in prepared:
                data = self._catalog.get((event.tenant, event.plugin), {}).get(event.stream)
                if data is None:
                    key = (event.tenant, event.plugin, event.stream)
                    if not create_streams:
                        raise StreamNotFound(f"stream [{event.stream}] does not exist")
                    data = missing.get(key)
                    if data is None:
                        data = missing[key] = StreamData(Stream(tenant=key[0], plugin=key[1], name=key[2]))
                targets.append(data)
            for (tenant, plugin, name), data in missing.items():
                self._catalog.setdefault((tenant, plugin), {})[name] = data
            by_stream: dict[int, tuple[StreamData, list[tuple[int, Record]]]] = {}
            for data, (event, record) in zip(targets, prepared, strict=True):
                if event.id in data.ids:
                    continue
                data.ids[event.id] = None
                by_stream.setdefault(id(data), (data, []))[1].append((next(self._seq), record))
            for data, batch in by_stream.values():
                data.insert(batch)
            return sum(len(batch) for _, batch in by_stream.values())

    def _append_one(self, event: Event, create_streams: bool) -> int:
        """`append` of a one-event batch (single-event ingest), without the batch bookkeeping."""
        record = to_record(event, check_event(event))
        with self._lock:
            streams = self._catalog.get((event.tenant, event.plugin))
            data = streams.get(event.stream) if streams is not None else None
            if data is None:
                if not create_streams:
                    raise StreamNotFound(f"stream [{event.stream}] does not exist")
                data = StreamData(Stream(tenant=event.tenant, plugin=event.plugin, name=event.stream))
                self._catalog.setdefault((event.tenant, event.plugin), {})[event.stream] = data
            if event.id in data.ids:
                return 0
            data.ids[event.id] = None
            data.insert_one(next(self._seq), record)
            return 1

    def answer(self, query: Query) -> QueryResult:
        """Answer a query of the native model with the semantics documented in `gateway.query`."""
        cursor = decode_position(query.cursor, len(query.sort)) if query.cursor is not None else None
        constant = [f for f in query.filters if f.field in CONSTANT_FIELDS]
        on_type = [f for f in query.filters if f.field == "type"]
        rest = [f for f in query.filters if f.field not in CONSTANT_FIELDS and f.field != "type"]
        full, residual = ticking(record_predicate([*on_type, *rest])), ticking(record_predicate(rest))
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
                    plans.append(Plan(sd, query, on_type, by_type))
            order = {id(plan.sd): i for i, plan in enumerate(plans)}
            exact = not rest and all(plan.slices is not None for plan in plans)
            slices = [s for plan in plans for s in plan.slices or ()] if exact else []
            found: list[Matches] | None = None

            def matching() -> list[Matches]:
                nonlocal found
                if found is None:
                    found = [column_matches(plan, [*on_type, *rest]) or plan_matches(plan, full, residual)
                             for plan in plans]
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
                    result.aggregations = slice_aggregate(slices, query.aggregations, order)
                else:
                    groups = [(sd, records) for sd, _, records in matching()]
                    check_deadline()
                    result.aggregations = group_aggregate(groups, query.aggregations)
                    check_deadline()
            if query.limit:
                if len(query.sort) == 1 and query.sort[0].field == "timestamp":
                    page = self._time_page(query, plans, full, residual, cursor)
                else:
                    page = self._sorted_page(query, matching(), cursor)
                if len(page) > query.limit:
                    page = page[: query.limit]
                    result.next_cursor = encode_position(page[-1][0], page[-1][1])
                result.events = [export(record, sd) for _, _, record, sd in page]
            return result

    def scan(self, query: Query) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of the matching events, stream by stream in time order (the records are
        selected under the lock, decoded after it)."""
        constant = [f for f in query.filters if f.field in CONSTANT_FIELDS]
        predicate = ticking(record_predicate([f for f in query.filters if f.field not in CONSTANT_FIELDS]))
        selected: list[tuple[Sequence[int], list[Record], StreamData]] = []
        with self._lock:
            streams = self._catalog.get((query.tenant, query.plugin), {})
            names = sorted(streams) if query.streams is None else [n for n in query.streams if n in streams]
            for name in dict.fromkeys(names):
                sd = streams[name]
                values = {"tenant": query.tenant, "plugin": query.plugin, "stream": name}
                if not all(value_matches(values[f.field], f.op, f.value) for f in constant):
                    continue
                lo, hi = sd.all.bounds(query.start, query.end)
                seqs, records = sd.all.seqs[lo:hi], sd.all.records[lo:hi]
                if predicate is not None:
                    keep = list(map(predicate, records))
                    seqs, records = list(itertools.compress(seqs, keep)), list(itertools.compress(records, keep))
                selected.append((seqs, records, sd))
        for seqs, records, sd in selected:
            for seq, record in zip(seqs, records, strict=True):
                yield seq, export(record, sd)

    def _time_page(self, query: Query, plans: Sequence[Plan], full: Callable[[Record], bool] | None,
                   residual: Callable[[Record], bool] | None,
                   cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Record, StreamData]]:
        """One page in timestamp order by walking sorted runs from a binary-searched start: each
        stream's records, or the runs of its selected types merged when a type filter narrows them."""
        descending = query.sort[0].descending
        if cursor is not None and (not isinstance(cursor[0][0], int | float) or isinstance(cursor[0][0], bool)):
            raise QueryError("invalid cursor")
        walks: list[Iterator[tuple[int, int, Record, StreamData]]] = []
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
                walks.append(walk_records(records, lo, hi, descending, plan.sd, predicate))
        if not walks:
            return []
        merged = walks[0] if len(walks) == 1 else heapq.merge(*walks, key=lambda w: (w[0], w[1]),
                                                               reverse=descending)
        wanted = query.offset + query.limit + 1
        page: list[tuple[list[Any], int, Record, StreamData]] = []
        for timestamp, seq, record, sd in merged:
            page.append(([timestamp], seq, record, sd))
            if len(page) == wanted:
                break
        return page[query.offset:]

    def _sorted_page(self, query: Query, matching: Sequence[Matches],
                     cursor: tuple[list[Any], int] | None) -> list[tuple[list[Any], int, Record, StreamData]]:
        """One page for any sort: sort every matching event, then cut after the cursor or offset."""
        sorts = query.sort
        rows = []
        ticker = Ticker()
        for sd, seqs, records in matching:
            for seq, record in zip(seqs, records, strict=True):
                ticker.tick()
                view = RecordView(record, sd)
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
