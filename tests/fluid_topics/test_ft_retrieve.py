"""Retrieve events (``POST /analytics/api/v1/events``): the reference example, paging, date formats, filters,
tenant isolation, the retention window and every 400, on memory and SQLite storage."""

from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path
from typing import Any

import pytest
from fluid_topics.ft_helpers import (
    ACME,
    DOC,
    DOC_REQUEST_TEXT,
    DOC_RESPONSE_TEXT,
    DOC_TENANT,
    GLOBEX,
    INGEST,
    RETRIEVE,
    assert_error,
    doc,
    ft_config,
    ms,
    seed,
)

from gateway import create_app
from gateway.events import now_ms
from plugins.fluid_topics import service

RANGE = {"startDate": "2024-01-01", "endDate": "2025-01-01"}


def retrieve(app: Any, body: Any, headers: dict[str, str] = ACME) -> Any:
    return app.test_client().post(RETRIEVE, json=body, headers=headers)


def ids(resp: Any) -> list[str]:
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return [r["id"] for r in resp.get_json()["results"]]


# -- the reference's example ----------------------------------------------------------------------------
def _reference_store() -> list[dict[str, Any]]:
    """The example's event, 4328 older events matching the example's filters, and events that must not match."""
    example = json.loads(DOC_RESPONSE_TEXT)["results"][0]
    latest = example["datetime"]
    start, end = ms("2024-01-01T00:00:00"), ms("2024-05-01T00:00:00")
    rng = random.Random(4)
    docs = [example]
    for i in range(4328):
        at = start if i == 0 else rng.randrange(start, latest)
        docs.append(doc(at, tenant=DOC_TENANT, realm=rng.choice([["internal"], ["Keycloak"], ["internal", "x"]]),
                        groups=rng.choice([["ft:administrator"], ["TechWriter", "nda"], ["a", "TechWriter"]]),
                        roles=["PRINT_USER", "FEEDBACK_USER"]))
    matching = {"tenant": DOC_TENANT, "realm": ["internal"], "groups": ["TechWriter"], "roles": ["FEEDBACK_USER"]}
    later = latest + 1
    docs += [
        doc(later, realm=["sso"], **{k: v for k, v in matching.items() if k != "realm"}),  # realm does not match
        doc(later, groups=["nda_basic"], **{k: v for k, v in matching.items() if k != "groups"}),
        doc(later, roles=["ADMIN"], **{k: v for k, v in matching.items() if k != "roles"}),
        doc(later, realm=[], **{k: v for k, v in matching.items() if k != "realm"}),  # no realm at all
        doc(later, "topic.display", **matching),  # another name
        doc(end, **matching),  # endDate is exclusive
        doc(start - 1, **matching),  # before startDate
        doc(later, **{**matching, "tenant": "acme"}),  # another tenant
    ]
    rng.shuffle(docs)
    return docs


def test_reference_request_gives_the_reference_response(any_app: Any) -> None:
    seed(any_app, _reference_store())
    client = any_app.test_client()
    resp = client.post(RETRIEVE, data=DOC_REQUEST_TEXT, content_type="application/json", headers=DOC)
    assert resp.status_code == 200, resp.get_data(as_text=True)
    # equal, key order included
    assert json.dumps(resp.get_json()) == json.dumps(json.loads(DOC_RESPONSE_TEXT))

    request = json.loads(DOC_REQUEST_TEXT)
    second = client.post(RETRIEVE, json={**request, "paging": {"page": 2, "perPage": 1}}, headers=DOC).get_json()
    assert second["paging"] == {"page": 2, "perPage": 1, "totalCount": 4329, "lastPage": False}
    assert second["results"][0]["datetime"] <= 1714487636947
    last = client.post(RETRIEVE, json={**request, "paging": {"page": 4329, "perPage": 1}}, headers=DOC).get_json()
    assert last["paging"]["lastPage"] is True
    assert last["results"][0]["datetime"] == ms("2024-01-01T00:00:00")  # the inclusive start
    beyond = client.post(RETRIEVE, json={**request, "paging": {"page": 4330, "perPage": 1}}, headers=DOC).get_json()
    assert beyond["results"] == [] and beyond["paging"]["lastPage"] is True


