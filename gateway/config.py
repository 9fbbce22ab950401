"""Configuration: a TOML file, overridden key by key from the environment, validated before start-up.

The file comes from ``--config``, else ``$EVENT_GATEWAY_CONFIG``, else ``config/gateway.toml``.
``EVENT_GATEWAY_<SECTION>__<KEY>=value`` overrides one key (``__`` separates levels; the value is read
as a TOML value when it parses as one, e.g. ``8080`` or ``["a", "b"]``, else as a string). Unknown keys
and bad values raise `ConfigError` naming the key, so a typo stops start-up instead of being ignored.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from limits import parse_many
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .query.deadline import DEFAULT_QUERY_TIMEOUT
from .validation import error_items

ENV_PREFIX = "EVENT_GATEWAY_"
DEFAULT_CONFIG_PATH = Path("config/gateway.toml")
SOURCE_ROOT = Path(__file__).resolve().parent.parent  # the checkout, for an editable install (make run)
#: sha256 of "change-me-local-secret", the demo credential shipped in config/gateway.toml
DEMO_SECRET_SHA256 = "038f2c9cdb7cbe51ce3ba00820de32e513d8e253872b8a8560be967539fa2696"
#: top-level arrays of tables that the environment may replace whole (as a TOML array)
ENV_ARRAYS = ("credentials",)


class ConfigError(ValueError):
    """Invalid configuration; the message names the offending key."""


def is_loopback(host: str) -> bool:
    """Does binding `host` keep the server on this machine (127.0.0.0/8, ::1, localhost)?"""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_demo_secret(credentials: Any, host: str) -> None:
    """Refuse to serve the published demo secret of config/gateway.toml beyond this machine.

    Its secret is printed in that file and the README, so off loopback anybody could post and read events.
    `credentials` are `CredentialConfig`s; `host` is the address `serve` binds (after ``--host``).
    """
    if is_loopback(host):
        return
    for cred in credentials:
        if cred.secret_sha256 == DEMO_SECRET_SHA256:
            raise ConfigError(f"credential [{cred.id}] uses the published demo secret of config/gateway.toml and "
                              f"the server would listen on {host}: make a new one with `event-gateway keys new` "
                              "(or serve on 127.0.0.1)")


def _limit_string(value: str) -> bool:
    try:
        return bool(parse_many(value))
    except ValueError:
        return False


class _Strict(Schema):
    class Meta:
        unknown = RAISE


class ServerSchema(_Strict):
    host = fields.String(load_default="127.0.0.1")
    port = fields.Integer(load_default=8080, validate=validate.Range(1, 65535))
    workers = fields.Integer(load_default=2, validate=validate.Range(min=1))
    threads = fields.Integer(load_default=4, validate=validate.Range(min=1))
    max_body_bytes = fields.Integer(load_default=1_048_576, validate=validate.Range(min=1))
    trust_forwarded_for = fields.Boolean(load_default=True)
    #: Seconds a client may take to send one whole request (headers and body) before it is dropped.
    request_timeout = fields.Float(load_default=30.0, validate=validate.Range(min=0.1, max=300))
    access_log = fields.Boolean(load_default=True)  # one JSON line per request (gateway.accesslog)
    metrics = fields.String(load_default="grant", validate=validate.OneOf(["grant", "open", "off"]))


class StorageSchema(_Strict):
    url = fields.String(load_default="sqlite:///var/events.db", validate=validate.Regexp(r"^[a-z][a-z0-9+.-]*://"))
    options = fields.Dict(keys=fields.String(), load_default=dict)
    # seconds a query may run before it is cancelled with a 503 (gateway.query.deadline)
    query_timeout = fields.Float(load_default=DEFAULT_QUERY_TIMEOUT, validate=validate.Range(0.001, 3600))


class LimitString(fields.String):
    """A flask-limiter/limits rate string such as "6000 per minute" or "10/second;1000/hour"."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not _limit_string(text):
            raise ValidationError(f"not a rate limit: {text!r} (e.g. \"6000 per minute\")")
        return text


class QuotasSchema(_Strict):
    storage_url = fields.String(load_default="memory://",
                                validate=validate.Regexp(r"^(memory|redis|rediss|redis\+unix)://"))
    default = LimitString(load_default="6000 per minute")
    strategy = fields.String(load_default="fixed-window",
                             validate=validate.OneOf(["fixed-window", "moving-window",
                                                      "sliding-window-counter"]))
    plugins = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=LimitString()),
                          load_default=dict)


