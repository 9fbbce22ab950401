"""Configuration: TOML + environment overrides, and every mistake stopping start-up with the key named."""

from __future__ import annotations

import hashlib

import pytest
from support import write_config

from gateway import create_app
from gateway.config import ConfigError, load_config, validate_config


def test_defaults_match_the_documented_embedded_setup() -> None:
    cfg = validate_config({}, environ={})
    assert cfg.server["host"] == "127.0.0.1" and cfg.server["port"] == 8080
    assert cfg.storage["url"] == "sqlite:///var/events.db"
    assert cfg.quotas["storage_url"] == "memory://" and cfg.quotas["default"] == "6000 per minute"
    assert cfg.credentials == ()


@pytest.mark.parametrize(("raw", "key"), [
    ({"storage": {"urll": "memory://"}}, "storage.urll"),
    ({"servr": {}}, "servr"),
    ({"server": {"port": "eighty"}}, "server.port"),
    ({"server": {"port": 70000}}, "server.port"),
    ({"server": {"workers": 0}}, "server.workers"),
    ({"quotas": {"default": "lots"}}, "quotas.default"),
    ({"quotas": {"storage_url": "memcached://x"}}, "quotas.storage_url"),
    ({"quotas": {"elastic_analytics": {"post_event": "often"}}}, "quotas.elastic_analytics.post_event"),
    ({"cors": {"allow_origins": ["not a url"]}}, "cors.allow_origins"),
    ({"credentials": [{"id": "a", "tenant": "t"}]}, "credentials.0.secret_sha256"),
    ({"credentials": [{"id": "a", "tenant": "t", "secret_sha256": "abc"}]}, "credentials.0.secret_sha256"),
    ({"credentials": [{"id": "a", "tenant": "t", "secret": "long-enough", "grants": ["nocolon"]}]},
     "credentials.0.grants"),
    ({"credentials": [{"id": "a", "tenant": "t", "secret": "long-enough", "colour": "red"}]}, "credentials.0.colour"),
])
def test_bad_config_names_the_key(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as info:
        validate_config(raw, environ={})
    assert key in str(info.value)


def test_duplicate_credential_ids_are_refused() -> None:
    cred = {"id": "a", "tenant": "t", "secret": "long-enough"}
    with pytest.raises(ConfigError, match=r"credentials\[1\]\.id"):
        validate_config({"credentials": [cred, cred]}, environ={})


def test_environment_overrides_keys_and_parses_toml_values() -> None:
    cfg = validate_config({"server": {"port": 1}}, environ={
        "EVENT_GATEWAY_SERVER__PORT": "9090",
        "EVENT_GATEWAY_STORAGE__URL": "memory://",
        "EVENT_GATEWAY_PLUGINS__ENABLED": '["elastic_analytics"]',
        "EVENT_GATEWAY_QUOTAS__ELASTIC_ANALYTICS__POST_EVENT": "5 per second",
        "EVENT_GATEWAY_CONFIG": "ignored.toml",  # not an override: no section separator
    })
    assert cfg.server["port"] == 9090
    assert cfg.storage["url"] == "memory://"
    assert cfg.quotas["plugins"] == {"elastic_analytics": {"post_event": "5 per second"}}


def test_unknown_environment_key_names_the_variable() -> None:
    with pytest.raises(ConfigError) as info:
        validate_config({}, environ={"EVENT_GATEWAY_STORAGE__URLL": "memory://"})
    assert "storage.urll" in str(info.value) and "EVENT_GATEWAY_STORAGE__URLL" in str(info.value)


def test_plain_secret_is_hashed_and_warned_about_off_loopback() -> None:
    cred = {"id": "a", "tenant": "t", "secret": "long-enough"}
    local = validate_config({"credentials": [cred]}, environ={})
    assert local.credentials[0].secret_sha256 == hashlib.sha256(b"long-enough").hexdigest()
    assert local.warnings == ()
    public = validate_config({"server": {"host": "0.0.0.0"}, "credentials": [cred]}, environ={})
    assert any("secret_sha256" in w for w in public.warnings)


def test_load_config_reads_toml_files(tmp_path) -> None:
    path = write_config(tmp_path / "g.toml", {"server": {"port": 8181}, "storage": {"url": "memory://"}})
    assert load_config(path).server["port"] == 8181
    (tmp_path / "broken.toml").write_text("[server\nport = 1")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(tmp_path / "broken.toml")
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "missing.toml")


