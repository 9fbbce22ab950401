"""Issue 9 targets: AppDynamics publish over HTTP to SQLite, and three ADQL queries over 1,000,000 stored events.

**publish** (SQLite only): ``event-gateway serve`` with 2 workers on a SQLite file, the ``myProducts`` schema
created over HTTP, then arrays of 1,000 events POSTed to ``/events/publish/myProducts`` (headers
``X-Events-API-AccountName``/``X-Events-API-Key``, ``application/vnd.appd.events+json;v=2``) by the shared load
generator (`bench.load`: wrk when installed). The reference, measured in the same run and alternating with it
(reference, gateway, reference, gateway ...), is raw SQLite ``executemany`` of the same documents into a
minimal events table (unique key, time index, WAL, ``synchronous=FULL``), one transaction per 1,000 documents.
Targets: >= 20,000 events/s and >= 0.2 of the reference (medians of the rounds). After each gateway round the
stored events must equal 1,000 x the 2xx answers (plus at most one array per connection in flight at stop).
CPU seconds of each gunicorn worker are read from ``/proc`` around each round (per-worker CPU per event).
The load has one connection per configured server thread (2 workers x ``threads``; 8 by default): the server's
own concurrency, and enough connections that the kernel's spreading of them over the workers (``SO_REUSEPORT``,
by hash) is never all-on-one: with 4, 5 of 30 wrk runs put every connection on one worker, leaving the other
idle. The reference is one sequential writer, as the issue defines it.
Timestamps (``BENCH_APPD_TIMESTAMPS``): ``pickup`` (default) publishes the documents as the vendor's own publish
example does, without ``eventTimestamp``, so each event is stamped with its pickup time, and the reference
stores each array with the time of its insert: both time indexes grow at their end, as with live traffic.
``replayed`` sends the same 1,000 explicit ``eventTimestamp`` values in every array (and the reference the same
1,000 times): every array then inserts at 1,000 scattered places of the time indexes, which costs both sides
more as the tables grow (history re-imported over and over; kept to compare with earlier runs).

**query** (SQLite file and memory): 1,000,000 events loaded straight into the backend in the layout the HTTP
layer stores (``backend.append``), then, in process through `plugins.appdynamics.engine.run_query` (the HTTP
layer adds parsing and JSON rendering only), ``SELECT productBrand, count(*)``, a filtered ``count(*)`` and
``series(eventTimestamp, '1h')`` with ``avg(price)``; each alternating with a reference computing the same
answer directly (SQLite: the hand-written SQL; memory: a plain Python loop over the documents as dicts).
Target: <= 1 s per query (median of the rounds; the first round, which may build caches, is reported too).

Environment: BENCH_APPD_PARTS (``publish,query``), BENCH_APPD_EVENTS (1000000), BENCH_APPD_BACKENDS
(``sqlite,memory``), BENCH_APPD_ROUNDS (5), BENCH_APPD_DURATION (seconds per publish run, 5),
BENCH_APPD_CONNECTIONS (2 x threads), BENCH_APPD_REF_BATCHES (reference batches per round, 200), BENCH_SERVER_THREADS,
BENCH_APPD_TIMESTAMPS (``pickup`` or ``replayed``).
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import BenchError, env_number

NAME = "appdynamics"
TENANT = "bench"
SECRET = "bench-appd-secret-not-for-production"
SCHEMA = {"id": "integer", "productBrand": "string", "productName": "string", "userRating": "integer",
          "price": "float", "description": "string"}
CONTENT_TYPE = "application/vnd.appd.events+json;v=2"
HEADERS = {"X-Events-API-AccountName": TENANT, "X-Events-API-Key": SECRET, "Content-Type": CONTENT_TYPE,
           "Accept": CONTENT_TYPE}
PUBLISH_EVENTS_TARGET = 20_000.0
PUBLISH_RATIO_TARGET = 0.2
PUBLISH_WORKERS = 2
QUERY_TARGET_S = 1.0
ARRAY = 1_000
T0 = 1_760_000_000_000
STEP_MS = 2_500
QUERIES = {
    "terms": "SELECT productBrand, count(*) FROM myProducts",
    "filtered_count": "SELECT count(*) FROM myProducts WHERE productBrand = 'Brand 7' AND userRating >= 4",
    "series_avg": "SELECT series(eventTimestamp, '1h'), avg(price) FROM myProducts",
}


def settings() -> dict[str, Any]:
    """The run's knobs, from the environment."""
    parts = [p.strip() for p in os.environ.get("BENCH_APPD_PARTS", "publish,query").split(",") if p.strip()]
    backends = [b.strip() for b in os.environ.get("BENCH_APPD_BACKENDS", "sqlite,memory").split(",") if b.strip()]
    if not parts or set(parts) - {"publish", "query"}:
        raise BenchError("BENCH_APPD_PARTS: expected a comma list of publish, query")
    if not backends or set(backends) - {"sqlite", "memory"}:
        raise BenchError("BENCH_APPD_BACKENDS: expected a comma list of sqlite, memory")
    from gateway.config import ServerSchema

    threads = int(env_number("BENCH_SERVER_THREADS", ServerSchema().load({})["threads"], minimum=1))
    return {
        "parts": parts,
        "backends": backends,
        "events": int(env_number("BENCH_APPD_EVENTS", 1_000_000, minimum=1)),
        "rounds": int(env_number("BENCH_APPD_ROUNDS", 5, minimum=1)),
        "duration_s": round(env_number("BENCH_APPD_DURATION", 5, minimum=1)),
        "connections": int(env_number("BENCH_APPD_CONNECTIONS", PUBLISH_WORKERS * threads, minimum=1)),
        "ref_batches": int(env_number("BENCH_APPD_REF_BATCHES", 200, minimum=1)),
        "server_threads": threads,
        "timestamps": _choice("BENCH_APPD_TIMESTAMPS", ("pickup", "replayed")),
    }


