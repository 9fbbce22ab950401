"""schemathesis against ``/openapi.json`` of a real gateway (gunicorn, two workers) serving every installed API.

Each documented operation gets a bounded number of generated requests (valid and invalid ones); every answer
must be JSON, never a 5xx, and conform to the description (status, media type, headers, body schema).
``make fuzz`` runs the same test with many more examples (``EVENT_GATEWAY_FUZZ_EXAMPLES``).
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from ops.ops_helpers import auth_headers, every_api_config
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from support import RunningServer, start_server, write_config

from gateway import create_app

pytestmark = pytest.mark.slow
EXAMPLES = int(os.environ.get("EVENT_GATEWAY_FUZZ_EXAMPLES", "12"))


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A real server with every API enabled, for the whole module."""
    tmp_path = tmp_path_factory.mktemp("fuzz")
    server = start_server(write_config(tmp_path / "gateway.toml", every_api_config(tmp_path)), workers=2)
    yield server
    server.stop()


def _description() -> dict:
    """The description the server serves, built in-process from the same configuration (compared below)."""
    with tempfile.TemporaryDirectory() as tmp:
        app = create_app(every_api_config(Path(tmp), storage={"url": "memory://"}), quiet=True)
        return json.loads(app.test_client().get("/openapi.json").data)


DESCRIPTION = _description()
# (schemathesis.pytest.from_fixture would load it from the server, but fails on pytest 9: Function._nodeid)
schema = schemathesis.openapi.from_dict(DESCRIPTION)


def test_the_server_serves_the_description_fuzzed_here(fuzzed_server: RunningServer) -> None:
    """The in-process description used to generate the cases is the one the running server answers."""
    assert requests.get(f"{fuzzed_server.url}/openapi.json", timeout=10).json() == DESCRIPTION


def _json_answer(response: object) -> None:
    body = response.content  # type: ignore[attr-defined]
    if not body:
        return
    try:
        json.loads(body)
    except ValueError as exc:
        raise AssertionError(f"not a JSON answer ({response.headers.get('Content-Type')}): {body[:200]!r}") from exc  # type: ignore[attr-defined]


@schema.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
          database=None)
def test_every_operation_answers_json_within_its_description(case: schemathesis.Case,
                                                             fuzzed_server: RunningServer) -> None:
    """No 5xx, no non-JSON answer, no answer outside the description, for generated valid and invalid requests."""
    if case.path in ("/openapi.json",):
        return  # a large static document; validated in test_openapi.py
    ours = auth_headers()  # generated credentials would only ever meet 401s: ours replace them
    headers = {name: value for name, value in (case.headers or {}).items()
               if name.lower() not in {key.lower() for key in ours}}
    headers.update(ours)
    response = case.call(base_url=fuzzed_server.url, headers=headers, timeout=30)
    case.validate_response(response, checks=[not_a_server_error, status_code_conformance, content_type_conformance,
                                             response_headers_conformance, response_schema_conformance])
    _json_answer(response)


def test_the_server_logged_no_traceback(fuzzed_server: RunningServer, tmp_path: Path) -> None:
    """After the fuzzing above, the server's log holds no unhandled error."""
    log = fuzzed_server.log()
    assert "Traceback" not in log and "unhandled error" not in log, log[-4000:]


def test_every_api_operation_was_called(fuzzed_server: RunningServer) -> None:
    """The access log shows every documented API operation called, and refusals among the answers."""
    lines = [json.loads(line) for line in fuzzed_server.log().splitlines() if line.startswith('{"ts"')]
    statuses: dict[tuple[str, str], set[int]] = {}
    for line in lines:
        statuses.setdefault((line["method"], line["route"] or ""), set()).add(line["status"])
    for path, item in DESCRIPTION["paths"].items():
        for method, operation in item.items():
            if operation["tags"] == ["gateway"]:
                continue
            route = path.replace("{", "<").replace("}", ">")
            assert statuses.get((method.upper(), route)), (method, path)
    assert any(status >= 400 for found in statuses.values() for status in found)
    successes = [status for (_, route), found in statuses.items() if route.startswith("/api/") for status in found
                 if 200 <= status < 300]
    assert successes
