"""How the memory backend stores events: records of plain values in sorted runs, and predicates on them.

An event is stored as a tuple of plain values with its document as compact JSON text (decoded when read
or filtered on), which the garbage collector does not track: a million events do not make every full
collection walk millions of objects. Each stream keeps its records sorted by (timestamp, insertion
sequence), and the same per string type, in int64 arrays plus a list (`SortedRecords`).
"""

from __future__ import annotations

import bisect
import itertools
import json
import operator
from array import array
from collections.abc import Callable, Sequence
from typing import Any

from gateway.events import Event, Stream
from gateway.query import Filter
from gateway.query.checks import string_needles
from gateway.query.semantics import MISSING, compile_filter, value_matches

from .columns import Column

# Big batches are merged by re-sorting instead of inserting one by one (insort is O(n) per event).
MERGE_THRESHOLD = 64


# -- stored records ----------------------------------------------------------------------------------
# An event is stored as a tuple of atomic values, its document as JSON text: such tuples are untracked by
# the garbage collector, so a million stored events add next to nothing to its full collections.
ID, TYPE, TS, RECEIVED, USER, SESSION, DATA = range(7)
RECORD_FIELDS = {"id": ID, "type": TYPE, "timestamp": TS, "received_at": RECEIVED, "user_id": USER,
                 "session_id": SESSION}
CONSTANT_FIELDS = ("tenant", "plugin", "stream")
Record = tuple[Any, ...]


def to_record(event: Event, text: str) -> Record:
    """The stored record of an event whose document encodes to `text` (`gateway.query.checks.check_event`)."""
    return (event.id, event.type, event.timestamp, event.received_at, event.user_id, event.session_id, text)


def data_getter(field: str) -> Callable[[dict[str, Any]], Any]:
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
    top = [compile_filter(f, operator.itemgetter(RECORD_FIELDS[f.field])) for f in filters
           if not f.field.startswith("data.")]
    on_data = [f for f in filters if f.field.startswith("data.")]
    needles = [found for f in on_data if (found := string_needles(f)) is not None]
    checks = [compile_filter(f, data_getter(f.field)) for f in on_data]
    loads = json.loads
    if not checks and len(top) == 1:
        return top[0]

    def predicate(record: Record) -> bool:
        for check in top:
            if not check(record):
                return False
        if checks:
            text = record[DATA]
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


class RecordView:
    """A stored record read as an `Event` (for the reference functions): the document is decoded on
    first use and kept for the life of the view (one query)."""

    __slots__ = ("_data", "record", "sd")

    def __init__(self, record: Record, sd: StreamData) -> None:
        self.record = record
        self.sd = sd
        self._data: dict[str, Any] | None = None

    tenant = property(lambda self: self.sd.stream.tenant)
    plugin = property(lambda self: self.sd.stream.plugin)
    stream = property(lambda self: self.sd.stream.name)
    id = property(lambda self: self.record[ID])
    type = property(lambda self: self.record[TYPE])
    timestamp = property(lambda self: self.record[TS])
    received_at = property(lambda self: self.record[RECEIVED])
    user_id = property(lambda self: self.record[USER])
    session_id = property(lambda self: self.record[SESSION])

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = json.loads(self.record[DATA])
        return self._data


def export(record: Record, sd: StreamData) -> Event:
    """A stored record as an event safe to hand out (its document freshly decoded)."""
    stream = sd.stream
    return Event(tenant=stream.tenant, plugin=stream.plugin, stream=stream.name, type=record[TYPE],
                 data=json.loads(record[DATA]), timestamp=record[TS], received_at=record[RECEIVED],
                 id=record[ID], user_id=record[USER], session_id=record[SESSION])


