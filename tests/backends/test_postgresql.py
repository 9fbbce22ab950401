"""What the PostgreSQL backend promises beyond the contract suite, on a real server (`tests/pg_server.py`).

Options are validated before anything connects; results equal the reference (the memory backend) over
random events with mixed types; several hosts racing on the same ids store each once; migrations are
applied once when processes start together; a stopped database gives `BackendUnavailable` within the
retry budget and the same backend object works again once it is back.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pg_server import PgServer
from support import ROOT

from backends.memory import MemoryBackend
from backends.postgresql import PostgresBackend
from backends.postgresql.schema import MIGRATIONS
from gateway.events import Event, Stream
from gateway.query import Aggregation, AllOf, AnyOf, Filter, Not, Query, Sort
from gateway.storage import Backend, BackendUnavailable, StreamNotFound

T, P = "acme", "analytics"
FAST_FAIL = {"retries": 1, "retry_wait_ms": 50, "pool_timeout_ms": 500, "connect_timeout_s": 1}


def ev(id: str, stream: str = "s", ts: int = 0, data: dict[str, Any] | None = None, type: Any = "click") -> Event:
    return Event(tenant=T, plugin=P, stream=stream, type=type, data=data or {}, timestamp=ts, received_at=ts + 1,
                 id=id)


# -- options -------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("url", "options", "message"), [
    ("postgresql://u@h/db", {"pool_sise": 3}, "unknown PostgreSQL option(s) pool_sise"),
    ("postgresql://u@h/db?sslmod=require", {}, "unknown parameter [sslmod]"),
    ("postgresql://u@h/db", {"sslmode": "always"}, "storage.options.sslmode"),
    ("postgresql://u@h/db", {"pool_size": 0}, "storage.options.pool_size"),
    ("postgresql://u@h/db", {"pool_size": 2, "pool_min_size": 3}, "pool_min_size must not exceed pool_size"),
    ("postgresql://u@h/db", {"schema": "Robert'); DROP"}, "storage.options.schema"),
    ("postgresql:///db", {}, "name the database server"),
])
def test_bad_options_stop_start_up(url: str, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError) as caught:
        PostgresBackend(url, options)
    assert message in str(caught.value)


def test_health_reports_server_version_and_hides_the_password(postgres_url: str) -> None:
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    backend = PostgresBackend(url.replace("postgresql://", "postgres://"), {"schema": "eg_health"})
    try:
        facts = backend.health()
    finally:
        backend.close()
    with psycopg.connect(postgres_url) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
    assert facts["server_version"] == version
    assert facts["schema"] == "eg_health" and facts["schema_version"] == len(MIGRATIONS)
    assert "s3cret" not in repr(facts)


# -- same answers as the reference ---------------------------------------------------------------------
VALUES = [None, True, False, 0, 1, 1.5, -2, 7, 10**15, "a", "b", "ab", "B", "é", "", [1, "a"], ["b", 2.5, True],
          [], [[1]], {"x": 1}, ["a", "a", 1, 1.0]]


def _random_events(rng: random.Random, n: int) -> list[Event]:
    events = []
    for i in range(n):
        data: dict[str, Any] = {}
        for key in ("v", "w", "n"):
            if rng.random() < 0.8:
                data[key] = rng.choice(VALUES)
        data["num"] = rng.choice([rng.randrange(-50, 50), rng.randrange(100) / 4, [rng.randrange(9), 3], None])
        data["deep"] = {"k": rng.choice(["x", "y", 1, ["x", 2]])} if rng.random() < 0.7 else rng.choice([1, "x"])
        events.append(Event(tenant=T, plugin=P, stream=rng.choice(["s1", "s2"]), type=rng.choice(["a", "b", "c"]),
                            data=data, timestamp=rng.randrange(-5, 40) * 86_400_000 * 3 + rng.randrange(1000),
                            received_at=i, id=f"r{i:03d}", user_id=rng.choice([None, "u1", "u2"])))
    return events


QUERIES = [
    {"filters": (Filter("data.v", "eq", "a"),)},
    {"filters": (Filter("data.v", "eq", 1),)},
    {"filters": (Filter("data.v", "in", ["b", 1.5, True]),)},
    {"filters": (Filter("data.v", "ne", "a"),)},
    {"filters": (Filter("data.v", "not_in", ["a", 7]),)},
    {"filters": (Filter("data.v", "gt", 0),)},
    {"filters": (Filter("data.v", "lte", "ab"),)},
    {"filters": (Filter("data.w", "exists"),)},
    {"filters": (Filter("data.w", "prefix", "a"),)},
    {"filters": (Filter("data.w", "contains", "b"),)},
    {"filters": (Filter("data.deep.k", "eq", "x"), Filter("type", "in", ["a", "c"]))},
    {"filters": (Filter("user_id", "exists"), Filter("stream", "eq", "s2"))},
    {"filters": (Filter("data.num", "gte", 3),)},
    {"sort": (Sort("data.v"),)},
    {"sort": (Sort("data.v", descending=True), Sort("timestamp"))},
    {"sort": (Sort("data.num", descending=True),)},
    {"sort": (Sort("user_id"), Sort("data.w", descending=True))},
    {"sort": (Sort("type", descending=True), Sort("id"))},
    # condition trees compile to SQL (constant fields inside them too)
    {"filters": (AnyOf((Filter("data.v", "eq", "a"),
                        AllOf((Filter("stream", "eq", "s1"), Filter("data.n", "exists"))))),
                 Not(Filter("data.w", "in", ["b", 1])))},
    {"filters": (Not(AnyOf((Filter("type", "eq", "a"), Filter("user_id", "ne", "u1")))),)},
    # regex is not pushed down: the core evaluates it over scan(), with the rest pushed
    {"filters": (Filter("data.v", "regex", "^[ab]"), Filter("type", "in", ["a", "b"]))},
]
AGGS = (
    Aggregation("n", "count"), Aggregation("nv", "count", field="data.v"),
    Aggregation("sum", "sum", field="data.num"), Aggregation("avg", "avg", field="data.num"),
    Aggregation("min", "min", field="data.v"), Aggregation("max", "max", field="data.num"),
    Aggregation("dv", "distinct_count", field="data.v"), Aggregation("du", "distinct_count", field="user_id"),
    Aggregation("pct", "percentiles", field="data.num", percents=(0.0, 10.0, 33.3, 50.0, 95.0, 100.0)),
    Aggregation("tv", "terms", field="data.v", size=5,
                aggs=(Aggregation("tw", "terms", field="data.w", size=3), Aggregation("s", "sum", field="data.num"))),
    Aggregation("types", "terms", field="type", aggs=(
        Aggregation("week", "date_histogram", interval="week", aggs=(
            Aggregation("p", "percentiles", field="data.num", percents=(50.0,)),)),)),
    Aggregation("month", "date_histogram", interval="month", aggs=(Aggregation("dw", "distinct_count",
                                                                               field="data.w"),)),
    Aggregation("numh", "date_histogram", field="data.num", interval=5),
    Aggregation("year", "date_histogram", interval="year"),
    Aggregation("day", "date_histogram", field="received_at", interval="day"),
)


def _load(backend: Backend, events: list[Event]) -> None:
    backend.create_stream(Stream(T, P, "s1"))
    backend.create_stream(Stream(T, P, "s2"))
    for i in range(0, len(events), 70):
        backend.append(events[i:i + 70])


def _walk(backend: Backend, query: Query) -> list[str]:
    seen: list[str] = []
    while True:
        page = backend.query(query)
        seen += [e.id for e in page.events]
        if page.next_cursor is None:
            return seen
        query = Query(**{**{f: getattr(query, f) for f in query.__dataclass_fields__}, "cursor": page.next_cursor})


#: Outside the native model: evaluated by the core over scan(), which must feed it the same events.
EVALUATED = (
    Aggregation("st", "stats", field="data.num"),
    Aggregation("tv", "terms", field="data.v", order="s", descending=True, size=4,
                aggs=(Aggregation("s", "sum", field="data.num", where=Filter("type", "ne", "b")),)),
)


def test_random_queries_match_the_reference(postgres_url: str) -> None:
    events = _random_events(random.Random(5), 400)
    reference, backend = MemoryBackend(), PostgresBackend(postgres_url)
    try:
        _load(reference, events)
        _load(backend, events)
        for spec in QUERIES:
            query = Query(tenant=T, plugin=P, limit=1000, aggregations=AGGS, **spec)
            want, got = reference.query(query), backend.query(query)
            assert [e.id for e in got.events] == [e.id for e in want.events], spec
            assert got.total == want.total, spec
            assert got.aggregations == want.aggregations, spec
            assert [e.to_dict() for e in got.events] == [e.to_dict() for e in want.events], spec
            paged = Query(tenant=T, plugin=P, limit=37, count_total=False, **spec)
            assert _walk(backend, paged) == _walk(reference, paged), spec
            evaluated = Query(tenant=T, plugin=P, limit=5, aggregations=EVALUATED, **spec)
            assert not backend.native(evaluated)
            want, got = reference.query(evaluated), backend.query(evaluated)
            assert (got.total, got.aggregations) == (want.total, want.aggregations), spec
            assert [e.id for e in got.events] == [e.id for e in want.events], spec
    finally:
        backend.close()


def test_strings_postgresql_cannot_hold_round_trip(postgres_url: str) -> None:
    backend = PostgresBackend(postgres_url)
    odd = "nul\x00here \ue000 and \ue000\ue001 \ue000\ue002"
    try:
        backend.create_stream(Stream(T, P, "s\x00"))
        assert backend.append([ev("id\x00", "s\x00", 1, {"k\x00": odd, "l": [odd, "x"]}, type=odd)]) == 1
        assert backend.append([ev("id\x00", "s\x00", 1)]) == 0
        page = backend.query(Query(tenant=T, plugin=P, filters=(Filter("data.l", "eq", odd),)))
        assert [(e.id, e.stream, e.type, e.data) for e in page.events] == \
            [("id\x00", "s\x00", odd, {"k\x00": odd, "l": [odd, "x"]})]
        assert backend.query(Query(tenant=T, plugin=P, filters=(Filter("data.k\x00", "prefix", "nul\x00"),))).total == 1
        assert backend.query(Query(tenant=T, plugin=P, filters=(Filter("type", "eq", "nul"),))).total == 0
        assert [s.name for s in backend.list_streams(T, P)] == ["s\x00"]
    finally:
        backend.close()


# -- appends -------------------------------------------------------------------------------------------
def test_append_creates_missing_streams_in_the_same_transaction(postgres_url: str) -> None:
    backend = PostgresBackend(postgres_url)
    try:
        backend.create_stream(Stream(T, P, "old"))
        with pytest.raises(StreamNotFound):
            backend.append([ev("a", "old", 1), ev("b", "new", 2)])
        assert backend.query(Query(tenant=T, plugin=P)).total == 0
        assert backend.get_stream(T, P, "new") is None
        assert backend.append([ev("a", "old", 1), ev("b", "new", 2), ev("c", "new2", 3)], create_streams=True) == 3
        assert [s.name for s in backend.list_streams(T, P)] == ["new", "new2", "old"]
        assert backend.append([ev("a", "old", 1), ev("d", "new2", 3)], create_streams=True) == 1
        # a batch large enough for the COPY path: same rules
        big = [ev(f"b{i}", f"big{i % 3}", i) for i in range(100)]
        with pytest.raises(StreamNotFound):
            backend.append(big)
        assert backend.get_stream(T, P, "big0") is None
        assert backend.append([*big, ev("a", "old", 1)], create_streams=True) == 100
        assert backend.append(big + big, create_streams=True) == 0
        page = backend.query(Query(tenant=T, plugin=P, streams=("big1",), limit=1000))
        assert [e.id for e in page.events] == [f"b{i}" for i in range(1, 100, 3)]
    finally:
        backend.close()


def run_together(threads: list[threading.Thread]) -> None:
    """Start the racing threads (they wait on a barrier), then wait for every one of them."""
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_racing_hosts_create_the_same_streams(postgres_url: str) -> None:
    """Implicit streams: hosts appending to the same new streams at once create each stream once."""
    hosts = [PostgresBackend(postgres_url, {"pool_size": 4}), PostgresBackend(postgres_url, {"pool_size": 4})]
    start = threading.Barrier(8)
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker(backend: Backend, n: int) -> None:
        try:
            start.wait()
            for round_ in range(5):
                size = 3 if n % 2 else 40  # one-statement and COPY paths
                batch = [ev(f"{round_}-{n % 4}-{i}", f"new{round_}-{i % 2}", i) for i in range(size)]
                counts.append(backend.append(batch, create_streams=True))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(hosts[n % 2], n)) for n in range(8)]
    try:
        run_together(threads)
        assert errors == []
        assert sorted(s.name for s in hosts[0].list_streams(T, P)) == sorted(f"new{r}-{i}" for r in range(5)
                                                                             for i in range(2))
        stored = [e.id for e in hosts[1].iter_events(T, P)]
        assert len(stored) == len(set(stored)) == sum(counts) == 5 * (40 + 3 + 40 + 3)
    finally:
        for host in hosts:
            host.close()


def test_racing_hosts_store_each_id_once(postgres_url: str) -> None:
    """Two backend instances (two pools: two hosts) append overlapping batches of the same ids at once."""
    hosts = [PostgresBackend(postgres_url, {"pool_size": 4}), PostgresBackend(postgres_url, {"pool_size": 4})]
    hosts[0].create_stream(Stream(T, P, "s"))
    ids = [f"e{i}" for i in range(400)]
    start = threading.Barrier(6)
    counts: list[int] = []
    errors: list[BaseException] = []

    def worker(backend: Backend, seed: int) -> None:
        order = ids[:]
        random.Random(seed).shuffle(order)
        try:
            start.wait()
            for i in range(0, len(order), 25):
                counts.append(backend.append([ev(x, "s", int(x[1:])) for x in order[i:i + 25]]))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(hosts[n % 2], n)) for n in range(6)]
    try:
        run_together(threads)
        assert errors == []
        assert sum(counts) == len(ids)
        assert [e.id for e in hosts[1].iter_events(T, P)] == sorted(ids, key=lambda x: int(x[1:]))
    finally:
        for host in hosts:
            host.close()


# -- migrations ----------------------------------------------------------------------------------------
_MIGRATE = """
import sys, time
from backends.postgresql import PostgresBackend
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
backend = PostgresBackend(sys.argv[1], {"schema": "eg_race"})
print(backend.health()["schema_version"])
backend.close()
"""


def test_migrations_from_processes_starting_together(postgres_url: str) -> None:
    go = str(time.time() + 1.5)
    procs = [subprocess.Popen([sys.executable, "-c", _MIGRATE, postgres_url, go], cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(4)]
    outputs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0] * 4, outputs
    assert [out.strip() for out, _ in outputs] == [str(len(MIGRATIONS))] * 4
    with psycopg.connect(postgres_url) as conn:
        versions = [row[0] for row in conn.execute("SELECT version FROM eg_race.schema_version ORDER BY version")]
    assert versions == list(range(1, len(MIGRATIONS) + 1))


def test_statement_timeout_cancels_without_storing(postgres_url: str) -> None:
    hasty = PostgresBackend(postgres_url, {"statement_timeout_ms": 1, "retries": 3})
    patient = PostgresBackend(postgres_url)
    try:
        patient.create_stream(Stream(T, P, "s"))
        with pytest.raises(BackendUnavailable, match="statement cancelled"):
            hasty.append([ev(f"e{i}", "s", i, {"i": i, "pad": "x" * 200}) for i in range(20_000)])
        assert patient.query(Query(tenant=T, plugin=P, limit=0)).total == 0
        assert patient.append([ev("a", "s", 1)]) == 1
    finally:
        hasty.close()
        patient.close()


# -- outages -------------------------------------------------------------------------------------------
def until_recovered(attempt: Callable[[], bool], seconds: float = 20) -> None:
    """Retry `attempt` while the backend answers `BackendUnavailable` (the database is coming back); it must
    then succeed (return True) within `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            assert attempt()
            return
        except BackendUnavailable:
            assert time.monotonic() < deadline, "the backend did not recover"
            time.sleep(0.2)


def test_database_down_then_back(postgres_url: str, postgres_server: PgServer) -> None:
    backend = PostgresBackend(postgres_url, FAST_FAIL)
    try:
        backend.create_stream(Stream(T, P, "s"))
        assert backend.append([ev("a", "s", 1)]) == 1
        postgres_server.stop()
        try:
            began = time.monotonic()
            with pytest.raises(BackendUnavailable):
                backend.append([ev("b", "s", 2)])
            with pytest.raises(BackendUnavailable):
                backend.query(Query(tenant=T, plugin=P))
            with pytest.raises(BackendUnavailable):
                backend.health()
            assert time.monotonic() - began < 15  # bounded: two attempts each, short timeouts
        finally:
            postgres_server.start()
        until_recovered(lambda: backend.append([ev("b", "s", 2), ev("a", "s", 1)]) == 1)  # the same object
        assert [e.id for e in backend.query(Query(tenant=T, plugin=P)).events] == ["a", "b"]
    finally:
        backend.close()


def test_an_outage_is_answered_at_once_after_the_first_failure(postgres_url: str, postgres_server: PgServer) -> None:
    # Default-like waits: without the direct check each request would wait pool_timeout_ms per attempt.
    backend = PostgresBackend(postgres_url, {"pool_timeout_ms": 3000, "retries": 2, "retry_wait_ms": 200})
    try:
        backend.create_stream(Stream(T, P, "s"))
        assert backend.append([ev("a", "s", 1)]) == 1
        postgres_server.stop()
        try:
            with pytest.raises(BackendUnavailable):
                backend.append([ev("b", "s", 2)])  # the first request finds out (may wait for the pool)
            began = time.monotonic()
            for _ in range(5):
                with pytest.raises(BackendUnavailable, match="unavailable"):
                    backend.append([ev("b", "s", 2)])
                with pytest.raises(BackendUnavailable, match="unavailable"):
                    list(backend.scan(Query(tenant=T, plugin=P)))
            assert time.monotonic() - began < 2.0, "requests during an outage waited for the pool"
        finally:
            postgres_server.start()
        until_recovered(lambda: backend.append([ev("b", "s", 2)]) == 1)  # the first request after it is back
        assert [e.id for e in backend.query(Query(tenant=T, plugin=P)).events] == ["a", "b"]
    finally:
        backend.close()


def test_unreachable_at_start_up_still_starts_then_connects(postgres_server: PgServer, postgres_url: str) -> None:
    postgres_server.stop()
    try:
        backend = PostgresBackend(postgres_url, FAST_FAIL)  # does not raise: instances may start before the DB
        with pytest.raises(BackendUnavailable):
            backend.list_streams(T, P)
    finally:
        postgres_server.start()
    try:
        backend.create_stream(Stream(T, P, "s"))
        assert [s.name for s in backend.list_streams(T, P)] == ["s"]
    finally:
        backend.close()
