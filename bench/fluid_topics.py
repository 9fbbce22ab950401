"""Issue 4 targets: Fluid Topics retrieval and counting over 1,000,000 stored portal events.

For each storage backend (SQLite file, memory) the benchmark builds the gateway app serving only
``fluid_topics``, loads the events straight into the backend (``backend.append`` in batches of
``BENCH_FT_BATCH``; documents made by the plugin's own `plugins.fluid_topics.service.document`), spread
over the last year in time order with a realistic mix of event names and users, then measures:

* **page**: a 50-event page (``paging 1 x 50``, ``LatestFirst``) with a date range and a name filter
  (``khub.search``, about 30% of the events), for a random 30-day window and for the whole year,
  through the plugin's service layer (`service.retrieve`: validation, the backend-neutral query with its
  total count, rendering) and separately through Flask's test client (the full HTTP pipeline: auth,
  quotas, JSON). Target: p50 <= 10 ms (service layer; the HTTP figures are reported alongside).
* **count**: the event-count query by day over the whole year, all names (`service.count`, i.e. the
  backend's terms + date_histogram aggregation and the gap filling). Target: <= 1 s (median of runs).

When a target is missed, a cProfile of the slow operation is printed and saved, to show where the
time goes (backend or plugin).

Environment: BENCH_FT_EVENTS (default 1000000), BENCH_FT_BACKENDS (``sqlite,memory``), BENCH_FT_ROUNDS
(page queries per variant, 200), BENCH_FT_COUNT_ROUNDS (5), BENCH_FT_BATCH (20000), BENCH_FT_KEEP (a
directory: keep the SQLite database there and reuse it on the next run when it holds the same events).
"""

from __future__ import annotations

import cProfile
import io
import os
import pstats
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import BenchError, env_number

NAME = "fluid_topics"
TENANT = "bench"
SECRET = "bench-ft-secret-not-for-production"
HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
PAGE_TARGET_MS = 10.0
COUNT_TARGET_S = 1.0
DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS
#: Event names and their share of the traffic (the portal's usual mix).
NAMES = (("khub.search", 30), ("topic.display", 28), ("document.start_display", 14), ("page.display", 10),
         ("search_page.select", 6), ("custom_event.trigger", 4), ("feedback.send", 3), ("link.share", 3),
         ("personal_topic.create", 2))
REALMS = (["internal"], ["Keycloak"], ["internal", "Keycloak"], [])
GROUPS = (["ft:authenticated"], ["ft:administrator", "TechWriter"], ["nda_basic", "ft:authenticated"], [])
ROLES = (["PRINT_USER"], ["FEEDBACK_USER", "RATING_USER"], ["ADMIN", "ANALYTICS_USER"], [])


def settings() -> dict[str, Any]:
    """The run's knobs, from the environment."""
    backends = [b.strip() for b in os.environ.get("BENCH_FT_BACKENDS", "sqlite,memory").split(",") if b.strip()]
    if not backends or set(backends) - {"sqlite", "memory"}:
        raise BenchError("BENCH_FT_BACKENDS: expected a comma list of sqlite, memory")
    return {
        "events": int(env_number("BENCH_FT_EVENTS", 1_000_000, minimum=1)),
        "backends": backends,
        "rounds": int(env_number("BENCH_FT_ROUNDS", 200, minimum=1)),
        "count_rounds": int(env_number("BENCH_FT_COUNT_ROUNDS", 5, minimum=1)),
        "batch": int(env_number("BENCH_FT_BATCH", 20_000, minimum=1)),
        "keep": os.environ.get("BENCH_FT_KEEP") or None,
    }


# -- the data ---------------------------------------------------------------------------------------
def _users(rng: random.Random, n: int = 5000) -> list[dict[str, Any]]:
    return [{"id": f"user-{i:05d}", "realm": rng.choice(REALMS), "groups": rng.choice(GROUPS),
             "roles": rng.choice(ROLES)} for i in range(n)]


def generate(total: int, batch: int, end_ms: int) -> Iterator[list[Any]]:
    """Batches of stored events over the year before `end_ms`, in time order (deterministic)."""
    from plugins.fluid_topics import service

    rng = random.Random(20240501)
    users = _users(rng)
    names = [name for name, weight in NAMES for _ in range(weight)]
    start = end_ms - YEAR_MS
    step = YEAR_MS / total
    params = [{"searchQuery": {"terms": f"term {i}", "searchType": "EVERYWHERE"},
               "searchResponse": {"autocorrect": False, "nbResults": i}} for i in range(50)]
    made = 0
    while made < total:
        size = min(batch, total - made)
        events = []
        for i in range(made, made + size):
            at = int(start + i * step + rng.random() * step)
            user = users[rng.randrange(len(users))]
            name = names[rng.randrange(len(names))]
            fields = {"offline": False, "appName": "ft/turnkey-portal", "appVersion": "4.3.32", "name": name,
                      "contentLocale": "en-US", "uiLocale": "en-US", "sessionId": f"session-{i // 20}",
                      "user": user}
            doc = service.document(event_id=f"{i:08d}-bench", at=at, tenant=TENANT, fields=fields,
                                   parameters=params[i % 50] if name == "khub.search" else {},
                                   agent="Mozilla/5.0 (bench)", ip="10.0.0.1")
            events.append(service.to_event(TENANT, doc))
        made += size
        yield events


