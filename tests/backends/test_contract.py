"""The backend contract (`gateway.testing.contract`) over every built-in backend.

The `backend` fixture (conftest.py) is parametrized over memory, SQLite files and Elasticsearch (skipped
unless ``ELASTICSEARCH_URL`` is set), exactly as a third-party backend package would run the suite.
"""

from __future__ import annotations

import pytest

from backends.memory import MemoryBackend
from gateway.storage import Backend
from gateway.testing.contract import BackendContract, QueryModelContract


class TestBackendContract(BackendContract):
    """Runs every contract test against each backend of the `backend` fixture."""


class _PagedScanBackend(MemoryBackend):
    """A backend that keeps `Backend.scan`'s default (paging through `answer`), as a new backend would."""

    scan = Backend.scan


class TestDefaultScan(QueryModelContract):
    """The query-model part of the contract through the default scan (what a third-party backend gets)."""

    @pytest.fixture
    def backend(self) -> Backend:
        return _PagedScanBackend("memory://")
