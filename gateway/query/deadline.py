"""Query deadlines: every query stops after ``storage.query_timeout`` seconds, whatever the backend.

A request that asks for an expensive query must not pin a worker thread after its client has gone,
so `gateway.storage.Backend.query` runs each query inside `query_deadline(backend.query_timeout)` and
every place that spends time on it gives up once the deadline has passed:

* the core evaluator and the reference aggregation engine call `check` as they go through events;
* a backend cancels its own statements: SQLite from a progress handler that asks `expired` (the
  statement fails with "interrupted" and the backend raises `QueryTimeout`), PostgreSQL by ``SET LOCAL
  statement_timeout`` to `remaining_ms` in the query's transaction, Elasticsearch by a search
  ``timeout``/request timeout of `remaining`; the memory backend calls `check` in its loops.

The deadline lives in a context variable, so it follows the request's thread (and a generator's
consumer) without being passed around; nested queries keep the earliest deadline. `QueryTimeout` is a
503 `GatewayError`, so every API renders it in its own format without knowing about it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from ..errors import ServiceUnavailable

#: Default of ``storage.query_timeout`` (seconds).
DEFAULT_QUERY_TIMEOUT = 10.0
#: How many units of work (events, records) pass between two clock readings in hot loops.
CHECK_EVERY = 1024

_deadline: ContextVar[float | None] = ContextVar("gateway_query_deadline", default=None)
_timeout: ContextVar[float | None] = ContextVar("gateway_query_timeout", default=None)


class QueryTimeout(ServiceUnavailable):
    """A query ran longer than ``storage.query_timeout`` and was cancelled (503, nothing left running)."""

    def __init__(self, timeout: float | None = None) -> None:
        limit = timeout if timeout is not None else _timeout.get()
        shown = f"{limit:g} s " if limit is not None else ""
        super().__init__(f"the query ran longer than the {shown}query time limit (storage.query_timeout) and "
                         "was cancelled; narrow its time range or filters")


@contextmanager
def query_deadline(timeout: float | None) -> Iterator[None]:
    """Run the block with a deadline `timeout` seconds from now (None: no new limit); an enclosing
    deadline that comes earlier stays in force."""
    if timeout is None:
        yield
        return
    at = time.monotonic() + timeout
    current = _deadline.get()
    if current is not None and current <= at:
        yield
        return
    token, timeout_token = _deadline.set(at), _timeout.set(timeout)
    try:
        yield
    finally:
        _deadline.reset(token)
        _timeout.reset(timeout_token)


@contextmanager
def suspended() -> Iterator[None]:
    """Run the block without a deadline (cleanup that must finish: a ROLLBACK after a cancelled read)."""
    token = _deadline.set(None)
    try:
        yield
    finally:
        _deadline.reset(token)


def deadline() -> float | None:
    """The current deadline (`time.monotonic` seconds), or None outside any query."""
    return _deadline.get()


def expired() -> bool:
    """Whether the current query is past its deadline (cheap: one context read, one clock read)."""
    at = _deadline.get()
    return at is not None and time.monotonic() >= at


def check() -> None:
    """Raise `QueryTimeout` when the current query is past its deadline."""
    if expired():
        raise QueryTimeout()


def remaining() -> float | None:
    """Seconds left to the current query (at least 0), or None without a deadline."""
    at = _deadline.get()
    return None if at is None else max(0.0, at - time.monotonic())


def remaining_ms() -> int | None:
    """Whole milliseconds left (at least 1, for a ``statement_timeout`` where 0 means none), or None."""
    left = remaining()
    return None if left is None else max(1, int(left * 1000))


class Ticker:
    """Calls `check` once every `every` ticks: for loops too hot to read the clock on each turn."""

    __slots__ = ("count", "every")

    def __init__(self, every: int = CHECK_EVERY) -> None:
        self.every = every
        self.count = 0

    def tick(self) -> None:
        """Count one unit of work; every `every` units, raise `QueryTimeout` past the deadline."""
        self.count += 1
        if self.count >= self.every:
            self.count = 0
            check()
