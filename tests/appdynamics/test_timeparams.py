"""Query parameters (start, end, limit, mode, scrollid) and the two body forms of POST /events/query."""

from __future__ import annotations

import json

import pytest

from plugins.appdynamics.timeparams import (
    ParamError,
    QuerySpec,
    RequestParams,
    parse_limit,
    parse_query_body,
    parse_time,
    request_params,
)

DAY = 1_654_387_200_000  # 2022-06-05T00:00:00Z


@pytest.mark.parametrize(
    ("value", "ms"),
    [
        ("1654387200000", DAY),
        (" 1654387200000 ", DAY),
        (DAY, DAY),
        (float(DAY), DAY),
        ("0", 0),
        ("2022-06-05T00:00:00.000Z", DAY),
        ("2022-06-05T00:00:00Z", DAY),
        ("2022-06-04T20:00:00.000-04:00", DAY),  # moment().toISOString(true)
        ("2022-06-05T02:00:00.000+02:00", DAY),
        ("2022-06-05T02:00:00.000 02:00", DAY),  # '+' decoded to a space by an unencoded URL
        ("2022-06-05", DAY),  # SimpleDateFormat("yyyy-MM-dd")
    ],
)
def test_parse_time(value, ms: int) -> None:
    assert parse_time(value, "start") == ms


@pytest.mark.parametrize("value", ["", "yesterday", "2022-06-05T", "1e12", True, None, [1], "2022-13-01"])
def test_parse_time_rejects(value) -> None:
    with pytest.raises(ParamError) as caught:
        parse_time(value, "end")
    assert caught.value.name == "end"


@pytest.mark.parametrize(("value", "limit"), [(None, 100), ("", 100), ("5", 5), (7, 7), ("0", 0), ("10000", 10_000),
                                              ("10001", 10_000), (99999999, 10_000), (50.0, 50)])  # fmt: skip
def test_parse_limit(value, limit: int) -> None:
    assert parse_limit(value) == limit


@pytest.mark.parametrize("value", ["-1", -1, "1.5", 1.5, "ten", True, [5]])
def test_parse_limit_rejects(value) -> None:
    with pytest.raises(ParamError, match=r"limit: expected (a non-negative integer|an integer)"):
        parse_limit(value)


def test_request_params() -> None:
    assert request_params({}) == RequestParams(None, None, 100, None, None)
    got = request_params({"start": "2022-06-05", "end": "1654390800000", "limit": "20000", "mode": "scroll"})
    assert got == RequestParams(DAY, DAY + 3_600_000, 10_000, "scroll", None)
    follow = request_params({"mode": "scroll", "scrollid": "c2Nhbjs1", "size": "500"})
    assert (follow.mode, follow.scrollid) == ("scroll", "c2Nhbjs1")
    assert request_params({"scrollid": "abc"}).mode == "scroll"
    with pytest.raises(ParamError, match="start is after end"):
        request_params({"start": "2", "end": "1"})
    with pytest.raises(ParamError, match="unknown mode 'json'"):
        request_params({"mode": "json"})


def test_text_body_is_one_query_with_the_url_parameters() -> None:
    params = RequestParams(start=1, end=2, limit=3, mode=None)
    assert parse_query_body(b"SELECT * FROM myProducts", params) == [
        QuerySpec(label="0", query="SELECT * FROM myProducts", start=1, end=2, limit=3, mode=None)
    ]
    assert parse_query_body("\ufeff  \n select 1 from t \n", params)[0].query == "select 1 from t"


def test_json_array_body_overrides_per_query() -> None:
    params = RequestParams(start=10, end=20, limit=30)
    body = json.dumps([
        {"label": "practicesQuery", "query": "SELECT a FROM t"},
        {"query": "SELECT b FROM t", "start": "2022-06-05", "end": DAY + 1, "limit": 50000},
        {"query": "SELECT c FROM t", "label": 7, "limit": "5"},
    ])  # fmt: skip
    specs = parse_query_body(body.encode(), params)
    assert specs == [
        QuerySpec("practicesQuery", "SELECT a FROM t", 10, 20, 30, None),
        QuerySpec("1", "SELECT b FROM t", DAY, DAY + 1, 10_000, None),
        QuerySpec("7", "SELECT c FROM t", 10, 20, 5, None),
    ]


def test_body_form_is_told_by_content() -> None:
    params = RequestParams()
    # a JSON array sent as text, ADQL sent with a JSON content type: the content decides
    assert parse_query_body('  [{"query": "SELECT a FROM t"}]', params)[0].query == "SELECT a FROM t"
    assert parse_query_body('"SELECT a FROM t"', params)[0].query == "SELECT a FROM t"
    assert parse_query_body('{"query": "SELECT a FROM t", "label": "x"}', params)[0].label == "x"


def test_scroll_in_a_one_query_array() -> None:
    specs = parse_query_body('[{"query": "SELECT a FROM t", "mode": "scroll"}]', RequestParams())
    assert specs[0].mode == "scroll"
    with pytest.raises(ParamError, match="scroll mode takes one query per request"):
        parse_query_body('[{"query": "SELECT a FROM t", "mode": "scroll"}, {"query": "SELECT b FROM t"}]',
                         RequestParams())  # fmt: skip
    with pytest.raises(ParamError, match="scroll mode takes one query"):
        parse_query_body('[{"query": "SELECT a FROM t"}, {"query": "SELECT b FROM t"}]', RequestParams(mode="scroll"))
    assert parse_query_body("SELECT a FROM t", RequestParams(scrollid="x", mode="scroll"))[0].mode == "scroll"


def test_twenty_queries_at_most() -> None:
    twenty = json.dumps([{"query": f"SELECT a{i} FROM t"} for i in range(20)])
    assert [s.label for s in parse_query_body(twenty, RequestParams())] == [str(i) for i in range(20)]
    with pytest.raises(ParamError, match="at most 20 queries per request; got 21"):
        parse_query_body(json.dumps([{"query": "SELECT a FROM t"}] * 21), RequestParams())


@pytest.mark.parametrize(
    ("body", "name", "words"),
    [
        ("", "body", "empty"),
        ("   ", "body", "empty"),
        (b"\xff\xfe", "body", "not UTF-8"),
        ("[", "body", "not valid JSON"),
        ("[]", "body", "holds no queries"),
        ('["SELECT a FROM t"]', "queries[0]", "must be an object"),
        ('[{"label": "x"}]', "queries[0].query", "missing"),
        ('[{"query": ""}]', "queries[0].query", "missing"),
        ('[{"query": 5}]', "queries[0].query", "missing"),
        ('[{"query": "SELECT a FROM t", "queryString": "x"}]', "queries[0].queryString", "unknown key"),
        ('[{"query": "SELECT a FROM t", "label": {"a": 1}}]', "queries[0].label", "must be a string"),
        ('[{"query": "SELECT a FROM t"}, {"query": "SELECT a FROM t", "start": "x"}]', "queries[1].start", "neither"),
        ('[{"query": "SELECT a FROM t", "limit": -5}]', "queries[0].limit", "non-negative"),
        ('[{"query": "SELECT a FROM t", "mode": "page"}]', "queries[0].mode", "unknown mode"),
        ('[{"query": "SELECT a FROM t", "start": 5, "end": 1}]', "queries[0].start", "start is after end"),
    ],
)
def test_bad_bodies(body, name: str, words: str) -> None:
    with pytest.raises(ParamError) as caught:
        parse_query_body(body, RequestParams())
    assert caught.value.name == name
    assert words in caught.value.reason
