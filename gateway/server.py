"""Serving with gunicorn: the production server behind ``event-gateway serve`` (never Flask's dev server).

Each worker builds its own app from the validated configuration (no preloading), so no connection,
lock or SQLite handle is ever shared across a fork.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from .config import Config


class GatewayServer(BaseApplication):
    """A gunicorn application whose workers each call `create_app(config)`."""

    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self.gateway_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Hand our options to gunicorn (bind, workers, threads, ...)."""
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        """Build the app inside the worker."""
        from .app import create_app

        return create_app(self.gateway_config)


def gunicorn_options(config: Config, *, host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """gunicorn settings for the gateway: threaded workers, quiet access log, graceful timeouts."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "limit_request_line": 8190,
        "proc_name": "event-gateway",
    }


def serve(config: Config, *, host: str, port: int, workers: int, threads: int) -> None:
    """Run gunicorn in the foreground until it is stopped."""
    GatewayServer(config, gunicorn_options(config, host=host, port=port, workers=workers, threads=threads)).run()
