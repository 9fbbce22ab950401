"""The app factory: configuration + plugins + storage + quotas -> one Flask app.

Start-up: plugins (`gateway.plugins`) -> each plugin's `VendorApi` declarations (`register_apis`) -> routes,
quotas, ``[plugins.<name>]`` settings (loaded once by the declared schema) and credential grants (checked
against the declared actions) -> backend -> `startup` hooks.

Request pipeline for a plugin's route: CORS preflight -> authenticate with the API's declared reader (401) ->
quotas (429, `gateway.quotas`) -> the plugin's view (which checks its grant, 403, validates, stores) -> JSON response.
Any exception on the way is turned into a `GatewayError` and rendered by the API the path belongs to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from flask import Flask, Response, request
from marshmallow import ValidationError
from werkzeug.exceptions import HTTPException

from . import accesslog, admin, cors, docs, metrics, quotas
from .auth import CredentialStore
from .config import Config, ConfigError, load_config, validate_config
from .errors import (
    BadRequest,
    GatewayError,
    InternalError,
    InvalidCredentials,
    MissingCredentials,
    ServiceUnavailable,
    from_http_exception,
    render_gateway_error,
)
from .flaskapp import GatewayFlask, current_globals, current_request
from .jsonbody import read_body
from .plugins import allow_list, build_plugin_manager, declared_apis, known_plugin_names, registered_backends
from .state import EXTENSION_KEY, Api, GatewayState, get_state
from .storage import Backend, BackendUnavailable, backend_from_url
from .validation import flatten_errors
from .vendor import VendorApi, check_grant

log = logging.getLogger("event_gateway")
#: Set (by ``event-gateway serve``, for its workers) to build apps without repeating the start-up warnings.
QUIET_ENV = "EVENT_GATEWAY_QUIET_STARTUP"


def create_app(config: Config | Mapping[str, Any] | str | os.PathLike[str] | None = None, *,
               plugins: Iterable[tuple[str, Any]] = (), backend: Backend | None = None,
               quiet: bool | None = None) -> Flask:
    """Build the gateway app.

    `config` is a validated `Config`, a raw mapping (validated here, environment overrides applied), or a
    path to a TOML file (None: the default lookup of `gateway.config.config_path`). `plugins` registers
    extra (name, plugin) pairs, `backend` injects a ready backend (both for tests and embedding). `quiet`
    drops the start-up warnings (configuration and plugins' own): ``serve`` prints them once, in the master,
    and its workers build quietly (default: quiet when `QUIET_ENV` is set).
    """
    if quiet is None:
        quiet = bool(os.environ.get(QUIET_ENV))
    if not quiet:
        return _build(config, plugins, backend)
    package_logger = logging.getLogger("event_gateway")
    level = package_logger.level
    package_logger.setLevel(logging.ERROR)
    try:
        return _build(config, plugins, backend)
    finally:
        package_logger.setLevel(level)


def _build(config: Config | Mapping[str, Any] | str | os.PathLike[str] | None, plugins: Iterable[tuple[str, Any]],
           backend: Backend | None) -> Flask:
    cfg = _as_config(config)
    for warning in cfg.warnings:
        log.warning(warning)
    pm = build_plugin_manager(cfg.plugins["enabled"], disabled=cfg.plugins["disabled"], allowed=allow_list(),
                              extra=plugins)
    declared = declared_apis(pm)
    check_credentials(cfg, declared)
    if backend is None:
        try:
            backend = backend_from_url(cfg.storage["url"], cfg.storage["options"], registered_backends(pm))
        except ValueError as exc:
            message = str(exc)
            raise ConfigError(message if message.startswith("storage.") else f"storage.url: {message}") from None
    backend.query_timeout = cfg.storage["query_timeout"]  # every query's deadline (gateway.query.deadline)

    app = GatewayFlask("gateway", max_body_bytes=cfg.server["max_body_bytes"])
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False  # "//" would otherwise be an HTML redirect page, not a vendor error
    state = GatewayState(config=cfg, pm=pm, backend=backend, credentials=CredentialStore(cfg.credentials))
    app.extensions[EXTENSION_KEY] = state

    app.register_blueprint(admin.blueprint)
    app.register_blueprint(docs.blueprint)
    _register_apis(app, state, declared)
    _check_settings(cfg, state)

    cors.init_app(app, cfg.cors)
    quotas.init_app(app, state)
    app.before_request(_authenticate)
    app.after_request(_no_html)
    app.register_error_handler(Exception, handle_exception)
    metrics.init_app(app, state, cfg.server["metrics"], accesslog.AccessLog() if cfg.server["access_log"] else None)

    pm.hook.startup(app=app)
    return app


def _as_config(config: Config | Mapping[str, Any] | str | os.PathLike[str] | None) -> Config:
    if isinstance(config, Config):
        return config
    if isinstance(config, Mapping):
        return validate_config(config)
    return load_config(config)


def check_credentials(cfg: Config, declared: dict[str, tuple[str, VendorApi]]) -> None:
    """Every credential grant must name an installed plugin and, for a loaded API, a declared action."""
    apis = {name: api for name, (_, api) in declared.items()}
    known = known_plugin_names() | {plugin for plugin, _ in declared.values()}
    for index, cred in enumerate(cfg.credentials):
        for grant in cred.grants:
            problem = check_grant(grant, apis, known)
            if problem:
                raise ConfigError(f"credentials[{index}] [{cred.id}]: {problem}")


def _register_apis(app: Flask, state: GatewayState, declared: dict[str, tuple[str, VendorApi]]) -> None:
    for name, (plugin, api) in declared.items():
        app.register_blueprint(api.blueprint)
        state.apis[name] = Api(name=name, read_credential=api.read_credential, render_error=api.render_error,
                               declaration=api, plugin=plugin, quotas=dict(api.quotas))
    prefixes: dict[str, str] = {}
    for rule in app.url_map.iter_rules():
        api_name = rule.endpoint.partition(".")[0]
        if api_name not in state.apis:
            continue
        state.apis[api_name].routes.append(f"{','.join(sorted(rule.methods - {'HEAD', 'OPTIONS'}))} {rule.rule}")
        static = rule.rule.split("<", 1)[0]
        prefixes.setdefault(static[: static.rstrip("/").rfind("/") + 1] or "/", api_name)
    state.prefixes = sorted(prefixes.items(), key=lambda item: len(item[0]), reverse=True)


def _check_settings(cfg: Config, state: GatewayState) -> None:
    """Quota overrides and plugin settings must name known plugins and declared quotas.

    Tables of a known plugin that is not loaded (disabled, or left out by ``EVENT_GATEWAY_PLUGINS``) are
    ignored, so one configuration file serves every selection of plugins.
    """
    installed = known_plugin_names() | {name for name, _ in state.pm.list_name_plugin()}
    for api_name, overrides in cfg.quotas["plugins"].items():
        api = state.apis.get(api_name)
        if api is None:
            if api_name in installed:
                continue
            raise ConfigError(f"quotas.{api_name}: no plugin of that name is installed")
        for quota_name, value in overrides.items():
            if quota_name not in api.quotas:
                declared = ", ".join(sorted(api.quotas)) or "none"
                raise ConfigError(f"quotas.{api_name}.{quota_name}: unknown quota (declared: {declared})")
            api.quotas[quota_name] = value
    for name in cfg.plugins["settings"]:
        if name not in installed:
            raise ConfigError(f"plugins.{name}: no plugin of that name is installed")
    for api in state.apis.values():
        api.settings = load_settings(api.declaration, cfg.plugin_settings(api.name))


def load_settings(api: VendorApi, raw: dict[str, Any]) -> Any:
    """``[plugins.<name>]`` loaded by the API's declared schema (once, at start-up); `ConfigError` naming the key."""
    schema = api.settings_schema
    if schema is None:
        if raw:
            raise ConfigError(f"plugins.{api.name}.{next(iter(raw))}: API [{api.name}] takes no settings")
        return {}
    try:
        return schema().load(raw)
    except ValidationError as err:
        problems = "; ".join(f"{path}: {message}" for path, message in flatten_errors(err.messages,
                                                                                      prefix=f"plugins.{api.name}"))
        raise ConfigError(f"invalid configuration: {problems}") from None


def _authenticate() -> None:
    """Before every plugin route: read the credential with the API's scheme, check it, count its quotas."""
    req = current_request()
    blueprint = req.blueprint
    state = get_state()
    api = state.apis.get(blueprint) if blueprint else None
    if api is None or req.method == "OPTIONS":
        return
    presented = api.read_credential(req)
    if presented is None:
        raise MissingCredentials()
    credential = state.credentials.authenticate(presented)
    if credential is None:
        raise InvalidCredentials()
    facts = current_globals()
    facts.credential = credential
    facts.presented = presented
    state.quotas.check(credential, req.endpoint)
    if "chunked" in req.environ.get("HTTP_TRANSFER_ENCODING", "").lower() and req.content_length is None:
        read_body(req, state.config.server["max_body_bytes"])  # 413 for chunked bodies too, then cached


def _no_html(response: Response) -> Response:
    """Flask's automatic OPTIONS answer is an empty body typed text/html: drop the type, keep the Allow."""
    if current_request().method == "OPTIONS" and response.mimetype == "text/html" and not response.get_data():
        del response.headers["Content-Type"]
    return response


def to_gateway_error(exc: BaseException) -> GatewayError:
    """Classify any exception raised while serving a request."""
    if isinstance(exc, GatewayError):
        return exc
    limited = quotas.as_gateway_error(exc)
    if limited is not None:
        return limited
    if isinstance(exc, HTTPException):
        return from_http_exception(exc)
    if isinstance(exc, RecursionError):  # e.g. a JSON body nested thousands of levels deep
        return BadRequest("the request body is nested too deeply")
    if isinstance(exc, BackendUnavailable):
        log.error("storage backend unavailable: %s", exc)
        return ServiceUnavailable("the event store is unavailable; nothing was accepted")
    log.exception("unhandled error on %s %s", request.method, request.path, exc_info=exc)
    return InternalError("internal error")


def handle_exception(exc: Exception) -> Any:
    """The app's one error handler: classify, then render in the format of the API the path belongs to."""
    error = to_gateway_error(exc)
    state = get_state()
    api = state.apis.get(request.blueprint) if request.blueprint else state.api_for_path(request.path)
    if api is None:
        return render_gateway_error(error)
    try:
        return api.render_error(error)
    except Exception:  # a broken renderer must not turn an error into an HTML page
        log.exception("error renderer of [%s] failed", api.name)
        return render_gateway_error(error)
