"""Issue 11 target: Fluid Topics arrays of 1,000 events into SQLite, relative to raw SQLite ``executemany``.

The gateway (``event-gateway serve``, SQLite storage with its default durability, 2 workers) receives
``POST /api/analytics/events`` with a JSON array of 1,000 portal events (the plugin's maximum) from the
load generator; its figure is events per second acknowledged with 2xx (and checked against the stored
count). The reference, measured in the same run, alternating with the gateway, is this process writing
the same documents with ``executemany`` + ``COMMIT`` per 1,000 into a minimal events table (unique event
id, time index, WAL, ``synchronous=FULL``): what SQLite itself does with the batch, without HTTP,
validation or the gateway's schema. Target: gateway events/s / raw events/s >= 0.3 (median of rounds).

Environment: BENCH_BATCH_DURATION (seconds per run, 5), BENCH_BATCH_ROUNDS (5), BENCH_BATCH_CONNECTIONS (4),
BENCH_SERVER_THREADS (gunicorn threads per worker; default: the gateway's default).
"""

from __future__ import annotations

import base64
import json
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from . import BenchError, env_number
from .bare_app import DURABLE_SCHEMA
from .ingest import cpu_text, worker_cpu
from .load import LoadResult, run_load, tool
from .servers import KEY_ID, SECRET, Server, start_gateway

NAME = "batch_ingest"
PATH = "/api/analytics/events"
BATCH = 1000
WORKERS = 2
TARGET = 0.3
HEADERS = {"Content-Type": "application/json",
           "Authorization": "Basic " + base64.b64encode(f"{KEY_ID}:{SECRET}".encode()).decode()}
NAMES = ("khub.search", "topic.display", "document.start_display", "page.display", "feedback.send")


def events(n: int = BATCH, seed: int = 11) -> list[dict[str, Any]]:
    """`n` portal events as Fluid Topics' tracker posts them (documented fields plus parameters)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        name = rng.choice(NAMES)
        out.append({
            "offline": False, "appName": "ft-portal", "appVersion": "5.1.12", "name": name,
            "contentLocale": "en-US", "uiLocale": "en-US", "sessionId": str(uuid.UUID(int=rng.getrandbits(128))),
            "user": {"id": f"user-{rng.randrange(5000)}", "realm": ["internal"], "groups": ["ft:authenticated"],
                     "roles": ["PRINT_USER"]},
            "page": {"id": f"ft/page/{i % 50}", "type": "topicPage", "url": f"/r/doc/{i % 50}", "name": "topic"},
            "query": f"term {rng.randrange(100)}" if name == "khub.search" else None,
        })
    return out


def settings() -> dict[str, Any]:
    from gateway.config import ServerSchema

    return {
        "duration_s": round(env_number("BENCH_BATCH_DURATION", 5, minimum=1)),
        "rounds": int(env_number("BENCH_BATCH_ROUNDS", 5, minimum=1)),
        "connections": int(env_number("BENCH_BATCH_CONNECTIONS", 4, minimum=1)),
        "server_threads": int(env_number("BENCH_SERVER_THREADS", ServerSchema().load({})["threads"], minimum=1)),
        "load_generator": tool(),
    }


# -- the reference: raw SQLite -------------------------------------------------------------------------

RAW_SCHEMA = DURABLE_SCHEMA  # the durable floor of the ingest benchmark stores into the same minimal table


def raw_sqlite(path: Path, docs: list[dict[str, Any]], duration: float) -> dict[str, float]:
    """executemany + COMMIT of the 1,000 documents (fresh ids) for `duration` seconds: events/s."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    for statement in RAW_SCHEMA:
        conn.execute(statement)
    texts = [json.dumps(doc, separators=(",", ":")) for doc in docs]
    stored, began = 0, time.perf_counter()
    cpu = time.process_time()
    while time.perf_counter() - began < duration:
        now = int(time.time() * 1000)
        rows = [(str(uuid.uuid4()), now, text) for text in texts]
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO events (id, timestamp, doc) VALUES (?, ?, ?)", rows)
        conn.execute("COMMIT")
        stored += len(rows)
    elapsed = time.perf_counter() - began
    cpu_share = (time.process_time() - cpu) / elapsed
    conn.close()
    return {"events_per_s": stored / elapsed, "cpu": round(cpu_share, 2)}


# -- the gateway ---------------------------------------------------------------------------------------

