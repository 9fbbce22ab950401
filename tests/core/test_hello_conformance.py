"""The vendor-API conformance kit run against the README's example plugin, as its own package would run it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from support import base_config

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestHelloConformance(VendorApiConformance):
    api = "hello"
    granted = {"X-Hello-Key": "admin-secret-1"}
    ungranted = {"X-Hello-Key": "tracker-secret-1"}  # a valid credential holding no hello grant
    unknown = {"X-Hello-Key": "nope"}

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        sections.setdefault("storage", {"url": "memory://"})
        return create_app(base_config(self.tmp_path, **sections))
