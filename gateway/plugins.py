"""Building the plugin manager: every plugin, built-in or not, is found by its ``event_gateway`` entry point.

Like Datasette's `plugins.py`, built-in features are ordinary plugins: the vendor APIs under `plugins/`
and the backends under `backends/` are entry points of this distribution (setup.cfg), exactly as a
third-party distribution declares its own, so adding a built-in needs no edit to the core and the core
never imports a plugin. An entry point is *built-in* when its distribution is event-gateway; built-in
backends (entry points named ``backends.<name>``) are registered unless disabled, built-in APIs when
``plugins.enabled`` names them (the default: all of them), third-party plugins unless switched off.
The manager lives on the app (`app.extensions`), not in a module global, so every app and test is isolated.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
from collections.abc import Iterable
from importlib.metadata import EntryPoint
from typing import TYPE_CHECKING, Any

import pluggy

from . import hookspecs
from .config import ConfigError
from .vendor import DeclarationError, VendorApi, as_apis

if TYPE_CHECKING:
    from .state import Api
    from .storage import Backend

ENTRY_POINT_GROUP = "event_gateway"
DISTRIBUTION = "event-gateway"
BACKEND_PREFIX = "backends."


class PluginLoadError(RuntimeError):
    """A configured plugin cannot be found or loaded."""


def allow_list(environ: dict[str, str] | None = None) -> set[str] | None:
    """``EVENT_GATEWAY_PLUGINS`` as a set of names, or None when unset (everything may load)."""
    value = (os.environ if environ is None else environ).get("EVENT_GATEWAY_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def installed() -> dict[str, EntryPoint]:
    """Every ``event_gateway`` entry point by name, this distribution's (the built-ins) included."""
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def _dist_name(ep: EntryPoint) -> str:
    return re.sub(r"[-_.]+", "-", ep.dist.name).lower() if ep.dist is not None else ""


def is_builtin(ep: EntryPoint) -> bool:
    """Whether an entry point ships with the gateway itself."""
    return _dist_name(ep) == DISTRIBUTION


def builtin_api_names(found: dict[str, EntryPoint] | None = None) -> list[str]:
    """The built-in vendor APIs: what ``plugins.enabled`` means when it is not set."""
    found = installed() if found is None else found
    return [name for name, ep in found.items() if is_builtin(ep) and not name.startswith(BACKEND_PREFIX)]


def known_plugin_names() -> set[str]:
    """Every plugin that could be loaded: the installed entry points, built-in or not."""
    return set(installed())


def _load(name: str, ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must say which one
        raise PluginLoadError(f"cannot load plugin [{name}] from {ep.value}: {exc}") from exc


def build_plugin_manager(enabled: Iterable[str] | None, *, disabled: Iterable[str] = (),
                         allowed: set[str] | None = None,
                         extra: Iterable[tuple[str, Any]] = ()) -> pluggy.PluginManager:
    """Register the built-in backends, the enabled built-in APIs and the installed third-party plugins.

    `enabled` selects built-in APIs (None: all of them; it may also name installed plugins, which load
    anyway); `disabled` switches off any plugin by name; `allowed` (``EVENT_GATEWAY_PLUGINS``) restricts
    both built-in APIs and installed plugins. `extra` registers (name, object) pairs directly, for tests and embedding.
    """
    found = installed()
    off = set(disabled)
    enabled = list(enabled) if enabled is not None else builtin_api_names(found)
    for name in [*enabled, *sorted(off)]:
        if name not in found:
            key = "plugins.disabled" if name in off else "plugins.enabled"
            builtin = sorted(builtin_api_names(found))
            others = sorted(n for n, ep in found.items() if not is_builtin(ep))
            raise PluginLoadError(f"{key}: unknown plugin [{name}] (built-in: {', '.join(builtin)}; "
                                  f"installed: {', '.join(others) or 'none'})")

    def wanted(name: str) -> bool:
        return name not in off and (allowed is None or name in allowed)

    pm = pluggy.PluginManager("event_gateway")
    pm.add_hookspecs(hookspecs)
    builtins = {name: ep for name, ep in found.items() if is_builtin(ep)}
    for name, ep in builtins.items():
        if name.startswith(BACKEND_PREFIX) and name not in off:  # never left out by EVENT_GATEWAY_PLUGINS
            pm.register(_load(name, ep), name=name)
    for name in enabled:
        if name in builtins and wanted(name) and pm.get_plugin(name) is None:
            pm.register(_load(name, builtins[name]), name=name)
    for name, ep in found.items():
        if name in builtins or not wanted(name) or pm.get_plugin(name) is not None:
            continue
        pm.register(_load(name, ep), name=name)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def declared_apis(pm: pluggy.PluginManager) -> dict[str, tuple[str, VendorApi]]:
    """API name -> (plugin name, declaration), from every plugin's `register_apis`; names must be unique."""
    found: dict[str, tuple[str, VendorApi]] = {}
    for plugin, result in _per_plugin(pm):
        try:
            apis = as_apis(result, plugin)
        except DeclarationError as exc:
            raise ConfigError(str(exc)) from None
        for api in apis:
            if api.name in found:  # (names cannot start with "_": the core's `_gateway` is safe)
                raise ConfigError(f"two plugins declare the API [{api.name}]: [{found[api.name][0]}] and [{plugin}]")
            if len(apis) == 1 and api.name != plugin:
                raise ConfigError(f"plugin [{plugin}] declares the API [{api.name}]: a plugin's one API takes "
                                  "the plugin's (entry point's) name")
            found[api.name] = (plugin, api)
    return found


def _per_plugin(pm: pluggy.PluginManager) -> list[tuple[str, Any]]:
    """(plugin name, its `register_apis` result) for every plugin implementing the hook, in pluggy's call order."""
    out = []
    for impl in reversed(pm.hook.register_apis.get_hookimpls()):
        try:
            out.append((impl.plugin_name, impl.function()))
        except TypeError as exc:  # DeclarationError, or a VendorApi(...) missing a field
            raise ConfigError(f"plugin [{impl.plugin_name}]: invalid VendorApi declaration: {exc}") from None
    return out


def registered_backends(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """URL scheme -> backend class, from every plugin's `storage_backends` hook (first registration wins)."""
    by_scheme: dict[str, type[Backend]] = {}
    for group in reversed(pm.hook.storage_backends()):  # pluggy calls newest first; built-ins were first
        for cls in group or ():
            for scheme in cls.schemes:
                by_scheme.setdefault(scheme, cls)
    return by_scheme


def _version(name: str, apis: list[Api]) -> str:
    """The declared version, else the installed distribution's, else the gateway's."""
    for api in apis:
        if api.declaration.version:
            return api.declaration.version
    ep = installed().get(name)
    if ep is not None and ep.dist is not None and not is_builtin(ep):
        return ep.dist.version
    from . import __version__

    return __version__


def describe_plugins(pm: pluggy.PluginManager, apis: dict[str, Api] | None = None) -> list[dict[str, Any]]:
    """Plugins with version, implemented hooks, grants and routes, for the CLI and ``/_gateway/plugins``.

    Grants, routes and version come from the plugin's `VendorApi` declaration(s).
    """
    found = installed()
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        own = [api for api in (apis or {}).values() if api.plugin == name]
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        ep = found.get(name)
        out.append({"name": name, "version": _version(name, own), "hooks": hooks,
                    "builtin": ep is not None and is_builtin(ep),
                    "grants": [pattern for api in own for pattern in api.declaration.grant_patterns()],
                    "routes": [route for api in own for route in api.routes]})
    return out
