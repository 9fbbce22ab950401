"""Publish's fast path (`plugins.appdynamics.publishing`) against the general rules it stands in for.

For any schema (renamed fields included) and any body, `publishing.to_events` must give what
`schema_types.validate_events` + `storage.nest` give: the same stored documents (same text: key order and
int/float kinds included), timestamps and pickup times, or the same `EventError` (index, field, message).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import suppress
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.events import Stream
from gateway.query.checks import encode_document
from plugins.appdynamics import publishing
from plugins.appdynamics.schema_types import (
    FIELD_TYPES,
    INT64,
    MAX_DATE_MS,
    MIN_DATE_MS,
    EventError,
    SchemaError,
    validate_create_body,
    validate_events,
)
from plugins.appdynamics.storage import field_paths, logical_schema, nest, new_schema, patched_schema

PICKUP = 1_760_000_000_000
NAMES = ["a", "b.c", "b.d", "x y", "m.n.o", "k"]
RENAMES = {"a": "a2", "b.c": "q", "k": "b.e"}


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=len(NAMES), unique=True))
    fields = {name: draw(st.sampled_from(FIELD_TYPES)) for name in names}
    specs = new_schema(validate_create_body({"schema": fields}))
    renames = {old: new for old, new in RENAMES.items() if old in fields and draw(st.booleans())}
    if renames:
        with suppress(SchemaError):  # a rename onto a taken name: keep the schema as created
            specs = patched_schema(specs, {"rename": renames})
    if draw(st.booleans()) and "a" not in {spec.name for spec in specs}:
        specs = patched_schema(specs, {"add": {"a": draw(st.sampled_from(FIELD_TYPES))}})  # may get path a~1
    return Stream("t", "appdynamics", "s", schema=specs)


VALUES = (st.none() | st.booleans() | st.text(max_size=6)
          | st.integers(-(2**64), 2**64) | st.sampled_from([INT64 - 1, -INT64 + 1, INT64, -INT64, MIN_DATE_MS,
                                                            MAX_DATE_MS, MIN_DATE_MS - 1, MAX_DATE_MS + 1, 10**400])
          | st.floats(allow_nan=False) | st.floats(-1e6, 1e6).map(float.__round__).map(float)
          | st.sampled_from(["2017-02-02T00:00:00.000Z", "2017-02-02", "not a date", "1"])
          | st.lists(st.integers(), max_size=2))  # fmt: skip
NESTED = st.recursive(VALUES, lambda inner: st.dictionaries(st.sampled_from(["c", "d", "e", "n", "o", "z"]), inner,
                                                            max_size=3), max_leaves=6)  # fmt: skip


@st.composite
def events(draw: st.DrawFn, stream: Stream) -> object:
    if draw(st.integers(0, 30)) == 0:
        return draw(VALUES)  # not an object
    keys = [*logical_schema(stream), "eventTimestamp", "pickupTimestamp"]
    if draw(st.integers(0, 8)) == 0:
        keys += ["zz", "b", "m", "m.n"]  # unknown, or parents of dotted fields (nested objects)
    chosen = draw(st.lists(st.sampled_from(keys), max_size=len(keys), unique=True))
    return {key: draw(NESTED if key in ("b", "m", "m.n") else VALUES) for key in chosen}


def _fast(stream: Stream, body: list[object]) -> list[tuple[int, int, str]]:
    return [(e.timestamp, e.received_at, encode_document(e.data))
            for e in publishing.to_events("t", "s", stream, body, PICKUP)]


def _general(stream: Stream, body: list[object]) -> list[tuple[int, int, str]]:
    paths = {name: tuple(path.split(".")) for name, path in field_paths(stream).items()}
    return [(flat["eventTimestamp"], flat["pickupTimestamp"], encode_document(nest(flat, paths)))
            for flat in validate_events(body, logical_schema(stream), PICKUP)]


def _outcome(run: Callable[[Stream, list[object]], Any], stream: Stream, body: list[object]) -> tuple[str, Any]:
    try:
        return "ok", run(stream, body)
    except EventError as exc:
        return "error", (exc.index, exc.field, str(exc))


@settings(max_examples=400, deadline=None)
@given(st.data())
def test_fast_path_equals_general_rules(data: st.DataObject) -> None:
    stream = data.draw(streams())
    body = data.draw(st.lists(events(stream), max_size=6))
    assert _outcome(_fast, stream, body) == _outcome(_general, stream, body)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_plain_events_take_the_fast_path(data: st.DataObject) -> None:
    """What the benchmark and most clients send (exact types, epoch-ms dates) never needs the general rules."""
    stream = data.draw(streams())
    plain = {"string": st.text(max_size=5), "integer": st.integers(-(2**63) + 1, 2**63 - 1),
             "float": st.floats(allow_nan=False, allow_infinity=False), "boolean": st.booleans(),
             "date": st.integers(MIN_DATE_MS, MAX_DATE_MS)}  # fmt: skip
    event = {name: data.draw(plain[kind] | st.none()) for name, kind in logical_schema(stream).items()}
    event["eventTimestamp"] = data.draw(st.integers(MIN_DATE_MS, MAX_DATE_MS))
    plan = publishing._plan(stream)
    assert publishing._fast(event, plan, PICKUP) is not None


def test_ids_are_unique_and_ordered_within_and_across_requests() -> None:
    first = publishing.batch_ids(1000, PICKUP)
    second = publishing.batch_ids(1000, PICKUP + 1)
    assert len(set(first + second)) == 2000
    assert first == sorted(first) and second == sorted(second)
    assert max(first) < min(second)
    assert publishing.batch_ids(1000, PICKUP)[0] != first[0]  # a random part per request


def test_an_integer_too_large_for_a_float_field_is_a_400_not_a_crash() -> None:
    stream = Stream("t", "appdynamics", "s", schema=new_schema({"p": "float"}))
    with pytest.raises(EventError) as caught:
        publishing.to_events("t", "s", stream, [{"p": 1.5}, {"p": 10**400}], PICKUP)
    assert (caught.value.index, caught.value.field) == (1, "p")
    assert "out of the range of a double" in str(caught.value)


EDGES = [None, True, 0, 1.0, 2.5, float("inf"), INT64 - 1, -INT64 + 1, INT64, -INT64, 10**400, MIN_DATE_MS,
         MAX_DATE_MS, MIN_DATE_MS - 1, MAX_DATE_MS + 1, "s", "2017-02-02", {"x": 1}, [1]]


@pytest.mark.parametrize("kind", FIELD_TYPES)
@pytest.mark.parametrize("value", EDGES, ids=repr)
def test_edge_values_agree(kind: str, value: object) -> None:
    stream = Stream("t", "appdynamics", "s", schema=new_schema({"f": kind}))
    for event in ({"f": value}, {"eventTimestamp": value}, {"pickupTimestamp": value, "f": None}):
        assert _outcome(_fast, stream, [event]) == _outcome(_general, stream, [event]), event
