"""The conformance kit itself: it passes a conforming API and fails one that answers outside its format."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Response

from gateway import create_app, hookimpl
from gateway.api import quota, require_grant
from gateway.errors import GatewayError, MethodNotAllowed, json_response
from gateway.jsonbody import read_json
from gateway.testing.conformance import VendorApiConformance
from gateway.vendor import Grant, VendorApi

CREDENTIALS = [{"id": "w", "secret": "writer-secret", "tenant": "t", "grants": ["kit:write"]},
               {"id": "n", "secret": "nobody-secret", "tenant": "t", "grants": []}]


def _plugin(*, html_403: bool = False, broken_405: bool = False) -> Any:
    blueprint = Blueprint("kit", __name__, url_prefix="/kit")

    @blueprint.post("/items")
    @quota("items")
    def post_item() -> Response:
        if html_403:
            return Response("<html>denied</html>", 403, mimetype="text/html")
        require_grant("write")
        read_json(__import__("flask").request, expect=dict)
        return json_response({"ok": True})

    def render(error: GatewayError) -> Response:
        if broken_405 and isinstance(error, MethodNotAllowed):
            raise RuntimeError("renderer bug")
        return json_response({"fault": {"status": error.status, "text": error.message}}, error.status, error.headers)

    class Plugin:
        @hookimpl
        def register_apis(self) -> VendorApi:
            return VendorApi(name="kit", blueprint=blueprint, render_error=render, quotas={"items": "10 per second"},
                             grants=(Grant("write"),))

    return Plugin()


class _KitConformance(VendorApiConformance):
    api = "kit"
    granted = {"Authorization": "Bearer writer-secret"}
    ungranted = {"Authorization": "Bearer nobody-secret"}
    unknown = {"Authorization": "Bearer unknown-secret"}
    options: dict[str, bool] = {}

    def make_app(self, **sections: Any) -> Any:
        config = {"storage": {"url": "memory://"}, "credentials": CREDENTIALS,
                  "plugins": {"enabled": []}, **sections}
        return create_app(config, plugins=[("kit", _plugin(**self.options))])


class TestAConformingApiPasses(_KitConformance):
    pass


def test_an_html_403_fails_the_kit() -> None:
    kit = _KitConformance()
    kit.options = {"html_403": True}
    with pytest.raises(AssertionError):
        kit.test_conformance_403_without_the_grant()


def test_a_renderer_failing_on_405_fails_the_kit() -> None:
    kit = _KitConformance()
    kit.options = {"broken_405": True}
    kit.test_conformance_401_without_credentials()  # the other statuses are still in format
    with pytest.raises(AssertionError):
        kit.test_conformance_405_on_every_route()
