"""In-process storage backend: for tests, demos and a single-process gateway that may lose its data on restart.

`MemoryBackend` keeps everything in Python structures and answers every query with the reference
semantics of `gateway.query` (it pushes nothing down: it is the reference). Modules: `backend` (the
class), `records` (stored records, sorted runs and record predicates), `plan` (per-stream query plans
and the aggregations answered from run boundaries).
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