# -- paging -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("order", ["LatestFirst", "oldestFirst"])
def test_paging_through_thousands_has_no_gaps_or_duplicates(any_app: Any, order: str) -> None:
    rng = random.Random(7)
    base = ms("2024-06-01T00:00:00")
    # 3000 matching events on 700 distinct times (many ties), inserted in random order, and 1000 others
    times = [base + rng.randrange(700) * 1000 for _ in range(4000)]
    docs = [doc(at, "khub.search" if i % 4 else "topic.display") for i, at in enumerate(times)]
    rng.shuffle(docs)
    seed(any_app, docs)
    ascending = [d["id"] for _, d in sorted(((i, d) for i, d in enumerate(docs) if d["name"] == "khub.search"),
                                            key=lambda item: (item[1]["datetime"], item[0]))]
    expected = ascending if order == "oldestFirst" else ascending[::-1]
    assert len(expected) == 3000

    per_page, got, page = 97, [], 1
    while True:
        resp = retrieve(any_app, {**RANGE, "filters": {"name": ["khub.search"]}, "sortOrder": order,
                                  "paging": {"page": page, "perPage": per_page}})
        body = resp.get_json()
        assert body["paging"]["totalCount"] == 3000
        got += ids(resp)
        if body["paging"]["lastPage"]:
            break
        assert len(body["results"]) == per_page
        page += 1
    assert page == math.ceil(3000 / per_page)
    assert got == expected
    assert len(set(got)) == 3000


def test_paging_defaults_and_bounds(any_app: Any) -> None:
    seed(any_app, [doc(ms("2024-06-01T00:00:00") + i) for i in range(1005)])
    body = retrieve(any_app, RANGE).get_json()  # no paging: the first 1000 (the documented maximum), latest first
    assert body["paging"] == {"page": 1, "perPage": 1000, "totalCount": 1005, "lastPage": False}
    assert [r["datetime"] for r in body["results"]] == sorted((r["datetime"] for r in body["results"]), reverse=True)
    full = retrieve(any_app, {**RANGE, "paging": {"page": 2, "perPage": 1000}}).get_json()
    assert len(full["results"]) == 5 and full["paging"]["lastPage"] is True
    exact = retrieve(any_app, {**RANGE, "paging": {"page": 201, "perPage": 5}}).get_json()
    assert len(exact["results"]) == 5 and exact["paging"]["lastPage"] is True
    far = retrieve(any_app, {**RANGE, "paging": {"page": 2**31 - 1, "perPage": 1000}}).get_json()
    assert far["results"] == [] and far["paging"]["lastPage"] is True
    empty = retrieve(any_app, {"startDate": "2023-01-01", "endDate": "2023-02-01"}).get_json()
    assert empty["paging"] == {"page": 1, "perPage": 1000, "totalCount": 0, "lastPage": True}


@pytest.mark.parametrize("spelling, descending", [("LatestFirst", True), ("latestfirst", True),
                                                  ("LATESTFIRST", True), ("OldestFirst", False),
                                                  ("oldestFIRST", False), (None, True)])
def test_sort_order_is_case_insensitive(ft_app: Any, spelling: str | None, descending: bool) -> None:
    seed(ft_app, [doc(ms("2024-06-01T00:00:00") + i * 1000) for i in range(5)])
    body = {**RANGE, "sortOrder": spelling} if spelling is not None else RANGE
    times = [r["datetime"] for r in retrieve(ft_app, body).get_json()["results"]]
    assert times == sorted(times, reverse=descending) and len(times) == 5


# -- dates ------------------------------------------------------------------------------------------
DATED = ["2024-03-10T09:59:59.999", "2024-03-10T10:00:00.000", "2024-03-10T10:00:30.000",
         "2024-03-10T10:00:59.999", "2024-03-10T10:01:00.000", "2024-03-11T00:00:00.000"]


