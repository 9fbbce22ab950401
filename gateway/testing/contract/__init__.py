"""The backend contract suite: every storage backend must pass it, so plugins get the same answers whatever
storage an operator configures.

It pins down the semantics documented in `gateway.query` and `gateway.storage`. Expected values are worked
out by hand (see the comments) or by small, deliberately naive reference functions written in the tests,
never taken from a backend's output. A backend package runs it with one import and one fixture::

    import pytest
    from gateway.testing.contract import BackendContract

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend(self, tmp_path):
            store = MyBackend(f"mine:///{tmp_path}/db")
            yield store          # fresh and empty for every test
            store.close()

The fixture may be parametrized to run the suite over several configurations (this repository's
``tests/backends/conftest.py`` runs it over memory, SQLite files and, when ``ELASTICSEARCH_URL`` is set,
Elasticsearch). The parts are importable on their own (`CatalogContract`, `ReadingContract`,
`AggregationContract`, `OperationsContract`, `QueryModelContract`) for a backend that implements a subset
while it grows.
"""

from __future__ import annotations

from .advanced import QueryModelContract
from .aggregations import AggregationContract
from .base import SAMPLE, ContractBase, P, T, ev, q
from .catalog import CatalogContract
from .operations import OperationsContract
from .reading import ReadingContract

__all__ = ["SAMPLE", "AggregationContract", "BackendContract", "CatalogContract", "ContractBase",
           "OperationsContract", "P", "QueryModelContract", "ReadingContract", "T", "ev", "q"]


class BackendContract(CatalogContract, ReadingContract, AggregationContract, OperationsContract, QueryModelContract):
    """Every contract test; subclass it as ``Test...`` and provide a `backend` fixture (fresh, empty)."""
