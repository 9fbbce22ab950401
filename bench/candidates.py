"""Serving candidates for issue 10 item 1, started the same way for the gateway and the bare app.

``python -m bench.candidates NAME APP --port P --workers W --threads T [--config C] [--timeout S]`` runs one
candidate in the foreground until SIGTERM:

* ``gthread``: gunicorn's threaded worker with its own limits (what ``serve`` ran before the choice).
* ``gevent``: gunicorn with the gevent worker class (one greenlet per connection, monkey-patched).
* ``granian``: granian's Rust HTTP server in WSGI mode, ``--http1-header-read-timeout``.
* ``buffered``: gunicorn with `gateway.buffered_worker` (whole requests read in the event loop).
* ``nginx``: nginx in front (request buffering, ``client_header_timeout``/``client_body_timeout``) of gunicorn
  gthread on a Unix socket.

APP is ``gateway`` (the config file's gateway) or ``bare`` (`bench.bare_app`). Used by `bench.server_choice`.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from gunicorn.app.base import BaseApplication

CANDIDATES = ("gthread", "gevent", "granian", "nginx", "buffered")


def gateway_app() -> Any:
    """The gateway built from ``$BENCH_GATEWAY_CONFIG`` (a WSGI factory for granian)."""
    from gateway.app import create_app
    from gateway.config import load_config

    return create_app(load_config(os.environ["BENCH_GATEWAY_CONFIG"]))


def bare_app() -> Any:
    from .bare_app import create_app

    return create_app()


class _Gunicorn(BaseApplication):
    def __init__(self, factory: Any, options: dict[str, Any]) -> None:
        self.factory, self.options = factory, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return self.factory()


def _gunicorn_options(bind: str, workers: int, threads: int, timeout: float) -> dict[str, Any]:
    return {"bind": bind, "workers": workers, "threads": threads, "worker_class": "gthread", "timeout": 60,
            "graceful_timeout": 10, "keepalive": 5, "accesslog": None, "errorlog": "-", "loglevel": "warning",
            "limit_request_line": 8190}


NGINX_CONF = """
daemon off;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr error;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/body;
  proxy_temp_path {tmp}/proxy;
  fastcgi_temp_path {tmp}/fastcgi;
  uwsgi_temp_path {tmp}/uwsgi;
  scgi_temp_path {tmp}/scgi;
  client_header_timeout {timeout}s;
  client_body_timeout {timeout}s;
  client_max_body_size 2m;
  client_body_buffer_size 1m;
  keepalive_timeout 5s;
  upstream app {{ server 127.0.0.1:{upstream}; keepalive 64; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_request_buffering on;
      proxy_buffering on;
    }}
  }}
}}
"""


def run_nginx(factory: Any, port: int, workers: int, threads: int, timeout: float) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-nginx-")
    conf = Path(tmp) / "nginx.conf"
    from .servers import free_port

    upstream = free_port()
    conf.write_text(NGINX_CONF.format(tmp=tmp, port=port, upstream=upstream, timeout=int(timeout)))
    pid = os.fork()
    if pid == 0:
        _Gunicorn(factory, _gunicorn_options(f"127.0.0.1:{upstream}", workers, threads, timeout)).run()
        os._exit(0)
    import socket
    import time

    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", upstream), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", tmp])

    def stop(*_: Any) -> None:
        nginx.terminate()
        os.kill(pid, signal.SIGTERM)
        nginx.wait(10)
        os.waitpid(pid, 0)
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    nginx.wait()
    stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.candidates")
    parser.add_argument("name", choices=CANDIDATES)
    parser.add_argument("app", choices=("gateway", "bare"))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    parser.add_argument("--config")
    parser.add_argument("--timeout", type=float, default=30.0)
    args = parser.parse_args()
    if args.config:
        os.environ["BENCH_GATEWAY_CONFIG"] = args.config
    factory = gateway_app if args.app == "gateway" else bare_app
    bind = f"127.0.0.1:{args.port}"
    if args.name == "gthread":
        _Gunicorn(factory, _gunicorn_options(bind, args.workers, args.threads, args.timeout)).run()
    elif args.name == "gevent":
        options = _gunicorn_options(bind, args.workers, args.threads, args.timeout)
        options.update(worker_class="gevent", worker_connections=1000)
        _Gunicorn(factory, options).run()
    elif args.name == "buffered":
        from gateway.buffered_worker import BufferedThreadWorker

        BufferedThreadWorker.request_timeout = args.timeout
        options = _gunicorn_options(bind, args.workers, args.threads, args.timeout)
        options.update(worker_class="gateway.buffered_worker.BufferedThreadWorker")
        _Gunicorn(factory, options).run()
    elif args.name == "granian":
        from granian import Granian
        from granian.http import HTTP1Settings

        Granian(f"bench.candidates:{args.app}_app", address="127.0.0.1", port=args.port, interface="wsgi",
                workers=args.workers, blocking_threads=args.threads, factory=True, log_level="warning",
                http="1", http1_settings=HTTP1Settings(header_read_timeout=int(args.timeout * 1000)),
                ).serve()
    else:
        run_nginx(factory, args.port, args.workers, args.threads, args.timeout)


if __name__ == "__main__":
    main()
