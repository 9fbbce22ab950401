"""File-system checks behind the SQLite backend's write probe (health reports the store down before ingest fails).

SQLite reports a read-only file or a full disk only in the middle of a write; these cheap checks find them first.
"""

from __future__ import annotations

import os

from gateway.storage import BackendUnavailable

#: Below this much free space on the database's file system, health reports the store as failing (a
#: transaction of a few events needs its pages in the WAL; SQLite reports a full disk only mid-write).
MIN_FREE_BYTES = 1024 * 1024


def check_files_writable(path: str) -> None:
    """Raise `BackendUnavailable` when the database's directory is missing, it or the database (or its WAL)
    is not writable (read-only mount, ``chattr +i``, modes), or its file system has less than
    `MIN_FREE_BYTES` free."""
    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        raise BackendUnavailable(f"SQLite database directory {directory} is missing")
    for candidate in (directory, path, f"{path}-wal"):
        if os.path.exists(candidate) and not os.access(candidate, os.W_OK):
            raise BackendUnavailable(f"SQLite database {candidate} is read-only")
    try:
        stats = os.statvfs(directory)
    except OSError as exc:
        raise BackendUnavailable(f"SQLite database directory {directory}: {exc}") from exc
    if stats.f_bavail * stats.f_frsize < MIN_FREE_BYTES:
        raise BackendUnavailable(f"SQLite database {path}: the file system is full "
                                 f"(less than {MIN_FREE_BYTES // 1024} KiB free)")
