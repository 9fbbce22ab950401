"""Events count (``POST /analytics/api/v1/traffic/event-counts``): calendar buckets across month and year
boundaries checked against counts computed here from the stored times, the reference's example, empty
periods, names, tenants, and every 400, on memory and SQLite storage."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from fluid_topics.ft_helpers import ACME, COUNT, DOC, GLOBEX, assert_error, doc, ms, seed

from gateway.state import get_state
from gateway.storage import Backend

NAMES = ("khub.search", "topic.display", "feedback.send")
#: Times on and around the boundaries that matter (UTC): ends of months, of 2024, of ISO weeks.
EDGES = ["2024-11-30T23:59:59.999", "2024-12-01T00:00:00.000", "2024-12-01T00:00:00.001",
         "2024-12-29T23:59:59.999",  # Sunday: the last day of ISO week 52 of 2024
         "2024-12-30T00:00:00.000",  # Monday: ISO week 1 of 2025 starts in 2024
         "2024-12-31T23:59:59.999", "2025-01-01T00:00:00.000", "2025-01-05T23:59:59.999",
         "2025-01-06T00:00:00.000", "2025-01-31T23:59:59.999", "2025-02-01T00:00:00.000"]


def _moment(at: int) -> datetime:
    return datetime.fromtimestamp(at / 1000, UTC)


def bucket(day: date, period: str) -> date:
    """The period holding a day, by the calendar (ISO week via isocalendar, month via its first day)."""
    if period == "day":
        return day
    if period == "week":
        year, week, _ = day.isocalendar()
        return date.fromisocalendar(year, week, 1)
    return day.replace(day=1)


def following(start: date, period: str) -> date:
    if period == "day":
        return start + timedelta(days=1)
    if period == "week":
        return start + timedelta(weeks=1)
    return (start + timedelta(days=31)).replace(day=1)


def expected(times: dict[str, list[int]], start: str, end: str, period: str,
             names: list[str] | None = None) -> list[dict[str, Any]]:
    """The count service's ``results``, computed from the stored times by walking the calendar day by day."""
    lo, hi = ms(start), ms(end)
    starts: list[date] = []
    day = _moment(lo).date()
    while datetime(day.year, day.month, day.day, tzinfo=UTC) < _moment(hi):
        key = bucket(day, period)
        if key not in starts:
            starts.append(key)
        day += timedelta(days=1)
    per_name = {name: Counter(bucket(_moment(t).date(), period) for t in ts if lo <= t < hi)
                for name, ts in times.items()}
    if names is None:
        totals = {name: sum(c.values()) for name, c in per_name.items() if sum(c.values())}
        names = sorted(totals, key=lambda n: (-totals[n], n))
    return [{"name": name, "periods": [
        {"periodStartDate": s.isoformat(), "periodEndDate": following(s, period).isoformat(),
         "eventCount": per_name.get(name, Counter())[s]} for s in starts]} for name in names]