def _choice(name: str, allowed: tuple[str, ...]) -> str:
    value = os.environ.get(name, allowed[0]).strip()
    if value not in allowed:
        raise BenchError(f"{name}: expected one of {', '.join(allowed)}")
    return value


# -- documents --------------------------------------------------------------------------------------
def document(i: int, rng: random.Random) -> dict[str, Any]:
    """One product event as a client publishes it (the schema's fields; eventTimestamp in epoch ms)."""
    return {"id": i, "productBrand": f"Brand {rng.randrange(40)}", "productName": f"Product {rng.randrange(1000)}",
            "userRating": rng.randrange(1, 6), "price": round(rng.random() * 100, 2),
            "description": "A product description of a realistic length for a catalogue entry.",
            "eventTimestamp": T0 + i * STEP_MS}


def stored_batches(total: int, batch: int = 20_000) -> Iterator[list[Any]]:
    """Core events in the HTTP layer's storage layout (`/work/notes/appd-storage.md`), in time order."""
    from gateway.events import Event

    rng = random.Random(20261205)
    for start in range(0, total, batch):
        out = []
        for i in range(start, min(total, start + batch)):
            doc = document(i, rng)
            at = doc.pop("eventTimestamp")
            out.append(Event(tenant=TENANT, plugin="appdynamics", stream="myProducts", type="myProducts",
                             data=doc, timestamp=at, received_at=at + 1_000, id=f"{i:08d}"))
        yield out


# -- publish over HTTP ------------------------------------------------------------------------------
def _config(workdir: Path, url: str, workers: int, threads: int) -> Path:
    from .servers import HOST

    path = workdir / "gateway.toml"
    lines = ["[server]", f"host = {json.dumps(HOST)}", f"workers = {workers}", f"threads = {threads}",
             "[storage]", f"url = {json.dumps(url)}", "[quotas]", 'storage_url = "memory://"',
             'default = "100000000 per minute"', "[plugins]", 'enabled = ["appdynamics"]', "[[credentials]]",
             'id = "bench-appd"', f"secret_sha256 = {json.dumps(hashlib.sha256(SECRET.encode()).hexdigest())}",
             f"tenant = {json.dumps(TENANT)}", 'grants = ["appdynamics:*"]', ""]
    path.write_text("\n".join(lines))
    return path


