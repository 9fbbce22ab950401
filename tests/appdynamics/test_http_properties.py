"""End to end through HTTP: random schemas created with POST /events/schema, random events published with POST
/events/publish, random queries from the whole generated grammar answered by POST /events/query — the answer is
what the reference evaluator (``adql_oracle``) computes from the events as the client sent them. This checks the
storage layout of the HTTP side against the engine's reading of it, and the JSON rendering, on each backend
(PostgreSQL: the session's real server).

Example counts are sized for the shared suite; ``ADQL_HTTP_EXAMPLES=500`` runs a big count by hand.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from appdynamics.adql_oracle import run as oracle
from appdynamics.adql_strategies import events, queries, schemas, to_adql
from appdynamics.appd_http_helpers import ACCOUNT, DOC, TEXT_V2, appd_config, headers
from appdynamics.engine_backends import same
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gateway import create_app
from gateway.state import get_state

EXAMPLES = int(os.environ.get("ADQL_HTTP_EXAMPLES", "30"))
_names = itertools.count()


@st.composite
def cases(draw: Any) -> tuple[str, dict[str, str], list[dict[str, Any]], str, int]:
    name = f"t{next(_names)}"
    schema = draw(schemas())
    text = to_adql(draw(queries(schema, schema_name=name)))
    assume("now(" not in text.lower())  # the server's clock is not the oracle's
    return name, schema, draw(events(schema)), text, draw(st.sampled_from([1, 7, 100]))


@pytest.mark.parametrize("storage", ["sqlite", "memory", "postgresql"])
def test_http_answers_equal_the_reference(storage: str, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    quotas = ("query_per_account", "query_per_key", "searches_per_event_type")
    generous = {name: "1000000 per minute" for name in quotas}
    config = appd_config(tmp_path, storage="memory" if storage == "postgresql" else storage,
                         quotas={"appdynamics": generous})
    if storage == "postgresql":
        config["storage"] = {"url": request.getfixturevalue("postgres_url")}
    app = create_app(config)
    client = app.test_client()
    backend = get_state(app).backend

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
    @given(cases())
    def check(case: tuple[str, dict[str, str], list[dict[str, Any]], str, int]) -> None:
        name, schema, evs, text, limit = case
        created = client.post(f"/events/schema/{name}", headers=DOC, data=json.dumps({"schema": schema}))
        assert created.status_code == 201, created.get_data(as_text=True)
        sent = [{k: v for k, v in e.items() if k != "pickupTimestamp"} for e in evs]
        published = client.post(f"/events/publish/{name}", headers=DOC, data=json.dumps(sent))
        assert published.status_code == 200, published.get_data(as_text=True)
        stored = list(backend.iter_events(ACCOUNT, "appdynamics", (name,)))
        assert len(stored) == len(evs)
        pickup = {e.received_at for e in stored}
        assert len(pickup) <= 1  # one pickup time per publish request
        expected_events = [{**e, "pickupTimestamp": next(iter(pickup))} for e in evs]
        response = client.post(f"/events/query?limit={limit}", headers=headers(content_type=TEXT_V2), data=text)
        now = int(time.time() * 1000)
        assert response.status_code == 200, (text, response.get_data(as_text=True))
        (got,) = json.loads(response.get_data(as_text=True))  # strict JSON: no NaN/Infinity
        expected = oracle(text, expected_events, schema, now, limit=limit)
        assert [(f["label"], f["field"], f.get("aggregation"), f["type"]) for f in got["fields"]] == \
            [tuple(f) for f in expected["fields"]], text
        assert same(got["results"], expected["results"]), (text, got["results"], expected["results"])
        assert (got["total"], got["moreData"], got["schema"]) == (expected["total"], expected["moreData"], name), text

    check()
