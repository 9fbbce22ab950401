"""The baseline the gateway is measured against: a bare Flask route that parses JSON and answers 202.

It exists so the ingest benchmark compares the full pipeline with the cheapest possible Flask request
under *identical* serving: ``python -m bench.bare_app --port P --workers W --threads T`` runs it with
gunicorn options built by `gateway.server.gunicorn_options`, the same function behind
``event-gateway serve``.
"""

from __future__ import annotations

import argparse
from typing import Any

from flask import Flask, request
from gunicorn.app.base import BaseApplication

PATH = "/_application/analytics/bench/event/page_view"


def create_app() -> Flask:
    """One POST route: parse the JSON body, answer 202 ``{"accepted":true}``."""
    app = Flask("bench_bare")

    @app.post(PATH)
    def post_event() -> tuple[dict[str, Any], int]:
        request.get_json()
        return {"accepted": True}, 202

    return app


class BareServer(BaseApplication):
    """gunicorn running `create_app` in each worker (no preloading, like `gateway.server.GatewayServer`)."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app()


def options(*, host: str, port: int, workers: int, threads: int) -> dict[str, Any]:
    """Exactly the gunicorn settings `event-gateway serve` would use with the same host/port/workers/threads."""
    from gateway.config import validate_config
    from gateway.server import gunicorn_options

    return gunicorn_options(validate_config({}, environ={}), host=host, port=port, workers=workers, threads=threads)


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--threads", type=int, required=True)
    args = parser.parse_args()
    BareServer(options(host=args.host, port=args.port, workers=args.workers, threads=args.threads)).run()


if __name__ == "__main__":
    main()
