"""The response element: fields (label, field, type, aggregation), rendered rows, moreData/total, scroll batches."""

from __future__ import annotations

import pytest

from plugins.appdynamics.adql import AdqlError
from plugins.appdynamics.adql.semantics import analyze_text
from plugins.appdynamics.results import (
    SCROLL_BATCH_MAX,
    check_scrollable,
    fields_json,
    iso_millis,
    query_result,
    scroll_batch_size,
    scroll_result,
)

MY_PRODUCTS = {"id": "string", "productBrand": "string", "userRating": "integer", "price": "float",
               "productName": "string", "description": "string"}  # fmt: skip
BROWSER = {"userdata.practiceId": "string", "metrics.End User Response Time (ms)": "float", "appkey": "string",
           "pagename": "string", "visits": "integer", "ok": "boolean"}  # fmt: skip


def fields(query: str, schema=MY_PRODUCTS) -> list[dict]:
    return fields_json(analyze_text(query), schema)


def test_select_star_lists_the_schema_then_the_implicit_dates() -> None:
    assert fields("SELECT * FROM myProducts") == [
        {"label": "id", "field": "id", "type": "string"},
        {"label": "productBrand", "field": "productBrand", "type": "string"},
        {"label": "userRating", "field": "userRating", "type": "integer"},
        {"label": "price", "field": "price", "type": "float"},
        {"label": "productName", "field": "productName", "type": "string"},
        {"label": "description", "field": "description", "type": "string"},
        {"label": "eventTimestamp", "field": "eventTimestamp", "type": "date"},
        {"label": "pickupTimestamp", "field": "pickupTimestamp", "type": "date"},
    ]


def test_notes_response_example_fields() -> None:
    got = fields('SELECT userdata.practiceId, avg(metrics.`End User Response Time (ms)`) AS "Response Time", count(*) '
                 "FROM browser_records", BROWSER)  # fmt: skip
    assert got == [
        {"label": "userdata.practiceId", "field": "userdata.practiceId", "type": "string"},
        {"label": "Response Time", "field": "metrics.End User Response Time (ms)", "type": "float",
         "aggregation": "avg"},
        {"label": "count(*)", "field": "*", "type": "integer", "aggregation": "count"},
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("item", "kind", "aggregation"),
    [
        ("count(price)", "integer", "count"),
        ("distinctcount(productBrand)", "integer", "distinctcount"),
        ("sum(userRating)", "integer", "sum"),
        ("sum(price)", "float", "sum"),
        ("avg(userRating)", "float", "avg"),
        ("min(userRating)", "integer", "min"),
        ("max(eventTimestamp)", "date", "max"),
        ("stdev(price)", "float", "stdev"),
        ("percentile(userRating, 90)", "float", "percentile"),
        ("sum(userRating) / count(*)", "integer", "expression"),
        ("sum(userRating) * 1.0 / count(*)", "float", "expression"),
        ("filter(count(*), WHERE price > 3)", "integer", "count"),
    ],
)
def test_metric_types(item: str, kind: str, aggregation: str) -> None:
    [column] = fields(f"SELECT {item} FROM myProducts")
    assert (column["type"], column["aggregation"], column["label"]) == (kind, aggregation, item)


@pytest.mark.parametrize(
    ("item", "kind"),
    [
        ("userRating / 2", "integer"),
        ("userRating / 2.0", "float"),
        ("price % 2", None),
        ("-userRating", "integer"),
        ("length(productName)", "integer"),
        ("indexof(productName, 'a')", "integer"),
        ("substring(productName, 1, 2)", "string"),
        ("concat(productName, userRating)", "string"),
        ("trim(productName)", "string"),
        ("now()", "date"),
        ("now() - eventTimestamp", "integer"),
        ("'text'", "string"),
        ("true", "boolean"),
    ],
)
def test_value_types(item: str, kind: str | None) -> None:
    if kind is None:
        with pytest.raises(AdqlError, match="% works on integers only"):
            fields(f"SELECT {item} FROM myProducts")
        return
    [column] = fields(f"SELECT {item} FROM myProducts")
    assert column == {"label": item, "field": item, "type": kind}


def test_bucket_and_expanded_columns() -> None:
    got = fields("SELECT series(eventTimestamp, '1h') AS h, series(price, 100), range(userRating, 2, 4), "
                 "stats(price), percentile(price, 50, 90) FROM myProducts")  # fmt: skip
    assert [(f["label"], f["type"], f.get("aggregation")) for f in got] == [
        ("h", "date", None), ("series(price, 100)", "float", None), ("range(userRating, 2, 4)", "string", None),
        ("count(price)", "integer", "count"), ("min(price)", "float", "min"), ("max(price)", "float", "max"),
        ("avg(price)", "float", "avg"), ("sum(price)", "float", "sum"),
        ("percentile(price, 50)", "float", "percentile"), ("percentile(price, 90)", "float", "percentile"),
    ]  # fmt: skip
    assert fields("SELECT series(userRating, 2), count(*) FROM myProducts")[0]["type"] == "integer"


