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


def build_plugin_manager(enabled: Iterable[str], *, allowed: set[str] | None = None,
                         extra: Iterable[tuple[str, Any]] = ()) -> pluggy.PluginManager:
    """Register core defaults, built-in backends, the enabled built-in APIs and installed plugins.

    `allowed` (from ``EVENT_GATEWAY_PLUGINS``) restricts both built-in APIs and entry-point plugins.
    `extra` registers (name, object) pairs directly, for tests and embedding.
    """
    pm = pluggy.PluginManager("event_gateway")
    pm.add_hookspecs(hookspecs)
    pm.register(defaults, name="gateway.defaults")
    for module in BUILTIN_BACKENDS:
        pm.register(importlib.import_module(module), name=module)
    for name in enabled:
        if name not in BUILTIN_APIS:
            raise PluginLoadError(f"plugins.enabled: unknown built-in plugin [{name}] "
                                  f"(available: {', '.join(sorted(BUILTIN_APIS))})")
        if allowed is None or name in allowed:
            pm.register(_import(BUILTIN_APIS[name]), name=name)
    for entry_point in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        if allowed is not None and entry_point.name not in allowed:
            continue
        if pm.get_plugin(entry_point.name) is not None:
            continue
        try:
            plugin = entry_point.load()
        except Exception as exc:  # a broken third-party plugin must say which one
            raise PluginLoadError(f"cannot load plugin [{entry_point.name}] from {entry_point.value}: {exc}") from exc
        pm.register(plugin, name=entry_point.name)
        _DISTRIBUTIONS[entry_point.name] = entry_point.dist.version if entry_point.dist else None
    for name, plugin in extra:
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm


_DISTRIBUTIONS: dict[str, str | None] = {}


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
        version = _DISTRIBUTIONS.get(name) or getattr(plugin, "__version__", None)
        if version is None:
            from . import __version__ as version
        out.append({"name": name, "version": version, "hooks": hooks,
                    "builtin": name in BUILTIN_APIS or name in BUILTIN_BACKENDS,
                    "routes": (routes or {}).get(name, [])})
    return out
