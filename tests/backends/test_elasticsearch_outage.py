"""The Elasticsearch backend degrades well: bounded retries with backoff, then 503 with Retry-After; recovery.

Driven through the real client over HTTP against `es_fake` (a tiny server on a free port that answers
503/429 on command, the one fake the issue allows) or a port nobody listens on; the HTTP tests run the
real ``event-gateway serve`` and ``event-gateway check``.
"""

from __future__ import annotations

import itertools
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from es_fake import VERSION, fake_cluster
from support import CLI, api_key, base_config, free_port, write_config

from backends.elasticsearch import ElasticsearchBackend
from gateway.events import Event, Stream
from gateway.query import Aggregation, Query
from gateway.query.deadline import QueryTimeout, query_deadline
from gateway.storage import BackendUnavailable, StorageError, StreamExists

WAIT_MS = 50


def _backend(port: int, **options: Any) -> ElasticsearchBackend:
    return ElasticsearchBackend(f"elasticsearch://127.0.0.1:{port}",
                                {"retries": 2, "retry_wait_ms": WAIT_MS, "request_timeout": 5, **options})


def _event(n: int = 0) -> Event:
    return Event(tenant="acme", plugin="p", stream="s", type="t", data={"n": n}, id=f"e{n}")


def _ready(cluster: Any, store: ElasticsearchBackend) -> None:
    store.create_stream(Stream(tenant="acme", plugin="p", name="s"))
    cluster.requests.clear()


@pytest.mark.parametrize("failures", [[503], [429, 503], [502, 429]])
def test_transient_answers_are_retried_with_backoff_then_the_append_succeeds(failures: list[int]) -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port)
        try:
            _ready(cluster, store)
            cluster.fail_with = [*failures]
            assert store.append([_event(1), _event(2)]) == 2
        finally:
            store.close()
        mgets = cluster.attempts("POST", "_mget")
        bulks = cluster.attempts("PUT", "_bulk") + cluster.attempts("POST", "_bulk")
        assert len(mgets) == len(failures) + 1 and len(bulks) == 1  # the failures hit the catalog check
        waits = [later - earlier for earlier, later in itertools.pairwise(mgets)]
        for attempt, wait in enumerate(waits):  # 50 ms, then 100 ms
            assert wait >= WAIT_MS / 1000 * 2 ** attempt * 0.9, waits
        assert len(cluster.events) == 2


def test_a_bulk_retried_after_a_lost_answer_stores_each_event_once() -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port)
        try:
            _ready(cluster, store)
            cluster.lose_bulk_answers = 1  # the cluster writes the batch, then the answer is a 503
            assert store.append([_event(1), _event(2)]) == 0  # the retry finds both: duplicates, not new
            assert store.append([_event(2), _event(3)]) == 1
        finally:
            store.close()
        assert len(cluster.attempts("POST", "_bulk") + cluster.attempts("PUT", "_bulk")) == 3
        assert sorted(doc["id"] for doc in cluster.events.values()) == ["e1", "e2", "e3"]


def test_retries_are_bounded_then_backend_unavailable() -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port)
        try:
            _ready(cluster, store)
            cluster.down = True
            began = time.monotonic()
            with pytest.raises(BackendUnavailable, match="503"):
                store.append([_event(1)])
            elapsed = time.monotonic() - began
        finally:
            store.close()
        assert len(cluster.attempts("POST", "_mget")) == 3  # one attempt + 2 retries, no more
        assert (WAIT_MS + 2 * WAIT_MS) / 1000 * 0.9 <= elapsed < 5
        assert not cluster.events


def test_overloaded_cluster_429_is_unavailable_not_a_client_error() -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port, retries=0)
        try:
            _ready(cluster, store)
            cluster.down, cluster.down_status = True, 429
            with pytest.raises(BackendUnavailable, match="429"):
                store.get_stream("acme", "p", "s")
        finally:
            store.close()
        assert len(cluster.attempts("GET", "_doc")) == 1  # retries=0 means one attempt


def test_client_errors_are_not_retried() -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port)
        try:
            _ready(cluster, store)
            cluster.down, cluster.down_status = True, 400
            with pytest.raises(StorageError) as caught:
                store.get_stream("acme", "p", "s")
            assert not isinstance(caught.value, BackendUnavailable)
        finally:
            store.close()
        assert len(cluster.attempts("GET", "_doc")) == 1


def test_an_unreachable_cluster_is_retried_then_unavailable() -> None:
    store = _backend(free_port())
    began = time.monotonic()
    try:
        with pytest.raises(BackendUnavailable, match="cannot reach"):
            store.get_stream("acme", "p", "s")
    finally:
        store.close()
    assert time.monotonic() - began >= (WAIT_MS + 2 * WAIT_MS) / 1000 * 0.9


@pytest.mark.parametrize("options", [{"retries": -1}, {"retries": 11}, {"retries": "many"},
                                     {"retry_wait_ms": 10_001}, {"retries": True}])
def test_retry_options_are_bounded(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="must be a whole number"):
        ElasticsearchBackend("elasticsearch://127.0.0.1:9200", options)


def test_health_reports_version_and_cluster_health() -> None:
    with fake_cluster() as (cluster, port):
        cluster.health = "yellow"
        store = _backend(port)
        try:
            facts = store.health()
            cluster.down = True
            with pytest.raises(BackendUnavailable):
                store.health()
        finally:
            store.close()
    assert facts["server_version"] == VERSION and facts["cluster_health"] == "yellow" and facts["nodes"] == 1
    assert facts["cluster_name"] == "fake-cluster"


