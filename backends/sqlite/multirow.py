"""Many rows per INSERT statement: ``INSERT ... VALUES (?, ...), (?, ...), ...`` in chunks, instead of
``executemany`` (one statement step per row).

Why: a worker's group commit (`backends.sqlite.group_commit`) runs while the other request threads of the same
process parse and check the next arrays. The sqlite3 module releases the GIL around every
statement step, so ``executemany`` of 1,000 rows hands the GIL to a busy request thread and takes it back 1,000
times; contended, every hand-back is a futex round trip. Measured on the AppDynamics publish (1,000-event arrays,
4 request threads): the writer's system time went from 2.5 ms to 14 ms per array, all of it while holding the
cross-process write lock. One step per chunk of up to `CHUNK` rows makes that a handful of hand-offs.

Chunks are powers of two (a batch of 1,000 rows: 256, 256, 256, 128, 64, 32, 8), so that a few statement texts
per table serve every batch size and stay in the connection's statement cache.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from functools import lru_cache
from itertools import chain
from typing import Any

#: Most rows in one statement (fewer when the row is wide: SQLite caps the variables of a statement).
CHUNK = 256


@lru_cache(maxsize=512)
def statement(head: str, width: int, count: int, tail: str = "") -> str:
    """``<head> VALUES (?, ...) x count <tail>`` for rows of `width` values."""
    row = f"({', '.join('?' * width)})"
    return f"{head} VALUES {', '.join([row] * count)}{tail}"


def chunk_sizes(total: int, biggest: int) -> list[int]:
    """Sizes adding up to `total`: `biggest` (a power of two) as often as it fits, then smaller powers of two."""
    sizes = []
    size = biggest
    while total:
        while size > total:
            size //= 2
        sizes.append(size)
        total -= size
    return sizes


def biggest_chunk(conn: sqlite3.Connection, width: int, shared: int = 0) -> int:
    """The largest power of two <= `CHUNK` whose rows of `width` values (and `shared` values bound once for the
    whole statement) fit in one statement's variables."""
    limit = conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    size = CHUNK
    while size > 1 and size * width + shared > limit:
        size //= 2
    return size


def insert(conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Sequence[Any]], tail: str = "") -> int:
    """Insert `rows` (each `width` values) with ``<head> VALUES ... <tail>`` statements; return how many rows
    the statements changed (``sqlite3_changes``: rows a conflict clause skipped, and writes of triggers, do not
    count)."""
    changed = 0
    start = 0
    for size in chunk_sizes(len(rows), biggest_chunk(conn, width)):
        params = list(chain.from_iterable(rows[start:start + size]))
        changed += conn.execute(statement(head, width, size, tail), params).rowcount
        start += size
    return changed


@lru_cache(maxsize=512)
def sequenced_statement(head: str, fixed: int, width: int, count: int, tail: str = "") -> str:
    """Like `statement`, for rows ``(?1 + k, ?2 .. ?<1 + fixed>, ? x width)``: the k-th row's first value is the
    bound base plus k, the next `fixed` values are bound once for every row."""
    lead = "".join(f", ?{2 + j}" for j in range(fixed))
    cells = ", ?" * width
    return f"{head} VALUES {', '.join(f'(?1 + {k}{lead}{cells})' for k in range(count))}{tail}"


def insert_sequenced(conn: sqlite3.Connection, head: str, fixed: Sequence[Any], width: int, flat: Sequence[Any],
                     first: int, tail: str = "") -> int:
    """Insert ``len(flat) // width`` rows ``(first + i, *fixed, *flat[i * width:(i + 1) * width])``; return how many
    rows the statements changed (as `insert`).

    The values of all rows come as one flat list, so that they can be prepared away from the write lock and
    bound here without building a tuple per row (the numbering and the constants are in the statement)."""
    count = len(flat) // width
    changed = 0
    start = 0
    for size in chunk_sizes(count, biggest_chunk(conn, width, 1 + len(fixed))):
        params = [first + start, *fixed, *flat[start * width:(start + size) * width]]
        changed += conn.execute(sequenced_statement(head, len(fixed), width, size, tail), params).rowcount
        start += size
    return changed