@pytest.mark.parametrize("start, end, echoed, expected", [
    ("2024-03-10", "2024-03-11", ("2024-03-10T00:00:00", "2024-03-11T00:00:00"), DATED[:5]),
    ("2024-03-10T10:00", "2024-03-10T10:01", ("2024-03-10T10:00:00", "2024-03-10T10:01:00"), DATED[1:4]),
    ("2024-03-10T10:00:30", "2024-03-10T10:00:31", ("2024-03-10T10:00:30", "2024-03-10T10:00:31"), DATED[2:3]),
    ("2024-03-10T10:00:30", "2024-03-11", ("2024-03-10T10:00:30", "2024-03-11T00:00:00"), DATED[2:5]),
    ("2024-03-10", "2024-03-10T10:00", ("2024-03-10T00:00:00", "2024-03-10T10:00:00"), DATED[:1]),
    ("2024-03-10T10:01:00", "2024-03-12T00:00:00", ("2024-03-10T10:01:00", "2024-03-12T00:00:00"), DATED[4:]),
], ids=["date", "minutes", "seconds", "seconds-to-date", "date-to-minutes", "seconds-both"])
def test_each_date_format(any_app: Any, start: str, end: str, echoed: tuple[str, str], expected: list[str]) -> None:
    seed(any_app, [doc(ms(text), event_id=text) for text in DATED])
    resp = retrieve(any_app, {"startDate": start, "endDate": end, "sortOrder": "OldestFirst"})
    body = resp.get_json()
    assert (body["startDate"], body["endDate"]) == echoed
    assert ids(resp) == expected


def test_end_date_defaults_to_now(ft_app: Any) -> None:
    client = ft_app.test_client()
    event = {"offline": False, "appName": "a", "appVersion": "1", "name": "khub.search"}
    before = now_ms()
    posted = client.post(INGEST, json=event, headers=ACME).get_json()["ids"][0]
    today = time.strftime("%Y-%m-%d", time.gmtime(before / 1000))
    body = client.post(RETRIEVE, json={"startDate": today}, headers=ACME).get_json()
    assert [r["id"] for r in body["results"]] == [posted]  # just stored: inside the default range
    echoed = ms(body["endDate"])
    assert echoed % 1000 == 0 and before <= echoed <= now_ms() + 1000
    # explicit null is the same as absent
    assert client.post(RETRIEVE, json={"startDate": today, "endDate": None}, headers=ACME).get_json()["results"]


@pytest.mark.parametrize("value", ["2024-3-10", "2024-03-10T10", "2024-03-10T10:00:00.000", "2024-03-10T10:00:00Z",
                                   "2024-03-10 10:00", "10/03/2024", "2024-02-30", "2024-03-10T24:00",
                                   "2024-03-10T10:60", "2024-03-10t10:00", "", 20240310, ["2024-03-10"], True])
@pytest.mark.parametrize("field", ["startDate", "endDate"])
def test_bad_dates_are_400_naming_the_field(ft_app: Any, field: str, value: Any) -> None:
    body = {**RANGE, field: value}
    assert_error(retrieve(ft_app, body), 400, field)


# -- filters ----------------------------------------------------------------------------------------
USERS = [
    ("u-1", ["internal"], ["ft:administrator", "nda"], ["ADMIN", "FEEDBACK_USER"]),
    ("u-2", ["Keycloak"], ["TechWriter"], ["PRINT_USER"]),
    ("u-3", ["internal", "Keycloak"], [], ["FEEDBACK_USER"]),
    ("u-4", [], ["TechWriter", "ft:administrator"], []),
    (None, [], [], []),
]


@pytest.fixture
def filtered(any_app: Any) -> tuple[Any, list[dict[str, Any]]]:
    base = ms("2024-06-01T00:00:00")
    docs = [doc(base + i * 1000, name, user_id=u, realm=r, groups=g, roles=ro)
            for i, (name, (u, r, g, ro)) in enumerate((n, user) for n in ("khub.search", "topic.display",
                                                                         "feedback.send") for user in USERS)]
    seed(any_app, docs)
    return any_app, docs