def config(url: str) -> dict[str, Any]:
    """The gateway configuration of the benchmark: only this plugin, quotas far above what it reaches."""
    return {
        "storage": {"url": url},
        "quotas": {"default": "100000000 per minute",
                   "fluid_topics": {"query": "100000000 per minute", "ingest": "100000000 per second"}},
        "plugins": {"enabled": ["fluid_topics"], "fluid_topics": {"retention_days": 400}},
        "credentials": [{"id": "bench-ft", "secret": SECRET, "tenant": TENANT, "grants": ["fluid_topics:*"]}],
    }


def _stored(app: Any) -> int:
    from gateway.query import Query
    from gateway.state import get_state

    result = get_state(app).backend.query(Query(tenant=TENANT, plugin="fluid_topics", limit=0))
    return int(result.total or 0)


def load(app: Any, cfg: dict[str, Any], end_ms: int) -> float:
    """Append the events in batches; returns the seconds it took."""
    from gateway.events import Stream
    from gateway.state import get_state

    store = get_state(app).backend
    store.ensure_stream(Stream(tenant=TENANT, plugin="fluid_topics", name="events"))
    began = time.perf_counter()
    done = 0
    for batch in generate(cfg["events"], cfg["batch"], end_ms):
        store.append(batch)
        done += len(batch)
        if done % 200_000 < len(batch):
            print(f"    loaded {done:>9,} events ({time.perf_counter() - began:5.1f}s)", flush=True)
    return time.perf_counter() - began


# -- measurements -----------------------------------------------------------------------------------
def _date(ms: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ms / 1000))


def page_bodies(end_ms: int, rounds: int, window_days: int | None) -> list[dict[str, Any]]:
    """Request bodies: random windows of `window_days` within the year (None: the whole year)."""
    rng = random.Random(window_days or 0)
    first_day = (end_ms - YEAR_MS) // DAY_MS + 1
    last_day = end_ms // DAY_MS
    bodies = []
    for _ in range(rounds):
        if window_days is None:
            start, end = first_day, last_day + 1
        else:
            start = rng.randrange(first_day, last_day - window_days + 1)
            end = start + window_days
        bodies.append({"startDate": _date(start * DAY_MS), "endDate": _date(end * DAY_MS),
                       "filters": {"name": ["khub.search"]}, "paging": {"page": 1, "perPage": 50},
                       "sortOrder": "LatestFirst"})
    return bodies


def _timed(call: Callable[[dict[str, Any]], Any], bodies: list[dict[str, Any]]) -> list[float]:
    call(bodies[0])  # warm caches (statement cache, imports)
    out = []
    for body in bodies:
        began = time.perf_counter()
        call(body)
        out.append((time.perf_counter() - began) * 1000)
    return out


def _summary(samples_ms: list[float]) -> dict[str, Any]:
    ordered = sorted(samples_ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(ordered), "p50_ms": statistics.median(ordered), "p95_ms": p95, "max_ms": ordered[-1]}


