"""Test helpers shared by the suite: credentials, configs written as TOML, real server processes."""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("event-gateway"))

#: Credentials used across the suite (secrets in clear so tests can present them).
CREDENTIALS = [
    {"id": "admin", "secret": "admin-secret-1", "tenant": "acme", "grants": ["elastic_analytics:*", "hello:*"]},
    {"id": "tracker", "secret": "tracker-secret-1", "tenant": "acme", "grants": ["elastic_analytics:post_event"]},
    {"id": "reader", "secret": "reader-secret-1", "tenant": "acme", "grants": ["elastic_analytics:manage:nothing"]},
    {"id": "other", "secret": "other-secret-1", "tenant": "globex", "grants": ["elastic_analytics:*"]},
]
SECRETS = {c["id"]: c["secret"] for c in CREDENTIALS}


def api_key(cred_id: str) -> str:
    """The ES ``ApiKey`` header value for a test credential."""
    return base64.b64encode(f"{cred_id}:{SECRETS[cred_id]}".encode()).decode()


def wait_until(condition: Any, timeout: float = 5.0, interval: float = 0.005) -> None:
    """Poll `condition()` until it is true; fail the test (not hang it) after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(interval)
    assert condition(), f"timed out after {timeout} s waiting for {getattr(condition, '__name__', condition)}"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def toml_value(value: Any) -> str:
    """Minimal TOML serialisation for test configs (strings, numbers, bools, lists, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def write_config(path: Path, config: dict[str, Any]) -> Path:
    """Write a config mapping as TOML: sections of scalars, nested tables and [[credentials]]."""
    lines: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        scalars = {k: v for k, v in body.items() if not isinstance(v, dict)}
        lines.append(f"[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in scalars.items())
        for key, sub in body.items():
            if isinstance(sub, dict):
                table(f"{name}.{key}", sub)

    for section, body in config.items():
        if section != "credentials":
            table(section, body)
    for cred in config.get("credentials", []):
        lines.append("[[credentials]]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in cred.items())
    path.write_text("\n".join(lines) + "\n")
    return path


def base_config(tmp_path: Path, **sections: dict[str, Any]) -> dict[str, Any]:
    """A test configuration: SQLite under tmp_path, generous quotas, the suite's credentials."""
    config: dict[str, Any] = {
        "storage": {"url": f"sqlite:///{tmp_path}/events.db"},
        "quotas": {"default": "100000 per minute"},
        "plugins": {"enabled": ["elastic_analytics"]},
        "credentials": CREDENTIALS,
    }
    for name, body in sections.items():
        config[name] = {**config.get(name, {}), **body} if isinstance(body, dict) else body
    return config


@dataclass
class RunningServer:
    """A real `event-gateway serve` process."""

    url: str
    process: subprocess.Popen[bytes]
    config_path: Path
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    def log(self) -> str:
        """What the server printed so far (for assertion messages)."""
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> list[int]:
        """PIDs of gunicorn workers (children of the master)."""
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.process.pid)], capture_output=True, text=True)
        return [int(pid) for pid in out.stdout.split()]

    def stop(self) -> None:
        """Stop gracefully, then hard."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_server(config_path: Path, *, workers: int = 2, threads: int = 4, env: dict[str, str] | None = None,
                 wait: float = 30.0) -> RunningServer:
    """Start `event-gateway serve` on a free port and wait until /_gateway/health answers."""
    port = free_port()
    log_path = config_path.with_suffix(f".{port}.log")
    process = subprocess.Popen(
        [CLI, "serve", "--config", str(config_path), "--port", str(port), "--workers", str(workers),
         "--threads", str(threads)],
        stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=str(config_path.parent),
        env={**os.environ, **(env or {})},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            if requests.get(f"{url}/_gateway/health", timeout=5).status_code in (200, 503):
                return RunningServer(url, process, config_path, log_path)
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a busy machine
            time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not come up in {wait}s:\n{log_path.read_text()}")


