"""PostgreSQL storage backend: one shared event store for any number of gateway instances.

``storage.url = "postgresql://user:pass@host:5432/db"`` (or ``postgres://``); options in `settings`,
operator notes in README.md next to this file. The package is split by job: `settings` (URL and options),
`pool` (connections, retries, `BackendUnavailable`), `schema` (migrations under an advisory lock),
`codec` (values PostgreSQL cannot hold as is), `compiler` (filters, sorts, cursors as SQL), `aggregate`
(aggregations as SQL), `backend` (the `Backend` itself) and `reference` (the core semantics it reuses).
"""

from __future__ import annotations

from gateway.hookspecs import hookimpl
from gateway.storage import Backend

from .backend import PostgresBackend

__all__ = ["PostgresBackend"]


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register `PostgresBackend` for ``postgresql://`` and ``postgres://`` URLs."""
    return [PostgresBackend]