def test_start_up_refuses_unknown_plugins_quotas_and_schemes() -> None:
    from gateway.plugins import PluginLoadError

    with pytest.raises(PluginLoadError, match="nosuch"):
        create_app({"storage": {"url": "memory://"}, "plugins": {"enabled": ["nosuch"]}})
    with pytest.raises(ConfigError, match=r"quotas\.elastic_analytics\.nosuch"):
        create_app({"storage": {"url": "memory://"}, "quotas": {"elastic_analytics": {"nosuch": "1/second"}}})
    with pytest.raises(ConfigError, match=r"quotas\.nosuch"):
        create_app({"storage": {"url": "memory://"}, "quotas": {"nosuch": {"x": "1/second"}}})
    with pytest.raises(ConfigError, match=r"storage\.options.*pathh"):
        create_app({"storage": {"url": "memory://", "options": {"pathh": "x"}}})
    with pytest.raises(ConfigError, match=r"storage\.url.*ftp://"):
        create_app({"storage": {"url": "ftp://x"}})
    with pytest.raises(ConfigError, match=r"plugins\.nosuch"):
        create_app({"storage": {"url": "memory://"}, "plugins": {"nosuch": {"a": 1}}})


def test_tables_of_known_but_unloaded_plugins_are_ignored(monkeypatch) -> None:
    from gateway.state import get_state

    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS", "elastic_analytics")
    app = create_app({"storage": {"url": "memory://"}, "quotas": {"hello": {"events": "1/second"}},
                      "plugins": {"hello": {"anything": 1}}})
    assert sorted(get_state(app).apis) == ["elastic_analytics"]


def test_deeply_nested_json_is_a_400_not_a_500(make_app) -> None:
    from support import api_key

    client = make_app().test_client()
    client.put("/_application/analytics/shop", headers={"Authorization": f"ApiKey {api_key('admin')}"})
    body = '{"session":' * 50_000 + "1" + "}" * 50_000  # 550 kB, under max_body_bytes
    response = client.post("/_application/analytics/shop/event/page_view", data=body,
                           headers={"Authorization": f"ApiKey {api_key('admin')}", "Content-Type": "application/json"})
    assert response.status_code == 400 and response.get_json()["error"]["type"] == "x_content_parse_exception"


def test_two_credentials_may_not_share_a_secret() -> None:
    creds = [{"id": "a", "tenant": "t1", "secret": "same-secret"}, {"id": "b", "tenant": "t2", "secret": "same-secret"}]
    with pytest.raises(ConfigError, match=r"credentials\[1\].*same secret as credential \[a\]"):
        validate_config({"credentials": creds}, environ={})


def test_the_demo_secret_is_refused_off_loopback() -> None:
    """Issue 10 item 8 (was a warning); the `serve --host` path is in tests/hardening_edge/test_demo_secret.py."""
    from gateway.config import DEMO_SECRET_SHA256

    cred = {"id": "demo", "tenant": "t", "secret_sha256": DEMO_SECRET_SHA256}
    assert validate_config({"credentials": [cred]}, environ={}).warnings == ()
    with pytest.raises(ConfigError, match=r"credential \[demo\] uses the published demo secret"):
        validate_config({"server": {"host": "0.0.0.0"}, "credentials": [cred]}, environ={})


def test_credentials_can_come_from_the_environment() -> None:
    cfg = validate_config({}, environ={
        "EVENT_GATEWAY_CREDENTIALS": '[{id = "ci", secret = "ci-secret-1", tenant = "t", grants = ["x:y"]}]'})
    assert [(c.id, c.tenant, c.grants) for c in cfg.credentials] == [("ci", "t", ("x:y",))]
    with pytest.raises(ConfigError, match="EVENT_GATEWAY_CREDENTIALS"):
        validate_config({}, environ={"EVENT_GATEWAY_CREDENTIALS": "nope"})


def test_plugins_disabled_switches_off_installed_and_builtin_plugins() -> None:
    from gateway.plugins import PluginLoadError
    from gateway.state import get_state

    app = create_app({"storage": {"url": "memory://"}, "plugins": {"disabled": ["hello", "workplace_search"]}})
    assert "hello" not in get_state(app).apis and "workplace_search" not in get_state(app).apis
    assert "elastic_analytics" in get_state(app).apis
    with pytest.raises(PluginLoadError, match=r"plugins\.disabled: unknown plugin \[nosuch\]"):
        create_app({"storage": {"url": "memory://"}, "plugins": {"disabled": ["nosuch"]}})
