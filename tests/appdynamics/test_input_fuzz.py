"""Arbitrary JSON into the schema, event and query-body validators: only their own 4xx-mapped errors come out,
and whatever they accept has the documented shape."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from plugins.appdynamics.schema_types import (
    FIELD_TYPES,
    EventError,
    SchemaError,
    apply_patch,
    validate_create_body,
    validate_events,
)
from plugins.appdynamics.timeparams import MAX_LIMIT, ParamError, RequestParams, parse_query_body

KEYS = st.sampled_from(["a", "b", "a.b", "n", "when", "schema", "add", "rename", "query", "label", "limit", "start",
                        "end", "mode", "eventTimestamp", "pickupTimestamp", "x y", ""])  # fmt: skip
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
           | st.sampled_from(FIELD_TYPES) | st.text(max_size=12))  # fmt: skip
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                    max_leaves=20)  # fmt: skip
SCHEMA = {"a": "string", "a2": "integer", "n": "float", "when": "date", "x.y": "boolean"}


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_create_body(body) -> None:
    try:
        fields = validate_create_body(body)
    except SchemaError:
        return
    assert all(kind in FIELD_TYPES for kind in fields.values())


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_patch_body(body) -> None:
    try:
        fields = apply_patch(SCHEMA, body)
    except SchemaError:
        return
    assert all(kind in FIELD_TYPES for kind in fields.values())
    assert len(fields) >= len(SCHEMA)  # fields are never removed
    assert sorted(fields.values()).count("date") >= 1


@settings(max_examples=150, deadline=None)
@given(JSON)
def test_events(body) -> None:
    try:
        stored = validate_events(body, SCHEMA, 1_700_000_000_000)
    except EventError as err:
        assert err.index >= 0
        return
    for event in stored:
        assert event["pickupTimestamp"] == 1_700_000_000_000 and isinstance(event["eventTimestamp"], int)
        for name, value in event.items():
            kind = {**SCHEMA, "eventTimestamp": "date", "pickupTimestamp": "date"}[name]
            expected = {"string": str, "integer": int, "float": float, "boolean": bool, "date": int}[kind]
            assert type(value) is expected


@settings(max_examples=150, deadline=None)
@given(JSON.map(json.dumps) | st.text(max_size=40))
def test_query_bodies(body: str) -> None:
    try:
        specs = parse_query_body(body, RequestParams())
    except ParamError as err:
        assert err.name
        return
    assert 1 <= len(specs) <= 20
    assert all(isinstance(s.query, str) and s.query and 0 <= s.limit <= MAX_LIMIT for s in specs)
