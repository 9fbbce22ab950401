"""One batch of events written inside the appending transaction: the event rows, their typed rows
(`backends.sqlite.typed`) and the day summary (``event_days``), all counting only the events that were new.

Why a module of its own: this is the only code that runs while a worker holds the cross-process write lock
for a publish, and measured under load the lock was held about 2.5 times the writer's CPU time (the committing
thread waits for the GIL behind the process's other request threads, and for a core). So:

- the batch is prepared by the appending thread before the lock (`prepare`): for a batch of one stream (the
  usual case), its event values as one flat list, its day counts and its typed rows (for the stream's layout as
  last seen); under the lock the writer only binds them;
- rows go in multi-row INSERT statements (`backends.sqlite.multirow`), not one statement step per row (each
  step hands the GIL over and back);
- the stream ids are looked up once per batch, not by a subquery per row (a name with no stream, or a
  stream being deleted, is `MissingStream`: nothing of the batch is kept);
- the day summary gets one upsert per (stream, type, UTC day) of the batch instead of a trigger per row
  (migration 4 dropped the insert trigger; deletes and updates of events still go through triggers). The
  counts are of the rows actually inserted: when the unique key skipped duplicates, the inserted seqs are
  read back and the counts and typed rows are made again from those, so the summary stays exact under
  retried batches.

Seqs are given explicitly (one more than the largest so far, what SQLite would pick), so that the writer
knows which typed row and which day count belong to which event.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import chain
from typing import Any

from gateway.query.calendar import DAY_MS

from . import multirow, typed

INSERT_HEAD = "INSERT INTO events (seq, stream_id, id, type, timestamp, received_at, user_id, session_id, data)"
INSERT_WIDTH = 9
INSERT_TAIL = " ON CONFLICT (stream_id, id) DO NOTHING"
#: Values per event after the seq and the stream id (id, type, timestamp, received_at, user_id, session_id, data).
VALUES_WIDTH = 7
STREAM_ID = "SELECT id FROM streams WHERE tenant = ? AND plugin = ? AND name = ?"
_DAY_HEAD = "INSERT INTO event_days (stream_id, type, day, n) VALUES "
_DAY_TAIL = " ON CONFLICT (stream_id, type, day) DO UPDATE SET n = n + excluded.n"
#: A NULL type never conflicts (UNIQUE treats NULLs as distinct): each batch then adds a row; readers sum.
DAY_UPSERT = f"{_DAY_HEAD}(?, ?, ?, ?){_DAY_TAIL}"


#: One event, its stream id resolved by a subquery (NULL for a missing stream: the NOT NULL constraint fails).
SINGLE_INSERT = ("INSERT INTO events (stream_id, id, type, timestamp, received_at, user_id, session_id, data) "
                 f"VALUES (({STREAM_ID}), ?, ?, ?, ?, ?, ?, ?){INSERT_TAIL}")
#: `DAY_UPSERT` with the stream named rather than numbered (the day counts of a group of single events).
DAY_UPSERT_BY_NAME = f"{_DAY_HEAD}(({STREAM_ID}), ?, ?, ?){_DAY_TAIL}"


class MissingStream(Exception):
    """A batch names a stream that does not exist (or is being deleted)."""


@dataclass
class Prepared:
    """What the appending thread computed for a batch of one stream (`prepare`)."""

    key: tuple[str, str, str]
    values: list[Any]  # VALUES_WIDTH values per event, flat
    days: Counter[tuple[Any, int]]  # (type, UTC day) -> events
    typed: typed.Prepared | None


def prepare(rows: Sequence[tuple[Any, ...]], datas: Sequence[Any], writer: typed.Writer) -> Prepared | None:
    """The work of a batch that needs no lock, for a batch of one stream (None for several streams or a single
    event: the committing thread does it all). `rows` are ``(tenant, plugin, stream, id, type, timestamp,
    received_at, user_id, session_id, data text)``; `datas` the events' data."""
    if is_single(rows, writer.layouts):  # inserted as it is, by `insert_single`
        return None
    key = rows[0][:3]
    if any(row[:3] != key for row in rows):
        return None
    return Prepared(key, list(chain.from_iterable(row[3:] for row in rows)),
                    Counter((row[4], row[5] // DAY_MS) for row in rows),
                    writer.prepare(key, [(row[5], data) for row, data in zip(rows, datas, strict=True)]))


def is_single(rows: Sequence[tuple[Any, ...]], layouts: Mapping[tuple[str, str, str], Any]) -> bool:
    """Whether a batch is one event of a stream without typed columns (in `layouts`): `insert_single` stores it
    in one statement, which SQLite undoes by itself when it fails (no savepoint needed in a group)."""
    return len(rows) == 1 and rows[0][:3] not in layouts


def insert_single(conn: sqlite3.Connection, row: tuple[Any, ...], days: Counter[tuple[Any, ...]]) -> int:
    """One event of a stream without typed columns, in one statement: 1 when new, 0 for a duplicate id.

    The single-event ingest path (one request, one event, several requests per group commit): one statement
    per batch and no savepoint (SQLite undoes a failing statement by itself, leaving the transaction's other
    batches in place), and the day count added to `days`, which the writer upserts once per group
    (`DAY_UPSERT_BY_NAME`). Raises `MissingStream` when the stream does not exist.
    """
    try:
        added = conn.execute(SINGLE_INSERT, row).rowcount
    except sqlite3.IntegrityError as exc:
        if "events.stream_id" not in str(exc):
            raise
        raise MissingStream(row[:3]) from exc
    if added:
        days[(*row[:3], row[4], row[5] // DAY_MS)] += 1
    return added


def insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], datas: Sequence[Any],
                  writer: typed.Writer, prepared: Prepared | None = None) -> int:
    """Insert the event rows (as `prepare` takes them) with their typed rows and day counts; return how many
    were new. `prepared`: what `prepare` made of them (used as far as still valid)."""
    ids: dict[tuple[str, str, str], int] = {}
    for key in dict.fromkeys(row[:3] for row in rows) if prepared is None else (prepared.key,):
        found = conn.execute(STREAM_ID, key).fetchone()
        if found is None:
            raise MissingStream(key)
        ids[key] = found[0]
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    if prepared is not None:
        sid = ids[prepared.key]
        added = multirow.insert_sequenced(conn, INSERT_HEAD, (sid,), VALUES_WIDTH, prepared.values, first,
                                          INSERT_TAIL)
        if added == len(rows):
            conn.executemany(DAY_UPSERT, [(sid, *key, n) for key, n in prepared.days.items()])
            if not writer.write_prepared(conn, prepared.key, prepared.typed, first):
                writer.write(conn, rows, datas, first, None)
            return added
        values = [(first + i, sid, *row[3:]) for i, row in enumerate(rows)]
    else:
        values = [(first + i, ids[row[:3]], *row[3:]) for i, row in enumerate(rows)]
        added = multirow.insert(conn, INSERT_HEAD, INSERT_WIDTH, values, INSERT_TAIL)
    if added == len(values):
        inserted = None
        days = Counter((v[1], v[3], v[4] // DAY_MS) for v in values)
    else:
        inserted = {seq for (seq,) in conn.execute("SELECT seq FROM events WHERE seq >= ?", (first,))}
        days = Counter((v[1], v[3], v[4] // DAY_MS) for v in values if v[0] in inserted)
    if days:
        conn.executemany(DAY_UPSERT, [(*key, n) for key, n in days.items()])
    writer.write(conn, rows, datas, first, inserted)
    return added
