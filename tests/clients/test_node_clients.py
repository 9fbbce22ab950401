"""The official Node `@elastic/elasticsearch` client, 8.x and 9.x, against a real gateway (2 workers).

Each runs tests/clients/node/es_client.mjs: ``info()``/``ping()`` (Elasticsearch's root), the seed document's
``transport.request`` example verbatim, ``searchApplication.postBehavioralAnalyticsEvent`` with ``debug``, and
two errors it must read (404 for a missing collection, 401 for an ``ApiKey`` without an id). What was stored is
read back with `event-gateway export`; expected values come from the seed document and the vendor notes.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from clients.clients_kit import NODE_DIR, encoded_api_key, export
from support import RunningServer

#: The seed document's search_click body (the transport.request example).
SEED_SEARCH_CLICK = {
    "session": {"id": "1797ca95-91c9-4e2e-b1bd-9c38e6f386a9"},
    "user": {"id": "5f26f01a-bbee-4202-9298-81261067abbd"},
    "search": {"query": "search term",
               "results": {"items": [{"document": {"id": "123", "index": "products"}}], "total_results": 10},
               "sort": {"name": "relevance"}, "search_application": "website"},
    "document": {"id": "123", "index": "products"},
}


@pytest.mark.parametrize("package, major, tenant", [("es8", "8", "node8"), ("es9", "9", "node9")])
def test_node_client(node_modules: Path, client_gateway: RunningServer, package: str, major: str,
                     tenant: str) -> None:
    done = subprocess.run(["node", "es_client.mjs", package, client_gateway.url, encoded_api_key(f"node-{package}")],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    out: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    assert "error" not in out, out
    assert out["client"].split(".")[0] == major

    info = out["info"]
    assert info["statusCode"] == 200 and info["product"] == "Elasticsearch"
    assert info["body"]["tagline"] == "You Know, for Search"
    assert info["body"]["version"]["number"].startswith("9.")
    assert info["body"]["version"]["build_flavor"] == "default"
    assert out["ping"] is True

    assert out["transport"] == {"accepted": True}
    posted = out["posted"]
    assert posted["statusCode"] == 202
    assert posted["contentType"] == f"application/vnd.elasticsearch+json;compatible-with={major}"
    assert posted["body"]["accepted"] is True
    document = posted["body"]["event"]
    assert document["event"] == {"action": "page_view"}
    assert document["user"] == {"id": f"node-user-{package}"}
    assert document["data_stream"] == {"type": "behavioral_analytics", "dataset": "events",
                                       "namespace": "my_analytics_collection"}
    assert document["session"]["user_agent"].startswith("elasticsearch-js/")

    assert out["missing"]["name"] == "ResponseError" and out["missing"]["statusCode"] == 404
    assert out["missing"]["body"]["error"]["type"] == "resource_not_found_exception"
    assert out["missing"]["body"]["error"]["reason"] == "no such analytics collection [ghost]"
    assert out["idless"]["statusCode"] == 401
    assert out["idless"]["body"]["error"]["caused_by"]["reason"] == "invalid ApiKey value"

    stored = {event["type"]: event for event in export(client_gateway, tenant)}
    assert sorted(stored) == ["page_view", "search_click"]
    click = stored["search_click"]
    assert click["stream"] == "my_analytics_collection"
    assert (click["user_id"], click["session_id"]) == ("5f26f01a-bbee-4202-9298-81261067abbd",
                                                       "1797ca95-91c9-4e2e-b1bd-9c38e6f386a9")
    for key, value in SEED_SEARCH_CLICK.items():
        if key != "session":
            assert click["data"][key] == value, key
    assert click["data"]["session"]["id"] == SEED_SEARCH_CLICK["session"]["id"]
    assert stored["page_view"]["data"] == document  # what ?debug=true showed is what was stored
