"""Against a real served gateway (gunicorn, 2 workers, SQLite): concurrent schema updates never lose one another's
fields (compare-and-set), and concurrent publishes are all stored and all counted."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from appdynamics.appd_http_helpers import DOC, TEXT_V2, headers
from support import RunningServer

pytestmark = pytest.mark.slow


def test_concurrent_patches_keep_every_field(appd_server: RunningServer) -> None:
    url = appd_server.url
    assert requests.post(f"{url}/events/schema/racy", headers=DOC,
                         data=json.dumps({"schema": {"base": "string"}}), timeout=10).status_code == 201

    def add(i: int) -> int:
        add = {"add": {f"f{i}": "integer"}}
        body = add if i % 4 else [add, {"rename": {f"f{i}": f"g{i}"}}]
        return requests.patch(f"{url}/events/schema/racy", headers=DOC, data=json.dumps(body), timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(add, range(24)))
    assert statuses == [200] * 24
    schema = requests.get(f"{url}/events/schema/racy", headers=DOC, timeout=10).json()["schema"]
    expected = {"base": "string", **{(f"g{i}" if i % 4 == 0 else f"f{i}"): "integer" for i in range(24)}}
    assert schema == expected


def test_concurrent_publishes_are_all_stored(appd_server: RunningServer) -> None:
    url = appd_server.url
    schema = json.dumps({"schema": {"n": "integer", "batch": "integer"}})
    assert requests.post(f"{url}/events/schema/busy", headers=DOC, data=schema, timeout=10).status_code == 201

    def publish(batch: int) -> int:
        events = [{"n": i, "batch": batch} for i in range(100)]
        return requests.post(f"{url}/events/publish/busy", headers=DOC, data=json.dumps(events),
                             timeout=30).status_code

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(publish, range(16))) == [200] * 16
    answer = requests.post(f"{url}/events/query", headers=headers(content_type=TEXT_V2),
                           data="SELECT count(*), sum(n), distinctcount(batch) FROM busy", timeout=30)
    assert answer.status_code == 200, answer.text
    assert answer.json()[0]["results"] == [[1600, 16 * sum(range(100)), 16]]
