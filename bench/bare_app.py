"""The baseline the gateway is measured against: a bare Flask route that parses JSON and answers 202.

It exists so the ingest benchmark compares the full pipeline with the cheapest possible Flask request
under *identical* serving: ``python -m bench.bare_app --port P --workers W --threads T`` runs it with
gunicorn options built by `gateway.server.gunicorn_options`, the same function behind
``event-gateway serve``.

``--durable-sqlite FILE`` adds the least a durable write can cost: before answering, the route stores the
body in a minimal events table (unique id, time index; WAL, ``synchronous=FULL``) through the gateway's
own group commit (`backends.sqlite.group_commit`), with nothing else of the gateway. The ingest benchmark
runs it beside the bare route: the ceiling any durable SQLite ingest can reach under the same server, load
and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import time
from collections.abc import Sequence
from typing import Any

from flask import Flask, request
from gunicorn.app.base import BaseApplication

PATH = "/_application/analytics/bench/event/page_view"


#: The durable variant's table (also the raw reference of `bench.batch_ingest`).
DURABLE_SCHEMA = ("CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, "
                  "timestamp INTEGER NOT NULL, doc TEXT NOT NULL)",
                  "CREATE INDEX IF NOT EXISTS events_by_time ON events (timestamp)")


def durable_store(path: str) -> Any:
    """``store(row)``: commit one ``(id, timestamp, doc)`` row durably, grouped with concurrent ones."""
    from backends.sqlite.group_commit import GroupCommitter

    connections: dict[int, sqlite3.Connection] = {}  # one per process: only the group's leader writes

    def commit_all(rows: Sequence[tuple[str, int, str]]) -> list[int]:
        conn = connections.get(os.getpid())
        if conn is None:
            conn = connections[os.getpid()] = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA busy_timeout = 10000")
            for statement in DURABLE_SCHEMA:
                conn.execute(statement)
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany("INSERT INTO events (id, timestamp, doc) VALUES (?, ?, ?)", rows)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return [1] * len(rows)

    return GroupCommitter(commit_all, lock_path=f"{path}-writelock").submit


def create_app(durable_path: str | None = None) -> Flask:
    """One POST route: parse the JSON body (with `durable_path`: store it durably), answer 202
    ``{"accepted":true}``."""
    from gateway.events import new_event_id  # the gateway's ids: the same index locality

    app = Flask("bench_bare")
    store = durable_store(durable_path) if durable_path else None

    @app.post(PATH)
    def post_event() -> tuple[dict[str, Any], int]:
        body = request.get_json()
        if store is not None:
            store((new_event_id(), time.time_ns() // 1_000_000, json.dumps(body)))
        return {"accepted": True}, 202

    return app


class BareServer(BaseApplication):
    """gunicorn running `create_app` in each worker (no preloading, like `gateway.server.GatewayServer`)."""

    def __init__(self, options: dict[str, Any], durable_path: str | None = None) -> None:
        self.options = options
        self.durable_path = durable_path
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Flask:
        return create_app(self.durable_path)


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
    parser.add_argument("--durable-sqlite", metavar="FILE", help="store each body durably in this SQLite file")
    args = parser.parse_args()
    BareServer(options(host=args.host, port=args.port, workers=args.workers, threads=args.threads),
               args.durable_sqlite).run()


if __name__ == "__main__":
    main()
