"""Schema definitions (create, PATCH) and published events checked against a schema."""

from __future__ import annotations

import pytest

from plugins.appdynamics.schema_types import (
    EventError,
    SchemaError,
    apply_patch,
    check_field_name,
    check_schema_name,
    parse_date,
    validate_create_body,
    validate_events,
)

MY_PRODUCTS = {"schema": {"id": "string", "productBrand": "string", "userRating": "integer", "price": "float",
                          "productName": "string", "description": "string"}}  # fmt: skip
DOC_EVENTS = [
    {"id": "5653b879ab33a", "productBrand": "ACME", "userRating": 3, "price": 2006.41, "productName": "Watch",
     "description": "new watch"},
    {"id": "5653b879700", "productBrand": "Widget", "userRating": 1, "price": 3800.13, "productName": "Watch",
     "description": "2015 watch"},
]  # fmt: skip
PICKUP = 1_700_000_000_123


def test_document_schema_and_events() -> None:
    fields = validate_create_body(MY_PRODUCTS)
    assert fields == MY_PRODUCTS["schema"]
    assert list(fields) == ["id", "productBrand", "userRating", "price", "productName", "description"]
    stored = validate_events(DOC_EVENTS, fields, PICKUP)
    assert stored[0] == {**DOC_EVENTS[0], "pickupTimestamp": PICKUP, "eventTimestamp": PICKUP}
    assert isinstance(stored[1]["price"], float) and isinstance(stored[1]["userRating"], int)


@pytest.mark.parametrize("name", ["myProducts", "agents_inventory", "AppdEvents", "INTERNAL_AUDITS", "a", "x" * 255])
def test_schema_names_accepted(name: str) -> None:
    assert check_schema_name(name) == name


@pytest.mark.parametrize("name", ["", "1abc", "_x", "my-products", "my products", "a.b", "x" * 256, "é"])
def test_schema_names_rejected(name: str) -> None:
    with pytest.raises(SchemaError, match="invalid schema name"):
        check_schema_name(name)


@pytest.mark.parametrize(
    "name",
    ["segments.userData.UserStep", "metrics.End User Response Time (ms)", "segments.userData.Offer-Converted-Value",
     "Avg_RT", "a b", "ümlaut", "x" * 255],
)  # fmt: skip
def test_field_names_accepted(name: str) -> None:
    assert check_field_name(name) == name


@pytest.mark.parametrize("name", ["", ".a", "a.", "a..b", "a. b", "a .b", " a", "a`b", "a\nb", "x" * 256, 5, None])
def test_field_names_rejected(name) -> None:
    with pytest.raises(SchemaError) as caught:
        check_field_name(name)
    assert caught.value.field == str(name)


def test_create_body_shapes() -> None:
    assert validate_create_body({"schema": {"a": "STRING", "b": "Date"}}) == {"a": "string", "b": "date"}
    # the implicit fields may be declared as date; they are not stored as user fields
    assert validate_create_body({"schema": {"a": "integer", "eventTimestamp": "date"}}) == {"a": "integer"}
    assert validate_create_body({"schema": {"eventTimestamp": "date"}}) == {}  # only the implicit fields


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ([], "the body must be", None),
        ({}, "the body must be", None),
        ({"fields": {}}, "the body must be", None),
        ({"schema": {"a": "string"}, "extra": 1}, "unknown key 'extra'", "extra"),
        ({"schema": {}}, "non-empty object", "schema"),
        ({"schema": ["a"]}, "non-empty object", "schema"),
        ({"schema": {"a": "long"}}, "has type 'long'", "a"),
        ({"schema": {"a": {"type": "string"}}}, "has type", "a"),
        ({"schema": {"a.": "string"}}, "non-empty", "a."),
        ({"schema": {"eventTimestamp": "string"}}, "implicit field of type date", "eventTimestamp"),
        ({"schema": {"a": "string", "a.b": "integer"}}, "lies under field 'a'", "a.b"),
        ({"schema": {"eventTimestamp.x": "string"}}, "lies under field 'eventTimestamp'", "eventTimestamp.x"),
        ({"schema": {f"f{i}": "string" for i in range(1501)}}, "at most 1500 fields", None),
    ],
)
def test_create_body_rejected(body, words: str, field) -> None:
    with pytest.raises(SchemaError) as caught:
        validate_create_body(body)
    assert words in str(caught.value)
    assert caught.value.field == field


def test_patch_add_and_rename_object() -> None:
    current = {"applicationName": "string", "calls": "integer"}
    new = apply_patch(current, {"add": {"newFiled": "integer"}, "rename": {"applicationName": "appName"}})
    assert new == {"appName": "string", "calls": "integer", "newFiled": "integer"}
    assert list(new) == ["appName", "calls", "newFiled"]
    assert current == {"applicationName": "string", "calls": "integer"}  # not mutated


