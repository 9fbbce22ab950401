"""The plugin API: every hook is documented and exercised here, through real plugins.

A vendor API is one `VendorApi` declaration returned by `register_apis`: the tests named after the
former per-API hooks (auth scheme, error renderer, quota limits) now exercise those fields of the declaration.

`test_every_hook_has_a_test` fails when a hook is added to `gateway.hookspecs` without a
``test_hook_<name>`` below (Datasette's guard), and `test_every_hook_is_documented` when it has no
docstring. The README's example plugin (examples/hello-plugin, installed by `make test`) is loaded
through its entry point, as a third-party distribution would be.
"""

from __future__ import annotations

import base64
import inspect
from pathlib import Path

import pluggy
import pytest
from flask import Blueprint, jsonify, request
from support import CREDENTIALS

from gateway import create_app, hookimpl, hookspecs
from gateway.plugins import registered_backends
from gateway.state import get_state
from gateway.vendor import Grant, VendorApi

HOOKS = sorted(name for name, obj in vars(hookspecs).items()
               if callable(obj) and hasattr(obj, "event_gateway_spec"))


def _config(**extra):
    return {"storage": {"url": "memory://"}, "credentials": CREDENTIALS, **extra}


def test_every_hook_is_documented() -> None:
    assert HOOKS, "no hookspecs found"
    for name in HOOKS:
        doc = inspect.getdoc(getattr(hookspecs, name))
        assert doc and len(doc) > 20, f"hook {name} has no docstring"


def test_every_hook_has_a_test() -> None:
    source = Path(__file__).read_text()
    missing = [name for name in HOOKS if f"def test_hook_{name}" not in source]
    assert not missing, f"hooks without a test: {missing}"


def test_every_hook_is_in_the_readme() -> None:
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    missing = [name for name in HOOKS if f"`{name}" not in readme]
    assert not missing, f"hooks missing from README: {missing}"


# -- the README's example plugin, installed as a distribution ---------------------------------------

HELLO = {"X-Hello-Key": "admin-secret-1"}


@pytest.fixture
def hello_app():
    from importlib.metadata import entry_points

    if not any(ep.name == "hello" for ep in entry_points(group="event_gateway")):
        pytest.fail("examples/hello-plugin is not installed: `make test` installs it")
    return create_app(_config(quotas={"hello": {"events": "3 per minute"}}))


def test_hook_register_apis(hello_app) -> None:
    client = hello_app.test_client()
    assert client.post("/hello/v1/events", json={"name": "signup", "value": 2}, headers=HELLO).status_code == 201
    listed = client.get("/hello/v1/events?name=signup", headers=HELLO).get_json()
    assert listed["total"] == 1 and listed["events"][0]["name"] == "signup"
    assert "hello" in get_state(hello_app).apis


def test_declared_read_credential(hello_app) -> None:
    client = hello_app.test_client()
    assert client.get("/hello/v1/events", headers={"X-Hello-Key": "wrong"}).status_code == 401
    # the plugin's scheme is a header, so a valid ApiKey in Authorization is not accepted
    key = base64.b64encode(b"admin:admin-secret-1").decode()
    assert client.get("/hello/v1/events", headers={"Authorization": f"ApiKey {key}"}).status_code == 401
    assert client.get("/hello/v1/events", headers=HELLO).status_code == 200


def test_declared_render_error(hello_app) -> None:
    client = hello_app.test_client()
    missing = client.post("/hello/v1/events", json={"value": 1}, headers=HELLO)
    assert missing.status_code == 400
    assert missing.get_json() == {"problem": {"status": 400, "title": "name: Missing data for required field.",
                                              "field": "name"}}
    assert client.get("/hello/v1/events").get_json()["problem"]["status"] == 401
    assert client.get("/hello/v1/nothing", headers=HELLO).get_json()["problem"]["status"] == 404


