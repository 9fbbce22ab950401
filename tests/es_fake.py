"""A tiny Elasticsearch stand-in that fails on purpose: a real HTTP server on a free port.

No Elasticsearch can run on these machines, and the backend's outage behaviour (bounded retries with
backoff, 503, recovery) needs a cluster that answers 503/429 or stops answering on command. This is the
one place the suite fakes a component (issue 13 allows it here only): the backend's real client talks
HTTP to it. It answers just what the gateway's Elasticsearch backend asks on the paths the tests drive
(``GET /``, index checks, ``_cluster/health``, the stream catalog, ``_mget``, ``_bulk``, ``_search``)
and keeps catalog documents and bulk-created events in memory.

Control: `fail_with` (a list of statuses answered, one per request, before normal answers resume), `down`
(every request answers `down_status`), `lose_bulk_answers` (that many bulks are written, then answered
503), `lose_create_answers` (the same for catalog creates), `search_delay` (seconds every ``_search``
waits before answering), `requests` (method, path, monotonic arrival time of each request), `bodies` (the
JSON bodies sent).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

VERSION = "8.15.0"


class FakeCluster:
    """State shared by the handler threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.fail_with: list[int] = []
        self.down = False
        self.down_status = 503
        self.health = "green"
        self.requests: list[tuple[str, str, float]] = []
        self.bodies: list[tuple[str, str, Any]] = []  # (method, path, JSON body) of requests with a body
        self.docs: dict[tuple[str, str], dict[str, Any]] = {}  # (index, id) -> source
        self.events: dict[str, dict[str, Any]] = {}  # bulk-created events by id
        self.lose_bulk_answers = 0  # bulks written, then answered 503 (a lost acknowledgement)
        self.lose_create_answers = 0  # catalog creates written, then answered 503 (a lost acknowledgement)
        self.search_delay = 0.0  # seconds each _search waits before answering (a slow cluster)

    def failure(self) -> int | None:
        """The status to answer instead of a normal answer, if any."""
        with self.lock:
            if self.down:
                return self.down_status
            if self.fail_with:
                return self.fail_with.pop(0)
        return None

    def attempts(self, method: str, path_part: str) -> list[float]:
        """Arrival times of the requests with this method whose path contains `path_part`."""
        with self.lock:
            return [at for m, p, at in self.requests if m == method and path_part in p]


def _error(status: int) -> dict[str, Any]:
    kind = "es_rejected_execution_exception" if status == 429 else "unavailable_shards_exception"
    return {"error": {"root_cause": [{"type": kind, "reason": "failing on purpose"}], "type": kind,
                      "reason": "failing on purpose"}, "status": status}


def _handler(cluster: FakeCluster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            try:
                self.send_response(status)
                self.send_header("X-Elastic-Product", "Elasticsearch")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting (a timeout test)
                self.close_connection = True

        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def _serve(self) -> None:
            body = self._body()
            path = urlsplit(self.path).path
            with cluster.lock:
                cluster.requests.append((self.command, path, time.monotonic()))
                if body and not path.endswith("_bulk"):
                    cluster.bodies.append((self.command, path, json.loads(body)))
            status = cluster.failure()
            if status is not None:
                return self._send(status, _error(status))
            parts = [p for p in path.split("/") if p]
            if not parts:
                return self._send(200, {"name": "fake", "cluster_name": "fake-cluster", "cluster_uuid": "x",
                                        "version": {"number": VERSION, "build_flavor": "default"},
                                        "tagline": "You Know, for Search"})
            if parts == ["_cluster", "health"]:
                return self._send(200, {"cluster_name": "fake-cluster", "status": cluster.health,
                                        "number_of_nodes": 1})
            if self.command == "HEAD" and len(parts) == 1:
                return self._send(200)
            if parts[-1] == "_bulk":
                return self._bulk(body)
            if parts[-1] == "_mget":
                index = parts[0]
                ids = json.loads(body)["ids"]
                with cluster.lock:
                    docs = [{"_index": index, "_id": i, "found": (index, i) in cluster.docs} for i in ids]
                return self._send(200, {"docs": docs})
            if len(parts) == 3 and parts[1] == "_create":
                key = (parts[0], parts[2])
                with cluster.lock:
                    exists = key in cluster.docs
                    if not exists:
                        cluster.docs[key] = json.loads(body)
                if exists:
                    return self._send(409, {"error": {"type": "version_conflict_engine_exception",
                                                      "reason": "document already exists"}, "status": 409})
                with cluster.lock:
                    lost = cluster.lose_create_answers > 0
                    cluster.lose_create_answers -= lost
                if lost:
                    return self._send(503, _error(503))
                return self._send(201, {"_index": parts[0], "_id": parts[2], "result": "created"})
            if len(parts) == 3 and parts[1] == "_doc" and self.command == "GET":
                with cluster.lock:
                    source = cluster.docs.get((parts[0], parts[2]))
                if source is None:
                    return self._send(404, {"_index": parts[0], "_id": parts[2], "found": False})
                return self._send(200, {"_index": parts[0], "_id": parts[2], "found": True, "_source": source})
            if parts[-1] == "_search":  # no events: every asked aggregation is empty
                time.sleep(cluster.search_delay)
                asked = json.loads(body or b"{}").get("aggs") or {}
                empty = {"buckets": [], "doc_count": 0, "count": 0, "min": None, "max": None, "avg": None,
                         "sum": 0.0, "value": 0, "values": []}
                return self._send(200, {"hits": {"total": {"value": 0, "relation": "eq"}, "hits": []},
                                        "aggregations": {name: empty for name in asked}})
            return self._send(400, {"error": {"type": "illegal_argument_exception",
                                              "reason": f"fake cluster: no handler for {self.command} {path}"},
                                    "status": 400})

        def _bulk(self, body: bytes) -> None:
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            items = []
            with cluster.lock:
                for action, source in zip(lines[::2], lines[1::2], strict=True):
                    meta = action["create"]
                    created = meta["_id"] not in cluster.events
                    if created:
                        cluster.events[meta["_id"]] = source
                    items.append({"create": {"_index": meta["_index"], "_id": meta["_id"],
                                             "status": 201 if created else 409,
                                             **({} if created else {"error": {
                                                 "type": "version_conflict_engine_exception",
                                                 "reason": "document already exists"}})}})
            with cluster.lock:
                lost = cluster.lose_bulk_answers > 0
                cluster.lose_bulk_answers -= lost
            if lost:
                return self._send(503, _error(503))
            self._send(200, {"took": 1, "errors": any(i["create"]["status"] != 201 for i in items),
                             "items": items})

        do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _serve

    return Handler


@contextmanager
def fake_cluster() -> Iterator[tuple[FakeCluster, int]]:
    """Run a `FakeCluster` on 127.0.0.1 and a free port; yields (cluster, port)."""
    cluster = FakeCluster()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(cluster))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield cluster, server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