def test_patch_array_applied_in_order() -> None:
    new = apply_patch({"a": "string"}, [{"add": {"b": "float"}}, {"rename": {"b": "c"}}, {"add": {"b": "boolean"}}])
    assert new == {"a": "string", "c": "float", "b": "boolean"}


def test_patch_same_type_add_is_a_no_op() -> None:
    assert apply_patch({"a": "string"}, {"add": {"a": "string", "eventTimestamp": "date"}}) == {"a": "string"}


@pytest.mark.parametrize(
    ("body", "words", "field"),
    [
        ({"add": {"a": "integer"}}, "exists with type string; existing fields cannot be changed", "a"),
        ({"add": {"eventTimestamp": "string"}}, "existing fields cannot be changed", "eventTimestamp"),
        ({"remove": ["a"]}, "cannot be removed or changed", "remove"),
        ({"delete": {"a": "string"}}, "cannot be removed or changed", "delete"),
        ({"rename": {"zz": "y"}}, "no such field", "zz"),
        ({"rename": {"a": None}}, "cannot be removed", "a"),
        ({"rename": {"a": ""}}, "cannot be removed", "a"),
        ({"rename": {"a": "b"}}, "that field exists", "b"),
        ({"rename": {"eventTimestamp": "ts"}}, "implicit field", "eventTimestamp"),
        ({"rename": {"a": "pickupTimestamp"}}, "that field exists", "pickupTimestamp"),
        ({"add": {"c": "decimal"}}, "has type 'decimal'", "c"),
        ({"add": {"a.x": "string"}}, "lies under field 'a'", "a.x"),
        ({}, "must be an object", None),
        ([], "the PATCH body must be", None),
        ([{"add": {"c": "string"}}, "x"], "must be an object", None),
        ({"add": ["c"]}, "must be objects", None),
    ],
)
def test_patch_rejected(body, words: str, field) -> None:
    with pytest.raises(SchemaError) as caught:
        apply_patch({"a": "string", "b": "integer"}, body)
    assert words in str(caught.value)
    assert caught.value.field == field


def test_patch_is_all_or_nothing() -> None:
    current = {"a": "string"}
    with pytest.raises(SchemaError):
        apply_patch(current, [{"add": {"b": "string"}}, {"add": {"a": "float"}}])
    assert current == {"a": "string"}


# ---------------------------------------------------------------------------------------------- events
SCHEMA = {"name": "string", "n": "integer", "x": "float", "ok": "boolean", "when": "date",
          "segments.userData.step": "string", "metrics.End User Response Time (ms)": "float"}  # fmt: skip


def test_nested_objects_and_dotted_keys_are_the_same_field() -> None:
    stored = validate_events(
        [
            {"segments": {"userData": {"step": "pay"}}, "metrics": {"End User Response Time (ms)": 12}},
            {"segments.userData.step": "cart", "metrics.End User Response Time (ms)": 3.5},
            {"segments.userData": {"step": "home"}},
        ],
        SCHEMA,
        PICKUP,
    )
    assert [e["segments.userData.step"] for e in stored] == ["pay", "cart", "home"]
    assert stored[0]["metrics.End User Response Time (ms)"] == 12.0
    assert isinstance(stored[0]["metrics.End User Response Time (ms)"], float)


def test_types_and_coercions() -> None:
    [stored] = validate_events([{"name": "a", "n": 4.0, "x": 3, "ok": False, "when": 1_500_000_000_000}], SCHEMA,
                               PICKUP)  # fmt: skip
    assert stored == {"name": "a", "n": 4, "x": 3.0, "ok": False, "when": 1_500_000_000_000,
                      "eventTimestamp": PICKUP, "pickupTimestamp": PICKUP}  # fmt: skip
    assert type(stored["n"]) is int and type(stored["x"]) is float


def test_dates_iso_or_epoch_ms_and_event_timestamp() -> None:
    stored = validate_events(
        [
            {"when": "2017-02-02T00:00:00.000Z", "eventTimestamp": "2015-12-01T10:15:00.000Z"},
            {"when": "2017-02-02T01:00:00+01:00", "eventTimestamp": 1_449_000_000_000},
            {"when": "2017-02-02", "eventTimestamp": 1_449_000_000_000.0},
            {"pickupTimestamp": 5},
        ],
        SCHEMA,
        PICKUP,
    )
    assert stored[0]["when"] == 1_485_993_600_000 == stored[1]["when"] == stored[2]["when"]
    assert stored[0]["eventTimestamp"] == 1_448_964_900_000
    assert stored[1]["eventTimestamp"] == 1_449_000_000_000 == stored[2]["eventTimestamp"]
    assert stored[3] == {"eventTimestamp": PICKUP, "pickupTimestamp": PICKUP}  # the server sets pickupTimestamp


