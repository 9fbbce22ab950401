"""Issue 13: PostgreSQL beside SQLite, measured in the same run: ingest over HTTP and the plugins' queries.

Exists to give operators sizing figures for the production shape (README "Running in production") and to
show what PostgreSQL costs or gains against the embedded default. A real PostgreSQL server is started for
the run the way the tests start one (`tests/pg_server.py`'s `PgServer`: initdb + pg_ctl on a free port in
a temporary directory, as the ``postgres`` user when run as root), but *durable*: ``fsync=on`` and
``synchronous_commit=on`` (the tests run with fsync off), as SQLite runs with ``synchronous=full``. Without
the server binaries the benchmark prints why and reports nothing for PostgreSQL.

**ingest**: two ``event-gateway serve`` instances, 2 workers each, one on a SQLite file and one on
PostgreSQL, the same settings otherwise. Each round measures, alternating SQLite then PostgreSQL (and
PostgreSQL first on even rounds): *single* events (the ES Behavioral Analytics page_view example, one
event per request) and *batches* (Fluid Topics ``POST /api/analytics/events`` with an array of
``BENCH_PG_ARRAY`` events). Reported: events/s (medians of the rounds), the per-round ratio PostgreSQL /
SQLite and its median, and CPU seconds per event of each gunicorn worker and of the PostgreSQL server's
processes (from ``/proc``) — the CPU figure divides into events/s a worker sustains on one core. After
each run the stored events must match the 2xx answers (plus the requests in flight when wrk stopped).

**query**: the same events loaded straight into both backends (``backend.append`` in batches), then, in
alternating rounds: the Fluid Topics page (`bench.fluid_topics`: 50 events of a 30-day window filtered on
``khub.search``, through `plugins.fluid_topics.service.retrieve`), the Fluid Topics count by day over the
year (`service.count`), and the AppDynamics group-by ``SELECT productBrand, count(*) FROM myProducts`` run
by the plugin's ADQL engine (`plugins.appdynamics.engine.run_query`) over the events and schema of
`bench.appdynamics`; both backends' answers must be equal. Reported: median milliseconds per backend and
the ratio PostgreSQL / SQLite.

Environment: BENCH_PG_PARTS (``ingest,query``), BENCH_PG_ROUNDS (5), BENCH_PG_DURATION (seconds per
measured run, 5), BENCH_PG_CONNECTIONS (16), BENCH_PG_BATCH_CONNECTIONS (6), BENCH_PG_ARRAY (100),
BENCH_PG_EVENTS (events per query dataset, 1000000), BENCH_PG_QUERIES (queries per round and figure, 20),
BENCH_SERVER_THREADS.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import BenchError, env_number
from .load import run_load, tool
from .servers import (
    AUTHORIZATION,
    COLLECTION,
    HOST,
    KEY_ID,
    REPO,
    SECRET,
    TENANT,
    Server,
    _spawn,
    _wait_ready,
    child_pids,
    create_collection,
    free_port,
    process_cpu_seconds,
)

NAME = "postgresql"
KINDS = ("sqlite", "postgresql")
SINGLE_PATH = f"/_application/analytics/{COLLECTION}/event/page_view"
SINGLE_BODY = json.dumps({"session": {"id": "123"}, "user": {"id": "456"},
                          "page": {"url": "https://www.elastic.co", "title": "Elastic"}},
                         separators=(",", ":")).encode()
BATCH_PATH = "/api/analytics/events"


def settings() -> dict[str, Any]:
    """The run's knobs, from the environment."""
    from gateway.config import ServerSchema

    parts = [p.strip() for p in os.environ.get("BENCH_PG_PARTS", "ingest,query").split(",") if p.strip()]
    if not parts or set(parts) - {"ingest", "query"}:
        raise BenchError("BENCH_PG_PARTS: expected a comma list of ingest, query")
    return {
        "parts": parts,
        "rounds": int(env_number("BENCH_PG_ROUNDS", 5, minimum=1)),
        "duration_s": round(env_number("BENCH_PG_DURATION", 5, minimum=1)),
        "connections": int(env_number("BENCH_PG_CONNECTIONS", 16, minimum=1)),
        # fewer for batches: 16 x 100 events in flight push latencies past wrk's 2 s timeout on a busy machine
        "batch_connections": int(env_number("BENCH_PG_BATCH_CONNECTIONS", 6, minimum=1)),
        "array": int(env_number("BENCH_PG_ARRAY", 100, minimum=1)),
        "events": int(env_number("BENCH_PG_EVENTS", 1_000_000, minimum=1000)),
        "queries": int(env_number("BENCH_PG_QUERIES", 20, minimum=1)),
        "server_threads": int(env_number("BENCH_SERVER_THREADS", ServerSchema().load({})["threads"], minimum=1)),
        "workers": 2,
        "load_generator": tool(),
    }


