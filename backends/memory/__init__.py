"""In-process storage backend: for tests, demos and a single-process gateway that may lose its data on restart.

`MemoryBackend` keeps everything in Python structures and answers the native query model itself with the
reference functions of `gateway.query`; the core evaluator answers the rest over its scan. Modules:
`backend` (the class), `records` (stored records, sorted runs and record predicates), `plan` (per-stream
query plans and the aggregations answered from run boundaries).
"""

from __future__ import annotations

from gateway.hookspecs import hookimpl
from gateway.storage import Backend

from .backend import MemoryBackend

__all__ = ["MemoryBackend", "storage_backends"]


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `MemoryBackend` for ``memory://`` URLs."""
    return [MemoryBackend]
