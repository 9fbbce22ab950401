"""``GET /metrics``: Prometheus text format, protected by the ``gateway:metrics`` grant, summed over workers."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from ops.ops_helpers import OPS, SECRET, WATCHER, basic, every_api_config
from prometheus_client.parser import text_string_to_metric_families

from gateway import create_app
from gateway.config import ConfigError
from gateway.metrics_batch import FLUSH_SECONDS

ROUTE = "/api/ws/v1/analytics/event"
WS_EVENT = {"type": "click", "query_id": "q", "page": 1, "content_source_id": "c", "document_id": "d", "rank": 0,
            "event": "e"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition, by (name, labels)."""
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples of `name` whose labels include `labels` (0 when none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in found.items() if n == name and wanted <= have)


def scrape(client: Any, cred: dict[str, Any] = WATCHER) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    answer = client.get("/metrics", headers={"Authorization": basic(cred)})
    assert answer.status_code == 200, answer.data
    assert answer.mimetype == "text/plain" and "version=" in answer.headers["Content-Type"]
    return samples(answer.get_data(as_text=True))


@pytest.fixture
def app(tmp_path: Path) -> Any:
    return create_app(every_api_config(tmp_path, storage={"url": "memory://"},
                                       quotas={"workplace_search": {"events": "3 per minute"}}))


def test_metrics_need_the_gateway_metrics_grant(app: Any) -> None:
    client = app.test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong-secret-123"}).status_code == 401
    refused = client.get("/metrics", headers={"Authorization": basic({"id": "tracker", "secret": "tracker-secret-1"})})
    assert refused.status_code == 403 and "gateway:metrics" in refused.get_json()["error"]["message"]
    assert client.get("/metrics", headers={"Authorization": f"Bearer {WATCHER['secret']}"}).status_code == 200
    assert client.get("/metrics", headers={"Authorization": basic(OPS)}).status_code == 200  # "*:*" covers it


def test_metrics_can_be_open_or_off(tmp_path: Path) -> None:
    open_app = create_app(every_api_config(tmp_path, storage={"url": "memory://"}, server={"metrics": "open"}))
    assert open_app.test_client().get("/metrics").status_code == 200
    off = create_app(every_api_config(tmp_path, storage={"url": "memory://"}, server={"metrics": "off"}))
    answer = off.test_client().get("/metrics")
    assert answer.status_code == 404 and answer.is_json
    with pytest.raises(ConfigError, match=r"server\.metrics"):
        create_app(every_api_config(tmp_path, storage={"url": "memory://"}, server={"metrics": "public"}))


def test_grants_on_the_gateway_are_checked(tmp_path: Path) -> None:
    config = every_api_config(tmp_path, storage={"url": "memory://"})
    config["credentials"] = [*config["credentials"], {"id": "x", "secret": "x-secret-123", "tenant": "t",
                                                      "grants": ["gateway:metrix"]}]
    with pytest.raises(ConfigError, match=r"gateway:metrics"):
        create_app(config)


