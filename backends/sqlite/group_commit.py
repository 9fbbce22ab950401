"""Group commit: concurrent appends in one process share one transaction and one disk sync.

With ``synchronous=FULL`` every SQLite commit waits for an fsync. Request threads that append at the
same moment queue their batches; whichever thread gets the writer lock first (the leader) commits every
queued batch in one transaction, each in its own savepoint so a failing batch is rolled back alone, and
hands each waiting thread its own result. A thread returns only after the transaction holding its batch
committed, so acknowledging afterwards stays safe. Across processes, an exclusive ``flock`` on a lock
file serializes the leaders in the kernel, which wakes a waiter as soon as the lock is free (SQLite's
busy handler instead sleeps in growing steps, which left writers idle with the database unlocked). A
lock file deleted or re-created under a running process is reopened before the next commit.
"""

from __future__ import annotations

import fcntl
import os
import threading
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(slots=True)
class _Pending(Generic[T]):
    batch: T
    done: bool = False
    result: Any = None
    error: BaseException | None = None


@dataclass
class GroupCommitter(Generic[T]):
    """Run `commit_all(batches) -> results` for groups of concurrently submitted batches.

    `commit_all` gets every queued batch and returns, per batch, its result or the exception to raise
    in the submitting thread; if it raises, every batch of the group gets that exception.
    """

    commit_all: Callable[[Sequence[T]], list[Any]]
    lock_path: str | None = None
    _queue: list[_Pending[T]] = field(default_factory=list)
    _queue_lock: threading.Lock = field(default_factory=threading.Lock)
    _writer: threading.Lock = field(default_factory=threading.Lock)
    _lock_fd: int | None = None
    _lock_pid: int | None = None

    def submit(self, batch: T) -> Any:
        """Queue the batch, commit it (as leader or by the current leader), return its result."""
        pending: _Pending[T] = _Pending(batch)
        with self._queue_lock:
            self._queue.append(pending)
        with self._writer:
            if not pending.done:
                self._commit()
        if not pending.done:  # cannot happen: every group is settled; never acknowledge by accident
            raise RuntimeError("group commit left a batch unsettled")
        if pending.error is not None:
            raise pending.error
        return pending.result

    def _commit(self) -> None:
        """Commit everything queued; whatever fails, every batch taken is settled with a result or an exception.

        The group is taken only once the cross-process lock is held, so batches that arrive while another
        process commits join this group instead of waiting for the next one.
        """
        fd = None
        group: list[_Pending[T]] | None = None
        try:
            fd = self._process_lock()
            if fd is not None:
                fcntl.flock(fd, fcntl.LOCK_EX)
            group = self._take()
            results = self.commit_all([p.batch for p in group])
            if len(results) != len(group):
                raise RuntimeError(f"commit_all returned {len(results)} results for {len(group)} batches")
        except BaseException as exc:  # nothing of the group is stored (the transaction never committed)
            group = self._take() if group is None else group
            results = [exc] * len(group)
        finally:
            if fd is not None:
                with suppress(OSError):
                    fcntl.flock(fd, fcntl.LOCK_UN)
        for pending, result in zip(group, results, strict=True):
            if isinstance(result, BaseException):
                pending.error = result
            else:
                pending.result = result
            pending.done = True

    def _take(self) -> list[_Pending[T]]:
        with self._queue_lock:
            group, self._queue = self._queue, []
        return group

    def _process_lock(self) -> int | None:
        """This process's descriptor of the cross-process lock file (opened anew after a fork)."""
        if self.lock_path is None:
            return None
        pid = os.getpid()
        if self._lock_fd is not None and self._lock_pid == pid and not self._stale(self._lock_fd):
            return self._lock_fd
        if self._lock_fd is not None and self._lock_pid == pid:
            with suppress(OSError):
                os.close(self._lock_fd)
        self._lock_fd = None
        self._lock_fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        self._lock_pid = pid
        return self._lock_fd

    def _stale(self, fd: int) -> bool:
        """Whether the open lock file is no longer the one at `lock_path` (deleted, or its directory
        removed and made again): processes locking different inodes would not exclude each other."""
        try:
            return os.stat(self.lock_path).st_ino != os.fstat(fd).st_ino
        except FileNotFoundError:
            return True

    def close(self) -> None:
        """Close this process's lock file descriptor."""
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None
