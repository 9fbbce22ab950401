"""Shared fixtures: apps built in-process, and real servers (gunicorn, redis-server) on free ports.

Server fixtures start the real `event-gateway serve` command as a user would, with a TOML file written
for the test, and stop it afterwards. Nothing here mocks a component that can run on this machine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_server import postgres_server, postgres_url  # noqa: F401 - fixtures shared by the suite
from support import ROOT, RunningServer, base_config, free_port, start_server, write_config

# The example plugin is installed for the tests only (`make test` puts it in build/test-plugins, never in the
# .venv that `make run` serves); servers and commands the tests start see it too.
_TEST_PLUGINS = str(ROOT / "build" / "test-plugins")
if _TEST_PLUGINS not in os.environ.get("PYTHONPATH", "").split(os.pathsep):
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [_TEST_PLUGINS, os.environ.get("PYTHONPATH")]))


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--storage=postgresql`` runs every app and server the suite builds from a config on PostgreSQL."""
    parser.addoption("--storage", choices=("default", "postgresql"), default="default",
                     help="postgresql: point storage.url of every configured app/server at a fresh database on "
                          "the session's real PostgreSQL server (EVENT_GATEWAY_STORAGE__URL), e.g. to run the "
                          "plugin HTTP tests against it; tests about another backend's files then fail by design")


@pytest.fixture(autouse=True)
def _storage_override(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """With ``--storage=postgresql``: the environment override every config (and server) reads."""
    if request.config.getoption("--storage") == "postgresql":
        monkeypatch.setenv("EVENT_GATEWAY_STORAGE__URL", request.getfixturevalue("postgres_url"))


@pytest.fixture
def make_app(tmp_path: Path) -> Callable[..., Any]:
    """Build an in-process app from `base_config` plus overrides (storage defaults to memory://)."""
    from gateway import create_app

    def build(**sections: dict[str, Any]) -> Any:
        sections.setdefault("storage", {"url": "memory://"})
        return create_app(base_config(tmp_path, **sections))

    return build


@pytest.fixture
def app(make_app: Callable[..., Any]) -> Any:
    """An app on memory storage with every built-in API enabled."""
    return make_app()


@pytest.fixture
def client(app: Any) -> Any:
    """Flask's test client for `app`."""
    return app.test_client()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., RunningServer]]:
    """Start real servers from config mappings; all are stopped at the end of the test."""
    started: list[RunningServer] = []

    def run(config: dict[str, Any] | None = None, **kwargs: Any) -> RunningServer:
        path = write_config(tmp_path / f"gateway-{len(started)}.toml", config or base_config(tmp_path))
        server = start_server(path, **kwargs)
        started.append(server)
        return server

    yield run
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real redis-server on a free port (skipped when redis-server is not installed; CI installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed (.ci/run installs it with apt)")
    port = free_port()
    workdir = tmp_path_factory.mktemp("redis")
    process = subprocess.Popen([binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                                "--appendonly", "no", "--dir", str(workdir)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                process.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    process.terminate()
    process.wait(10)
