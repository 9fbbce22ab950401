"""What an operator meets with ``serve`` and the CLI: the access log, warnings once, a taken port, the default
config from anywhere, ``export`` on an empty tenant and on a terminal."""

from __future__ import annotations

import json
import os
import pty
import select
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
from ops.ops_helpers import SECRET, every_api_config
from support import CLI, ROOT, write_config

from gateway import create_app
from gateway.config import ConfigError

WS = "/api/ws/v1/analytics/event"
WS_EVENT = {"type": "click", "query_id": "q", "page": 1, "content_source_id": "c", "document_id": "d", "rank": 0,
            "event": "e"}


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


@pytest.mark.slow
def test_serve_logs_one_json_line_per_request_without_secrets_or_addresses(serve: Any, tmp_path: Path) -> None:
    config = every_api_config(tmp_path)
    config["plugins"].pop("buildless")  # no ip_salt: the server warns about it, once
    server = serve(config, workers=2)
    headers = {"Authorization": f"Bearer {SECRET}", "X-Forwarded-For": "203.0.113.9"}
    assert requests.post(f"{server.url}{WS}", json=WS_EVENT, headers=headers, timeout=10).status_code == 200
    emitted = requests.post(f"{server.url}/v1/telemetry/event:emit?collection=builds", headers=headers, timeout=10,
                            json={"event": {"id": "a" * 16}})
    assert emitted.status_code == 400
    assert requests.post(f"{server.url}{WS}", json=WS_EVENT, timeout=10).status_code == 401
    assert requests.get(f"{server.url}/nowhere/x?token=abc", timeout=10).status_code == 404
    server.stop()
    log = server.log()
    lines = _json_lines(log)
    by_route = {(line["route"], line["status"]): line for line in lines}
    ok = by_route[(WS, 200)]
    assert ok["api"] == "workplace_search" and ok["method"] == "POST"
    assert ok["tenant"] == "ops" and ok["credential"] == "ops" and ok["duration_ms"] > 0
    assert set(ok) == {"ts", "api", "route", "method", "status", "duration_ms", "tenant", "credential"}
    assert by_route[("/v1/telemetry/event:emit", 400)]["api"] == "buildless"
    assert by_route[(WS, 401)]["credential"] is None
    assert by_route[(None, 404)]["api"] is None
    assert SECRET not in log and "203.0.113.9" not in log and "127.0.0.1\"" not in log and "token=abc" not in log
    assert log.count("ip_salt is not set") == 1, log  # two workers and a master: one warning
    assert log.count("listening on") == 1


@pytest.mark.slow
def test_the_access_log_can_be_turned_off(serve: Any, tmp_path: Path) -> None:
    server = serve(every_api_config(tmp_path, server={"access_log": False}), workers=1)
    assert requests.post(f"{server.url}{WS}", json=WS_EVENT, timeout=10,
                         headers={"Authorization": f"Bearer {SECRET}"}).status_code == 200
    server.stop()
    assert _json_lines(server.log()) == []


def test_access_log_setting_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"server\.access_log"):
        create_app(every_api_config(tmp_path, storage={"url": "memory://"}, server={"access_log": "sometimes"}))


def _cli(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_GATEWAY_")}
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=60, cwd=cwd,
                          env={**environ, **(env or {})})


def test_cli_commands_other_than_serve_and_check_print_no_startup_warnings(tmp_path: Path) -> None:
    config = every_api_config(tmp_path)
    config["plugins"].pop("buildless")
    path = write_config(tmp_path / "g.toml", config)
    for args in (["plugins"], ["export", "--tenant", "ops"], ["openapi"]):
        result = _cli(*args, "--config", str(path))
        assert result.returncode == 0, result.stderr
        assert "ip_salt" not in result.stderr, args
    check = _cli("check", "--config", str(path))
    assert check.returncode == 0 and check.stdout.startswith("ok:")
    assert check.stderr.count("ip_salt is not set") == 1  # check is the validation command: it says so, once


def test_serve_on_a_taken_port_says_so_in_one_line(tmp_path: Path) -> None:
    path = write_config(tmp_path / "g.toml", every_api_config(tmp_path))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _cli("serve", "--config", str(path), "--port", str(port), "--workers", "1")
    assert result.returncode == 1
    assert result.stdout == ""  # no "listening on" banner
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"port {port}" in lines[0] and "already in use" in lines[0]
    assert "--port" in lines[0] and "EVENT_GATEWAY_SERVER__PORT" in lines[0]


def test_the_default_config_is_found_from_any_directory(tmp_path: Path) -> None:
    elsewhere = tmp_path / "somewhere" / "else"
    elsewhere.mkdir(parents=True)
    result = _cli("plugins", "--json", cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert {"elastic_analytics", "workplace_search"} <= {p["name"] for p in json.loads(result.stdout)}
    check = _cli("check", cwd=elsewhere)
    assert check.returncode == 0 and str(ROOT / "config" / "gateway.toml") in check.stdout


def _seed(tmp_path: Path, count: int) -> Path:
    config = every_api_config(tmp_path)
    app = create_app(config)
    client = app.test_client()
    events = [{"offline": False, "appName": "a", "appVersion": "1", "name": f"n{i}"} for i in range(1000)]
    for start in range(0, count, 1000):
        answer = client.post("/api/analytics/events", headers={"Authorization": f"Bearer {SECRET}"},
                             json=events[: min(1000, count - start)])
        assert answer.status_code == 200
    from gateway.state import get_state

    get_state(app).backend.close()
    return write_config(tmp_path / "g.toml", config)


def test_export_of_nothing_says_so_on_stderr(tmp_path: Path) -> None:
    path = _seed(tmp_path, 3)
    empty = _cli("export", "--config", str(path), "--tenant", "ops", "--plugin", "workplace_search")
    assert empty.returncode == 0 and empty.stdout == ""
    assert empty.stderr == "event-gateway: no events for tenant [ops] in plugin [workplace_search]\n"
    full = _cli("export", "--config", str(path), "--tenant", "ops")
    assert len(full.stdout.splitlines()) == 3 and full.stderr == ""  # not a terminal: no progress line


def test_export_shows_progress_on_a_terminal(tmp_path: Path) -> None:
    """With stderr on a terminal (a real pty), a long export counts what it wrote; stdout stays pure NDJSON."""
    path = _seed(tmp_path, 3000)
    primary, secondary = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("EVENT_GATEWAY_")}
    out = tmp_path / "out.ndjson"
    with out.open("w") as stdout:
        process = subprocess.Popen([CLI, "export", "--config", str(path), "--tenant", "ops"], stdout=stdout,
                                   stderr=secondary, env=environ)
        os.close(secondary)
        shown = b""
        while True:
            ready, _, _ = select.select([primary], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(primary, 4096)
            except OSError:  # the pty closes when the process exits
                break
            if not chunk:
                break
            shown += chunk
        assert process.wait(60) == 0
    os.close(primary)
    assert len(out.read_text().splitlines()) == 3000
    assert shown.rstrip().endswith(b"exported 3000 events")
    assert b"exported 256 events" in shown  # a progress line before the final count
