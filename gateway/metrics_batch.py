"""Metric updates gathered per process and written to prometheus-client's values about once a second.

In multiprocess mode every `inc` is a locked write into a memory-mapped file, and a histogram observation
is two of them: per ingested event that was five writes, about half the cost of metrics and logging on the
ingest benchmark. Here a request adds to plain numbers under one lock; a daemon thread per process (started
on first use, again after a fork) writes the totals every `FLUSH_SECONDS`, and ``/metrics`` writes its own
process's totals before it answers. Figures of other workers are therefore at most `FLUSH_SECONDS` old; a
worker that exits writes what it holds (atexit).

Histogram totals are added through the child's own bucket and sum values (``_buckets``, ``_sum``: stable in
prometheus-client since 0.4); a child without them is observed directly, value by value.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from bisect import bisect_left
from typing import Any

FLUSH_SECONDS = 1.0


class Batch:
    """Pending counter increments and histogram observations of this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[Any, float] = {}
        self._histograms: dict[Any, list[Any]] = {}  # child -> [sum, [count per bucket], bounds]
        self._raw: list[tuple[Any, float]] = []  # children without the expected internals
        self._flusher_started = False
        os.register_at_fork(after_in_child=self._forked)
        atexit.register(self.flush)

    def _forked(self) -> None:
        self._lock = threading.Lock()  # a lock held by another thread at fork time would never be released
        self._counts, self._histograms, self._raw = {}, {}, []  # the parent writes its own totals
        self._flusher_started = False

    def inc(self, child: Any, amount: float = 1.0) -> None:
        """Add `amount` to a counter child."""
        with self._lock:
            self._counts[child] = self._counts.get(child, 0.0) + amount
            if not self._flusher_started:
                self._start_flusher()

    def observe(self, child: Any, value: float) -> None:
        """Observe `value` on a histogram child."""
        with self._lock:
            pending = self._histograms.get(child)
            if pending is None:
                bounds = getattr(child, "_upper_bounds", None)
                if bounds is None or not hasattr(child, "_sum") or not hasattr(child, "_buckets"):
                    self._raw.append((child, value))
                    return
                pending = self._histograms[child] = [0.0, [0] * len(bounds), bounds]
            pending[0] += value
            pending[1][bisect_left(pending[2], value)] += 1  # the first bucket whose bound is >= value
            if not self._flusher_started:
                self._start_flusher()

    def flush(self) -> None:
        """Write everything pending into the metric values (the shared files under ``serve``)."""
        with self._lock:
            counts, histograms, raw = self._counts, self._histograms, self._raw
            self._counts, self._histograms, self._raw = {}, {}, []
        for child, amount in counts.items():
            child.inc(amount)
        for child, (total, buckets, _) in histograms.items():
            child._sum.inc(total)
            for index, count in enumerate(buckets):
                if count:
                    child._buckets[index].inc(count)
        for child, value in raw:
            child.observe(value)

    def _start_flusher(self) -> None:
        self._flusher_started = True
        threading.Thread(target=self._run, name="event-gateway-metrics", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(FLUSH_SECONDS)
            self.flush()


BATCH = Batch()
