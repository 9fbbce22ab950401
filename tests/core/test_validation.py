"""gateway.validation and the shared error helpers every plugin uses."""

from __future__ import annotations

from marshmallow import Schema, ValidationError, fields

from gateway.errors import (
    InvalidCredentials,
    MethodNotAllowed,
    MissingCredentials,
    Unauthorized,
    allowed_methods,
)
from gateway.validation import error_items, flatten_errors, json_path


class Inner(Schema):
    b = fields.Integer(required=True)
    a = fields.Integer(required=True)


class Outer(Schema):
    z = fields.String(required=True)
    inner = fields.Nested(Inner, required=True)
    items = fields.List(fields.Nested(Inner))


def _errors(raw):
    try:
        Outer().load(raw)
    except ValidationError as err:
        return err.messages
    raise AssertionError("valid")


def test_flatten_follows_the_schema_order_and_writes_json_paths() -> None:
    messages = _errors({"items": [{"a": 1, "b": 2}, {"a": "x"}], "inner": {"a": "x"}})
    assert [path for path, _ in flatten_errors(messages, Outer())] == [
        "z", "inner.b", "inner.a", "items[1].b", "items[1].a"]
    assert flatten_errors({"_schema": ["bad"]}, prefix="body") == [("body", "bad")]
    assert flatten_errors({"x": {"_schema": ["m1", "m2"]}}) == [("x", "m1"), ("x", "m2")]


def test_error_items_keep_the_keys_for_other_formats() -> None:
    assert list(error_items({"credentials": {0: {"id": ["bad"]}}})) == [(("credentials", 0, "id"), "bad")]
    assert json_path(("credentials", 0, "id")) == "credentials[0].id"
    assert json_path((), "plugins.x") == "plugins.x"


def test_allowed_methods_hide_head_and_options() -> None:
    error = MethodNotAllowed("no", allowed=["POST", "OPTIONS", "HEAD", "GET"])
    assert allowed_methods(error) == ["GET", "POST"]
    assert error.headers["Allow"] == "GET, HEAD, OPTIONS, POST"


def test_missing_and_invalid_credentials_are_types() -> None:
    assert isinstance(MissingCredentials(), Unauthorized) and isinstance(InvalidCredentials(), Unauthorized)
    assert MissingCredentials().status == InvalidCredentials().status == 401
    assert MissingCredentials().message == "missing authentication credentials"


def test_server_made_event_ids_are_32_hex_digits_time_first_and_distinct() -> None:
    """`new_event_id`: the format stays 32 lowercase hex digits; ids made later sort after earlier ones (their
    first 12 digits are the millisecond), which keeps a store's unique index growing at its end."""
    import re
    import time

    from gateway.events import new_event_id

    start_ms = time.time_ns() // 1_000_000
    first = [new_event_id() for _ in range(2000)]
    time.sleep(0.003)
    later = new_event_id()
    end_ms = time.time_ns() // 1_000_000
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in first)
    assert len(set(first)) == 2000
    assert start_ms <= int(first[0][:12], 16) <= int(later[:12], 16) <= end_ms
    assert max(first) < later