def stored_events(url: str) -> int:
    from backends.sqlite import SQLiteBackend
    from gateway.query import Query

    store = SQLiteBackend(url)
    try:
        return int(store.query(Query(tenant="bench", plugin="fluid_topics", limit=0)).total or 0)
    finally:
        store.close()


def gateway_run(server: Server, body: bytes, cfg: dict[str, Any], url: str) -> tuple[LoadResult, int]:
    server.check_alive()
    before_count = stored_events(url)
    before = server.cpu_seconds()
    result = run_load(server.port, PATH, body=body, headers=HEADERS, duration=cfg["duration_s"],
                      connections=cfg["connections"], threads=min(2, cfg["connections"]))
    result.worker_cpu = worker_cpu(before, server.cpu_seconds(), result.duration_s)
    server.check_alive()
    errors = sum(result.socket_errors.values())
    if result.non_2xx or errors or not result.ok:
        raise BenchError(f"gateway: {result.non_2xx} non-2xx answers and {errors} socket errors out of "
                         f"{result.requests} requests:\n{server.log_tail()}")
    time.sleep(1.0)  # requests in flight when the load stopped finish
    stored = stored_events(url) - before_count
    if not result.ok * BATCH <= stored <= (result.ok + cfg["connections"]) * BATCH:
        raise BenchError(f"{result.ok} arrays of {BATCH} acknowledged but {stored} events stored")
    return result, stored


def run() -> dict[str, Any]:
    cfg = settings()
    docs = events()
    body = json.dumps(docs, separators=(",", ":")).encode()
    print(f"batch_ingest benchmark: Fluid Topics arrays of {BATCH} events ({len(body):,} bytes) -> SQLite, "
          f"{WORKERS} workers, vs raw executemany; load generator {cfg['load_generator']}", flush=True)
    raw_runs: list[dict[str, float]] = []
    gw_runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir}/gateway.db"
        with start_gateway(workdir, url, workers=WORKERS, threads=cfg["server_threads"],
                           plugin="fluid_topics") as server:
            gateway_run(server, body, {**cfg, "duration_s": 1}, url)  # warm-up
            raw_sqlite(workdir / "raw.db", docs, 1)
            for round_no in range(1, cfg["rounds"] + 1):
                raw = raw_sqlite(workdir / "raw.db", docs, cfg["duration_s"])
                result, stored = gateway_run(server, body, cfg, url)
                gw = {"events_per_s": result.ok * BATCH / result.duration_s, "requests_per_s": result.rps,
                      "p50_ms": result.p50_ms, "p99_ms": result.p99_ms, "worker_cpu": result.worker_cpu,
                      "stored": stored, "acknowledged": result.ok * BATCH}
                raw_runs.append(raw)
                gw_runs.append(gw)
                print(f"  round {round_no}/{cfg['rounds']}: raw {raw['events_per_s']:9,.0f} events/s "
                      f"(CPU {raw['cpu']:.2f}), gateway {gw['events_per_s']:9,.0f} events/s "
                      f"(worker CPU {cpu_text(gw['worker_cpu'])}), "
                      f"ratio {gw['events_per_s'] / raw['events_per_s']:.3f}", flush=True)
    ratios = [g["events_per_s"] / r["events_per_s"] for r, g in zip(raw_runs, gw_runs, strict=True)]
    ratio = statistics.median(ratios)
    print()
    print(f"batch_ingest: {cfg['rounds']} rounds x {cfg['duration_s']}s, {cfg['connections']} connections, "
          f"buffered gthread x {cfg['server_threads']} threads")
    print(f"  raw executemany  {statistics.median(r['events_per_s'] for r in raw_runs):>10,.0f} events/s (median)")
    print(f"  gateway          {statistics.median(g['events_per_s'] for g in gw_runs):>10,.0f} events/s (median), "
          f"worker CPU per round {' '.join(cpu_text(g['worker_cpu']) for g in gw_runs)}")
    print(f"  ratio gateway/raw = {ratio:.3f} (median; per round {' '.join(f'{r:.3f}' for r in ratios)})  "
          f"target >= {TARGET:.2f}  {'PASS' if ratio >= TARGET else 'FAIL'}")
    print()
    return {"benchmark": NAME, "settings": cfg, "raw": raw_runs, "gateway": gw_runs, "ratios": ratios,
            "ratio": ratio, "target": TARGET, "passed": ratio >= TARGET}
