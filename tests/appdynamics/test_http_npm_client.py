"""The npm client ``appdynamics-analytics-events-api`` (0.1.0, pinned by tests/clients/appdynamics/package-lock.json
and installed by this test run with ``npm ci``) against a running gateway (gunicorn, 2 workers, SQLite):
retrieve-or-create a schema, publish, query, delete, and its error handling (it reads ``code``/``statusCode``
from error bodies and tells a missing schema by ``Missing.EventType``)."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from pathlib import Path

import pytest
from appdynamics.appd_http_helpers import ACCOUNT, KEY
from support import ROOT, RunningServer

CLIENT_DIR = ROOT / "tests" / "clients" / "appdynamics"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(shutil.which("node") is None or shutil.which("npm") is None,
                                 reason="node/npm are not installed (.ci/run installs them with apt)")]


STAMP = CLIENT_DIR / "node_modules" / ".event-gateway-lock.sha256"


@pytest.fixture(scope="session")
def npm_client() -> Path:
    """``npm ci`` of the committed package-lock.json (the exact client version, installed by the test run) when
    the lock file changed since the last install (a stamp in node_modules remembers it, as tests/clients does)."""
    digest = hashlib.sha256((CLIENT_DIR / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.is_file() or STAMP.read_text().strip() != digest:
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=CLIENT_DIR,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, f"npm ci failed:\n{done.stdout}\n{done.stderr}"
        STAMP.write_text(digest)
    installed = CLIENT_DIR / "node_modules" / "appdynamics-analytics-events-api" / "package.json"
    assert json.loads(installed.read_text())["version"] == "0.1.0"
    return CLIENT_DIR


def drive(client_dir: Path, server: RunningServer, name: str) -> dict:
    out = subprocess.run(["node", "drive.js", server.url, ACCOUNT, KEY, name], cwd=client_dir, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, (out.stderr, server.log()[-3000:])
    return json.loads(out.stdout)


def test_npm_client_workflow(npm_client: Path, appd_server: RunningServer) -> None:
    seen = drive(npm_client, appd_server, "npm_products")
    assert seen["before"] == {"code": "Missing.EventType", "statusCode": 404,
                              "message": f"Unable to find metadata for event type [npm_products] and account "
                                         f"[{ACCOUNT}]"}
    definition = {"account": "integer", "amount": "float", "product": "string"}
    assert seen["created"] == {"name": "npm_products", "definition": definition}
    assert seen["retrieved"] == definition
    assert seen["again"] == definition
    assert seen["published"] == 200 and seen["single"] == 200  # empty bodies: the client resolves the status
    assert seen["badPublish"]["statusCode"] == 400 and seen["badPublish"]["code"] == "Invalid.Event"
    assert "account" in seen["badPublish"]["message"]
    (rows,) = seen["rows"]
    assert [f["field"] for f in rows["fields"]] == ["account", "amount", "product", "eventTimestamp",
                                                    "pickupTimestamp"]
    assert sorted(row[:3] for row in rows["results"]) == [[13, 13.03, "test"], [14, 2.5, "other"], [15, 1.0, "third"]]
    assert rows["moreData"] is False and rows["total"] == 3 and rows["schema"] == "npm_products"
    (count,) = seen["count"]
    assert count["label"] == "n"
    assert count["results"] == [["other", 1], ["test", 1], ["third", 1]]
    assert seen["deleted"] == 200
    assert seen["after"] == {"code": "Missing.EventType", "statusCode": 404}
