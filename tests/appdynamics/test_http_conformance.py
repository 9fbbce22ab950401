"""The vendor-API conformance kit (`gateway.testing.conformance`) run against the AppDynamics Events API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from appdynamics.appd_http_helpers import DOC, NO_GRANT_KEY, PLUGIN, appd_config, headers

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestAppDynamicsConformance(VendorApiConformance):
    api = PLUGIN
    granted = DOC
    ungranted = headers(key=NO_GRANT_KEY)
    unknown = headers(key="not-a-known-key")

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        return create_app(appd_config(self.tmp_path, **sections))
