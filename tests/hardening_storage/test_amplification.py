"""Issue 10, item 2: the events count web service must bound the work and the answer one request may ask for.

Before: ``POST /analytics/api/v1/traffic/event-counts`` with 20,000 unknown names and day periods over a
year answered 563 MB after 17 s (a read-only key suffices, the quota does not help). Now a request may
ask for at most `service.MAX_FILTER_VALUES` names and `service.MAX_COUNT_CELLS` (name, period) counts,
and a 400 in the plugin's format names the limit and the field to change; a count without
``filters.name`` over more stored names than fit is refused the same way.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from fluid_topics.ft_helpers import ACME_KEY, COUNT, ft_config, ms, seed
from fluid_topics.ft_helpers import doc as ft_doc
from hardening_storage.hs_helpers import READER, assert_ft_error, day

from gateway import create_app
from plugins.fluid_topics import service

YEAR_OF_DAYS = {"startDate": day(-364), "endDate": day(1), "groupByPeriod": "day"}


def test_twenty_thousand_unknown_names_over_a_year_of_days_is_refused_fast(ft_server: Any, tmp_path: Path) -> None:
    """The attack of the issue, on a real server with a read-only key: a small 400 in well under a second
    of server work, naming ``filters.name`` and the limit (the answer is read at most 64 KiB deep)."""
    server = ft_server(tmp_path / "data" / "events.db")
    body = {**YEAR_OF_DAYS, "filters": {"name": [f"unknown.event.{i}" for i in range(20_000)]}}
    started = time.monotonic()
    with requests.post(server.url + COUNT, json=body, headers=READER, timeout=60, stream=True) as resp:
        head = resp.raw.read(65_536, decode_content=True)
        elapsed = time.monotonic() - started
        assert resp.status_code == 400, (resp.status_code, head[:300])
        assert len(head) < 4096, len(head)
    assert elapsed < 5, elapsed
    resp = requests.post(server.url + COUNT, json=body, headers=READER, timeout=60)
    error = assert_ft_error(resp, 400, "filters.name", COUNT)
    assert f"{service.MAX_FILTER_VALUES:,}" in error["message"], error
    assert "20,000" in error["message"], error


@pytest.fixture
def ft_client(tmp_path: Path) -> Any:
    app = create_app(ft_config(tmp_path, storage="sqlite"))
    yield app.test_client()


def _post(client: Any, body: dict[str, Any]) -> Any:
    return client.post(COUNT, json=body, headers={"Authorization": f"Bearer {ACME_KEY}"})


def test_names_times_periods_is_capped_at_the_documented_cell_limit(ft_client: Any) -> None:
    """Exactly `MAX_COUNT_CELLS` counts are answered; one name more is a 400 naming the limit and the
    product asked for."""
    periods = 365
    body = {"startDate": day(-364), "endDate": day(1), "groupByPeriod": "day"}
    asked = len(service.periods(ms(body["startDate"] + "T00:00:00"), ms(body["endDate"] + "T00:00:00"), "day"))
    assert asked == periods + 1 or asked == periods
    fits = service.MAX_COUNT_CELLS // asked
    assert fits <= service.MAX_FILTER_VALUES
    ok = _post(ft_client, {**body, "filters": {"name": [f"n{i}" for i in range(fits)]}})
    assert ok.status_code == 200, ok.get_data(as_text=True)[:300]
    results = ok.get_json()["results"]
    assert len(results) == fits and all(len(r["periods"]) == asked for r in results)
    refused = _post(ft_client, {**body, "filters": {"name": [f"n{i}" for i in range(fits + 1)]}})
    assert refused.status_code == 400
    error = refused.get_json()
    assert error["field"] == "filters.name", error
    assert f"{service.MAX_COUNT_CELLS:,}" in error["message"] and f"{fits + 1:,}" in error["message"], error
    # The same names by month fit.
    names = [f"n{i}" for i in range(fits + 1)]
    monthly = _post(ft_client, {**body, "groupByPeriod": "month", "filters": {"name": names}})
    assert monthly.status_code == 200


def test_a_name_list_longer_than_the_limit_is_a_400(ft_client: Any) -> None:
    body = {"startDate": day(-30), "endDate": day(1), "groupByPeriod": "month",
            "filters": {"name": [f"n{i}" for i in range(service.MAX_FILTER_VALUES + 1)]}}
    resp = _post(ft_client, body)
    assert resp.status_code == 400
    error = resp.get_json()
    assert error["field"] == "filters.name" and f"{service.MAX_FILTER_VALUES:,}" in error["message"], error
    body["filters"]["name"] = body["filters"]["name"][: service.MAX_FILTER_VALUES]
    assert _post(ft_client, body).status_code == 200


def test_a_count_of_every_stored_name_that_would_not_fit_is_refused(tmp_path: Path) -> None:
    """Without ``filters.name`` the stored names decide the size: too many for one answer by day is a 400
    naming ``groupByPeriod``; by month the same store is answered in full."""
    app = create_app(ft_config(tmp_path, storage="sqlite"))
    periods = 365
    distinct = service.MAX_COUNT_CELLS // periods + 5
    now = int(time.time() * 1000)
    seed(app, [ft_doc(now - 3_600_000 - i, f"name.{i}") for i in range(distinct)])
    client = app.test_client()
    body = {"startDate": day(-364), "endDate": day(1), "groupByPeriod": "day"}
    refused = _post(client, body)
    assert refused.status_code == 400, refused.get_data(as_text=True)[:300]
    error = refused.get_json()
    assert error["field"] == "groupByPeriod", error
    assert f"{service.MAX_COUNT_CELLS:,}" in error["message"], error
    monthly = _post(client, {**body, "groupByPeriod": "month"})
    assert monthly.status_code == 200
    assert len(monthly.get_json()["results"]) == distinct