class PluginsSchema(_Strict):
    enabled = fields.List(fields.String(), load_default=None)  # None: every built-in API (gateway.plugins)
    disabled = fields.List(fields.String(), load_default=list)
    settings = fields.Dict(keys=fields.String(), values=fields.Dict(), load_default=dict)


class CorsSchema(_Strict):
    allow_origins = fields.List(fields.String(validate=validate.Regexp(r"^(\*|https?://[^/\s]+)$")),
                                load_default=list)
    max_age = fields.Integer(load_default=600, validate=validate.Range(min=0))


class CredentialSchema(_Strict):
    id = fields.String(required=True, validate=validate.Length(min=1))
    secret_sha256 = fields.String(validate=validate.Regexp(r"^[0-9a-fA-F]{64}$",
                                                           error="must be 64 hex digits (sha256)"))
    secret = fields.String(validate=validate.Length(min=8))
    tenant = fields.String(required=True, validate=validate.Regexp(r"^[A-Za-z0-9_.-]{1,64}$"))
    grants = fields.List(fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_*?-]+:[A-Za-z0-9_*?-]+(:[^:\s]+)?$",
                                                                error="grants look like plugin:action[:stream]")),
                         load_default=list)

    @validates_schema
    def _one_secret(self, data: dict[str, Any], **_: Any) -> None:
        if ("secret" in data) == ("secret_sha256" in data):
            raise ValidationError("give exactly one of secret_sha256 or secret", "secret_sha256")


@dataclass(frozen=True)
class CredentialConfig:
    """One configured credential; only the sha256 of its secret is kept in memory."""

    id: str
    tenant: str
    grants: tuple[str, ...]
    secret_sha256: str
    plain_secret: bool = False


@dataclass(frozen=True)
class Config:
    """The validated configuration; sections are plain dicts of their validated keys."""

    server: dict[str, Any]
    storage: dict[str, Any]
    quotas: dict[str, Any]
    plugins: dict[str, Any]
    cors: dict[str, Any]
    credentials: tuple[CredentialConfig, ...]
    source: str = "<defaults>"
    warnings: tuple[str, ...] = field(default=())

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """The raw ``[plugins.<name>]`` table (an API's declared schema validates it at start-up)."""
        return dict(self.plugins["settings"].get(name, {}))


class ConfigSchema(_Strict):
    server = fields.Nested(ServerSchema, load_default=lambda: ServerSchema().load({}))
    storage = fields.Nested(StorageSchema, load_default=lambda: StorageSchema().load({}))
    quotas = fields.Nested(QuotasSchema, load_default=lambda: QuotasSchema().load({}))
    plugins = fields.Nested(PluginsSchema, load_default=lambda: PluginsSchema().load({}))
    cors = fields.Nested(CorsSchema, load_default=lambda: CorsSchema().load({}))
    credentials = fields.List(fields.Nested(CredentialSchema), load_default=list)


def _quota_tables(raw: dict[str, Any]) -> dict[str, Any]:
    """Move ``[quotas.<plugin>]`` tables under ``quotas.plugins`` so the schema can check them."""
    quotas = raw.get("quotas")
    if isinstance(quotas, dict):
        plugin_tables = {k: v for k, v in quotas.items() if isinstance(v, dict) and k != "plugins"}
        if plugin_tables:
            quotas = {k: v for k, v in quotas.items() if k not in plugin_tables}
            quotas.setdefault("plugins", {}).update(plugin_tables)
            raw = {**raw, "quotas": quotas}
    plugins = raw.get("plugins")
    if isinstance(plugins, dict):
        tables = {k: v for k, v in plugins.items() if isinstance(v, dict) and k not in ("settings",)}
        if tables:
            plugins = {k: v for k, v in plugins.items() if k not in tables}
            plugins.setdefault("settings", {}).update(tables)
            raw = {**raw, "plugins": plugins}
    return raw


