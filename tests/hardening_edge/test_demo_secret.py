"""Issue 10 item 8: the published demo secret must not be served beyond this machine.

Before: serving on a non-loopback address with the credential of config/gateway.toml (its secret is printed
in that file and the README) logged a warning and served anyway, so anybody could post and read events.
Now `serve` (and `check`) stop with exit code 2 naming the credential and the way out; loopback still serves.
Real `event-gateway` processes, as a user runs them.
"""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest
from support import CLI, CREDENTIALS, ROOT, free_port, start_server, write_config

DEMO = ROOT / "config" / "gateway.toml"


def _config(tmp_path: Path, host: str | None) -> Path:
    server = {"host": host} if host else {}
    return write_config(tmp_path / "gateway.toml", {
        "server": server, "storage": {"url": f"sqlite:///{tmp_path}/events.db"},
        "plugins": {"enabled": ["elastic_analytics"]},
        "credentials": [{"id": "web-tracker", "tenant": "local", "grants": ["elastic_analytics:*"],
                         "secret_sha256": "038f2c9cdb7cbe51ce3ba00820de32e513d8e253872b8a8560be967539fa2696"}],
    })


def _nothing_listens(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.mark.parametrize("how", ["config", "flag", "env"])
def test_serving_off_loopback_with_demo_secret_refuses_to_start(tmp_path: Path, how: str) -> None:
    port = free_port()
    config = _config(tmp_path, "0.0.0.0" if how == "config" else None)
    args = [CLI, "serve", "--config", str(config), "--port", str(port), "--workers", "1"]
    env = None
    if how == "flag":
        args += ["--host", "0.0.0.0"]
    if how == "env":
        import os
        env = {**os.environ, "EVENT_GATEWAY_SERVER__HOST": "0.0.0.0"}
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=30, cwd=tmp_path, env=env)
    except subprocess.TimeoutExpired:
        pytest.fail("serve started (and kept running) with the published demo secret on 0.0.0.0")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "web-tracker" in done.stderr and "demo secret" in done.stderr
    assert "keys new" in done.stderr
    assert "listening" not in done.stdout
    assert _nothing_listens(port)


def test_check_refuses_the_demo_secret_off_loopback(tmp_path: Path) -> None:
    done = subprocess.run([CLI, "check", "--config", str(_config(tmp_path, "192.0.2.10"))],
                          capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert done.returncode == 2
    assert "demo secret" in done.stderr


@pytest.mark.parametrize("host, refused", [("127.0.0.1", False), ("localhost", False), ("LocalHost", False),
                                           ("127.0.0.2", False), ("::1", False), ("[::1]", False),
                                           ("0.0.0.0", True), ("::", True), ("192.0.2.10", True),
                                           ("gateway.example", True)])
def test_which_hosts_are_loopback(host: str, refused: bool) -> None:
    """Every loopback spelling is local (in-process; the real `serve` runs below and above)."""
    from gateway.config import DEMO_SECRET_SHA256, ConfigError, validate_config

    raw = {"server": {"host": host}, "credentials": [{"id": "demo", "tenant": "t", "grants": ["x:y"],
                                                      "secret_sha256": DEMO_SECRET_SHA256}]}
    if refused:
        with pytest.raises(ConfigError, match=r"credential \[demo\] uses the published demo secret"):
            validate_config(raw, environ={})
    else:
        assert validate_config(raw, environ={}).credentials[0].id == "demo"


def test_demo_config_still_serves_on_loopback(tmp_path: Path) -> None:
    text = DEMO.read_text().replace('sqlite:///var/events.db', f'sqlite:///{tmp_path}/events.db')
    config = tmp_path / "demo.toml"
    config.write_text(text)
    server = start_server(config, workers=1, threads=2)
    try:
        assert server.process.poll() is None
    finally:
        server.stop()


def test_other_credentials_may_serve_off_loopback(tmp_path: Path) -> None:
    """Only the published secret is refused: the suite's own credentials pass `check` on 0.0.0.0."""
    config = write_config(tmp_path / "ok.toml", {
        "server": {"host": "0.0.0.0"}, "storage": {"url": f"sqlite:///{tmp_path}/events.db"},
        "plugins": {"enabled": ["elastic_analytics"]}, "credentials": CREDENTIALS})
    done = subprocess.run([CLI, "check", "--config", str(config)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
