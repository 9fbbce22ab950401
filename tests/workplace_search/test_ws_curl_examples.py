"""The four request examples of the vendor's reference, run verbatim with the real `curl` against `event-gateway serve`.

The commands below are copied character for character from the Workplace Search "Analytics event API
reference" (two click examples, two feedback examples); only ``<ENTERPRISE_SEARCH_BASE_URL>`` is
replaced by the running server's URL. The two bearer tokens they carry are configured as credentials of
two tenants. curl's status line is collected through a ``.curlrc`` (``CURL_HOME``), so the command
lines stay untouched. The stored events are then read back through the backend query.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from support import write_config
from workplace_search.ws_helpers import DOC_TOKEN_A, DOC_TOKEN_B, JSON_UTF8, PLUGIN, STREAM, stored, ws_config

from gateway import create_app
from gateway.events import now_ms
from gateway.state import get_state

pytestmark = pytest.mark.slow

PLACEHOLDER = "<ENTERPRISE_SEARCH_BASE_URL>"

CLICK_EXAMPLE_1 = """curl \\
--request 'POST' \\
--url '<ENTERPRISE_SEARCH_BASE_URL>/api/ws/v1/analytics/event' \\
--header 'Authorization: Bearer 7ea05c8bd50ab5c75d2b71adbcb9ae71c4034d7a4f8d6c16a8940510a951cec7' \\
--header 'Content-Type: application/json' \\
--data '{
    "type": "click",
    "query_id": "2992570ab570b581ac6c457bddf68835",
    "page": 1,
    "content_source_id": "5f91bf7888f9297b02a3d80c",
    "document_id": "product-123",
    "rank": 0,
    "event": "app"
}'"""

CLICK_EXAMPLE_2 = """curl \\
--request 'POST' \\
--url '<ENTERPRISE_SEARCH_BASE_URL>/api/ws/v1/analytics/event' \\
--header 'Authorization: Bearer 64c51eee12c1f7a3be8ab0ecf9a2184106c1641e49736119414da0c0e85f3611' \\
--header 'Content-Type: application/json' \\
--data '{
    "type": "click",
    "query_id": "4553570bc681c681ac6c457beed79946",
    "page": 1,
    "content_source_id": "6e82ce8999e8388c13b4e91d",
    "document_id": "product-456",
    "rank": 5,
    "event": "ui"
}'"""

FEEDBACK_EXAMPLE_1 = """curl \\
--request 'POST' \\
--url '<ENTERPRISE_SEARCH_BASE_URL>/api/ws/v1/analytics/event' \\
--header 'Authorization: Bearer 7ea05c8bd50ab5c75d2b71adbcb9ae71c4034d7a4f8d6c16a8940510a951cec7' \\
--header 'Content-Type: application/json' \\
--data '{
    "type": "feedback",
    "query_id": "2992570ab570b581ac6c457bddf68835",
    "page": 1,
    "content_source_id": "5f91bf7888f9297b02a3d80c",
    "document_id": "product-123",
    "rank": 0,
    "score": 1
}'"""

FEEDBACK_EXAMPLE_2 = """curl \\
--request 'POST' \\
--url '<ENTERPRISE_SEARCH_BASE_URL>/api/ws/v1/analytics/event' \\
--header 'Authorization: Bearer 64c51eee12c1f7a3be8ab0ecf9a2184106c1641e49736119414da0c0e85f3611' \\
--header 'Content-Type: application/json' \\
--data '{
    "type": "feedback",
    "query_id": "4553570bc681c681ac6c457beed79946",
    "page": 1,
    "content_source_id": "6e82ce8999e8388c13b4e91d",
    "document_id": "product-456",
    "rank": 5,
    "score": -1
}'"""

EXAMPLES = [CLICK_EXAMPLE_1, CLICK_EXAMPLE_2, FEEDBACK_EXAMPLE_1, FEEDBACK_EXAMPLE_2]

#: What each example stores, written from the reference (tenant by the token it carries).
EXPECTED = {
    "acme": [
        ("click", {"type": "click", "query_id": "2992570ab570b581ac6c457bddf68835", "page": 1,
                   "content_source_id": "5f91bf7888f9297b02a3d80c", "document_id": "product-123", "rank": 0,
                   "event": "app"}),
        ("feedback", {"type": "feedback", "query_id": "2992570ab570b581ac6c457bddf68835", "page": 1,
                      "content_source_id": "5f91bf7888f9297b02a3d80c", "document_id": "product-123", "rank": 0,
                      "score": 1}),
    ],
    "globex": [
        ("click", {"type": "click", "query_id": "4553570bc681c681ac6c457beed79946", "page": 1,
                   "content_source_id": "6e82ce8999e8388c13b4e91d", "document_id": "product-456", "rank": 5,
                   "event": "ui"}),
        ("feedback", {"type": "feedback", "query_id": "4553570bc681c681ac6c457beed79946", "page": 1,
                      "content_source_id": "6e82ce8999e8388c13b4e91d", "document_id": "product-456", "rank": 5,
                      "score": -1}),
    ],
}


def _run_curl(command: str, base_url: str, curl_home: Path) -> tuple[str, str, str]:
    """Run one documented command in a shell; returns (body, status, content type)."""
    out = subprocess.run(["bash", "-c", command.replace(PLACEHOLDER, base_url)], capture_output=True, text=True,
                         timeout=30, env={"CURL_HOME": str(curl_home), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    body, status, content_type = out.stdout.rsplit("\n", 2)
    return body, status, content_type


def test_the_examples_are_the_documented_ones() -> None:
    assert len(EXAMPLES) == 4
    for example in EXAMPLES:
        assert example.count(PLACEHOLDER) == 1
        assert "Bearer " + DOC_TOKEN_A in example or "Bearer " + DOC_TOKEN_B in example


def test_documented_curl_examples_verbatim(tmp_path: Path, serve: Any) -> None:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed")
    config = ws_config(tmp_path)
    server = serve(config)
    curl_home = tmp_path / "curl-home"
    curl_home.mkdir()
    (curl_home / ".curlrc").write_text('silent\nshow-error\nwrite-out = "\\n%{http_code}\\n%{content_type}"\n')

    before = now_ms()
    results = [_run_curl(example, server.url, curl_home) for example in EXAMPLES]
    after = now_ms()
    assert results == [("{}", "200", JSON_UTF8)] * 4, server.log()

    backend = get_state(create_app(write_config(tmp_path / "reader.toml", config))).backend
    for tenant, expected in EXPECTED.items():
        events = stored(backend, tenant)
        assert [(e.type, e.data) for e in events] == expected
        for event in events:
            assert (event.plugin, event.stream, event.tenant) == (PLUGIN, STREAM, tenant)
            assert before <= event.timestamp <= after
            assert event.received_at == event.timestamp
    assert stored(backend, "initech") == []
