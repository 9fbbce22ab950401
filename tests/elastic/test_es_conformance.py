"""The vendor-API conformance kit (`gateway.testing.conformance`) run against the Behavioral Analytics API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import api_key, base_config

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestElasticAnalyticsConformance(VendorApiConformance):
    api = "elastic_analytics"
    granted = {"Authorization": f"ApiKey {api_key('admin')}"}
    ungranted = {"Authorization": f"ApiKey {api_key('reader')}"}  # manage on the collection "nothing" only
    unknown = {"Authorization": "ApiKey " + api_key("admin")[:-4] + "AAA="}

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        sections.setdefault("storage", {"url": "memory://"})
        return create_app(base_config(self.tmp_path, **sections))
