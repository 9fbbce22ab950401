"""The backend contract (`gateway.testing.contract`) over every built-in backend.

The `backend` fixture (conftest.py) is parametrized over memory, SQLite files and Elasticsearch (skipped
unless ``ELASTICSEARCH_URL`` is set), exactly as a third-party backend package would run the suite.
"""

from __future__ import annotations

from gateway.testing.contract import BackendContract


class TestBackendContract(BackendContract):
    """Runs every contract test against each backend of the `backend` fixture."""
