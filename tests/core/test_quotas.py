"""Quotas hold across gunicorn workers when their store is a real Redis, and fail closed when it is down."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from support import api_key, base_config, free_port

BODY = {"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://example.com"}}


def _post(url: str, cred: str = "admin") -> requests.Response:
    # a new connection per request, so the requests spread over both workers
    return requests.post(f"{url}/_application/analytics/shop/event/page_view", json=BODY,
                         headers={"Authorization": f"ApiKey {api_key(cred)}", "Connection": "close"}, timeout=10)


@pytest.mark.slow
def test_default_quota_is_shared_by_two_workers_through_redis(serve, redis_url: str, tmp_path: Path) -> None:
    server = serve(base_config(tmp_path, quotas={"storage_url": redis_url, "default": "20 per minute"}), workers=2)
    created = requests.put(f"{server.url}/_application/analytics/shop",
                           headers={"Authorization": f"ApiKey {api_key('admin')}"}, timeout=10)
    assert created.status_code == 201
    with ThreadPoolExecutor(6) as pool:
        statuses = [r.status_code for r in pool.map(lambda _: _post(server.url), range(30))]
    # the PUT spent one of the 20: exactly 19 posts fit, whichever worker served them
    assert statuses.count(202) == 19 and statuses.count(429) == 11, statuses
    limited = _post(server.url)
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.json()["error"]["type"] == "status_exception"
    assert limited.headers["X-Elastic-Product"] == "Elasticsearch"
    # another credential has its own budget
    assert _post(server.url, "tracker").status_code == 202


@pytest.mark.slow
def test_named_plugin_quota_across_workers(serve, redis_url: str, tmp_path: Path) -> None:
    config = base_config(tmp_path, quotas={"storage_url": redis_url.replace("/0", "/1"),
                                           "elastic_analytics": {"post_event": "5 per minute"}})
    server = serve(config, workers=2)
    requests.put(f"{server.url}/_application/analytics/shop", headers={"Authorization": f"ApiKey {api_key('admin')}"},
                 timeout=10)
    statuses = [_post(server.url).status_code for _ in range(8)]
    assert statuses == [202] * 5 + [429] * 3
    listed = requests.get(f"{server.url}/_application/analytics", timeout=10,
                          headers={"Authorization": f"ApiKey {api_key('admin')}"})
    assert listed.status_code == 200  # the named quota covers posting only


def test_unreachable_quota_store_answers_503_in_the_vendor_format(make_app) -> None:
    app = make_app(quotas={"storage_url": f"redis://127.0.0.1:{free_port()}/0"})
    response = app.test_client().get("/_application/analytics",
                                     headers={"Authorization": f"ApiKey {api_key('admin')}"})
    assert response.status_code == 503
    assert response.get_json()["error"]["type"] == "status_exception"
    health = app.test_client().get("/_gateway/health")
    assert health.status_code == 503 and health.get_json()["quotas"]["status"] == "down"
    assert "path" not in health.get_json()["storage"]


def test_memory_counting_is_limits_own_fixed_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The lean `count` of the memory store keeps limits' counters: its reads (Retry-After) and a concurrent
    count by limits itself see the same numbers, and a window starts again once expired."""
    import threading

    from limits import parse
    from limits.strategies import FixedWindowRateLimiter

    from gateway import quotas

    storage = quotas.InlineExpiryMemoryStorage()
    item = parse("5 per minute")
    key = item.key_for("default", "cred")
    limiter = FixedWindowRateLimiter(storage)
    assert [storage.count(key, item.get_expiry()) for _ in range(3)] == [1, 2, 3]
    assert limiter.hit(item, "default", "cred")  # limits' own incr: the 4th of the same window
    assert storage.get(key) == 4 and limiter.get_window_stats(item, "default", "cred").remaining == 1
    assert storage.count(key, item.get_expiry()) == 5 and not limiter.test(item, "default", "cred")
    now = quotas.time.time()
    monkeypatch.setattr(quotas.time, "time", lambda: now + 61)  # the window is over: counting restarts
    assert storage.count(key, item.get_expiry()) == 1
    monkeypatch.undo()
    threads = [threading.Thread(target=lambda: [storage.count("k", 60) for _ in range(500)]) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert storage.get("k") == 2000  # every request counted, whatever the thread
