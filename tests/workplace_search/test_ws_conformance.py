"""The vendor-API conformance kit (`gateway.testing.conformance`) run against the Workplace Search API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from workplace_search.ws_helpers import BEARER_A, NO_GRANT_TOKEN, PLUGIN, ws_config

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestWorkplaceSearchConformance(VendorApiConformance):
    api = PLUGIN
    granted = BEARER_A
    ungranted = {"Authorization": f"Bearer {NO_GRANT_TOKEN}"}
    unknown = {"Authorization": "Bearer not-a-known-token"}

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        sections.setdefault("storage", {"url": "memory://"})
        return create_app(ws_config(self.tmp_path, **sections))