def _expect(docs: list[dict[str, Any]], names: list[str] | None = None, **user: list[str]) -> list[str]:
    """What the filters select, computed from the documents (any listed value; every given list)."""
    keys = {"id": "id", "realm": "realm", "group": "groups", "role": "roles"}

    def hit(d: dict[str, Any]) -> bool:
        if names and d["name"] not in names:
            return False
        for key, wanted in user.items():
            have = d["user"][keys[key]]
            have = have if isinstance(have, list) else [have]
            if wanted and not set(have) & set(wanted):
                return False
        return True

    return [d["id"] for d in sorted(docs, key=lambda d: d["datetime"]) if hit(d)]


@pytest.mark.parametrize("filters", [
    {"name": ["khub.search"]},
    {"name": ["khub.search", "feedback.send"]},
    {"name": "topic.display"},  # a single string is a one-element list
    {"name": []},  # empty: no filter
    {"user": {"id": ["u-2", "u-4"]}},
    {"user": {"realm": ["internal"]}},
    {"user": {"realm": ["Keycloak", "sso"]}},
    {"user": {"group": ["ft:administrator", "TechWriter"]}},
    {"user": {"group": ["nobody"]}},
    {"user": {"role": ["FEEDBACK_USER"]}},
    {"user": {"realm": ["internal", "Keycloak"], "group": ["ft:administrator", "TechWriter"],
              "role": ["FEEDBACK_USER"]}},
    {"name": ["khub.search"], "user": {"id": ["u-1", "u-3"], "role": ["ADMIN"]}},
    {"user": {}},
    {"name": None, "user": None},
], ids=lambda f: json.dumps(f, separators=(",", ":")))
def test_each_filter(filtered: tuple[Any, list[dict[str, Any]]], filters: dict[str, Any]) -> None:
    app, docs = filtered
    resp = retrieve(app, {**RANGE, "filters": filters, "sortOrder": "OldestFirst"})
    names = filters.get("name")
    names = [names] if isinstance(names, str) else names
    expected = _expect(docs, names, **{k: v for k, v in (filters.get("user") or {}).items()})
    assert ids(resp) == expected
    assert resp.get_json()["paging"]["totalCount"] == len(expected)


# -- tenants ----------------------------------------------------------------------------------------
def test_tenant_isolation(any_app: Any) -> None:
    at = ms("2024-06-01T00:00:00")
    seed(any_app, [doc(at, tenant="acme", event_id="acme-1"), doc(at + 1, tenant="globex", event_id="globex-1"),
                   doc(at + 2, tenant=DOC_TENANT, event_id="doc-1")])
    assert ids(retrieve(any_app, RANGE, ACME)) == ["acme-1"]
    assert ids(retrieve(any_app, RANGE, GLOBEX)) == ["globex-1"]
    assert ids(retrieve(any_app, RANGE, DOC)) == ["doc-1"]
    body = retrieve(any_app, RANGE, GLOBEX).get_json()
    assert body["results"][0]["tenantId"] == "globex" and body["paging"]["totalCount"] == 1


# -- the retention window ---------------------------------------------------------------------------
def test_retention_window_from_settings(tmp_path: Path) -> None:
    app = create_app(ft_config(tmp_path, retention_days=30))
    today = now_ms() // service.DAY_MS * service.DAY_MS
    oldest = time.strftime("%Y-%m-%d", time.gmtime((today - 30 * service.DAY_MS) / 1000))
    too_old = time.strftime("%Y-%m-%dT23:59:59", time.gmtime((today - 31 * service.DAY_MS) / 1000))
    assert retrieve(app, {"startDate": oldest}).status_code == 200
    body = assert_error(retrieve(app, {"startDate": too_old}), 400, "startDate")
    assert "30 days" in body["message"] and oldest in body["message"]


def test_default_retention_is_one_year(tmp_path: Path) -> None:
    app = create_app(ft_config(tmp_path, retention_days=None))
    today = now_ms() // service.DAY_MS * service.DAY_MS
    day = lambda n: time.strftime("%Y-%m-%d", time.gmtime((today - n * service.DAY_MS) / 1000))  # noqa: E731
    assert retrieve(app, {"startDate": day(365)}).status_code == 200
    assert_error(retrieve(app, {"startDate": day(366)}), 400, "startDate")