# -- the PostgreSQL server ------------------------------------------------------------------------------
def _pg_helpers() -> tuple[Any, Any]:
    """`PgServer` and `server_binaries` of the test fixtures (one way to run a server, shared)."""
    tests = str(REPO / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from pg_server import PgServer, server_binaries

    return PgServer, server_binaries


def start_postgres(workdir: Path) -> Any:
    """A durable PostgreSQL server in `workdir` (fsync and synchronous commit on), or None when not installed."""
    pg_server_class, server_binaries = _pg_helpers()
    bindir = server_binaries()
    if bindir is None:
        return None

    class DurablePgServer(pg_server_class):  # type: ignore[misc, valid-type]
        """The tests' server with the durability settings of a production server."""

        def start(self) -> None:
            options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.workdir} -c fsync=on "
                       "-c synchronous_commit=on -c max_connections=200 -c shared_buffers=128MB")
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.logfile), "-o", options, "-w", "-t", "60",
                      "start")

    server = DurablePgServer(bindir, workdir)
    server.init()
    server.start()
    return server


def _postgres_pids(server: Any) -> list[int]:
    """The postmaster and its children (connection backends, writers)."""
    try:
        master = int((server.data / "postmaster.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return []
    return [master, *child_pids(master)]


# -- the ingest servers ---------------------------------------------------------------------------------
def _config(workdir: Path, name: str, url: str, cfg: dict[str, Any]) -> Path:
    path = workdir / f"{name}.toml"
    path.write_text("\n".join([
        "[server]", f"host = {json.dumps(HOST)}", f"workers = {cfg['workers']}",
        f"threads = {cfg['server_threads']}",
        "[storage]", f"url = {json.dumps(url)}",
        "[quotas]", 'storage_url = "memory://"', 'default = "100000000 per minute"',
        "[quotas.elastic_analytics]", 'post_event = "100000000 per second"',
        "[quotas.fluid_topics]", 'ingest = "100000000 per second"', 'query = "100000000 per minute"',
        "[plugins]", 'enabled = ["elastic_analytics", "fluid_topics"]',
        "[[credentials]]", f"id = {json.dumps(KEY_ID)}",
        f"secret_sha256 = {json.dumps(hashlib.sha256(SECRET.encode()).hexdigest())}",
        f"tenant = {json.dumps(TENANT)}", 'grants = ["elastic_analytics:*", "fluid_topics:*"]', "",
    ]))
    return path


def _start(workdir: Path, name: str, url: str, cfg: dict[str, Any]) -> Server:
    from .servers import CLI

    config = _config(workdir, name, url, cfg)
    port = free_port()
    server = _spawn(name, [CLI, "serve", "--config", str(config), "--host", HOST, "--port", str(port)], workdir,
                    port, cfg["workers"], cfg["server_threads"])
    try:
        _wait_ready(server, "GET", "/_gateway/health", None, {})
        create_collection(server)
    except BaseException:
        server.stop()
        raise
    server.extra["url"] = url
    return server


def _batch_body(size: int) -> bytes:
    events = [{"offline": False, "appName": "ft/turnkey-portal", "appVersion": "4.3.32", "name": "khub.search",
               "contentLocale": "en-US", "uiLocale": "en-US", "sessionId": f"s-{i // 10}",
               "user": {"id": f"user-{i}", "realm": "internal", "groups": ["ft:authenticated"], "roles": []},
               "searchQuery": {"terms": f"term {i}", "searchType": "EVERYWHERE"}} for i in range(size)]
    # the trailing newline keeps the body from ending in "]": bench.load's Lua long string would close early
    return json.dumps(events, separators=(",", ":")).encode() + b"\n"


def _stored(url: str, plugin: str) -> int:
    from gateway.query import Query

    store = _backend(url)
    try:
        return int(store.query(Query(tenant=TENANT, plugin=plugin, limit=0)).total or 0)
    finally:
        store.close()


def _backend(url: str) -> Any:
    if url.startswith("sqlite"):
        from backends.sqlite import SQLiteBackend

        return SQLiteBackend(url)
    from backends.postgresql import PostgresBackend

    return PostgresBackend(url)


def _measure(server: Server, kind: str, shape: str, cfg: dict[str, Any], pg: Any) -> dict[str, Any]:
    """One measured run: events/s, latency, CPU per event of each worker and of PostgreSQL; stored checked."""
    per_request = 1 if shape == "single" else cfg["array"]
    plugin = "elastic_analytics" if shape == "single" else "fluid_topics"
    path, body = (SINGLE_PATH, SINGLE_BODY) if shape == "single" else (BATCH_PATH, _batch_body(cfg["array"]))
    headers = {"Content-Type": "application/json",
               "Authorization": AUTHORIZATION if shape == "single" else f"Bearer {SECRET}"}
    workers = server.worker_pids()
    db_pids = _postgres_pids(pg) if kind == "postgresql" else []
    before = _stored(server.extra["url"], plugin)
    cpu_before = {pid: process_cpu_seconds(pid) for pid in workers + db_pids}
    connections = cfg["connections"] if shape == "single" else cfg["batch_connections"]
    load = run_load(server.port, path, body=body, headers=headers, duration=cfg["duration_s"],
                    connections=connections, threads=2)
    cpu = {pid: process_cpu_seconds(pid) - cpu_before.get(pid, 0.0) for pid in workers + db_pids}
    server.check_alive()
    if load.non_2xx or sum(load.socket_errors.values()):
        raise BenchError(f"{server.name} {shape}: {load.non_2xx} non-2xx answers, {load.socket_errors} socket "
                         f"errors ({load.statuses}):\n{server.log_tail()}")
    time.sleep(0.5)
    stored = _stored(server.extra["url"], plugin) - before
    slack = connections * per_request if cfg["load_generator"] == "wrk" else 0
    if not 0 <= stored - load.ok * per_request <= slack:
        raise BenchError(f"{server.name} {shape}: {load.ok} requests acknowledged ({load.ok * per_request} events) "
                         f"but {stored} events stored")
    events = max(1, stored)
    return {"events_s": load.rps * per_request, "requests_s": load.rps, "p50_ms": load.p50_ms,
            "p99_ms": load.p99_ms, "events_stored": stored,
            "worker_cpu_us_per_event": [cpu[pid] / events * 1e6 for pid in workers],
            "postgres_cpu_us_per_event": sum(cpu[pid] for pid in db_pids) / events * 1e6 if db_pids else None}


def run_ingest(cfg: dict[str, Any], workdir: Path, pg: Any) -> dict[str, Any]:
    urls = {"sqlite": f"sqlite:///{workdir}/ingest.db", "postgresql": pg.create_database("ingest")}
    servers = {kind: _start(workdir, f"gateway-{kind}", urls[kind], cfg) for kind in KINDS}
    try:
        for kind in KINDS:  # warm-up: connections, pools, statement caches
            for shape in ("single", "batch"):
                _measure(servers[kind], kind, shape, {**cfg, "duration_s": 1}, pg)
        rounds: list[dict[str, Any]] = []
        for round_no in range(1, cfg["rounds"] + 1):
            order = KINDS if round_no % 2 else KINDS[::-1]
            row: dict[str, Any] = {}
            for shape in ("single", "batch"):
                for kind in order:
                    row[f"{kind}_{shape}"] = _measure(servers[kind], kind, shape, cfg, pg)
                row[f"ratio_{shape}"] = row[f"postgresql_{shape}"]["events_s"] / row[f"sqlite_{shape}"]["events_s"]
            rounds.append(row)
            print(f"  ingest round {round_no}/{cfg['rounds']}: single sqlite "
                  f"{row['sqlite_single']['events_s']:8,.0f} pg {row['postgresql_single']['events_s']:8,.0f} ev/s "
                  f"(x{row['ratio_single']:.2f}); batch sqlite {row['sqlite_batch']['events_s']:8,.0f} pg "
                  f"{row['postgresql_batch']['events_s']:8,.0f} ev/s (x{row['ratio_batch']:.2f})", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    summary: dict[str, Any] = {"rounds": rounds, "workers": cfg["workers"], "threads": cfg["server_threads"],
                               "array": cfg["array"]}
    for shape in ("single", "batch"):
        summary[f"ratio_{shape}"] = statistics.median(r[f"ratio_{shape}"] for r in rounds)
        for kind in KINDS:
            runs = [r[f"{kind}_{shape}"] for r in rounds]
            worker_us = statistics.median(statistics.mean(r["worker_cpu_us_per_event"]) * len(
                r["worker_cpu_us_per_event"]) for r in runs)
            summary[f"{kind}_{shape}"] = {
                "events_s": statistics.median(r["events_s"] for r in runs),
                "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                "p99_ms": statistics.median(r["p99_ms"] for r in runs),
                # CPU of all workers together per event: 1e6 / this = events/s one busy core sustains
                "workers_cpu_us_per_event": worker_us,
                "events_s_per_worker_core": 1e6 / worker_us if worker_us else None,
                "postgres_cpu_us_per_event": statistics.median(r["postgres_cpu_us_per_event"] for r in runs)
                if kind == "postgresql" else None,
            }
    return summary


# -- queries --------------------------------------------------------------------------------------------
def appd_group_by() -> tuple[Any, Callable[[Any, Any], Any]]:
    """The ADQL group-by of `bench.appdynamics` (``SELECT productBrand, count(*) FROM myProducts``), parsed once,
    and how to run it: the plugin's own engine (`plugins.appdynamics.engine.run_query`), as the HTTP layer does."""
    from plugins.appdynamics.adql.semantics import analyze_text
    from plugins.appdynamics.engine import run_query

    from .appdynamics import QUERIES, STEP_MS, T0

    analysis = analyze_text(QUERIES["terms"])

    def run(store: Any, stream: Any, events: int) -> Any:
        return run_query(store, stream, analysis, start_ms=None, end_ms=None, limit=100,
                         now_ms=T0 + events * STEP_MS + 60_000)

    return analysis, run


def _load_queries(app: Any, cfg: dict[str, Any], end_ms: int) -> tuple[dict[str, float], Any]:
    from gateway.events import FieldSpec, Stream
    from gateway.state import get_state

    from .appdynamics import SCHEMA, stored_batches
    from .fluid_topics import load

    store = get_state(app).backend
    ft_s = load(app, {"events": cfg["events"], "batch": 20_000}, end_ms)
    stream = store.create_stream(Stream(tenant=TENANT, plugin="appdynamics", name="myProducts",
                                                  schema=tuple(FieldSpec(n, t) for n, t in SCHEMA.items())))
    began = time.perf_counter()
    for batch in stored_batches(cfg["events"]):
        store.append(batch)
    return {"fluid_topics_load_s": ft_s, "appdynamics_load_s": time.perf_counter() - began}, stream


def _timed_ms(call: Callable[[], Any], repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        out.append((time.perf_counter() - began) * 1000)
    return out


def run_queries(cfg: dict[str, Any], workdir: Path, pg: Any) -> dict[str, Any]:
    from gateway import create_app
    from gateway.state import get_state
    from plugins.fluid_topics import service

    from .fluid_topics import config as ft_config
    from .fluid_topics import page_bodies

    end_ms = int(time.time() * 1000)
    urls = {"sqlite": f"sqlite:///{workdir}/query.db", "postgresql": pg.create_database("query")}
    apps = {kind: create_app(ft_config(urls[kind])) for kind in KINDS}
    try:
        loads, streams = {}, {}
        for kind in KINDS:
            print(f"  {kind}: loading {cfg['events']:,} Fluid Topics + {cfg['events']:,} AppDynamics events",
                  flush=True)
            loads[kind], streams[kind] = _load_queries(apps[kind], cfg, end_ms)
        _, group_by = appd_group_by()
        answers: dict[str, Any] = {}
        bodies = page_bodies(end_ms, cfg["queries"], 30)
        count_body = {"startDate": time.strftime("%Y-%m-%d", time.gmtime((end_ms - 364 * 86_400_000) / 1000)),
                      "endDate": time.strftime("%Y-%m-%d", time.gmtime((end_ms + 86_400_000) / 1000)),
                      "groupByPeriod": "day"}
        samples: dict[str, dict[str, list[float]]] = {k: {"ft_page": [], "ft_count": [], "appd_group_by": []}
                                                      for k in KINDS}
        rounds = []
        for round_no in range(1, cfg["rounds"] + 1):
            row: dict[str, Any] = {}
            for kind in (KINDS if round_no % 2 else KINDS[::-1]):
                app, store = apps[kind], get_state(apps[kind]).backend
                with app.app_context():
                    it = iter(bodies)
                    page = _timed_ms(lambda it=it: service.retrieve(TENANT, next(it)), len(bodies))
                    count = _timed_ms(lambda: service.count(TENANT, count_body), 1)
                grouped = _timed_ms(lambda s=store, k=kind: answers.__setitem__(
                    k, group_by(s, streams[k], cfg["events"])), max(1, cfg["queries"] // 4))
                row[kind] = {"ft_page_ms": statistics.median(page), "ft_count_ms": count[0],
                             "appd_group_by_ms": statistics.median(grouped)}
                samples[kind]["ft_page"] += page
                samples[kind]["ft_count"] += count
                samples[kind]["appd_group_by"] += grouped
            for figure in ("ft_page_ms", "ft_count_ms", "appd_group_by_ms"):
                row[f"ratio_{figure}"] = row["postgresql"][figure] / row["sqlite"][figure]
            rounds.append(row)
            print(f"  query round {round_no}/{cfg['rounds']}: " + "; ".join(
                f"{f} sqlite {row['sqlite'][f]:.1f} pg {row['postgresql'][f]:.1f} ms"
                for f in ("ft_page_ms", "ft_count_ms", "appd_group_by_ms")), flush=True)
        a, b = (answers[k].results for k in KINDS)
        if a != b or not a:
            raise BenchError(f"the group-by answers differ: sqlite {a!r:.200}..., postgresql {b!r:.200}...")
    finally:
        for app in apps.values():
            get_state(app).backend.close()
    out: dict[str, Any] = {"events": cfg["events"], "loads": loads, "rounds": rounds}
    for figure in ("ft_page_ms", "ft_count_ms", "appd_group_by_ms"):
        out[figure] = {kind: statistics.median(r[kind][figure] for r in rounds) for kind in KINDS}
        out[figure]["ratio"] = statistics.median(r[f"ratio_{figure}"] for r in rounds)
    return out


# -- report ---------------------------------------------------------------------------------------------
def report(cfg: dict[str, Any], results: dict[str, Any]) -> None:
    print()
    if "ingest" in results:
        r = results["ingest"]
        print(f"postgresql ingest: {cfg['workers']} workers x {cfg['server_threads']} threads per instance, "
              f"{cfg['load_generator']} {cfg['connections']} connections ({cfg['batch_connections']} for batches), "
              f"{cfg['duration_s']}s x {cfg['rounds']} "
              f"alternating rounds; batch = Fluid Topics array of {cfg['array']}")
        print(f"  {'shape':<7} {'backend':<11} {'events/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'worker CPU us/ev':>17} "
              f"{'ev/s per core':>14} {'pg CPU us/ev':>13}")
        for shape in ("single", "batch"):
            for kind in KINDS:
                s = r[f"{kind}_{shape}"]
                pg_cpu = f"{s['postgres_cpu_us_per_event']:13.0f}" if s["postgres_cpu_us_per_event"] else f"{'':>13}"
                print(f"  {shape:<7} {kind:<11} {s['events_s']:>10,.0f} {s['p50_ms']:>8.2f} {s['p99_ms']:>8.2f} "
                      f"{s['workers_cpu_us_per_event']:>17.0f} {s['events_s_per_worker_core']:>14,.0f} {pg_cpu}")
            key = f"ratio_{shape}"
            per_round = " ".join(f"{x[key]:.2f}" for x in r["rounds"])
            print(f"  {shape:<7} ratio postgresql/sqlite = {r[key]:.2f} (median of per-round ratios: {per_round})")
    if "query" in results:
        q = results["query"]
        print(f"postgresql queries over {q['events']:,} Fluid Topics and {q['events']:,} AppDynamics events "
              f"(medians of {cfg['rounds']} alternating rounds)")
        labels = {"ft_page_ms": "Fluid Topics page (30 days, 50)", "ft_count_ms": "Fluid Topics count by day, year",
                  "appd_group_by_ms": "AppDynamics group-by brand"}
        for figure, label in labels.items():
            f = q[figure]
            print(f"  {label:<33} sqlite {f['sqlite']:9.1f} ms  postgresql {f['postgresql']:9.1f} ms  "
                  f"ratio {f['ratio']:.2f}")
        for kind, load in q["loads"].items():
            print(f"  load {kind}: " + ", ".join(f"{k} {v:.1f}s" for k, v in load.items()))
    print()


def run() -> dict[str, Any]:
    cfg = settings()
    print(f"postgresql benchmark: parts {', '.join(cfg['parts'])}", flush=True)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-pg-") as tmp:
        workdir = Path(tmp)
        pg_dir = Path(tempfile.mkdtemp(prefix="bench-pg-server-"))  # chowned to postgres when root
        try:
            pg = start_postgres(pg_dir)
            if pg is None:
                reason = "PostgreSQL server binaries not found (/usr/lib/postgresql/*/bin; apt package postgresql)"
                print(f"postgresql benchmark skipped: {reason}")
                return {"benchmark": NAME, "skipped": reason, "passed": True}
            try:
                if "ingest" in cfg["parts"]:
                    results["ingest"] = run_ingest(cfg, workdir, pg)
                if "query" in cfg["parts"]:
                    results["query"] = run_queries(cfg, workdir, pg)
            finally:
                pg.stop()
        finally:
            import shutil

            shutil.rmtree(pg_dir, ignore_errors=True)
    report(cfg, results)
    return {"benchmark": NAME, "settings": cfg, "results": results, "passed": True}
