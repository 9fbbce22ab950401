"""Fixtures of the Fluid Topics tests: in-process apps serving only this plugin, on memory, SQLite, PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import ft_config

from gateway import create_app


@pytest.fixture
def ft_app(tmp_path: Path) -> Any:
    """An in-process app on memory storage serving the plugin with `FT_CREDENTIALS`."""
    return create_app(ft_config(tmp_path))


@pytest.fixture
def ft_client(ft_app: Any) -> Any:
    """Flask's test client for `ft_app`."""
    return ft_app.test_client()


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def any_app(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    """The same app on each storage backend (the behaviour must not depend on it); PostgreSQL is the
    session's real server (`tests/pg_server.py`)."""
    config = ft_config(tmp_path, storage="memory" if request.param == "postgresql" else request.param)
    if request.param == "postgresql":
        config["storage"] = {"url": request.getfixturevalue("postgres_url")}
    app = create_app(config)
    yield app
    from gateway.state import get_state

    get_state(app).backend.close()
