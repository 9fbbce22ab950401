"""``POST /events/query``: body forms told by content, labels and per-query parameters, start/end/limit, the
response element, scroll mode over several batches, and every 400 (ADQL with line and column, bounds)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from appdynamics.appd_http_helpers import DOC, JSON_V2, TEXT_V2, error_body, headers

from plugins.appdynamics.timeparams import MAX_QUERIES

BASE = 1_700_000_000_000  # 2023-11-14T22:13:20.000Z
SCHEMA = {"brand": "string", "rating": "integer", "price": "float"}


@pytest.fixture
def client(appd_client: Any) -> Any:
    """A schema ``p`` with 30 events, one per minute from BASE: brand A/B/C by i % 3, rating i % 5, price i * 1.5."""
    assert appd_client.post("/events/schema/p", headers=DOC, data=json.dumps({"schema": SCHEMA})).status_code == 201
    events = [{"brand": "ABC"[i % 3], "rating": i % 5, "price": i * 1.5, "eventTimestamp": BASE + i * 60_000}
              for i in range(30)]
    assert appd_client.post("/events/publish/p", headers=DOC, data=json.dumps(events)).status_code == 200
    return appd_client


def post(client: Any, body: str, params: str = "", content_type: str | None = TEXT_V2) -> Any:
    return client.post("/events/query" + params, headers=headers(content_type=content_type), data=body)


def ok(client: Any, body: str, params: str = "", content_type: str | None = TEXT_V2) -> list[dict[str, Any]]:
    response = post(client, body, params, content_type)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"] == "application/vnd.appd.events+json;v=2"
    return response.get_json()


def test_text_query_answers_a_one_element_array(client: Any) -> None:
    (element,) = ok(client, "SELECT brand, count(*) FROM p")
    assert set(element) == {"label", "fields", "results", "moreData", "schema", "total"}
    assert element["label"] == "0" and element["schema"] == "p" and element["moreData"] is False
    assert element["fields"] == [{"label": "brand", "field": "brand", "type": "string"},
                                 {"label": "count(*)", "field": "*", "type": "integer", "aggregation": "count"}]
    assert element["results"] == [["A", 10], ["B", 10], ["C", 10]]
    assert element["total"] == 30


@pytest.mark.parametrize("content_type", [TEXT_V2, JSON_V2, "application/json", None,
                                          "application/vnd.appd.events+text;v=1"])
def test_body_form_told_by_content_not_header(client: Any, content_type: str | None) -> None:
    text = "SELECT count(*) FROM p"
    assert ok(client, text, content_type=content_type)[0]["results"] == [[30]]
    array = json.dumps([{"label": "n", "query": text}, {"query": "SELECT max(rating) FROM p"}])
    answer = ok(client, array, content_type=content_type)
    assert [(e["label"], e["results"]) for e in answer] == [("n", [[30]]), ("1", [[4]])]
    assert ok(client, json.dumps({"query": text, "label": "one"}), content_type=content_type)[0]["label"] == "one"
    assert ok(client, json.dumps(text), content_type=content_type)[0]["results"] == [[30]]


def test_multi_query_in_request_order_with_per_query_parameters(client: Any) -> None:
    queries = [
        {"label": "all", "query": "SELECT count(*) FROM p"},
        {"label": "window", "query": "SELECT count(*) FROM p", "start": BASE + 10 * 60_000,
         "end": "2023-11-14T22:32:20.000Z"},  # minutes 10..19, both bounds inclusive
        {"label": "limited", "query": "SELECT rating FROM p", "limit": 4},
        {"label": "url-bounds", "query": "SELECT count(*) FROM p"},
    ]
    answer = ok(client, json.dumps(queries), params=f"?start={BASE + 25 * 60_000}&limit=2")
    by_label = {e["label"]: e for e in answer}
    assert [e["label"] for e in answer] == ["all", "window", "limited", "url-bounds"]
    assert by_label["all"]["results"] == [[5]]  # the URL's start applies where the query sets none
    assert by_label["window"]["results"] == [[10]]
    assert by_label["limited"]["results"] == [[4], [3], [2], [1]]  # newest first, minutes 29..26
    assert by_label["limited"]["moreData"] is True and by_label["limited"]["total"] == 5
    assert by_label["url-bounds"]["results"] == [[5]]


@pytest.mark.parametrize(("params", "count"), [
    (f"?start={BASE}&end={BASE + 60_000}", 2),
    ("?start=2023-11-14T22:13:20Z&end=2023-11-14T22:14:20.000Z", 2),
    ("?start=2023-11-14T23:13:20%2B01:00&end=2023-11-14T22:14:20Z", 2),
    ("?start=2023-11-15", 0),
    ("?end=2023-11-14", 0),
    ("?start=2023-11-14", 30),
    ("", 30),
])
def test_start_and_end_forms(client: Any, params: str, count: int) -> None:
    assert ok(client, "SELECT count(*) FROM p", params)[0]["results"] == [[count]]


def test_limit_default_and_clamp(client: Any) -> None:
    big = [{"brand": "Z", "eventTimestamp": BASE + 100_000_000 + i} for i in range(150)]
    assert client.post("/events/publish/p", headers=DOC, data=json.dumps(big)).status_code == 200
    default = ok(client, "SELECT brand FROM p")[0]
    assert len(default["results"]) == 100 and default["moreData"] is True and default["total"] == 180
    clamped = ok(client, "SELECT brand FROM p", "?limit=1000000")[0]
    assert len(clamped["results"]) == 180 and clamped["moreData"] is False
    assert ok(client, "SELECT brand FROM p LIMIT 3", "?limit=50")[0]["results"] == [["Z"]] * 3


def test_scroll_mode_pages_every_event_once(client: Any) -> None:
    more = [{"brand": "S", "rating": 9, "eventTimestamp": BASE + 10_000_000 + i} for i in range(1000)]
    for chunk in (more[:500], more[500:]):
        assert client.post("/events/publish/p", headers=DOC, data=json.dumps(chunk)).status_code == 200
    query = "SELECT rating, eventTimestamp FROM p"
    seen: list[Any] = []
    element = ok(client, query, "?mode=scroll&limit=400")[0]
    batches = 1
    while True:
        assert len(element["results"]) <= 400
        assert element["total"] == 1030
        seen.extend(element["results"])
        if not element["moreData"]:
            assert "scrollid" not in element
            break
        scrollid = element["scrollid"]
        element = ok(client, query, f"?mode=scroll&limit=400&scrollid={scrollid}")[0]
        batches += 1
    assert batches == 3
    assert len(seen) == 1030 and len({row[1] for row in seen}) == 1030
    assert seen == sorted(seen, key=lambda row: row[1], reverse=True)  # newest first, as without scroll
    # a batch holds at most 1,000 rows whatever the limit
    first = ok(client, query, "?mode=scroll&limit=5000")[0]
    assert len(first["results"]) == 1000 and first["moreData"] is True
    # the JSON form with a per-query mode
    first = ok(client, json.dumps([{"query": query, "mode": "scroll"}]), "?limit=10")[0]
    assert len(first["results"]) == 10 and "scrollid" in first


@pytest.mark.parametrize(("body", "params", "field"), [
    ("", "", "body"),
    ("   ", "", "body"),
    ("[]", "", "body"),
    ("[{", "", "body"),
    (json.dumps([{"query": "SELECT * FROM p"}] * (MAX_QUERIES + 1)), "", "body"),
    (json.dumps([{"query": ""}]), "", "queries[0].query"),
    (json.dumps([{"query": "SELECT * FROM p", "size": 3}]), "", "queries[0].size"),
    (json.dumps([{"query": "SELECT * FROM p", "limit": -1}]), "", "queries[0].limit"),
    (json.dumps([{"query": "SELECT * FROM p", "start": "soon"}]), "", "queries[0].start"),
    (json.dumps([{"query": "SELECT * FROM p", "mode": "scroll"}, {"query": "SELECT * FROM p"}]), "", "mode"),
    ("SELECT * FROM p", "?start=yesterday", "start"),
    ("SELECT * FROM p", "?end=2023-13-45", "end"),
    ("SELECT * FROM p", f"?start={BASE + 1}&end={BASE}", "start"),
    ("SELECT * FROM p", "?limit=ten", "limit"),
    ("SELECT * FROM p", "?start=9999999999999999999", "start"),  # beyond int64 in SQLite: was a 500
    ("SELECT * FROM p", "?end=-9999999999999999999", "end"),
    (json.dumps([{"query": "SELECT * FROM p", "end": 10**20}]), "", "queries[0].end"),
    ("SELECT * FROM p", "?mode=fast", "mode"),
    ("SELECT * FROM p", "?mode=scroll&scrollid=not-a-scroll-id", "scrollid"),
])
def test_bad_requests_name_the_parameter(client: Any, body: str, params: str, field: str) -> None:
    response = post(client, body, params)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert error_body(response)["field"] == field


@pytest.mark.parametrize(("query", "line", "column", "words"), [
    ("SELECT * FROM", 1, 14, "ends too early"),
    ("SELECT brand\nFROM p\nGROUP BY brand", 3, 1, "GROUP BY"),
    ("SELECT * FROM p SINCE 1 hour ago", 1, 30, "ago"),
    ("SELECT nope FROM p", 1, 8, "unknown field nope"),
    ("SELECT avg(brand) FROM p", 1, 12, "not a string"),
    ("SELECT * FROM p WHERE rating = 'abc'", 1, 32, "abc"),
    ("SELEKT * FROM p", 1, 1, "SELEKT"),
])
def test_adql_errors_have_line_and_column(client: Any, query: str, line: int, column: int, words: str) -> None:
    response = post(client, query)
    assert response.status_code == 400, response.get_data(as_text=True)
    error = error_body(response)
    assert error["code"] == "Invalid.Query"
    assert (error["line"], error["column"]) == (line, column), error
    assert words in error["message"]
    assert error["field"] == "queries[0].query"


def test_second_query_error_names_its_index_and_nothing_runs(client: Any) -> None:
    body = json.dumps([{"query": "SELECT count(*) FROM p"}, {"label": "bad", "query": "SELECT FROM p"}])
    error = error_body(post(client, body))
    assert error["field"] == "queries[1].query" and error["query"] == 1 and "'bad'" in error["message"]


def test_query_length_limit(client: Any) -> None:
    head = "SELECT count(*) FROM p WHERE brand != '"
    exact = head + "x" * (5_000 - len(head) - 1) + "'"
    assert len(exact) == 5_000
    assert ok(client, exact)[0]["results"] == [[30]]
    response = post(client, head + "x" * (5_000 - len(head)) + "'")
    assert response.status_code == 400
    assert "5,000" in error_body(response)["message"]


def test_unknown_schema_is_404(client: Any) -> None:
    response = post(client, "SELECT * FROM nope")
    assert response.status_code == 404 and error_body(response)["code"] == "Missing.EventType"


def test_scroll_refuses_aggregation(client: Any) -> None:
    response = post(client, "SELECT brand, count(*) FROM p", "?mode=scroll")
    assert response.status_code == 400 and error_body(response)["code"] == "Invalid.Query"