# -- every 400 names its field ----------------------------------------------------------------------
@pytest.mark.parametrize("body, field", [
    ({}, "startDate"),
    ({"startDate": None}, "startDate"),
    ({"endDate": "2024-05-01"}, "startDate"),
    ({"startDate": "2024-03-10", "endDate": "2024-03-10"}, "endDate"),
    ({"startDate": "2024-03-10T10:00", "endDate": "2024-03-10T09:59:59"}, "endDate"),
    ({"startDate": "2010-01-01", "endDate": "2010-02-01"}, "startDate"),  # outside the retention window
    ({"startDate": "2100-01-01"}, "startDate"),  # in the future
    ({**RANGE, "paging": {"page": 1}}, "paging.perPage"),
    ({**RANGE, "paging": {"perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {}}, "paging.page"),
    ({**RANGE, "paging": {"page": 0, "perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {"page": 2**31, "perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {"page": "1", "perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {"page": 1.0, "perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {"page": True, "perPage": 10}}, "paging.page"),
    ({**RANGE, "paging": {"page": 1, "perPage": 0}}, "paging.perPage"),
    ({**RANGE, "paging": {"page": 1, "perPage": 1001}}, "paging.perPage"),
    ({**RANGE, "paging": {"page": 1, "perPage": None}}, "paging.perPage"),
    ({**RANGE, "paging": {"page": 1, "perPage": 10, "size": 3}}, "paging.size"),
    ({**RANGE, "paging": [1, 10]}, "paging"),
    ({**RANGE, "sortOrder": "newestFirst"}, "sortOrder"),
    ({**RANGE, "sortOrder": 1}, "sortOrder"),
    ({**RANGE, "sortOrder": ""}, "sortOrder"),
    ({**RANGE, "filters": []}, "filters"),
    ({**RANGE, "filters": {"name": [1]}}, "filters.name"),
    ({**RANGE, "filters": {"name": {"khub.search": True}}}, "filters.name"),
    ({**RANGE, "filters": {"names": ["khub.search"]}}, "filters.names"),
    ({**RANGE, "filters": {"user": "u-1"}}, "filters.user"),
    ({**RANGE, "filters": {"user": {"groups": ["TechWriter"]}}}, "filters.user.groups"),
    ({**RANGE, "filters": {"user": {"group": 3}}}, "filters.user.group"),
    ({**RANGE, "filters": {"user": {"role": [None]}}}, "filters.user.role"),
    ({**RANGE, "filters": {"user": {"id": [1, 2]}}}, "filters.user.id"),
    ({**RANGE, "filters": {"user": {"realm": [{}]}}}, "filters.user.realm"),
    ({**RANGE, "limit": 10}, "limit"),
], ids=lambda v: json.dumps(v, separators=(",", ":")) if isinstance(v, dict) else str(v))
def test_invalid_requests_are_400_naming_the_field(ft_app: Any, body: dict[str, Any], field: str) -> None:
    assert_error(retrieve(ft_app, body), 400, field)


def test_every_problem_is_listed(ft_app: Any) -> None:
    body = assert_error(retrieve(ft_app, {"endDate": "x", "paging": {"page": 0}, "sortOrder": "up"}), 400, "startDate")
    assert [e["field"] for e in body["errors"]] == ["startDate", "endDate", "paging.page", "paging.perPage",
                                                    "sortOrder"]


@pytest.mark.parametrize("data", ["", "   ", "not json", "[]", '"2024-01-01"', "3", "null", '{"startDate": NaN}',
                                  '{"startDate": "2024-01-01"'])
def test_unreadable_bodies_are_400(ft_app: Any, data: str) -> None:
    resp = ft_app.test_client().post(RETRIEVE, data=data, content_type="application/json", headers=ACME)
    assert_error(resp, 400, "body")


def test_json_without_content_type_is_read(ft_app: Any) -> None:
    resp = ft_app.test_client().post(RETRIEVE, data=json.dumps(RANGE), headers=ACME)
    assert resp.status_code == 200
