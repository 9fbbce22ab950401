"""Background fills of typed columns: older events copied into new columns without making anyone wait.

Why a thread: declaring typed columns for a stream that already has events (`backends.sqlite.typed`: a PATCH
that adds a field, or the first open of a database upgraded to typed columns) copies every older event, about
9 µs of CPU per event. Done inline, a PATCH on a stream of a million events would answer after ~15 s, and a
worker opening an upgraded database would not serve (nor answer its server's heartbeat) until done. The fill
is already chunked (each chunk its own write transaction) and queries never read a table before its fill is
complete, so it can run beside the requests: answers stay the same meanwhile, they just read the JSON.

One thread per fill; `stop` asks running fills to end after their current chunk (a fill left unfinished is
resumed when the database is next opened), `wait` lets tests and tools wait for completion.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("backends.sqlite")


class BackgroundFills:
    """The fills running in this process; `run(stream_id, stopping)` performs one, chunk by chunk."""

    def __init__(self, run: Callable[[int, Callable[[], bool]], None]) -> None:
        self._run = run
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def start(self, stream_id: int) -> None:
        """Fill `stream_id` in a thread of its own (nothing new when one already runs for it)."""
        with self._lock:
            running = self._threads.get(stream_id)
            if running is not None and running.is_alive():
                return
            thread = threading.Thread(target=self._fill, args=(stream_id,), name=f"sqlite-typed-fill-{stream_id}",
                                      daemon=True)
            self._threads[stream_id] = thread
        thread.start()

    def _fill(self, stream_id: int) -> None:
        try:
            self._run(stream_id, self._stopping.is_set)
        except Exception:  # logged, not raised: the next open of the database resumes the fill
            log.exception("typed columns of stream %s: fill interrupted; it resumes when the database is next "
                          "opened (queries read the JSON meanwhile)", stream_id)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running fills; True when none is left running."""
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout)
        return not any(thread.is_alive() for thread in threads)

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the running fills to end after their current chunk, and wait for them up to `timeout` s."""
        self._stopping.set()
        self.wait(timeout)