def _start(workdir: Path, url: str, workers: int, threads: int) -> Any:
    from .servers import CLI, HOST, _spawn, _wait_ready, free_port, request

    config = _config(workdir, url, workers, threads)
    port = free_port()
    server = _spawn("gateway", [CLI, "serve", "--config", str(config), "--host", HOST, "--port", str(port),
                                "--workers", str(workers), "--threads", str(threads)], workdir, port, workers, threads)
    try:
        _wait_ready(server, "GET", "/_gateway/health", None, {})
        body = json.dumps({"schema": {k: v for k, v in SCHEMA.items()}}).encode()
        status, answer = request(port, "POST", "/events/schema/myProducts", body, HEADERS)
        if status != 201:
            raise BenchError(f"POST /events/schema/myProducts answered {status}: {answer[:300]!r}\n"
                             f"{server.log_tail()}")
    except BaseException:
        server.stop()
        raise
    return server


def _stored(url: str) -> int:
    from backends.sqlite import SQLiteBackend
    from gateway.query import Query

    store = SQLiteBackend(url)
    try:
        return int(store.query(Query(tenant=TENANT, plugin="appdynamics", streams=("myProducts",), limit=0)).total
                   or 0)
    finally:
        store.close()


def reference_insert(db: Path, docs: list[bytes], batches: int, round_no: int, *, replayed: bool) -> float:
    """Raw SQLite ``executemany`` of the documents (one transaction per array); returns events/s. Times:
    `replayed`, the same 1,000 per array; else each array's insert time (as the gateway's pickup time)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, ts INTEGER NOT NULL, doc TEXT NOT NULL)")
        conn.execute("CREATE INDEX IF NOT EXISTS events_ts ON events (ts)")
        rows = [[(f"r{round_no}-{b}-{i}", T0 + i, doc) for i, doc in enumerate(docs)] for b in range(batches)]
        began = time.perf_counter()
        for batch in rows:
            if not replayed:
                now = int(time.time() * 1000)
                batch = [(key, now, doc) for key, _, doc in batch]
            conn.execute("BEGIN")
            conn.executemany("INSERT INTO events (id, ts, doc) VALUES (?, ?, ?)", batch)
            conn.execute("COMMIT")
        return batches * len(docs) / (time.perf_counter() - began)
    finally:
        conn.close()


def run_publish(cfg: dict[str, Any]) -> dict[str, Any]:
    from .load import run_load, tool

    rng = random.Random(7)
    events = [document(i, rng) for i in range(ARRAY)]
    replayed = cfg["timestamps"] == "replayed"
    if not replayed:
        for event in events:
            del event["eventTimestamp"]
    body = json.dumps(events, separators=(",", ":")).encode()
    docs = [json.dumps(e, separators=(",", ":")) for e in events]
    workers, threads = PUBLISH_WORKERS, cfg["server_threads"]
    with tempfile.TemporaryDirectory(prefix="bench-appd-") as tmp:
        workdir = Path(tmp)
        url = f"sqlite:///{workdir}/appd.db"
        server = _start(workdir, url, workers, threads)
        try:
            run_load(server.port, "/events/publish/myProducts", body=body, headers=HEADERS, duration=1,
                     connections=cfg["connections"], threads=2)  # warm-up
            rounds = []
            for round_no in range(1, cfg["rounds"] + 1):
                reference = reference_insert(workdir / "reference.db", docs, cfg["ref_batches"], round_no,
                                             replayed=replayed)
                cpu_before = server.cpu_seconds()
                before = _stored(url)
                load = run_load(server.port, "/events/publish/myProducts", body=body, headers=HEADERS,
                                duration=cfg["duration_s"], connections=cfg["connections"], threads=2)
                server.check_alive()
                timeouts = load.socket_errors.get("timeout", 0)  # wrk gives up after 2 s; the server may still store
                if load.non_2xx > timeouts or sum(load.socket_errors.values()) > timeouts:
                    raise BenchError(f"publish: {load.non_2xx} non-2xx answers, {load.socket_errors} socket errors "
                                     f"({load.statuses}):\n{server.log_tail()}")
                time.sleep(0.5)
                stored = _stored(url) - before
                slack = (cfg["connections"] + timeouts) * ARRAY if tool() == "wrk" else 0
                if not 0 <= stored - load.ok * ARRAY <= slack:
                    raise BenchError(f"publish round {round_no}: {load.ok} arrays acknowledged but {stored} events "
                                     f"stored")
                cpu_after = server.cpu_seconds()
                cpu = {pid: cpu_after.get(pid, 0.0) - before_s for pid, before_s in cpu_before.items()}
                events_s = load.rps * ARRAY
                rounds.append({"reference_events_s": reference, "gateway_events_s": events_s,
                               "ratio": events_s / reference, "arrays_2xx": load.ok, "events_stored": stored,
                               "timeouts": timeouts, "p50_ms": load.p50_ms, "p99_ms": load.p99_ms,
                               "worker_cpu_s": list(cpu.values()),
                               "workers_cpu_us_per_event": sum(cpu.values()) / max(1, stored) * 1e6})
                print(f"  publish round {round_no}/{cfg['rounds']}: reference {reference:9,.0f} ev/s, gateway "
                      f"{events_s:9,.0f} ev/s, ratio {events_s / reference:.3f}, worker CPU "
                      f"{', '.join(f'{c:.2f}s' for c in cpu.values())} "
                      f"({rounds[-1]['workers_cpu_us_per_event']:.0f} us/event)", flush=True)
        finally:
            server.stop()
    events_s = statistics.median(r["gateway_events_s"] for r in rounds)
    ratio = statistics.median(r["ratio"] for r in rounds)
    return {"load_generator": tool(), "timestamps": cfg["timestamps"],
            "workers": workers, "threads": threads, "array": ARRAY, "rounds": rounds,
            "gateway_events_s": events_s, "reference_events_s": statistics.median(r["reference_events_s"]
                                                                                  for r in rounds),
            "ratio": ratio, "passed": events_s >= PUBLISH_EVENTS_TARGET and ratio >= PUBLISH_RATIO_TARGET}


# -- queries --------------------------------------------------------------------------------------------
def _sqlite_reference(db: Path) -> dict[str, Callable[[], Any]]:
    conn = sqlite3.connect(db)
    brand, rating, price = (f"json_extract(data, '$.\"{f}\"')" for f in ("productBrand", "userRating", "price"))
    return {
        "terms": lambda: conn.execute(f"SELECT {brand} AS k, count(*) AS c FROM events WHERE k IS NOT NULL "
                                      f"GROUP BY k ORDER BY c DESC, k LIMIT 10").fetchall(),
        "filtered_count": lambda: conn.execute(f"SELECT count(*) FROM events WHERE {brand} = 'Brand 7' AND "
                                               f"{rating} >= 4").fetchall(),
        "series_avg": lambda: conn.execute(f"SELECT timestamp - timestamp % 3600000 AS h, avg({price}) FROM events "
                                           f"GROUP BY h ORDER BY h").fetchall(),
    }


def _memory_reference(total: int) -> dict[str, Callable[[], Any]]:
    from collections import Counter

    docs = [(event.timestamp, event.data) for batch in stored_batches(total) for event in batch]

    def series() -> Any:
        sums: dict[int, list[float]] = {}
        for at, data in docs:
            entry = sums.setdefault(at - at % 3_600_000, [0.0, 0])
            entry[0] += data["price"]
            entry[1] += 1
        return {k: s / n for k, (s, n) in sums.items()}

    return {
        "terms": lambda: Counter(data["productBrand"] for _, data in docs).most_common(10),
        "filtered_count": lambda: sum(1 for _, d in docs if d["productBrand"] == "Brand 7" and d["userRating"] >= 4),
        "series_avg": series,
    }


def run_queries(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from gateway.events import FieldSpec, Stream
    from plugins.appdynamics.adql.semantics import analyze_text
    from plugins.appdynamics.engine import run_query

    with tempfile.TemporaryDirectory(prefix="bench-appd-q-") as tmp:
        db = Path(tmp) / "appd.db"
        if kind == "sqlite":
            from backends.sqlite import SQLiteBackend

            backend: Any = SQLiteBackend(f"sqlite:///{db}")
        else:
            from backends.memory import MemoryBackend

            backend = MemoryBackend("memory://")
        try:
            stream = backend.create_stream(Stream(tenant=TENANT, plugin="appdynamics", name="myProducts",
                                                  schema=tuple(FieldSpec(n, t) for n, t in SCHEMA.items())))
            began = time.perf_counter()
            for batch in stored_batches(cfg["events"]):
                backend.append(batch)
            load_s = time.perf_counter() - began
            print(f"  {kind}: loaded {cfg['events']:,} events in {load_s:.1f}s", flush=True)
            reference = _sqlite_reference(db) if kind == "sqlite" else _memory_reference(cfg["events"])
            now = T0 + cfg["events"] * STEP_MS + 60_000
            out: dict[str, Any] = {"load_s": load_s}
            for name, text in QUERIES.items():
                analysis = analyze_text(text)
                rows: list[dict[str, float]] = []
                answer: Any = None
                for _ in range(cfg["rounds"]):
                    cpu, wall = time.process_time(), time.perf_counter()
                    reference[name]()
                    ref = (time.perf_counter() - wall, time.process_time() - cpu)
                    cpu, wall = time.process_time(), time.perf_counter()
                    answer = run_query(backend, stream, analysis, start_ms=None, end_ms=None, limit=100, now_ms=now)
                    rows.append({"engine_s": time.perf_counter() - wall, "engine_cpu_s": time.process_time() - cpu,
                                 "reference_s": ref[0], "reference_cpu_s": ref[1]})
                median = statistics.median(r["engine_s"] for r in rows)
                out[name] = {"query": text, "rounds": rows, "first_s": rows[0]["engine_s"], "median_s": median,
                             "median_cpu_s": statistics.median(r["engine_cpu_s"] for r in rows),
                             "reference_median_s": statistics.median(r["reference_s"] for r in rows),
                             "rows": len(answer.results), "total": answer.total, "passed": median <= QUERY_TARGET_S}
                print(f"  {kind} {name}: median {median:.3f}s (cpu {out[name]['median_cpu_s']:.3f}s, first "
                      f"{rows[0]['engine_s']:.3f}s), reference {out[name]['reference_median_s']:.3f}s", flush=True)
            return out
        finally:
            backend.close()


# -- report -----------------------------------------------------------------------------------------------
def report(cfg: dict[str, Any], results: dict[str, Any]) -> None:
    print()
    if "publish" in results:
        p = results["publish"]
        print(f"appdynamics publish: arrays of {ARRAY} events, SQLite, {p['workers']} workers x {p['threads']} "
              f"threads, {p['load_generator']}, {cfg['connections']} connections, {cfg['rounds']} rounds, "
              f"{cfg['timestamps']} timestamps")
        print(f"  gateway {p['gateway_events_s']:,.0f} events/s (target >= {PUBLISH_EVENTS_TARGET:,.0f}); "
              f"raw executemany {p['reference_events_s']:,.0f} events/s; ratio {p['ratio']:.3f} "
              f"(target >= {PUBLISH_RATIO_TARGET}) {'PASS' if p['passed'] else 'FAIL'}")
    for kind, res in results.get("query", {}).items():
        for name in QUERIES:
            q = res[name]
            print(f"  {kind:<7} {name:<15} median {q['median_s'] * 1000:8.1f} ms (cpu {q['median_cpu_s'] * 1000:7.1f},"
                  f" first {q['first_s'] * 1000:8.1f}; reference {q['reference_median_s'] * 1000:8.1f})  "
                  f"<= {QUERY_TARGET_S * 1000:g} ms {'PASS' if q['passed'] else 'FAIL'}")
    print()


def run() -> dict[str, Any]:
    cfg = settings()
    print(f"appdynamics benchmark: parts {', '.join(cfg['parts'])}, {cfg['events']:,} events", flush=True)
    results: dict[str, Any] = {}
    if "publish" in cfg["parts"]:
        results["publish"] = run_publish(cfg)
    if "query" in cfg["parts"]:
        results["query"] = {kind: run_queries(kind, cfg) for kind in cfg["backends"]}
    report(cfg, results)
    passed = all(q["passed"] for res in results.get("query", {}).values() for name, q in res.items()
                 if name in QUERIES) and results.get("publish", {}).get("passed", True)
    return {"benchmark": NAME, "settings": cfg, "results": results, "passed": passed}
