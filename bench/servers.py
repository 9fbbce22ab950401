"""The two servers under test, started as real processes with identical gunicorn settings.

Exists so the benchmark measures what an operator runs: the gateway through ``event-gateway serve``
(its own config validation, plugin loading and `gateway.server.gunicorn_options`) and the bare app through
`bench.bare_app`, which builds its options with that same function. Both bind 127.0.0.1 on a free port
and get the same ``--workers``/``--threads``; only the application differs.
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import BenchError
from .bare_app import PATH

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("event-gateway"))
HOST = "127.0.0.1"
TENANT = "bench"
COLLECTION = "bench"
KEY_ID = "bench"
SECRET = "bench-secret-not-for-production"
AUTHORIZATION = "ApiKey " + base64.b64encode(f"{KEY_ID}:{SECRET}".encode()).decode()
#: Quotas far above anything a benchmark reaches, so flask-limiter counts but never answers 429.
QUOTA_DEFAULT = "100000000 per minute"
QUOTA_POST_EVENT = "100000000 per second"


def child_pids(pid: int) -> list[int]:
    """The children of a process, from /proc (a gunicorn master's workers, a postmaster's backends)."""
    pids: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        with suppress(OSError):
            pids += [int(p) for p in task.read_text().split()]
    return sorted(pids)


def process_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 once it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return 0.0


@dataclass
class Server:
    """A gunicorn master we started; `stop` ends it (SIGTERM, then SIGKILL) by its pid."""

    name: str
    port: int
    workers: int
    threads: int
    process: subprocess.Popen[bytes]
    log_path: Path
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def worker_pids(self) -> list[int]:
        """The gunicorn workers (children of the master), from /proc."""
        return child_pids(self.process.pid)

    def cpu_seconds(self) -> dict[int, float]:
        """User + system CPU seconds used so far by each worker."""
        return {pid: process_cpu_seconds(pid) for pid in self.worker_pids()}

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise BenchError(f"{self.name} server exited with {self.process.returncode}:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def request(port: int, method: str, path: str, body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    """One HTTP request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _wait_ready(server: Server, method: str, path: str, body: bytes | None, headers: dict[str, str],
                wait: float = 30.0) -> None:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        server.check_alive()
        try:
            status, _ = request(server.port, method, path, body, headers, timeout=2)
        except OSError:
            time.sleep(0.1)
            continue
        if 200 <= status < 300:
            return
        raise BenchError(f"{server.name} answered {status} to {method} {path} while starting:\n{server.log_tail()}")
    server.stop()
    raise BenchError(f"{server.name} did not come up in {wait:.0f}s:\n{server.log_tail()}")


def _toml(value: Any) -> str:
    return json.dumps(value)  # strings and lists of strings here: JSON's syntax is valid TOML


#: The API a benchmark drives -> its quota on the ingest route.
INGEST_QUOTAS = {"elastic_analytics": "post_event", "fluid_topics": "ingest"}


def write_gateway_config(workdir: Path, storage_url: str, *, workers: int, threads: int,
                         plugin: str = "elastic_analytics") -> Path:
    """The gateway's TOML: one credential granted ``<plugin>:*``, quotas that never trigger."""
    path = workdir / "gateway.toml"
    path.write_text("\n".join([
        "[server]",
        f"host = {_toml(HOST)}",
        f"workers = {workers}",
        f"threads = {threads}",
        "[storage]",
        f"url = {_toml(storage_url)}",
        "[quotas]",
        'storage_url = "memory://"',
        f"default = {_toml(QUOTA_DEFAULT)}",
        f"[quotas.{plugin}]",
        f"{INGEST_QUOTAS[plugin]} = {_toml(QUOTA_POST_EVENT)}",
        "[plugins]",
        f"enabled = {_toml([plugin])}",
        "[[credentials]]",
        f"id = {_toml(KEY_ID)}",
        f"secret_sha256 = {_toml(hashlib.sha256(SECRET.encode()).hexdigest())}",
        f"tenant = {_toml(TENANT)}",
        f"grants = {_toml([plugin + ':*'])}",
        "",
    ]))
    return path


def _spawn(name: str, argv: list[str], workdir: Path, port: int, workers: int, threads: int,
           cwd: Path | None = None) -> Server:
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=str(cwd or workdir))
    return Server(name, port, workers, threads, process, log_path)


def start_gateway(workdir: Path, storage_url: str, *, workers: int, threads: int,
                  plugin: str = "elastic_analytics") -> Server:
    """``event-gateway serve`` on a free port, ready (for ES, with the benchmark collection created by PUT)."""
    config = write_gateway_config(workdir, storage_url, workers=workers, threads=threads, plugin=plugin)
    port = free_port()
    server = _spawn("gateway", [CLI, "serve", "--config", str(config), "--host", HOST, "--port", str(port),
                                "--workers", str(workers), "--threads", str(threads)], workdir, port, workers, threads)
    try:
        _wait_ready(server, "GET", "/_gateway/health", None, {})
        if plugin == "elastic_analytics":
            create_collection(server)
    except BaseException:
        server.stop()
        raise
    server.extra["config"] = str(config)
    return server


def create_collection(server: Server) -> None:
    """PUT the benchmark's Behavioral Analytics collection on a started gateway (201 expected)."""
    status, body = request(server.port, "PUT", f"/_application/analytics/{COLLECTION}", None,
                           {"Authorization": AUTHORIZATION})
    if status != 201:
        raise BenchError(f"{server.name}: PUT collection answered {status}: {body[:300]!r}\n{server.log_tail()}")


def start_bare(workdir: Path, body: bytes, *, workers: int, threads: int, durable: bool = False) -> Server:
    """`bench.bare_app` on a free port, ready (`durable`: storing each body in ``<workdir>/floor.db``)."""
    port = free_port()
    extra = ["--durable-sqlite", str(workdir / "floor.db")] if durable else []
    server = _spawn("floor" if durable else "bare",
                    [sys.executable, "-m", "bench.bare_app", "--host", HOST, "--port", str(port),
                     "--workers", str(workers), "--threads", str(threads), *extra], workdir, port, workers, threads,
                    cwd=REPO)  # `bench` is not an installed package: run from the repository root
    try:
        _wait_ready(server, "POST", PATH, body, {"Content-Type": "application/json"})
    except BaseException:
        server.stop()
        raise
    return server