def test_date_range_ends_render() -> None:
    from plugins.appdynamics.results import iso_millis

    [low, high] = validate_events([{"when": -62_135_596_800_000}, {"when": "9999-12-31T23:59:59.999Z"}], SCHEMA, 0)
    assert iso_millis(low["when"]) == "0001-01-01T00:00:00.000Z"
    assert iso_millis(high["when"]) == "9999-12-31T23:59:59.999Z"


def test_nulls_are_absent_values() -> None:
    [stored] = validate_events([{"name": None, "n": 1}], SCHEMA, PICKUP)
    assert "name" not in stored and stored["n"] == 1


@pytest.mark.parametrize(
    ("events", "index", "field", "words"),
    [
        ([{"n": 1}, {"n": "3"}], 1, "n", "integer field: expected an integer, got a string"),
        ([{"n": 1.5}], 0, "n", "expected an integer, got 1.5"),
        ([{"n": True}], 0, "n", "expected an integer, got a boolean"),
        ([{"n": 2**63}], 0, "n", "64-bit"),
        ([{"x": "1.5"}], 0, "x", "expected a number, got a string"),
        ([{"x": False}], 0, "x", "expected a number, got a boolean"),
        ([{"name": 5}], 0, "name", "expected a string, got a number"),
        ([{"name": ["a"]}], 0, "name", "expected a string, got an array"),
        ([{"name": {"first": "a"}}], 0, "name", "expected a string, got an object"),
        ([{"ok": "true"}], 0, "ok", "expected true or false, got a string"),
        ([{"ok": 1}], 0, "ok", "expected true or false, got a number"),
        ([{}, {}, {"when": "yesterday"}], 2, "when", "not an ISO 8601 date"),
        ([{"when": True}], 0, "when", "got a boolean"),
        ([{"when": 1.5}], 0, "when", "whole number"),
        ([{"when": 253_402_300_800_000}], 0, "when", "date out of range"),
        ([{"eventTimestamp": -62_135_596_800_001}], 0, "eventTimestamp", "date out of range"),
        ([{"eventTimestamp": "2015-13-01T00:00:00Z"}], 0, "eventTimestamp", "date field"),
        ([{"unknown": 1}], 0, "unknown", "not a field of this schema"),
        ([{"segments": {"userData": {"other": 1}}}], 0, "segments.userData.other", "not a field"),
        ([{"segments.userData.step": "a", "segments": {"userData": {"step": "b"}}}], 0, "segments.userData.step",
         "given twice"),
        ([{"n": 1}, "text"], 1, None, "must be a JSON object"),
        ([{"n": 1}, [1]], 1, None, "must be a JSON object"),
    ],
)
def test_bad_events_name_index_and_field(events, index: int, field, words: str) -> None:
    with pytest.raises(EventError) as caught:
        validate_events(events, SCHEMA, PICKUP)
    err = caught.value
    assert (err.index, err.field) == (index, field)
    assert words in str(err)
    assert str(err).startswith(f"event {index}")


def test_body_must_be_an_array() -> None:
    with pytest.raises(EventError, match="JSON array"):
        validate_events({"n": 1}, SCHEMA, PICKUP)
    assert validate_events([], SCHEMA, PICKUP) == []


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("2015-12-01T10:15:00.000Z", 1_448_964_900_000),
        ("2015-12-01T10:15:00Z", 1_448_964_900_000),
        ("2015-12-01T10:15Z", 1_448_964_900_000),
        ("2015-12-01T10:15:00.123456Z", 1_448_964_900_123),
        ("2015-12-01T10:15:00.5Z", 1_448_964_900_500),
        ("2015-12-01T12:15:00.000+02:00", 1_448_964_900_000),
        ("2015-12-01T12:15:00.000+0200", 1_448_964_900_000),
        ("2015-12-01T06:15:00-04:00", 1_448_964_900_000),
        ("2015-12-01T10:15:00", 1_448_964_900_000),
        ("2015-12-01 10:15:00", 1_448_964_900_000),
        ("2015-12-01", 1_448_928_000_000),
        ("1969-12-31T23:59:59.999Z", -1),
    ],
)
def test_parse_date(text: str, ms: int) -> None:
    assert parse_date(text) == ms


@pytest.mark.parametrize("text", ["", "2015-12-01T", "2015-12-32", "2015/12/01", "10:15", "2015-12-01T10:15:00+25:00",
                                  "2015-12-01T25:00:00Z", "1448964900000"])  # fmt: skip
def test_parse_date_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_date(text)
