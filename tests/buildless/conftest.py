"""Fixtures of the Buildless tests: in-process apps serving only this plugin, with its credentials and IP salt."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildless.bl_helpers import bl_config

from gateway import create_app
from gateway.state import get_state


@pytest.fixture
def bl_app(tmp_path: Path) -> Any:
    """An in-process app (memory storage) serving the plugin with `BL_CREDENTIALS` and `SALT`."""
    return create_app(bl_config(tmp_path, storage={"url": "memory://"}))


@pytest.fixture
def bl_client(bl_app: Any) -> Any:
    """Flask's test client for `bl_app`."""
    return bl_app.test_client()


@pytest.fixture
def bl_backend(bl_app: Any) -> Any:
    """The storage backend of `bl_app`."""
    return get_state(bl_app).backend