@pytest.mark.parametrize(
    ("query", "words", "column"),
    [
        ("SELECT nope FROM myProducts", "unknown field nope", 8),
        ("SELECT * FROM myProducts WHERE nope = 1", "unknown field nope", 32),
        ("SELECT count(*) FROM myProducts WHERE a.b IS NULL", "unknown field a.b", 39),
        ("SELECT avg(productName) FROM myProducts", "avg() needs a number or a date, not a string", 12),
        ("SELECT price FROM myProducts ORDER BY nope", "unknown field nope", 39),
        ("SELECT productName + 1 FROM myProducts", "math needs numbers or dates, not a string", 8),
        ("SELECT -productName FROM myProducts", "unary minus needs a number", 8),
        ("SELECT length(price) FROM myProducts", "length() needs a string, not a float", 15),
        ("SELECT substring(productName, 'a') FROM myProducts", "positions must be integers", 8),
        ("SELECT series(price, '1m'), count(*) FROM myProducts", "needs a date field", 15),
        ("SELECT series(productName, 5), count(*) FROM myProducts", "bucketing functions need a number or a date", 15),
        ("SELECT * FROM myProducts WHERE userRating = 'abc'", "cannot compare a integer with 'abc'", 45),
        ("SELECT * FROM myProducts WHERE eventTimestamp > 'yesterday'", "cannot compare a date", 49),
        ("SELECT * FROM myProducts WHERE price BETWEEN ['a', 'b']", "cannot compare a float", 47),
        ("SELECT filter(count(*), WHERE nope = 1) FROM myProducts", "unknown field nope", 31),
    ],
)
def test_schema_errors_point_at_the_field(query: str, words: str, column: int) -> None:
    with pytest.raises(AdqlError) as caught:
        fields(query)
    assert words in caught.value.reason
    assert (caught.value.line, caught.value.column) == (1, column)


def test_comparable_literals_pass() -> None:
    fields("SELECT * FROM myProducts WHERE userRating = '3' AND eventTimestamp > '2024-01-01T00:00:00Z' "
           "AND eventTimestamp <= 1700000000000 AND id = 5 AND price IN (1, '2.5')")  # fmt: skip


def test_iso_millis() -> None:
    assert iso_millis(1_448_964_900_000) == "2015-12-01T10:15:00.000Z"
    assert iso_millis(1_448_964_900_007) == "2015-12-01T10:15:00.007Z"
    assert iso_millis(0) == "1970-01-01T00:00:00.000Z"
    assert iso_millis(-1) == "1969-12-31T23:59:59.999Z"


def test_query_result_renders_dates_but_not_time_bucket_keys() -> None:
    a = analyze_text("SELECT id, eventTimestamp, price FROM myProducts")
    element = query_result("0", a, "myProducts", MY_PRODUCTS, [["x", 1_448_964_900_000, 2.5], ["y", None, None]], 2,
                           False)  # fmt: skip
    assert list(element) == ["label", "fields", "results", "moreData", "schema", "total"]
    assert element["results"] == [["x", "2015-12-01T10:15:00.000Z", 2.5], ["y", None, None]]
    assert (element["label"], element["schema"], element["moreData"], element["total"]) == ("0", "myProducts", False, 2)
    s = analyze_text("SELECT series(eventTimestamp, '1h'), max(eventTimestamp) FROM myProducts")
    element = query_result("q", s, "myProducts", MY_PRODUCTS, [[1_448_964_000_000, 1_448_964_900_000]], 1, False)
    assert element["results"] == [[1_448_964_000_000, "2015-12-01T10:15:00.000Z"]]


def test_scroll_batches() -> None:
    a = analyze_text("SELECT * FROM myProducts")
    row = ["a", "b", 1, 2.0, "n", "d", 0, 0]
    middle = scroll_result("0", a, "myProducts", MY_PRODUCTS, [row] * 3, 25_432, "c2Nhbjs1OzE")
    assert middle["moreData"] is True and middle["scrollid"] == "c2Nhbjs1OzE" and middle["total"] == 25_432
    assert "scrollId" not in middle
    last = scroll_result("0", a, "myProducts", MY_PRODUCTS, [row], 25_432, None)
    assert last["moreData"] is False and "scrollid" not in last
    with pytest.raises(ValueError, match="at most 1000 rows"):
        scroll_result("0", a, "myProducts", MY_PRODUCTS, [row] * (SCROLL_BATCH_MAX + 1), 5000, "x")
    assert [scroll_batch_size(n) for n in (None, 0, 10, 1000, 10_000)] == [1000, 1000, 10, 1000, 1000]


def test_scroll_refuses_aggregation_and_math() -> None:
    check_scrollable(analyze_text("SELECT a, b FROM t WHERE c = 1 ORDER BY a"))
    for query, words in [("SELECT count(*) FROM t", "aggregation"), ("SELECT DISTINCT a FROM t", "aggregation"),
                         ("SELECT a + 1 FROM t", "math"), ("SELECT length(a) FROM t", "math")]:  # fmt: skip
        with pytest.raises(AdqlError, match=words):
            check_scrollable(analyze_text(query))
