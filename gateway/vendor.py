"""One vendor API = one declaration: the `VendorApi` a plugin returns from its `register_apis` hook.

Everything the core needs to serve an API is in this one frozen object, keyed by nothing: its name
(also its blueprint's name, its grant prefix, its ``[quotas.<name>]`` and ``[plugins.<name>]`` tables),
its routes, how it reads credentials, how it renders errors, its named quotas, the actions its grants
name, the schema of its settings table and its version. The core files the declaration away at start-up
and never asks the plugin again, so no hook compares ``api == NAME`` and a forgotten check cannot let
one plugin answer for another. `check_grant` is what ``event-gateway check``, ``keys new`` and
`create_app` use to refuse a credential grant naming an unknown plugin or action.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from flask import Blueprint

from .auth import standard_scheme
from .errors import render_gateway_error
from .openapi import ApiDoc

if TYPE_CHECKING:
    from flask import Request, Response
    from marshmallow import Schema

    from .auth import PresentedCredential
    from .errors import GatewayError

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
#: Grants on the gateway itself rather than on an API: ``gateway:metrics`` may read ``GET /metrics``.
GATEWAY_GRANT_PREFIX = "gateway"
GATEWAY_ACTIONS = ("metrics",)
_ACTION = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


class DeclarationError(TypeError):
    """A `VendorApi` that cannot be served as declared; the message names the API and the field."""


@dataclass(frozen=True, slots=True)
class Grant:
    """An action a credential may be granted (``<api>:<action>``), and whether it can name one stream.

    `per_stream` actions are checked with the stream the request addresses, so ``<api>:<action>:<stream>``
    narrows them; other actions only accept ``<api>:<action>`` (or ``...:*``).
    """

    action: str
    per_stream: bool = False
    description: str = ""

    def pattern(self, api: str) -> str:
        """How the grant is written in a credential, e.g. ``elastic_analytics:manage[:<stream>]``."""
        return f"{api}:{self.action}" + ("[:<stream>]" if self.per_stream else "")


@dataclass(frozen=True, kw_only=True)
class VendorApi:
    """Everything the core needs to serve one vendor API.

    Only `name` and `blueprint` are required: an API that declares nothing else reads ApiKey/Basic/Bearer
    credentials and answers errors in the gateway's own format. `grants` may be given as action names
    (``"write"``) or `Grant` objects; `quotas` maps quota names to default limits (``"1000 per second"``),
    which ``[quotas.<name>]`` may override; `settings_schema` is a marshmallow schema class validating the
    ``[plugins.<name>]`` table once at start-up (its result is what `gateway.api.plugin_settings` returns);
    `openapi` adds what the OpenAPI description cannot derive (title, security schemes of an own credential
    reader, the error body's schema; see `gateway.openapi`).
    `cors` False keeps the API closed to browsers even when ``cors.allow_origins`` lists origins (for
    vendors whose API refuses cross-origin requests, as AppDynamics' Events API does).
    """

    name: str
    blueprint: Blueprint
    read_credential: Callable[[Request], PresentedCredential | None] = standard_scheme
    render_error: Callable[[GatewayError], Response] = render_gateway_error
    quotas: Mapping[str, str] = field(default_factory=dict)
    grants: tuple[Grant, ...] = ()
    settings_schema: type[Schema] | None = None
    version: str | None = None
    openapi: ApiDoc | None = None
    cors: bool = True

    def __post_init__(self) -> None:
        where = f"API [{self.name}]"
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise DeclarationError(f"{where}: name must be lower-case letters, digits and _ (at most 64)")
        if self.name == GATEWAY_GRANT_PREFIX:
            raise DeclarationError(f"{where}: the name is reserved for the gateway's own grants (gateway:metrics)")
        if not isinstance(self.blueprint, Blueprint):
            raise DeclarationError(f"{where}: blueprint must be a flask.Blueprint, not {type(self.blueprint).__name__}")
        if self.blueprint.name != self.name:
            raise DeclarationError(f"{where}: its blueprint is named [{self.blueprint.name}]; "
                                   f"create it as Blueprint({self.name!r}, __name__)")
        for attr in ("read_credential", "render_error"):
            if not callable(getattr(self, attr)):
                raise DeclarationError(f"{where}: {attr} must be callable")
        grants = tuple(Grant(g) if isinstance(g, str) else g for g in self.grants)
        for grant in grants:
            if not isinstance(grant, Grant) or not _ACTION.match(grant.action):
                raise DeclarationError(f"{where}: grants: {grant!r} is not an action name or a Grant")
        actions = [grant.action for grant in grants]
        if len(set(actions)) != len(actions):
            raise DeclarationError(f"{where}: grants: an action is declared twice ({', '.join(actions)})")
        object.__setattr__(self, "grants", grants)
        if not isinstance(self.quotas, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                            for k, v in self.quotas.items()):
            raise DeclarationError(f"{where}: quotas must map quota names to limit strings")
        object.__setattr__(self, "quotas", MappingProxyType(dict(self.quotas)))
        if self.settings_schema is not None and not callable(getattr(self.settings_schema, "load", None)):
            raise DeclarationError(f"{where}: settings_schema must be a marshmallow Schema class")
        if self.openapi is not None and not isinstance(self.openapi, ApiDoc):
            raise DeclarationError(f"{where}: openapi must be a gateway.openapi.ApiDoc")

    @property
    def actions(self) -> tuple[str, ...]:
        """The declared action names."""
        return tuple(grant.action for grant in self.grants)

    def grant_patterns(self) -> list[str]:
        """The declared grants as written in credentials (for ``event-gateway plugins``)."""
        return [grant.pattern(self.name) for grant in self.grants]


def as_apis(result: Any, plugin: str) -> list[VendorApi]:
    """A `register_apis` result (one declaration, a sequence of them, or None) as a list, checked."""
    if result is None:
        return []
    found = [result] if isinstance(result, VendorApi) else list(result) if isinstance(result, list | tuple) else None
    if found is None or not all(isinstance(api, VendorApi) for api in found):
        raise DeclarationError(f"plugin [{plugin}]: register_apis must return a gateway.vendor.VendorApi "
                               f"(or a list of them), not {type(result).__name__}")
    return found


def check_grant(grant: str, apis: Mapping[str, VendorApi], known: Iterable[str]) -> str | None:
    """Why a credential grant cannot work, or None when it can.

    `apis` are the loaded declarations, `known` every plugin name that could be loaded (installed but
    disabled ones included). The plugin part must match a known plugin; when it matches only plugins
    that are not loaded the grant is left alone (as their settings are), else the action part must match
    a declared action, and a stream part other than ``*`` needs an action that can be narrowed to a stream.
    """
    plugin, _, rest = grant.partition(":")
    action, _, stream = rest.partition(":")
    if plugin == GATEWAY_GRANT_PREFIX:  # the gateway's own actions (``gateway:metrics`` reads /metrics)
        if stream or not any(fnmatchcase(name, action) for name in GATEWAY_ACTIONS):
            return f"grant [{grant}]: the gateway's own grants are {', '.join(f'gateway:{a}' for a in GATEWAY_ACTIONS)}"
        return None
    names = set(known) | set(apis)
    if plugin != "*" and not any(fnmatchcase(name, plugin) for name in names):
        return f"grant [{grant}] names an unknown plugin [{plugin}] (installed: {', '.join(sorted(names)) or 'none'})"
    loaded = [api for name, api in apis.items() if fnmatchcase(name, plugin)]
    if not loaded:
        return None
    matching = [g for api in loaded for g in api.grants if fnmatchcase(g.action, action)]
    if not matching and action != "*":
        declared = ", ".join(p for api in loaded for p in api.grant_patterns()) or "none"
        return f"grant [{grant}] names an unknown action [{action}] (declared: {declared})"
    if stream and stream != "*" and action != "*" and not any(g.per_stream for g in matching):
        return f"grant [{grant}]: action [{action}] cannot be narrowed to a stream (write [{plugin}:{action}])"
    return None