def _profile(call: Callable[[], Any], repeat: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(repeat):
        call()
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(18)
    return out.getvalue()


def measure(app: Any, cfg: dict[str, Any], end_ms: int) -> dict[str, Any]:
    """Page and count figures for a loaded app."""
    import json

    from plugins.fluid_topics import service

    client = app.test_client()
    results: dict[str, Any] = {"page": {}, "count": {}}
    profiles: dict[str, str] = {}
    with app.app_context():
        for label, window in (("30d", 30), ("year", None)):
            bodies = page_bodies(end_ms, cfg["rounds"], window)
            sample = service.retrieve(TENANT, bodies[0])
            if len(sample["results"]) != 50 or sample["paging"]["totalCount"] < 50:
                raise BenchError(f"page {label}: expected a full page of 50, got {len(sample['results'])} "
                                 f"(total {sample['paging']['totalCount']})")
            svc = _summary(_timed(lambda body: service.retrieve(TENANT, body), bodies))

            def over_http(body: dict[str, Any]) -> None:
                resp = client.post("/analytics/api/v1/events", data=json.dumps(body), headers=HEADERS)
                if resp.status_code != 200:
                    raise BenchError(f"HTTP {resp.status_code}: {resp.get_data(as_text=True)[:300]}")

            http = _summary(_timed(over_http, bodies))
            svc["passed"] = svc["p50_ms"] <= PAGE_TARGET_MS
            http["passed"] = http["p50_ms"] <= PAGE_TARGET_MS
            results["page"][label] = {"service": svc, "http": http, "total_count_first": sample["paging"]["totalCount"],
                                      "window_days": window or 365}
            if not svc["passed"]:
                profiles[f"page_{label}"] = _profile(lambda b=bodies[0]: service.retrieve(TENANT, b), 20)
        body = {"startDate": _date(end_ms - YEAR_MS + DAY_MS), "endDate": _date(end_ms + DAY_MS),
                "groupByPeriod": "day"}
        times = []
        answer: dict[str, Any] = {}
        for _ in range(cfg["count_rounds"]):
            began = time.perf_counter()
            answer = service.count(TENANT, body)
            times.append(time.perf_counter() - began)
        counted = sum(p["eventCount"] for r in answer["results"] for p in r["periods"])
        results["count"] = {"body": body, "runs_s": times, "p50_s": statistics.median(times), "max_s": max(times),
                            "names": len(answer["results"]), "periods": len(answer["results"][0]["periods"]),
                            "events_counted": counted, "passed": statistics.median(times) <= COUNT_TARGET_S}
        if not results["count"]["passed"]:
            profiles["count_day_year"] = _profile(lambda: service.count(TENANT, body), 1)
    results["profiles"] = profiles
    return results


def run_backend(kind: str, cfg: dict[str, Any]) -> dict[str, Any]:
    from gateway import create_app
    from gateway.state import get_state

    with tempfile.TemporaryDirectory(prefix="bench-ft-") as tmp:
        directory = Path(cfg["keep"]) if cfg["keep"] and kind == "sqlite" else Path(tmp)
        directory.mkdir(parents=True, exist_ok=True)
        db = directory / f"ft-{cfg['events']}.db"
        url = f"sqlite:///{db}" if kind == "sqlite" else "memory://"
        marker = directory / f"ft-{cfg['events']}.end_ms"
        reuse = kind == "sqlite" and cfg["keep"] and db.exists() and marker.exists()
        end_ms = int(marker.read_text()) if reuse else int(time.time() * 1000)
        app = create_app(config(url))
        try:
            if reuse and _stored(app) == cfg["events"]:
                load_s = None
                print(f"  {kind}: reusing {db} ({cfg['events']:,} events)", flush=True)
            else:
                print(f"  {kind}: loading {cfg['events']:,} events", flush=True)
                load_s = load(app, cfg, end_ms)
                if kind == "sqlite" and cfg["keep"]:
                    marker.write_text(str(end_ms))
            stored = _stored(app)
            if stored != cfg["events"]:
                raise BenchError(f"{kind}: {stored} events stored, expected {cfg['events']}")
            result = measure(app, cfg, end_ms)
            result.update({"storage_url": "sqlite:///<tmp>/ft.db" if kind == "sqlite" else url, "events": stored,
                           "load_s": load_s, "load_events_per_s": stored / load_s if load_s else None})
            if kind == "sqlite":
                result["db_bytes"] = sum(p.stat().st_size for p in directory.glob(f"{db.name}*"))
            return result
        finally:
            get_state(app).backend.close()


def report(cfg: dict[str, Any], results: dict[str, dict[str, Any]]) -> None:
    print()
    print(f"fluid_topics: {cfg['events']:,} events over one year; page = 50 events, name filter khub.search, "
          f"LatestFirst; {cfg['rounds']} queries per figure")
    print(f"{'backend':<8} {'query':<22} {'p50 ms':>9} {'p95 ms':>9} {'max ms':>9}  target")
    for kind, res in results.items():
        for label, page in res["page"].items():
            for layer in ("service", "http"):
                s = page[layer]
                verdict = ("PASS" if s["passed"] else "FAIL") if layer == "service" else \
                    ("(ok)" if s["passed"] else "(over)")
                print(f"{kind:<8} {f'page {label} {layer}':<22} {s['p50_ms']:>9.2f} {s['p95_ms']:>9.2f} "
                      f"{s['max_ms']:>9.2f}  p50 <= {PAGE_TARGET_MS:g} {verdict}")
        c = res["count"]
        print(f"{kind:<8} {'count by day, year':<22} {c['p50_s'] * 1000:>9.1f} {'':>9} {c['max_s'] * 1000:>9.1f}  "
              f"<= {COUNT_TARGET_S * 1000:g} ms {'PASS' if c['passed'] else 'FAIL'} "
              f"({c['names']} names x {c['periods']} days, {c['events_counted']:,} events)")
        if res.get("load_s"):
            print(f"{'':<8} load: {res['load_s']:.1f}s ({res['load_events_per_s']:,.0f} events/s)"
                  + (f", database {res['db_bytes'] / 1e6:,.0f} MB" if "db_bytes" in res else ""))
        for name, text in res["profiles"].items():
            print(f"\n{kind} profile of {name} (target missed):\n{text}")
    print()


def run() -> dict[str, Any]:
    cfg = settings()
    print(f"fluid_topics benchmark: backends {', '.join(cfg['backends'])}, {cfg['events']:,} events", flush=True)
    results = {kind: run_backend(kind, cfg) for kind in cfg["backends"]}
    report(cfg, results)
    passed = all(page["service"]["passed"] for res in results.values() for page in res["page"].values()) and \
        all(res["count"]["passed"] for res in results.values())
    return {"benchmark": NAME, "settings": cfg, "targets": {"page_p50_ms": PAGE_TARGET_MS, "count_s": COUNT_TARGET_S},
            "backends": results, "passed": passed}