# -- sorted runs -------------------------------------------------------------------------------------
class SortedRecords:
    """Records sorted by (timestamp, seq), in three parallel sequences (the numbers in int64 arrays,
    which the garbage collector never walks)."""

    __slots__ = ("columns", "records", "seqs", "ts")

    def __init__(self) -> None:
        self.ts = array("q")
        self.seqs = array("q")
        self.records: list[Record] = []
        self.columns: dict[str, Column] = {}  # data fields decoded once (`backends.memory.columns`)

    def column(self, field: str) -> Column:
        """The values of a ``data.`` field for every record, built on first use and kept up to date."""
        found = self.columns.get(field)
        if found is None:
            found = self.columns[field] = Column()
            found.extend([record[DATA] for record in self.records], data_getter(field))
        return found

    def insert(self, batch: Sequence[tuple[int, Record]]) -> None:
        """Insert (seq, record) pairs whose seqs are larger than any stored one."""
        if not batch:
            return
        if len(batch) == 1:  # single-event ingest: no generators, no order check
            self.insert_one(*batch[0])
            return
        in_order = all(batch[i][1][TS] <= batch[i + 1][1][TS] for i in range(len(batch) - 1))
        if in_order and (not self.ts or self.ts[-1] <= batch[0][1][TS]):
            self.ts.extend(record[TS] for _, record in batch)
            self.seqs.extend(seq for seq, _ in batch)
            self.records.extend(record for _, record in batch)
            for field, column in self.columns.items():
                column.extend([record[DATA] for _, record in batch], data_getter(field))
            return
        if len(batch) < MERGE_THRESHOLD:
            for seq, record in batch:
                at = bisect.bisect_right(self.ts, record[TS])
                self.ts.insert(at, record[TS])
                self.seqs.insert(at, seq)
                self.records.insert(at, record)
                for field, column in self.columns.items():
                    column.insert(at, record[DATA], data_getter(field))
        else:
            self.columns = {}
            rows = sorted(itertools.chain(zip(self.ts, self.seqs, self.records, strict=True),
                                          ((r[TS], s, r) for s, r in batch)),
                          key=lambda row: (row[0], row[1]))
            self.ts = array("q", [row[0] for row in rows])
            self.seqs = array("q", [row[1] for row in rows])
            self.records = [row[2] for row in rows]

    def insert_one(self, seq: int, record: Record) -> None:
        """Insert one record whose seq is larger than any stored one (`insert` of a one-item batch)."""
        ts = record[TS]
        if not self.ts or self.ts[-1] <= ts:
            self.ts.append(ts)
            self.seqs.append(seq)
            self.records.append(record)
            for field, column in self.columns.items():
                column.extend([record[DATA]], data_getter(field))
            return
        at = bisect.bisect_right(self.ts, ts)
        self.ts.insert(at, ts)
        self.seqs.insert(at, seq)
        self.records.insert(at, record)
        for field, column in self.columns.items():
            column.insert(at, record[DATA], data_getter(field))

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


class StreamData:
    """One stream: its records in time order, the same split by type (for string types), its id set.

    `odd` counts the records whose type is not a string: while there are any, the stream answers every
    query from its time-ordered records alone.
    """

    __slots__ = ("all", "by_type", "ids", "odd", "stream")

    def __init__(self, stream: Stream) -> None:
        self.stream = stream
        self.all = SortedRecords()
        self.by_type: dict[str, SortedRecords] = {}
        # A dict of str keys and None values is untracked by the garbage collector (a set is not).
        self.ids: dict[str, None] = {}
        self.odd = 0

    def insert(self, batch: list[tuple[int, Record]]) -> None:
        """Insert (seq, record) pairs whose seqs are larger than any stored one."""
        if len(batch) == 1:
            self.insert_one(*batch[0])
            return
        self.all.insert(batch)
        groups: dict[str, list[tuple[int, Record]]] = {}
        for item in batch:
            kind = item[1][TYPE]
            if kind.__class__ is str:
                groups.setdefault(kind, []).append(item)
            else:
                self.odd += 1
        for kind, items in groups.items():
            target = self.by_type.get(kind)
            if target is None:
                target = self.by_type[kind] = SortedRecords()
            target.insert(items)

    def insert_one(self, seq: int, record: Record) -> None:
        """`insert` of a one-item batch, without grouping by type."""
        self.all.insert_one(seq, record)
        kind = record[TYPE]
        if kind.__class__ is str:
            target = self.by_type.get(kind)
            if target is None:
                target = self.by_type[kind] = SortedRecords()
            target.insert_one(seq, record)
        else:
            self.odd += 1

    def types(self, filters: Sequence[Filter]) -> list[str]:
        """The stored types satisfying every filter on ``type`` (each type once)."""
        if len(filters) == 1 and filters[0].op in ("eq", "in"):
            value = filters[0].value
            wanted = [value] if filters[0].op == "eq" else list(value)
            return [v for v in dict.fromkeys(w for w in wanted if isinstance(w, str)) if v in self.by_type]
        return [kind for kind in self.by_type if all(value_matches(kind, f.op, f.value) for f in filters)]
