"""Per-app state: everything `create_app` builds, kept in ``app.extensions["event_gateway"]``.

Nothing here is a module global, so two apps in one process (tests, embedding) never share plugins,
credentials, quotas or storage.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, Request, Response, current_app

if TYPE_CHECKING:
    import pluggy

    from .auth import CredentialStore, PresentedCredential
    from .config import Config
    from .errors import GatewayError
    from .quotas import Quotas
    from .storage import Backend
    from .vendor import VendorApi

EXTENSION_KEY = "event_gateway"


@dataclass
class Api:
    """One served API: its declaration, and what the core derived from it and the configuration.

    The reader and renderer are copied out of the declaration so the per-request path reads one attribute.
    `quotas` are the declared defaults with ``[quotas.<name>]`` applied; `settings` is the ``[plugins.<name>]``
    table as loaded by the declared schema (once, at start-up); `plugin` is the name the plugin is registered under.
    """

    name: str
    read_credential: Callable[[Request], PresentedCredential | None]
    render_error: Callable[[GatewayError], Response]
    declaration: VendorApi
    plugin: str
    quotas: dict[str, str] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)
    settings: Any = None


@dataclass
class GatewayState:
    """The app's configuration, plugin manager, backend, credentials, APIs and quota enforcer."""

    config: Config
    pm: pluggy.PluginManager
    backend: Backend
    credentials: CredentialStore
    apis: dict[str, Api] = field(default_factory=dict)
    prefixes: list[tuple[str, str]] = field(default_factory=list)  # (path prefix, api), longest first
    quotas: Quotas | None = None

    def api_for_path(self, path: str) -> Api | None:
        """The API that claims an unmatched path (for 404/405 in the right format), by longest prefix.

        A root route (ES's ``GET /``) claims ``/`` itself, not every path no other API claims.
        """
        for prefix, name in self.prefixes:
            if prefix == "/" and path != "/":
                continue
            if path.startswith(prefix) or path == prefix.rstrip("/"):
                return self.apis[name]
        return None


def get_state(app: Flask | None = None) -> GatewayState:
    """The state of `app`, or of the current app."""
    return (app or current_app._get_current_object()).extensions[EXTENSION_KEY]  # type: ignore[attr-defined]