def test_requests_events_quotas_and_backend_calls_are_counted(app: Any) -> None:
    client = app.test_client()
    before = scrape(client)
    bearer = {"Authorization": f"Bearer {SECRET}"}
    statuses = [client.post(ROUTE, json=WS_EVENT, headers=bearer).status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]  # the plugin's quota, lowered to 3 per minute above
    assert client.post(ROUTE, json=WS_EVENT).status_code == 401
    assert client.post("/api/analytics/events", headers=bearer, json=[
        {"offline": False, "appName": "a", "appVersion": "1", "name": f"n{i}"} for i in range(5)]).status_code == 200
    assert client.post("/api/analytics/events", headers=bearer, json={"offline": "no"}).status_code == 400
    assert client.get("/_application/analytics/nope", headers=bearer).status_code == 404
    assert client.get("/no/such/path").status_code == 404
    after = scrape(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    labels = {"api": "workplace_search", "route": ROUTE, "method": "POST"}
    assert delta("event_gateway_request_duration_seconds_count", **labels, status="200") == 3
    assert delta("event_gateway_request_duration_seconds_count", **labels, status="429") == 1
    assert delta("event_gateway_request_duration_seconds_count", **labels, status="401") == 1
    assert delta("event_gateway_request_duration_seconds_count", **labels, status="200") == 3
    assert delta("event_gateway_request_duration_seconds_sum", **labels) > 0
    assert delta("event_gateway_request_duration_seconds_bucket", **labels, status="200", le="+Inf") == 3
    assert delta("event_gateway_events_accepted_total", api="workplace_search") == 3
    assert delta("event_gateway_events_accepted_total", api="fluid_topics") == 5  # one request, five events
    assert delta("event_gateway_events_rejected_total", api="workplace_search", reason="quota") == 1
    assert delta("event_gateway_events_rejected_total", api="workplace_search", reason="unauthenticated") == 1
    assert delta("event_gateway_events_rejected_total", api="fluid_topics", reason="invalid") == 1
    assert delta("event_gateway_quota_rejections_total", api="workplace_search", route=ROUTE) == 1
    route = "/_application/analytics/<name>"
    requests_ = "event_gateway_request_duration_seconds_count"
    assert delta(requests_, api="elastic_analytics", route=route, status="404") == 1
    assert delta("event_gateway_request_duration_seconds_count", route="<unmatched>", status="404") == 1
    assert delta("event_gateway_backend_call_duration_seconds_count", operation="append") == 4
    assert delta("event_gateway_backend_call_duration_seconds_count", operation="query") == 0
    # the raw path of the miss is not a label value: one series per rule, whatever the URL
    assert not any("nope" in value_ for (_, have) in after for _, value_ in have)


def test_backend_errors_are_counted(tmp_path: Path) -> None:
    """A store nobody listens on (Elasticsearch on a free port): the failed calls are counted, the answer is 503."""
    from support import free_port

    app = create_app(every_api_config(tmp_path, storage={"url": f"elasticsearch://127.0.0.1:{free_port()}"}))
    client = app.test_client()
    before = scrape(client)
    answer = client.post(ROUTE, json=WS_EVENT, headers={"Authorization": f"Bearer {SECRET}"})
    assert answer.status_code == 503
    after = scrape(client)
    name = "event_gateway_backend_errors_total"
    assert value(after, name, error="BackendUnavailable") - value(before, name, error="BackendUnavailable") >= 1
    rejected = "event_gateway_events_rejected_total"
    labels = {"api": "workplace_search", "reason": "unavailable"}
    assert value(after, rejected, **labels) - value(before, rejected, **labels) == 1


@pytest.mark.slow
def test_a_multi_worker_server_reports_the_sum_over_its_workers(serve: Any, tmp_path: Path) -> None:
    """Requests spread over two gunicorn workers; every scrape, whichever worker answers, counts them all."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    server = serve(every_api_config(tmp_path), workers=2, threads=2,
                   env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    total = 60
    for _ in range(total):  # a new connection each time, so both workers take some
        answer = requests.post(f"{server.url}{ROUTE}", json=WS_EVENT, timeout=10,
                               headers={"Authorization": f"Bearer {SECRET}", "Connection": "close"})
        assert answer.status_code == 200
    time.sleep(FLUSH_SECONDS * 2.5)  # each worker writes its figures to the shared files about once a second
    per_worker = _requests_by_pid(metrics_dir)
    assert len([pid for pid, count in per_worker.items() if count]) == 2, per_worker  # both served some
    assert sum(per_worker.values()) == total
    for _ in range(6):  # scrapes land on either worker: the same sum every time
        found = samples(requests.get(f"{server.url}/metrics", timeout=10, headers={
            "Authorization": f"Bearer {WATCHER['secret']}", "Connection": "close"}).text)
        assert value(found, "event_gateway_request_duration_seconds_count", route=ROUTE, status="200") == total
        assert value(found, "event_gateway_events_accepted_total", api="workplace_search") == total
        assert value(found, "event_gateway_backend_call_duration_seconds_count", operation="append") == total


def _requests_by_pid(directory: Path) -> dict[int, float]:
    """Each process's own count of answered workplace_search requests, read from its multiprocess file."""
    from prometheus_client.mmap_dict import MmapedDict

    counts: dict[int, float] = {}
    for file in directory.glob("histogram_*.db"):
        pid = int(file.stem.split("_")[1])
        for key, value_, *_ in MmapedDict.read_all_values_from_file(str(file)):
            _, sample, labels, *_ = json.loads(key)
            if sample == "event_gateway_request_duration_seconds_bucket" and labels.get("route") == ROUTE:
                counts[pid] = counts.get(pid, 0) + value_  # each bucket's own count (the scrape accumulates them)
    return counts


@pytest.mark.slow
def test_serve_makes_and_removes_its_own_metrics_directory(serve: Any, tmp_path: Path) -> None:
    env = {key: value_ for key, value_ in os.environ.items() if key != "PROMETHEUS_MULTIPROC_DIR"}
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()
    server = serve(every_api_config(tmp_path), workers=2, env=env)
    made = list((tmp_path / "tmp").glob("event-gateway-metrics-*"))
    assert len(made) == 1 and any(made[0].iterdir())
    server.stop()
    assert not made[0].exists()


def test_invented_methods_share_one_series(app: Any) -> None:
    client = app.test_client()
    for index in range(5):
        assert client.open(ROUTE, method=f"FANCY{index}").status_code == 405
    found = scrape(client)
    methods = {dict(labels).get("method") for name, labels in found if name.startswith("event_gateway_request")}
    assert "other" in methods and not any(m and m.startswith("FANCY") for m in methods)
    assert value(found, "event_gateway_request_duration_seconds_count", api="workplace_search", method="other",
                 route=ROUTE, status="405") == 5  # a 405 on an existing path: counted under that path's route


def test_a_405_is_counted_under_the_route_of_its_path(app: Any) -> None:
    client = app.test_client()
    before = scrape(client)
    assert client.get(ROUTE).status_code == 405  # the route takes POST only
    assert client.put("/api/analytics/events").status_code == 405
    after = scrape(client)

    def delta(**labels: str) -> float:
        name = "event_gateway_request_duration_seconds_count"
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta(api="workplace_search", route=ROUTE, method="GET", status="405") == 1
    assert delta(api="fluid_topics", route="/api/analytics/events", method="PUT", status="405") == 1
    assert delta(route="<unmatched>") == 0


def test_batched_observations_equal_direct_ones() -> None:
    """The per-process batch writes exactly what observing each value directly would (bounds included)."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from gateway.metrics_batch import Batch

    made = []
    for _ in range(2):
        registry = CollectorRegistry()
        made.append((registry, Histogram("h", "h", ("k",), buckets=(0.01, 0.1, 1.0), registry=registry).labels("x"),
                     Counter("c", "c", registry=registry)))
    values_ = [0.0, 0.005, 0.01, 0.010001, 0.1, 0.5, 1.0, 7.0, 0.01]
    batch = Batch()
    (direct_registry, direct_h, direct_c), (batched_registry, batched_h, batched_c) = made
    for v in values_:
        direct_h.observe(v)
        batch.observe(batched_h, v)
    direct_c.inc(3)
    batch.inc(batched_c, 3)
    def counted(registry: CollectorRegistry) -> dict[Any, float]:
        return {key: v for key, v in samples(generate_latest(registry).decode()).items()
                if not key[0].endswith("_created")}

    assert counted(batched_registry) != counted(direct_registry)
    batch.flush()
    assert counted(batched_registry) == counted(direct_registry)
    assert value(counted(batched_registry), "h_bucket", le="0.01") == 4  # 0.0, 0.005 and both 0.01 (le: <=)
