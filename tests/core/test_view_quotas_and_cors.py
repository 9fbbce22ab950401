"""Two declaration-level features of the core: quotas a view counts itself once it knows the key
(`gateway.api.count_quota`), and APIs closed to browsers whatever ``cors.allow_origins`` says (`VendorApi.cors`)."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint

from gateway import create_app, hookimpl
from gateway.api import count_quota, credential
from gateway.errors import json_response
from gateway.vendor import VendorApi


class _Api:
    def __init__(self, name: str, **fields: Any) -> None:
        self.blueprint = Blueprint(name, __name__, url_prefix=f"/{name}")
        self.name, self.fields = name, fields

        @self.blueprint.post("/count/<topic>")
        def count(topic: str) -> Any:
            count_quota("per_topic", credential().tenant, topic)
            return json_response({"ok": topic})

        @self.blueprint.post("/undeclared")
        def undeclared() -> Any:
            count_quota("nope", "x")
            return json_response({})

    @hookimpl
    def register_apis(self) -> VendorApi:
        return VendorApi(name=self.name, blueprint=self.blueprint, **self.fields)


def _app(name: str = "demo", *, config_quotas: dict[str, Any] | None = None,
         config_cors: dict[str, Any] | None = None, **fields: Any) -> Any:
    """An app serving one test API; `fields` go to its declaration, `config_*` to the configuration."""
    config = {"storage": {"url": "memory://"}, "plugins": {"enabled": []},
              "credentials": [{"id": "a", "secret": "secret-a-1", "tenant": "t1", "grants": [f"{name}:*"]},
                              {"id": "b", "secret": "secret-b-1", "tenant": "t1", "grants": [f"{name}:*"]},
                              {"id": "c", "secret": "secret-c-1", "tenant": "t2", "grants": [f"{name}:*"]}]}
    if config_quotas:
        config["quotas"] = config_quotas
    if config_cors:
        config["cors"] = config_cors
    return create_app(config, plugins=[(name, _Api(name, **fields))])


def _post(client: Any, path: str, secret: str) -> Any:
    return client.post(path, headers={"Authorization": f"Bearer {secret}"})


def test_count_quota_keys_by_what_the_view_passes() -> None:
    app = _app(config_quotas={"demo": {"per_topic": "2 per minute"}}, quotas={"per_topic": "100 per minute"})
    client = app.test_client()
    assert _post(client, "/demo/count/x", "secret-a-1").status_code == 200
    assert _post(client, "/demo/count/x", "secret-b-1").status_code == 200  # same tenant, other key: same count
    breach = _post(client, "/demo/count/x", "secret-a-1")
    assert breach.status_code == 429 and int(breach.headers["Retry-After"]) >= 1
    assert _post(client, "/demo/count/y", "secret-a-1").status_code == 200  # another topic
    assert _post(client, "/demo/count/x", "secret-c-1").status_code == 200  # another tenant


def test_count_quota_uses_the_declared_default() -> None:
    client = _app(quotas={"per_topic": "1 per minute"}).test_client()
    assert _post(client, "/demo/count/x", "secret-a-1").status_code == 200
    assert _post(client, "/demo/count/x", "secret-a-1").status_code == 429


def test_count_quota_of_an_undeclared_name_is_a_bug_not_a_pass() -> None:
    client = _app(quotas={"per_topic": "1 per minute"}).test_client()
    assert _post(client, "/demo/undeclared", "secret-a-1").status_code == 500


@pytest.mark.parametrize(("open_", "expected"), [(True, "https://a.example"), (False, None)])
def test_cors_false_keeps_an_api_closed(open_: bool, expected: str | None) -> None:
    client = _app(config_cors={"allow_origins": ["https://a.example"]}, cors=open_,
                  quotas={"per_topic": "9 per minute"})
    preflight = client.test_client().options("/demo/count/x", headers={
        "Origin": "https://a.example", "Access-Control-Request-Method": "POST"})
    assert preflight.headers.get("Access-Control-Allow-Origin") == expected
    assert preflight.status_code == (200 if open_ else 403)  # a closed API refuses as for an unlisted origin
    response = client.test_client().post("/demo/count/x", headers={"Authorization": "Bearer secret-a-1",
                                                                   "Origin": "https://a.example"})
    assert response.status_code == 200
    assert response.headers.get("Access-Control-Allow-Origin") == expected