# -- through the real server ---------------------------------------------------------------------------------
def _es_config(tmp_path: Path, port: int) -> dict[str, Any]:
    config = base_config(tmp_path, storage={"url": f"elasticsearch://127.0.0.1:{port}",
                                            "options": {"retries": 2, "retry_wait_ms": WAIT_MS,
                                                        "request_timeout": 5}},
                         plugins={"enabled": ["elastic_analytics", "fluid_topics"]})
    config["credentials"] = [*config["credentials"],
                             {"id": "ft", "secret": "ft-secret-1", "tenant": "acme", "grants": ["fluid_topics:*"]}]
    return config


@pytest.mark.slow
def test_the_gateway_answers_503_in_the_vendor_format_while_the_cluster_fails_and_recovers(
        serve: Any, tmp_path: Path) -> None:
    with fake_cluster() as (cluster, port):
        cluster.down = True
        server = serve(_es_config(tmp_path, port), workers=2)
        admin = {"Authorization": f"ApiKey {api_key('admin')}"}
        event = f"{server.url}/_application/analytics/shop/event/page_view"
        body = {"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://x"}}

        health = requests.get(f"{server.url}/_gateway/health", timeout=10)
        assert health.status_code == 503
        refused = requests.put(f"{server.url}/_application/analytics/shop", headers=admin, timeout=10)
        assert refused.status_code == 503 and int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["X-Elastic-Product"] == "Elasticsearch"
        assert refused.json()["status"] == 503 and refused.json()["error"]["type"]
        ft = requests.post(f"{server.url}/api/analytics/events", timeout=10,
                           headers={"Authorization": "Bearer ft-secret-1"},
                           json={"offline": False, "appName": "a", "appVersion": "1", "name": "page.display"})
        assert ft.status_code == 503 and int(ft.headers["Retry-After"]) >= 1
        assert ft.json()["status"] == 503 and ft.json()["path"] == "/api/analytics/events"
        attempts = len(cluster.requests)
        assert attempts >= 6  # every request was retried

        cluster.down = False  # the cluster is back: the same processes serve again, no restart
        assert requests.put(f"{server.url}/_application/analytics/shop", headers=admin, timeout=10).status_code == 201
        accepted = requests.post(event, json=body, headers=admin, timeout=10)
        assert accepted.status_code == 202, accepted.text
        assert requests.get(f"{server.url}/_gateway/health", timeout=10).status_code == 200
        assert server.process.poll() is None
        assert [doc["data"]["user"]["id"] for doc in cluster.events.values()] == ["u"]

        cluster.fail_with = [429, 503]  # a short overload is absorbed by the retries: the client sees 202
        again = requests.post(event, json=body, headers=admin, timeout=10)
        assert again.status_code == 202, again.text
        assert len(cluster.events) == 2


@pytest.mark.slow
def test_check_reports_cluster_version_and_health(tmp_path: Path) -> None:
    with fake_cluster() as (cluster, port):
        path = write_config(tmp_path / "es.toml", _es_config(tmp_path, port))
        done = subprocess.run([CLI, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert f"storage elasticsearch {VERSION} reachable, cluster health green" in done.stdout
        cluster.down = True
        failed = subprocess.run([CLI, "check", "--config", str(path)], capture_output=True, text=True, timeout=60)
    assert failed.returncode == 1
    assert "storage unreachable" in failed.stderr and "503" in failed.stderr


@pytest.mark.parametrize("option", [{"ca_certs": "/etc/ca.pem"}, {"verify_certs": False}])
def test_tls_options_on_a_plain_http_url_stop_start_up(option: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=r"need an elasticsearch\+https:// URL"):
        ElasticsearchBackend("elasticsearch://127.0.0.1:9200", option)
    ElasticsearchBackend("elasticsearch+https://127.0.0.1:9200", option)  # fine over https


@pytest.mark.parametrize("how", ["query", "scan"])
def test_a_slow_search_stops_at_the_query_deadline(how: str) -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port, request_timeout=30)
        store.query_timeout = 0.5
        try:
            _ready(cluster, store)
            cluster.search_delay = 5.0
            began = time.monotonic()
            with pytest.raises(QueryTimeout, match=r"storage\.query_timeout"):
                if how == "query":
                    store.query(Query(tenant="acme", plugin="p", streams=("s",), aggregations=(
                        Aggregation("n", "terms", field="data.n"),)))
                else:  # a query the backend cannot answer natively: the core evaluator reads a scan
                    with query_deadline(store.query_timeout):
                        list(store.scan(Query(tenant="acme", plugin="p", streams=("s",))))
            waited = time.monotonic() - began
            assert waited < 2.0, f"waited {waited:.1f}s for a search past its 0.5 s deadline"
            searches = [body for method, path, body in cluster.bodies if path.endswith("_search")]
            assert searches and searches[-1].get("timeout", "").endswith("ms"), searches
        finally:
            cluster.search_delay = 0.0
            store.close()


def test_a_stream_created_by_an_attempt_whose_answer_was_lost_is_created_not_a_conflict() -> None:
    with fake_cluster() as (cluster, port):
        store = _backend(port)
        try:
            cluster.lose_create_answers = 1  # written, then 503: the retry meets its own document
            stream = Stream(tenant="acme", plugin="p", name="s")
            assert store.create_stream(stream) == stream
            assert len(cluster.attempts("PUT", "/_create/")) == 2
            with pytest.raises(StreamExists):  # a real second creation still conflicts
                store.create_stream(Stream(tenant="acme", plugin="p", name="s"))
        finally:
            store.close()
