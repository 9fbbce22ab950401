"""Property tests: random schemas, events and queries from the whole generated grammar; `run_query` on every
backend (real SQLite files) gives what the reference evaluator gives.

Example counts are sized for the shared suite; ``ADQL_ENGINE_EXAMPLES=2000`` runs a big count by hand.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from appdynamics.adql_oracle import run as oracle
from appdynamics.adql_strategies import T0, events, queries, schemas, to_adql
from appdynamics.engine_backends import BACKENDS, close, same, store
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugins.appdynamics.adql.semantics import analyze_text
from plugins.appdynamics.engine import run_query

NOW = T0 + 5_000_000
EXAMPLES = int(os.environ.get("ADQL_ENGINE_EXAMPLES", "40"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def cases(draw):
    schema = draw(schemas())
    query = draw(queries(schema))
    evs = draw(events(schema))
    start = draw(st.none() | st.integers(0, 3_000).map(lambda s: T0 + s * 1_000))
    end = draw(st.none() | st.integers(0, 3_000).map(lambda s: T0 + s * 1_000))
    limit = draw(st.sampled_from([1, 7, 100]))
    return schema, to_adql(query), evs, start, end, limit


def _compare(backend, case) -> None:
    schema, text, evs, start, end, limit = case
    expected = oracle(text, evs, schema, NOW, start=start, end=end, limit=limit)
    stream = store(backend, schema, evs)
    got = run_query(backend, stream, analyze_text(text), start_ms=start, end_ms=end, limit=limit, now_ms=NOW)
    fields = [(f["label"], f["field"], f.get("aggregation"), f["type"]) for f in got.fields]
    assert fields == [tuple(f) for f in expected["fields"]], text
    assert same(got.results, expected["results"]), (text, got.results, expected["results"])
    assert (got.total, got.more_data) == (expected["total"], expected["moreData"]), text


@pytest.mark.parametrize("backend_name", list(BACKENDS))
def test_engine_equals_oracle_on_random_queries(backend_name: str, request: pytest.FixtureRequest,
                                                tmp_path: Path) -> None:
    """One backend per run (SQLite: a real file); each example replaces the schema's stream and its events."""
    backend = BACKENDS[backend_name](request, tmp_path)
    try:
        @SETTINGS
        @given(cases())
        def check(case) -> None:
            _compare(backend, case)

        check()
    finally:
        close(backend)
