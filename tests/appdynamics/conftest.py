"""Fixtures of the AppDynamics HTTP tests: in-process apps serving only this plugin (memory and SQLite), and a
real `event-gateway serve` (gunicorn, 2 workers, SQLite) for the curl workflow and the npm client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from appdynamics.appd_http_helpers import appd_config
from support import RunningServer, start_server, write_config

from gateway import create_app
from gateway.state import get_state


@pytest.fixture(params=["sqlite", "memory", "postgresql"])
def appd_app(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """An in-process app serving the plugin, on each storage backend (behaviour must not depend on it);
    PostgreSQL is the session's real server (`tests/pg_server.py`)."""
    config = appd_config(tmp_path, storage="memory" if request.param == "postgresql" else request.param)
    if request.param == "postgresql":
        config["storage"] = {"url": request.getfixturevalue("postgres_url")}
    app = create_app(config)
    yield app
    get_state(app).backend.close()


@pytest.fixture
def appd_client(appd_app: Any) -> Any:
    """Flask's test client for `appd_app`."""
    return appd_app.test_client()


@pytest.fixture(scope="module")
def appd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """`event-gateway serve` with 2 gunicorn workers on a SQLite file, serving only this plugin."""
    tmp = tmp_path_factory.mktemp("appd-server")
    config = write_config(tmp / "gateway.toml", appd_config(tmp))
    server = start_server(config, workers=2, threads=4)
    yield server
    server.stop()