@pytest.fixture
def counted(any_app: Any) -> tuple[Any, dict[str, list[int]]]:
    """About 3000 events from mid-November 2024 to mid-February 2025 plus every edge time, for each name."""
    rng = random.Random(11)
    lo, hi = ms("2024-11-15T00:00:00"), ms("2025-02-15T00:00:00")
    times: dict[str, list[int]] = {name: [] for name in NAMES}
    for i, name in enumerate(NAMES):
        times[name] = [rng.randrange(lo, hi) for _ in range(1500 // (i + 1))] + [ms(e) for e in EDGES]
    docs = [doc(at, name) for name, ts in times.items() for at in ts]
    rng.shuffle(docs)
    seed(any_app, docs)
    seed(any_app, [doc(ms("2024-12-31T12:00:00"), "khub.search", tenant="globex")])  # another tenant's
    return any_app, times


def count(app: Any, body: Any, headers: dict[str, str] = ACME) -> Any:
    return app.test_client().post(COUNT, json=body, headers=headers)


@pytest.mark.parametrize("period, start, end", [
    ("month", "2024-11-01", "2025-03-01"),
    ("month", "2024-11-20", "2025-02-10"),  # partial first and last months
    ("week", "2024-12-16", "2025-01-13"),
    ("week", "2024-12-25", "2025-01-08"),  # starts mid-week (Wednesday)
    ("day", "2024-11-28", "2024-12-03"),  # across a month boundary
    ("day", "2024-12-29", "2025-01-03"),  # across the year boundary
    ("day", "2024-12-31T12:00", "2025-01-01T12:00"),  # date-times: only the events inside are counted
    ("day", "2024-11-15", "2025-02-15"),  # the whole data set, 92 days
    ("month", "2024-12-31T23:59:59", "2025-01-01T00:00:01"),
])
def test_buckets_across_month_and_year_boundaries(counted: tuple[Any, dict[str, list[int]]], period: str,
                                                  start: str, end: str) -> None:
    app, times = counted
    resp = count(app, {"startDate": start, "endDate": end, "groupByPeriod": period})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    body = resp.get_json()
    assert list(body) == ["startDate", "endDate", "groupByPeriod", "results"]
    assert (body["startDate"], body["endDate"], body["groupByPeriod"]) == (
        start if len(start) == 10 else f"{start}:00"[:19], end if len(end) == 10 else f"{end}:00"[:19], period)
    assert body["results"] == expected(times, start, end, period)


@pytest.mark.parametrize("period", ["day", "week", "month"])
def test_name_filter_keeps_request_order_and_lists_names_without_events(
        counted: tuple[Any, dict[str, list[int]]], period: str) -> None:
    app, times = counted
    names = ["feedback.send", "never.seen", "khub.search", "feedback.send"]
    body = count(app, {"startDate": "2024-12-20", "endDate": "2025-01-10", "groupByPeriod": period,
                       "filters": {"name": names}}).get_json()
    assert [r["name"] for r in body["results"]] == ["feedback.send", "never.seen", "khub.search"]
    assert body["results"] == expected(times, "2024-12-20", "2025-01-10", period,
                                       ["feedback.send", "never.seen", "khub.search"])
    assert all(p["eventCount"] == 0 for p in body["results"][1]["periods"])


def test_group_by_period_is_case_insensitive(counted: tuple[Any, dict[str, list[int]]]) -> None:
    app, times = counted
    body = count(app, {"startDate": "2024-12-01", "endDate": "2025-01-01", "groupByPeriod": "MONTH"}).get_json()
    assert body["groupByPeriod"] == "month"
    assert body["results"] == expected(times, "2024-12-01", "2025-01-01", "month")


def test_tenant_isolation(counted: tuple[Any, dict[str, list[int]]]) -> None:
    app, _ = counted
    body = count(app, {"startDate": "2024-12-31", "endDate": "2025-01-01", "groupByPeriod": "day"}, GLOBEX).get_json()
    assert body["results"] == [{"name": "khub.search", "periods": [
        {"periodStartDate": "2024-12-31", "periodEndDate": "2025-01-01", "eventCount": 1}]}]
    nothing = count(app, {"startDate": "2024-12-31", "endDate": "2025-01-01", "groupByPeriod": "day"}, DOC)
    assert nothing.get_json()["results"] == []


def test_counts_are_computed_by_backend_aggregations(counted: tuple[Any, dict[str, list[int]]],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    app, _ = counted
    store: Backend = get_state(app).backend
    seen = []
    original = store.query

    def spy(query: Any) -> Any:
        seen.append(query)
        result = original(query)
        assert result.events == []  # no event is loaded
        return result

    monkeypatch.setattr(store, "query", spy)
    assert count(app, {"startDate": "2024-11-01", "endDate": "2025-03-01", "groupByPeriod": "week"}).status_code == 200
    (query,) = seen
    assert query.limit == 0 and not query.count_total
    (names,) = query.aggregations
    assert (names.kind, names.field) == ("terms", "type")
    assert [(a.kind, a.interval) for a in names.aggs] == [("date_histogram", "week")]


def test_reference_example(any_app: Any) -> None:
    """The older reference's example (the one whose response includes ``groupByPeriod``), with its counts."""
    september = [ms("2022-09-01T00:00:00") + i * 3_600_000 * 7 for i in range(40)]
    seed(any_app, [doc(at, "khub.search", tenant="documentation-docft-stable") for at in september[:24]]
         + [doc(at, "feedback.send", tenant="documentation-docft-stable") for at in september[24:27]]
         + [doc(at, "topic.display", tenant="documentation-docft-stable") for at in september[27:]]
         + [doc(ms("2022-10-01T00:00:00"), "khub.search", tenant="documentation-docft-stable")]
         + [doc(ms("2022-08-31T23:59:59.999"), "feedback.send", tenant="documentation-docft-stable")])
    request = """{
  "startDate": "2022-09-01",
  "endDate": "2022-10-01",
  "groupByPeriod": "month",
  "filters": {
    "name": [
      "khub.search",
      "feedback.send"
    ]
  }
}"""
    response = """{
  "startDate": "2022-09-01",
  "endDate": "2022-10-01",
  "groupByPeriod": "month",
  "results": [
    {
      "name": "khub.search",
      "periods": [
        {
          "periodStartDate": "2022-09-01",
          "periodEndDate": "2022-10-01",
          "eventCount": 24
        }
      ]
    },
    {
      "name": "feedback.send",
      "periods": [
        {
          "periodStartDate": "2022-09-01",
          "periodEndDate": "2022-10-01",
          "eventCount": 3
        }
      ]
    }
  ]
}"""
    resp = any_app.test_client().post(COUNT, data=request, content_type="application/json", headers=DOC)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    assert json.dumps(resp.get_json()) == json.dumps(json.loads(response))


def test_empty_store_and_long_ranges(ft_app: Any) -> None:
    body = count(ft_app, {"startDate": "2024-01-01", "endDate": "2024-03-01", "groupByPeriod": "month"}).get_json()
    assert body["results"] == []
    listed = count(ft_app, {"startDate": "2024-01-01", "endDate": "2025-01-01", "groupByPeriod": "day",
                            "filters": {"name": ["x"]}}).get_json()
    assert len(listed["results"][0]["periods"]) == 366  # 2024 is a leap year
    weeks = count(ft_app, {"startDate": "2024-01-01", "endDate": "2090-01-01", "groupByPeriod": "week",
                           "filters": {"name": ["x"]}}).get_json()["results"][0]["periods"]
    assert len(weeks) == 3444 and weeks[-1]["periodEndDate"] == "2090-01-02"  # 2024-01-01 is a Monday


# -- every 400 names its field ----------------------------------------------------------------------
OK = {"startDate": "2024-12-01", "endDate": "2025-01-01", "groupByPeriod": "day"}


@pytest.mark.parametrize("body, field", [
    ({k: v for k, v in OK.items() if k != "startDate"}, "startDate"),
    ({k: v for k, v in OK.items() if k != "endDate"}, "endDate"),
    ({**OK, "endDate": None}, "endDate"),
    ({k: v for k, v in OK.items() if k != "groupByPeriod"}, "groupByPeriod"),
    ({**OK, "groupByPeriod": "year"}, "groupByPeriod"),
    ({**OK, "groupByPeriod": "days"}, "groupByPeriod"),
    ({**OK, "groupByPeriod": ["day"]}, "groupByPeriod"),
    ({**OK, "groupByPeriod": None}, "groupByPeriod"),
    ({**OK, "startDate": "2024-12-01T10"}, "startDate"),
    ({**OK, "endDate": "01/01/2025"}, "endDate"),
    ({**OK, "endDate": "2024-12-01"}, "endDate"),
    ({**OK, "endDate": "2024-11-30"}, "endDate"),
    ({**OK, "startDate": "2012-01-01"}, "startDate"),
    ({**OK, "startDate": "2099-01-01", "endDate": "2099-02-01"}, "startDate"),
    ({**OK, "endDate": "2100-01-01"}, "endDate"),  # more than 3660 days
    ({**OK, "filters": {"name": "khub.search", "user": {"id": ["u"]}}}, "filters.user"),
    ({**OK, "filters": {"name": [3]}}, "filters.name"),
    ({**OK, "filters": "khub.search"}, "filters"),
    ({**OK, "paging": {"page": 1, "perPage": 1}}, "paging"),
], ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else str(v))
def test_invalid_requests_are_400_naming_the_field(ft_app: Any, body: dict[str, Any], field: str) -> None:
    assert_error(count(ft_app, body), 400, field)


def test_unreadable_body_is_400(ft_app: Any) -> None:
    resp = ft_app.test_client().post(COUNT, data="[1, 2]", content_type="application/json", headers=ACME)
    assert_error(resp, 400, "body")