def _parse_env_value(raw: str) -> Any:
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Apply ``EVENT_GATEWAY_<SECTION>__<KEY>`` variables; return the new mapping and key -> variable name."""
    result = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    origin: dict[str, str] = {}
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        rest = name[len(ENV_PREFIX):]
        if rest.lower() in ENV_ARRAYS:  # EVENT_GATEWAY_CREDENTIALS='[{id = "a", ...}]'
            value = _parse_env_value(environ[name])
            if not isinstance(value, list):
                raise ConfigError(f"{name}: expected a TOML array of tables, e.g. [{{id = \"a\", ...}}]")
            result[rest.lower()] = value
            origin[rest.lower()] = name
            continue
        if "__" not in rest:
            continue
        path = [part.lower() for part in name[len(ENV_PREFIX):].split("__")]
        if not all(path):
            raise ConfigError(f"{name}: empty key segment")
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {} if child is None else child
                if not isinstance(child, dict):
                    raise ConfigError(f"{name}: [{'.'.join(path[:-1])}] is not a table")
                node[part] = child
            else:
                node[part] = child = dict(child)
            node = child
        node[path[-1]] = _parse_env_value(environ[name])
        origin[".".join(path)] = name
    return result, origin


def _flatten_errors(messages: Any) -> list[tuple[str, str]]:
    """(dotted key, "; "-joined messages) per key, as configuration errors name keys (``credentials.0.id``)."""
    grouped: dict[str, list[str]] = {}
    for path, message in error_items(messages):
        grouped.setdefault(".".join(str(key) for key in path) or "<root>", []).append(message)
    return [(key, "; ".join(found)) for key, found in grouped.items()]


def _public_key(path: str) -> str:
    """Show quota/plugin tables where the user wrote them (quotas.plugins.x -> quotas.x)."""
    path = path.replace("quotas.plugins.", "quotas.").replace("plugins.settings.", "plugins.")
    return path.replace(".value.", ".").removesuffix(".value")  # marshmallow's Dict marks value errors


def validate_config(raw: Mapping[str, Any], *, source: str = "<dict>",
                    environ: Mapping[str, str] | None = None) -> Config:
    """Validate a raw mapping (after environment overrides) into a `Config`, or raise `ConfigError`."""
    merged, origin = apply_env_overrides(dict(raw), os.environ if environ is None else environ)
    merged = _quota_tables(merged)
    try:
        data = ConfigSchema().load(merged)
    except ValidationError as err:
        problems = []
        for key, message in _flatten_errors(err.messages):
            public = _public_key(key)
            where = f" (from {origin[public]})" if public in origin else ""
            problems.append(f"{public}{where}: {message}")
        raise ConfigError(f"invalid configuration in {source}: " + "; ".join(problems)) from None

    warnings: list[str] = []
    credentials = []
    seen: set[str] = set()
    digests: dict[str, str] = {}
    public = not is_loopback(data["server"]["host"])
    for index, cred in enumerate(data["credentials"]):
        if cred["id"] in seen:
            raise ConfigError(f"invalid configuration in {source}: credentials[{index}].id: "
                              f"duplicate id [{cred['id']}]")
        seen.add(cred["id"])
        plain = "secret" in cred
        digest = (hashlib.sha256(cred["secret"].encode()).hexdigest() if plain
                  else cred["secret_sha256"].lower())
        if digest in digests:  # a bare token (Bearer) could not tell the two apart
            raise ConfigError(f"invalid configuration in {source}: credentials[{index}]: same secret as "
                              f"credential [{digests[digest]}]; every credential needs its own secret")
        digests[digest] = cred["id"]
        if plain and public:
            warnings.append(f"credential [{cred['id']}] has a plain `secret` while serving on "
                            f"{data['server']['host']}: store `secret_sha256` instead")
        credentials.append(CredentialConfig(cred["id"], cred["tenant"], tuple(cred["grants"]), digest, plain))
    try:
        check_demo_secret(credentials, data["server"]["host"])
    except ConfigError as exc:
        raise ConfigError(f"invalid configuration in {source}: {exc}") from None
    return Config(server=data["server"], storage=data["storage"], quotas=data["quotas"], plugins=data["plugins"],
                  cors=data["cors"], credentials=tuple(credentials), source=source, warnings=tuple(warnings))


def config_path(explicit: str | os.PathLike[str] | None = None) -> Path:
    """Where the configuration file is: --config, else $EVENT_GATEWAY_CONFIG, else config/gateway.toml.

    config/gateway.toml is looked up in the working directory, then in the checkout the gateway runs from
    (``make run``'s file), so the command finds it wherever it is started.
    """
    if explicit:
        return Path(explicit)
    if os.environ.get("EVENT_GATEWAY_CONFIG"):
        return Path(os.environ["EVENT_GATEWAY_CONFIG"])
    if DEFAULT_CONFIG_PATH.is_file():
        return DEFAULT_CONFIG_PATH
    shipped = SOURCE_ROOT / DEFAULT_CONFIG_PATH
    return shipped if shipped.is_file() else DEFAULT_CONFIG_PATH


def load_config(path: str | os.PathLike[str] | None = None) -> Config:
    """Read, override from the environment and validate the configuration file."""
    file = config_path(path)
    try:
        with open(file, "rb") as fh:
            raw = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"configuration file not found: {file}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{file}: not valid TOML: {err}") from None
    return validate_config(raw, source=str(file))

