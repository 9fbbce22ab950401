"""Building the plugin manager: every plugin, built-in or not, is found by its ``event_gateway`` entry point.

Like Datasette's `plugins.py`, built-in features are ordinary plugins: the vendor APIs under `plugins/`
and the backends under `backends/` are entry points of this distribution (setup.cfg), exactly as a
third-party distribution declares its own, so adding a built-in needs no edit to the core and the core
never imports a plugin. An entry point is *built-in* when its distribution is event-gateway; built-in
backends (entry points named ``backends.<name>``) are always registered, built-in APIs when
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


def builtin_api_names() -> list[str]:
    """The built-in vendor APIs, in setup.cfg order: the default of ``plugins.enabled``."""
    return [name for name, ep in installed().items() if is_builtin(ep) and not name.startswith(BACKEND_PREFIX)]


def known_plugin_names() -> set[str]:
    """Every plugin that could be loaded: the installed entry points, built-in or not."""
    return set(installed())


def _load(name: str, ep: EntryPoint) -> Any:
    try:
        return ep.load()
    except Exception as exc:  # a broken plugin must say which one
        raise PluginLoadError(f"cannot load plugin [{name}] from {ep.value}: {exc}") from exc


def build_plugin_manager(enabled: Iterable[str], *, disabled: Iterable[str] = (), allowed: set[str] | None = None,
                         extra: Iterable[tuple[str, Any]] = ()) -> pluggy.PluginManager:
    """Register the built-in backends, the enabled built-in APIs and the installed third-party plugins.

    `enabled` selects built-in APIs (it may also name installed plugins, which load anyway); `disabled`
    switches off any plugin by name; `allowed` (``EVENT_GATEWAY_PLUGINS``) restricts both built-in APIs
    and installed plugins. `extra` registers (name, object) pairs directly, for tests and embedding.
    """
    found = installed()
    enabled, off = list(enabled), set(disabled)
    for name in [*enabled, *sorted(off)]:
        if name not in found:
            key = "plugins.disabled" if name in off else "plugins.enabled"
            builtin = sorted(n for n, ep in found.items() if is_builtin(ep) and not n.startswith(BACKEND_PREFIX))
            others = sorted(n for n, ep in found.items() if not is_builtin(ep))
            raise PluginLoadError(f"{key}: unknown plugin [{name}] (built-in: {', '.join(builtin)}; "
                                  f"installed: {', '.join(others) or 'none'})")

    def wanted(name: str) -> bool:
        return name not in off and (allowed is None or name in allowed)

    pm = pluggy.PluginManager("event_gateway")
    pm.add_hookspecs(hookspecs)
    builtins = {name: ep for name, ep in found.items() if is_builtin(ep)}
    for name, ep in builtins.items():
        if name.startswith(BACKEND_PREFIX):
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
