"""One batch of events written inside the appending transaction: the event rows, their typed rows
(`backends.sqlite.typed`) and the day summary (``event_days``), all counting only the events that were new.

Why a module of its own: this is the only code that runs while a worker holds the cross-process write lock
for a publish, so every microsecond per event here bounds the throughput of all workers together. Hence:

- rows go in multi-row INSERT statements (`backends.sqlite.multirow`), not one statement step per row;
- the stream ids are looked up once per batch, not by a subquery per row (a name with no stream, or a
  stream being deleted, is `MissingStream`: nothing of the batch is kept);
- the day summary gets one upsert per (stream, type, UTC day) of the batch instead of a trigger per row
  (migration 4 dropped the insert trigger; deletes and updates of events still go through triggers). The
  counts are of the rows actually inserted: when the unique key skipped duplicates, the inserted seqs are
  read back, so the summary stays exact under retried batches.

Seqs are given explicitly (one more than the largest so far, what SQLite would pick), so that the caller
knows which typed row and which day count belong to which event.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gateway.query.calendar import DAY_MS

from . import multirow, typed

INSERT_HEAD = "INSERT INTO events (seq, stream_id, id, type, timestamp, received_at, user_id, session_id, data)"
INSERT_WIDTH = 9
INSERT_TAIL = " ON CONFLICT (stream_id, id) DO NOTHING"
STREAM_ID = "SELECT id FROM streams WHERE tenant = ? AND plugin = ? AND name = ?"
#: A NULL type never conflicts (UNIQUE treats NULLs as distinct): each batch then adds a row; readers sum.
DAY_UPSERT = ("INSERT INTO event_days (stream_id, type, day, n) VALUES (?, ?, ?, ?) "
              "ON CONFLICT (stream_id, type, day) DO UPDATE SET n = n + excluded.n")


class MissingStream(Exception):
    """A batch names a stream that does not exist (or is being deleted)."""


def insert_events(conn: sqlite3.Connection, rows: Sequence[tuple[Any, ...]], datas: Sequence[Any],
                  writer: typed.Writer) -> int:
    """Insert the event rows ``(tenant, plugin, stream, id, type, timestamp, received_at, user_id, session_id,
    data text)`` with their typed rows (`datas`: the events' data) and day counts; return how many were new."""
    ids: dict[tuple[str, str, str], int] = {}
    for key in dict.fromkeys(row[:3] for row in rows):
        found = conn.execute(STREAM_ID, key).fetchone()
        if found is None:
            raise MissingStream(key)
        ids[key] = found[0]
    first = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM events").fetchone()[0]
    if len(ids) == 1:
        (sid,) = ids.values()
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
