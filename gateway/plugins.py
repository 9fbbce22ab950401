"""Building the plugin manager: built-in APIs and backends by module, third-party ones by entry point.

Like Datasette's `plugins.py`, built-in features are ordinary plugins: the vendor APIs under
`plugins/` and the backends under `backends/` are registered by module name, so the core never imports
them directly. Third-party distributions join through the entry-point group ``event_gateway``. The
manager lives on the app (`app.extensions`), not in a module global, so every app and test is isolated.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
from collections.abc import Iterable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy

from . import defaults, hookspecs
from .plugin_names import BUILTIN_APIS, BUILTIN_BACKENDS

if TYPE_CHECKING:
    from .storage import Backend

ENTRY_POINT_GROUP = "event_gateway"


class PluginLoadError(RuntimeError):
    """A configured plugin cannot be found or loaded."""


def allow_list(environ: dict[str, str] | None = None) -> set[str] | None:
    """``EVENT_GATEWAY_PLUGINS`` as a set of names, or None when unset (everything may load)."""
    value = (os.environ if environ is None else environ).get("EVENT_GATEWAY_PLUGINS")
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def build_plugin_manager(enabled: Iterable[str], *, disabled: Iterable[str] = (), allowed: set[str] | None = None,
                         extra: Iterable[tuple[str, Any]] = ()) -> pluggy.PluginManager:
    """Register core defaults, built-in backends, the enabled built-in APIs and installed plugins.

    `enabled` selects built-in APIs (it may also name installed plugins, which load anyway); `disabled`
    switches off any plugin by name; `allowed` (``EVENT_GATEWAY_PLUGINS``) restricts both built-in APIs
    and installed plugins. `extra` registers (name, object) pairs directly, for tests and embedding.
    """
    installed = {ep.name: ep for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}
    off = set(disabled)
    for name in [*enabled, *off]:
        if name not in BUILTIN_APIS and name not in installed:
            key = "plugins.disabled" if name in off else "plugins.enabled"
            raise PluginLoadError(f"{key}: unknown plugin [{name}] (built-in: {', '.join(sorted(BUILTIN_APIS))}; "
                                  f"installed: {', '.join(sorted(installed)) or 'none'})")

    def wanted(name: str) -> bool:
        return name not in off and (allowed is None or name in allowed)

    pm = pluggy.PluginManager("event_gateway")
    pm.add_hookspecs(hookspecs)
    pm.register(defaults, name="gateway.defaults")
    for module in BUILTIN_BACKENDS:
        pm.register(importlib.import_module(module), name=module)
    for name in enabled:
        if name in BUILTIN_APIS and wanted(name):
            pm.register(_import(BUILTIN_APIS[name]), name=name)
    for name, entry_point in installed.items():
        if not wanted(name) or pm.get_plugin(name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must say which one
            raise PluginLoadError(f"cannot load plugin [{name}] from {entry_point.value}: {exc}") from exc
        pm.register(plugin, name=name)
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


def _version(name: str, plugin: Any) -> str:
    """An installed plugin's distribution version, else the module's ``__version__``, else the gateway's."""
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP, name=name):
        if entry_point.dist is not None:
            return entry_point.dist.version
    from . import __version__

    return getattr(plugin, "__version__", None) or __version__


def _import(module: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PluginLoadError(f"cannot import plugin module {module}: {exc}") from exc


def known_plugin_names() -> set[str]:
    """Every plugin that could be loaded: the built-in APIs and the installed entry points."""
    return set(BUILTIN_APIS) | {ep.name for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)}


def registered_backends(pm: pluggy.PluginManager) -> dict[str, type[Backend]]:
    """URL scheme -> backend class, from every plugin's `storage_backends` hook (first registration wins)."""
    by_scheme: dict[str, type[Backend]] = {}
    for group in reversed(pm.hook.storage_backends()):  # pluggy calls newest first; built-ins were first
        for cls in group or ():
            for scheme in cls.schemes:
                by_scheme.setdefault(scheme, cls)
    return by_scheme


def describe_plugins(pm: pluggy.PluginManager, routes: dict[str, list[str]] | None = None) -> list[dict[str, Any]]:
    """Plugins with version, implemented hooks and routes, for the CLI and ``/_gateway/plugins``."""
    out = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is defaults:
            continue
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        out.append({"name": name, "version": _version(name, plugin), "hooks": hooks,
                    "builtin": name in BUILTIN_APIS or name in BUILTIN_BACKENDS,
                    "grants": list(getattr(plugin, "GRANTS", ())),
                    "routes": (routes or {}).get(name, [])})
    return out
