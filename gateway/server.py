"""Serving with gunicorn: the production server behind ``event-gateway serve`` (never Flask's dev server).

Workers are `gateway.buffered_worker.BufferedThreadWorker`: gunicorn's threaded worker, except that each
request is read whole in the worker's event loop before a thread serves it, and dropped (408) when it is not
complete within ``server.request_timeout``; so clients that stall mid-request cost a buffer, not a thread
(issue 10: of gunicorn gthread, gevent, granian, nginx in front and this, only nginx and this passed the stall
test, both at gthread's ingest throughput; this one needs no second process or system package, so ``make run``
serves the same way as production. The comparison harness, ``python -m bench.server_choice``, is in commit
fac9a53).

Each worker builds its own app from the validated configuration (no preloading), so no connection,
lock or SQLite handle is ever shared across a fork.
"""

from __future__ import annotations

import sys
from typing import Any

from gunicorn.app.base import BaseApplication

from .buffered_worker import BufferedThreadWorker
from .config import Config

WORKER_CLASS = f"{BufferedThreadWorker.__module__}.{BufferedThreadWorker.__qualname__}"


class GatewayServer(BaseApplication):
    """A gunicorn application whose workers each call `create_app(config)`."""

    def __init__(self, config: Config, options: dict[str, Any]) -> None:
        self.gateway_config = config
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        """Hand our options to gunicorn (bind, workers, threads, ...) and the worker its request limits."""
        for key, value in self.options.items():
            self.cfg.set(key, value)
        configure_worker(self.gateway_config)

    def load(self) -> Any:
        """Build the app inside the worker."""
        from .app import create_app

        return create_app(self.gateway_config)


def configure_worker(config: Config) -> None:
    """Limits gunicorn has no setting for, set on the worker class in the master (inherited by every fork)."""
    BufferedThreadWorker.request_timeout = float(config.server.get("request_timeout", 30.0))
    BufferedThreadWorker.max_body_bytes = int(config.server["max_body_bytes"])


#: How long a thread may hold the GIL while another waits (CPython's default is 5 ms). A request thread that
#: waits for a commit, or leads one (SQLite's group commit), wakes within this instead of behind a busy thread's 5 ms.
SWITCH_INTERVAL_S = 0.0005


def post_fork(server: Any, worker: Any) -> None:
    """In each worker: hand the GIL over quickly to threads woken by I/O (commits, sockets)."""
    sys.setswitchinterval(SWITCH_INTERVAL_S)


def gunicorn_options(config: Config, *, host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """gunicorn settings for the gateway: buffered threaded workers, quiet access log, graceful timeouts."""
    return {
        "bind": f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
        "workers": workers,
        "threads": threads,
        "worker_class": WORKER_CLASS,
        "worker_connections": 2000,  # open connections per worker, stalled ones included
        "timeout": 60,
        "graceful_timeout": 10,
        "keepalive": 5,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": "warning",
        "limit_request_line": 8190,
        "proc_name": "event-gateway",
        "post_fork": post_fork,
        "reuse_port": True,  # with a listener per worker (`own_listeners`): the kernel spreads connections
    }


def serve(config: Config, *, host: str, port: int, workers: int, threads: int) -> None:
    """Run gunicorn in the foreground until it is stopped."""
    GatewayServer(config, gunicorn_options(config, host=host, port=port, workers=workers, threads=threads)).run()