def test_declared_quotas(hello_app) -> None:
    client = hello_app.test_client()
    statuses = [client.post("/hello/v1/events", json={"name": "n"}, headers=HELLO).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    limited = client.post("/hello/v1/events", json={"name": "n"}, headers=HELLO)
    assert limited.get_json()["problem"]["status"] == 429 and int(limited.headers["Retry-After"]) >= 1
    assert get_state(hello_app).apis["hello"].quotas == {"events": "3 per minute"}  # the override won


def test_the_example_enriches_its_own_events_inline(hello_app) -> None:
    client = hello_app.test_client()
    client.post("/hello/v1/events", json={"name": "n"}, headers=HELLO, environ_base={"REMOTE_ADDR": "10.1.2.3"})
    events = client.get("/hello/v1/events", headers=HELLO).get_json()["events"]
    assert events[0]["source_ip"] == "10.1.2.3"


def test_hook_enrich_event() -> None:
    """A third-party enricher sees every API's events, after the API's own enrichment, before storage."""
    seen = []

    class Tagger:
        @hookimpl
        def enrich_event(self, event, request):
            seen.append((event.plugin, "source_ip" in event.data))
            event.data["tagged_from"] = request.remote_addr

    app = create_app(_config(), plugins=[("tagger", Tagger())])
    client = app.test_client()
    assert client.post("/hello/v1/events", json={"name": "n"}, headers=HELLO,
                       environ_base={"REMOTE_ADDR": "10.1.2.3"}).status_code == 201
    events = client.get("/hello/v1/events", headers=HELLO).get_json()["events"]
    assert events[0]["tagged_from"] == "10.1.2.3" and events[0]["source_ip"] == "10.1.2.3"
    assert seen == [("hello", True)]


def test_allow_list_restricts_builtin_and_installed_plugins(monkeypatch) -> None:
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS", "hello")
    app = create_app(_config())
    assert sorted(get_state(app).apis) == ["hello"]
    monkeypatch.setenv("EVENT_GATEWAY_PLUGINS", "elastic_analytics")
    assert sorted(get_state(create_app(_config())).apis) == ["elastic_analytics"]


def test_plugins_report_versions_hooks_and_routes(hello_app) -> None:
    described = {p["name"]: p for p in hello_app.test_client().get("/_gateway/plugins").get_json()["plugins"]}
    assert described["hello"]["version"] == "0.1.0" and not described["hello"]["builtin"]
    assert "register_apis" in described["hello"]["hooks"]
    assert "POST /hello/v1/events" in described["hello"]["routes"]
    assert described["hello"]["grants"] == ["hello:write", "hello:read"]
    assert described["elastic_analytics"]["builtin"]
    assert described["elastic_analytics"]["grants"] == ["elastic_analytics:manage[:<stream>]",
                                                        "elastic_analytics:post_event[:<stream>]",
                                                        "elastic_analytics:monitor"]


# -- hooks exercised by small in-test plugins ----------------------------------------------------------

class _Bare:
    """An API that declares only its routes: it gets the core's defaults for everything else."""

    blueprint = Blueprint("bare", __name__, url_prefix="/bare")

    @staticmethod
    @blueprint.get("/whoami")
    def whoami():
        from gateway.api import credential

        return jsonify(tenant=credential().tenant)

    @hookimpl
    def register_apis(self):
        return VendorApi(name="bare", blueprint=self.blueprint)


def test_defaults_apply_to_apis_declaring_nothing() -> None:
    app = create_app(_config(), plugins=[("bare", _Bare())])
    client = app.test_client()
    key = base64.b64encode(b"admin:admin-secret-1").decode()
    assert client.get("/bare/whoami", headers={"Authorization": f"ApiKey {key}"}).get_json() == {"tenant": "acme"}
    assert client.get("/bare/whoami", headers={"Authorization": "Bearer admin-secret-1"}).status_code == 200
    body = client.get("/bare/whoami").get_json()
    assert body == {"error": {"code": "unauthorized", "message": "missing authentication credentials", "status": 401}}


def test_hook_storage_backends() -> None:
    from backends.memory import MemoryBackend

    class TaggedBackend(MemoryBackend):
        schemes = ("tagged",)

    class Provider:
        @hookimpl
        def storage_backends(self):
            return [TaggedBackend]

    app = create_app({"storage": {"url": "tagged://"}}, plugins=[("provider", Provider())])
    assert type(get_state(app).backend) is TaggedBackend
    assert "tagged" in registered_backends(get_state(app).pm)


def test_hook_startup() -> None:
    seen = []

    class Watcher:
        @hookimpl
        def startup(self, app):
            seen.append(sorted(get_state(app).apis))

    app = create_app(_config(), plugins=[("watcher", Watcher())])
    # called once, after every API was registered
    assert seen == [sorted(get_state(app).apis)] and "elastic_analytics" in seen[0]


def test_misspelt_hook_fails_at_start_up() -> None:
    class Typo:
        @hookimpl
        def register_api(self):  # not a hook: check_pending must refuse it
            return None

    with pytest.raises(pluggy.PluginValidationError, match="register_api"):
        create_app(_config(), plugins=[("typo", Typo())])


def test_request_helpers_inside_a_view() -> None:
    class Echo:
        blueprint = Blueprint("echo", __name__)

        @staticmethod
        @blueprint.post("/echo")
        def echo():
            from gateway.api import client_ip, require_grant, user_agent

            require_grant("write")
            return jsonify(ip=client_ip(), ua=user_agent(), body=request.get_json())

        @hookimpl
        def register_apis(self):
            return VendorApi(name="echo", blueprint=self.blueprint, grants=(Grant("write"), Grant("read")))

    creds = [{"id": "w", "secret": "writer-secret", "tenant": "t", "grants": ["echo:write"]},
             {"id": "r", "secret": "reader-secret", "tenant": "t", "grants": ["echo:read"]}]
    client = create_app({"storage": {"url": "memory://"}, "credentials": creds},
                        plugins=[("echo", Echo())]).test_client()
    ok = client.post("/echo", json={"a": 1}, headers={"Authorization": "Bearer writer-secret",
                                                        "X-Forwarded-For": "203.0.113.9, 10.0.0.1",
                                                        "User-Agent": "probe/1"})
    assert ok.get_json() == {"ip": "203.0.113.9", "ua": "probe/1", "body": {"a": 1}}
    bad_xff = client.post("/echo", json={}, headers={"Authorization": "Bearer writer-secret",
                                                      "X-Forwarded-For": "not-an-ip"},
                          environ_base={"REMOTE_ADDR": "192.0.2.7"})
    assert bad_xff.get_json()["ip"] == "192.0.2.7"
    denied = client.post("/echo", json={}, headers={"Authorization": "Bearer reader-secret"})
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden"


def test_cors_preflight_allows_the_requested_vendor_headers(make_app) -> None:
    client = make_app(cors={"allow_origins": ["https://docs.example"]}).test_client()
    answer = client.options("/api/analytics/events", headers={
        "Origin": "https://docs.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "ft-calling-app, content-type, authorization"})
    allowed = [h.strip().lower() for h in answer.headers["Access-Control-Allow-Headers"].split(",")]
    assert {"ft-calling-app", "content-type", "authorization"} <= set(allowed)
    assert len(allowed) == len(set(allowed))
    foreign = client.options("/api/analytics/events", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert "Access-Control-Allow-Origin" not in foreign.headers
