"""Fixtures of the Workplace Search tests: in-process apps serving only this plugin, with its credentials."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from workplace_search.ws_helpers import PLUGIN, WS_CREDENTIALS


@pytest.fixture
def ws_app(make_app: Callable[..., Any]) -> Any:
    """An in-process app (memory storage) serving the plugin with `WS_CREDENTIALS`."""
    return make_app(plugins={"enabled": [PLUGIN]}, credentials=WS_CREDENTIALS)


@pytest.fixture
def ws_client(ws_app: Any) -> Any:
    """Flask's test client for `ws_app`."""
    return ws_app.test_client()
