"""The vendor-API conformance kit (`gateway.testing.conformance`) run against the Fluid Topics API."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import ACME, NO_GRANT_KEY, PLUGIN, bearer, ft_config

from gateway import create_app
from gateway.testing.conformance import VendorApiConformance


class TestFluidTopicsConformance(VendorApiConformance):
    api = PLUGIN
    granted = ACME
    ungranted = bearer(NO_GRANT_KEY)
    unknown = bearer("not-a-known-key")

    @pytest.fixture(autouse=True)
    def _tmp(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def make_app(self, **sections: Any) -> Any:
        return create_app(ft_config(self.tmp_path, **sections))
