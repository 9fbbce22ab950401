"""The PostgreSQL backend seen from outside: `event-gateway check`, and a database outage over HTTP.

A real server (`tests/pg_server.py`) is stopped under a running in-process app: the Behavioral Analytics
API answers 503 in Elasticsearch's error format with ``Retry-After`` and stores nothing; once the
database is back the same app accepts events again, without a restart.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from pg_server import PgServer
from support import api_key, base_config, write_config

from gateway import create_app
from gateway.cli import main
from gateway.state import get_state

HEADERS = {"Authorization": f"ApiKey {api_key('admin')}", "Content-Type": "application/json"}
FAST_FAIL = {"retries": 1, "retry_wait_ms": 50, "pool_timeout_ms": 500, "connect_timeout_s": 1}
EVENT = {"session": {"id": "s1"}, "user": {"id": "u1"}, "page": {"url": "https://x/"}}


def test_check_reports_the_server_version(tmp_path: Path, postgres_url: str, postgres_server: PgServer) -> None:
    url = postgres_url.replace("postgres@", "postgres:pw-not-shown@")
    config = write_config(tmp_path / "g.toml", base_config(tmp_path, storage={"url": url, "options": FAST_FAIL}))
    import psycopg

    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    ok = CliRunner().invoke(main, ["check", "--config", str(config)], catch_exceptions=False)
    assert ok.exit_code == 0, ok.output
    assert f"storage postgresql {version} reachable" in ok.output
    postgres_server.stop()
    try:
        down = CliRunner().invoke(main, ["check", "--config", str(config)], catch_exceptions=False)
    finally:
        postgres_server.start()
    assert down.exit_code == 1 and "storage unreachable" in down.output
    assert "pw-not-shown" not in down.output


def test_outage_answers_503_with_retry_after_then_recovers(tmp_path: Path, postgres_url: str,
                                                           postgres_server: PgServer) -> None:
    app = create_app(base_config(tmp_path, storage={"url": postgres_url, "options": FAST_FAIL}))
    client = app.test_client()
    base = "/_application/analytics/shop"
    assert client.put(base, headers=HEADERS).status_code == 201
    assert client.post(f"{base}/event/page_view", json=EVENT, headers=HEADERS).status_code == 202
    postgres_server.stop()
    try:
        down: Any = client.post(f"{base}/event/page_view", json=EVENT, headers=HEADERS)
    finally:
        postgres_server.start()
    assert down.status_code == 503
    assert down.headers["Retry-After"].isdigit() and int(down.headers["Retry-After"]) >= 1
    body = down.get_json()
    assert body["status"] == 503 and body["error"]["type"] == "status_exception", body
    deadline = time.monotonic() + 20
    while True:
        again = client.post(f"{base}/event/page_view", json=EVENT, headers=HEADERS)
        if again.status_code == 202:
            break
        assert again.status_code == 503 and time.monotonic() < deadline, again.get_data(as_text=True)
        time.sleep(0.2)
    backend = get_state(app).backend
    assert len(list(backend.iter_events("acme", "elastic_analytics", streams=("shop",)))) == 2
    backend.close()
