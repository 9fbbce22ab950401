"""The backend contract (`gateway.testing.contract`) over every built-in backend.

The `backend` fixture (conftest.py) is parametrized over memory, SQLite files, a real PostgreSQL server
(`tests/pg_server.py`) and Elasticsearch (skipped unless ``ELASTICSEARCH_URL`` is set), exactly as a
third-party backend package would run the suite.
"""

from __future__ import annotations

import pytest

from backends.memory import MemoryBackend
from gateway.query import Query
from gateway.storage import Backend
from gateway.testing.contract import BackendContract, QueryModelContract


class TestBackendContract(BackendContract):
    """Runs every contract test against each backend of the `backend` fixture."""


class _ScanOnlyBackend(MemoryBackend):
    """A backend that answers nothing beyond paging by time itself: the core evaluates every query over
    `Backend.scan`'s default (paging through `answer`), as it would for a minimal new backend."""

    scan = Backend.scan

    def native(self, query: Query) -> bool:
        return False


class TestScanOnly(QueryModelContract):
    """The query-model part of the contract wholly through the core evaluator and the default scan (the
    built-in backends answer much of it natively or by rewriting, so this keeps the scan path checked)."""

    @pytest.fixture
    def backend(self) -> Backend:
        return _ScanOnlyBackend("memory://")
