"""One vendor API = one declaration: `VendorApi`, its checks, grants checked against it, settings loaded once,
built-in plugins and backends found by entry point."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Blueprint
from marshmallow import RAISE, Schema, fields, post_load
from support import base_config, write_config

from gateway import create_app, hookimpl
from gateway.api import plugin_settings, require_grant
from gateway.cli import main
from gateway.config import ConfigError
from gateway.errors import json_response
from gateway.plugins import DISTRIBUTION, ENTRY_POINT_GROUP, builtin_api_names, is_builtin
from gateway.state import get_state
from gateway.vendor import DeclarationError, Grant, VendorApi, check_grant

BUILTIN_APIS = {"elastic_analytics", "workplace_search", "buildless", "fluid_topics", "appdynamics"}
BUILTIN_BACKENDS = {"backends.memory", "backends.sqlite", "backends.elasticsearch", "backends.postgresql"}


def _config(**extra: Any) -> dict[str, Any]:
    return {"storage": {"url": "memory://"}, **extra}


def _cred(*grants: str) -> list[dict[str, Any]]:
    return [{"id": "k", "secret": "a-long-secret", "tenant": "t", "grants": list(grants)}]


class _Api:
    """A one-declaration plugin built in the test."""

    def __init__(self, name: str = "demo", **fields_: Any) -> None:
        self.blueprint = Blueprint(fields_.pop("blueprint_name", name), __name__, url_prefix=f"/{name}")
        self.name, self.fields = name, fields_

    @hookimpl
    def register_apis(self) -> Any:
        return VendorApi(name=self.name, blueprint=self.blueprint, **self.fields)


# -- the declaration ---------------------------------------------------------------------------------------
def test_a_declaration_is_frozen_and_normalises_grants_and_quotas() -> None:
    api = VendorApi(name="demo", blueprint=Blueprint("demo", __name__), grants=("write", Grant("read", True)),
                    quotas={"events": "1/second"})
    assert api.grants == (Grant("write"), Grant("read", per_stream=True))
    assert api.grant_patterns() == ["demo:write", "demo:read[:<stream>]"]
    with pytest.raises(TypeError):
        api.quotas["events"] = "2/second"  # type: ignore[index]
    with pytest.raises(AttributeError):
        api.name = "other"  # type: ignore[misc]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"name": "Demo"}, "name must be lower-case"),
    ({"name": "demo", "blueprint": Blueprint("other", __name__)}, r"blueprint is named \[other\]"),
    ({"name": "demo", "render_error": "not callable"}, "render_error must be callable"),
    ({"name": "demo", "grants": ("wri te",)}, "grants"),
    ({"name": "demo", "grants": ("write", "write")}, "declared twice"),
    ({"name": "demo", "quotas": {"events": 5}}, "quotas"),
    ({"name": "demo", "settings_schema": dict}, "settings_schema"),
])
def test_a_bad_declaration_names_the_api_and_the_field(kwargs: dict[str, Any], message: str) -> None:
    kwargs.setdefault("blueprint", Blueprint(kwargs["name"], __name__))
    with pytest.raises(DeclarationError, match=message):
        VendorApi(**kwargs)


def test_a_declaration_missing_a_field_stops_start_up_naming_the_plugin() -> None:
    class Incomplete:
        @hookimpl
        def register_apis(self) -> Any:
            return VendorApi(name="incomplete")  # type: ignore[call-arg]  # no blueprint

    with pytest.raises(ConfigError, match=r"plugin \[incomplete\].*blueprint"):
        create_app(_config(), plugins=[("incomplete", Incomplete())])


def test_register_apis_must_return_declarations() -> None:
    class Wrong:
        @hookimpl
        def register_apis(self) -> Any:
            return Blueprint("wrong", __name__)

    with pytest.raises(ConfigError, match=r"plugin \[wrong\]: register_apis must return"):
        create_app(_config(), plugins=[("wrong", Wrong())])


def test_two_plugins_declaring_one_api_name_stop_start_up() -> None:
    class Twin:
        blueprint = Blueprint("elastic_analytics", __name__, url_prefix="/twin")

        @hookimpl
        def register_apis(self) -> Any:
            return [VendorApi(name="elastic_analytics", blueprint=self.blueprint),
                    VendorApi(name="twin", blueprint=Blueprint("twin", __name__))]

    with pytest.raises(ConfigError, match=r"two plugins declare the API \[elastic_analytics\]"):
        create_app(_config(), plugins=[("twin", Twin())])


def test_an_api_takes_its_plugins_name() -> None:
    with pytest.raises(ConfigError, match=r"plugin \[alias\] declares the API \[demo\]"):
        create_app(_config(), plugins=[("alias", _Api("demo"))])


def test_the_core_serves_what_is_declared() -> None:
    plugin = _Api("demo", read_credential=lambda request: None, quotas={"events": "5 per minute"},
                  grants=("write",))
    app = create_app(_config(credentials=_cred("demo:write")), plugins=[("demo", plugin)])
    api = get_state(app).apis["demo"]
    assert api.declaration.name == "demo" and api.plugin == "demo" and api.quotas == {"events": "5 per minute"}
    assert api.read_credential is plugin.fields["read_credential"]


# -- grants checked against the declarations ------------------------------------------------------------
@pytest.mark.parametrize("grant", [
    "*:*", "elastic_analytics:*", "elastic_analytics:post_event", "elastic_analytics:post_event:shop",
    "elastic_analytics:manage:*", "elastic_analytics:*:shop", "elastic_*:manage", "*:post_event",
    "workplace_search:write:*", "fluid_topics:read", "buildless:emit",
    "hello:write",  # installed (examples/hello-plugin), loaded
])
def test_good_grants_pass(grant: str) -> None:
    create_app(_config(credentials=_cred(grant)))


@pytest.mark.parametrize(("grant", "message"), [
    ("elastic_analytic:post_event", r"unknown plugin \[elastic_analytic\]"),
    ("elastic_analytics:post_evnt", r"unknown action \[post_evnt\].*elastic_analytics:post_event\[:<stream>\]"),
    ("nosuch:*", r"unknown plugin \[nosuch\]"),
    ("zz*:write", r"unknown plugin \[zz\*\]"),
    ("*:publsh", r"unknown action \[publsh\]"),
    ("workplace_search:write:logs", r"cannot be narrowed to a stream"),
])
def test_a_typo_in_a_grant_stops_start_up_naming_it(grant: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"credentials\[0\] \[k\]: grant \[{re.escape(grant)}\].*{message}"):
        create_app(_config(credentials=_cred(grant)))


def test_grants_of_installed_but_disabled_plugins_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    create_app(_config(credentials=_cred("workplace_search:anything"), plugins={"disabled": ["workplace_search"]}))
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS", "elastic_analytics")
    create_app(_config(credentials=_cred("hello:anything")))
    with pytest.raises(ConfigError, match=r"unknown plugin \[nosuch\]"):  # unknown stays unknown
        create_app(_config(credentials=_cred("nosuch:write")))


def test_check_grant_reasons() -> None:
    apis = {"demo": VendorApi(name="demo", blueprint=Blueprint("demo", __name__), grants=("write",))}
    assert check_grant("demo:write", apis, {"demo"}) is None
    assert check_grant("demo:*:*", apis, {"demo"}) is None
    assert "unknown action" in check_grant("demo:read", apis, {"demo"})
    assert check_grant("other:read", apis, {"demo", "other"}) is None  # installed, not loaded
    assert "unknown plugin" in check_grant("gone:read", apis, {"demo"})


def test_check_names_the_typo_d_grant(tmp_path: Any) -> None:
    config = base_config(tmp_path, credentials=_cred("elastic_analytics:post_evnt"))
    result = CliRunner().invoke(main, ["check", "--config", str(write_config(tmp_path / "g.toml", config))])
    assert result.exit_code == 2
    assert "grant [elastic_analytics:post_evnt] names an unknown action [post_evnt]" in result.output


def test_keys_new_refuses_a_typo_d_grant() -> None:
    result = CliRunner().invoke(main, ["keys", "new", "--tenant", "t", "--grant", "buildles:emit"])
    assert result.exit_code == 2 and "unknown plugin [buildles]" in result.output
    result = CliRunner().invoke(main, ["keys", "new", "--tenant", "t", "--grant", "buildless:emits"])
    assert result.exit_code == 2 and "unknown action [emits]" in result.output
    ok = CliRunner().invoke(main, ["keys", "new", "--tenant", "t", "--grant", "hello:read"])
    assert ok.exit_code == 0 and 'grants = ["hello:read"]' in ok.output


# -- settings loaded once ---------------------------------------------------------------------------------
def test_settings_are_validated_once_at_start_up_and_handed_to_the_plugin() -> None:
    loads = []

    class Settings(Schema):
        class Meta:
            unknown = RAISE

        greeting = fields.String(load_default="hi")

        @post_load
        def _count(self, data: dict[str, Any], **_: Any) -> dict[str, Any]:
            loads.append(data)
            return data

    plugin = _Api("demo", settings_schema=Settings, grants=("read",))

    @plugin.blueprint.get("/greeting")
    def greeting() -> Any:
        require_grant("read")
        return json_response(plugin_settings())

    app = create_app(_config(credentials=_cred("demo:read"), plugins={"demo": {"greeting": "hello"}}),
                     plugins=[("demo", plugin)])
    client = app.test_client()
    for _ in range(3):
        assert client.get("/demo/greeting", headers={"Authorization": "Bearer a-long-secret"}).get_json() == {
            "greeting": "hello"}
    assert loads == [{"greeting": "hello"}]
    with app.app_context():
        assert plugin_settings("demo") == {"greeting": "hello"}
    with pytest.raises(ConfigError, match=r"plugins\.demo\.greting: Unknown field"):
        create_app(_config(plugins={"demo": {"greting": "x"}}),
                   plugins=[("demo", _Api("demo", settings_schema=Settings))])


def test_an_api_without_a_settings_schema_takes_no_settings() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.workplace_search\.colour: API \[workplace_search\] takes no"):
        create_app(_config(plugins={"workplace_search": {"colour": "red"}}))


# -- built-ins found by entry point -----------------------------------------------------------------------
def test_builtin_plugins_and_backends_are_entry_points_of_this_distribution() -> None:
    ours = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP) if is_builtin(ep)}
    assert set(ours) == BUILTIN_APIS | BUILTIN_BACKENDS
    assert all(ep.dist.metadata["Name"].lower().replace("_", "-") == DISTRIBUTION for ep in ours.values())
    assert set(builtin_api_names()) == BUILTIN_APIS
    hello = next(ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "hello")
    assert not is_builtin(hello)


def test_the_default_app_serves_every_builtin_api_and_backend() -> None:
    from gateway.plugins import registered_backends

    state = get_state(create_app(_config()))
    assert set(state.apis) >= BUILTIN_APIS
    assert {"memory", "sqlite", "elasticsearch"} <= set(registered_backends(state.pm))
    disabled = get_state(create_app(_config(plugins={"enabled": ["buildless"]})))
    assert BUILTIN_APIS & set(disabled.apis) == {"buildless"}
    assert {"memory", "sqlite"} <= set(registered_backends(disabled.pm))  # backends are always there


def test_the_core_imports_no_plugin_and_names_none() -> None:
    from pathlib import Path

    core = Path(__file__).resolve().parents[2] / "gateway"
    assert not (core / "plugin_names.py").exists()
    for path in core.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(from|import) (plugins|backends)\b", text, re.MULTILINE), path
        for name in BUILTIN_APIS:
            assert f'"{name}"' not in text, (path, name)


def test_a_plugin_without_an_api_reads_its_raw_settings_table() -> None:
    class Enricher:
        @hookimpl
        def startup(self, app: Any) -> None:
            with app.app_context():
                seen.append(plugin_settings("enricher"))

    seen: list[Any] = []
    create_app(_config(plugins={"enricher": {"level": 3}}), plugins=[("enricher", Enricher())])
    assert seen == [{"level": 3}]


def test_a_builtin_backend_can_be_switched_off_but_not_left_out_by_the_allow_list(monkeypatch) -> None:
    from gateway.plugins import registered_backends

    pm = get_state(create_app(_config(plugins={"disabled": ["backends.sqlite"]}))).pm
    assert "sqlite" not in registered_backends(pm) and "memory" in registered_backends(pm)
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS", "buildless")
    assert "sqlite" in registered_backends(get_state(create_app(_config())).pm)
