"""The vendor-API conformance kit (`gateway.testing.conformance`) run against the Buildless telemetry API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from buildless.bl_helpers import BEARER_ACME, KEY_NO_GRANT, PLUGIN, bl_config

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestBuildlessConformance(VendorApiConformance):
    api = PLUGIN
    granted = BEARER_ACME
    ungranted = {"Authorization": f"Bearer {KEY_NO_GRANT}"}
    unknown = {"Authorization": "Bearer not-a-known-key"}
    skip = frozenset({415})  # gRPC-gateway reads a body of any media type as JSON

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        sections.setdefault("storage", {"url": "memory://"})
        return create_app(bl_config(self.tmp_path, **sections))
