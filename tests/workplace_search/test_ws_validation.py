"""Request validation of the analytics event API, in-process and table-driven.

Every rule of issue 3 / the reference: each invalid body gets 400 with ``{"errors": [...]}`` listing every
problem, each message naming its field, and nothing reaches the store. Expected messages are written
here from the rules (the plugin's message templates are "<field> is required", "<field> must be a
string", "<field> must not be blank", "<field> must be an integer greater than or equal to <n>", "type
must be click or feedback", "score must be 1 or -1", "<field> is required for / is not allowed for
<type> events"), in the reference template's field order; never copied from a response.
"""

from __future__ import annotations

from typing import Any

import pytest
from workplace_search.ws_helpers import BEARER_A, CLICK, FEEDBACK, JSON_UTF8, ROUTE, stored

from gateway.state import get_state

DELETE = object()  # marks a key to remove in `variant`


def variant(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    body = dict(base)
    for key, value in changes.items():
        if value is DELETE:
            body.pop(key, None)
        else:
            body[key] = value
    return body


def _int_msg(name: str, minimum: int) -> str:
    return f"{name} must be an integer greater than or equal to {minimum}"


TYPE_MSG = "type must be click or feedback"
SCORE_MSG = "score must be 1 or -1"

# (case id, body, the field the case is about, expected errors)
CASES: list[tuple[str, dict[str, Any], str, list[str]]] = [
    ("type-missing", variant(CLICK, type=DELETE), "type", ["type is required"]),
    ("type-null", variant(CLICK, type=None), "type", ["type is required"]),
    ("type-unknown", variant(CLICK, type="view"), "type", [TYPE_MSG]),
    ("type-wrong-case", variant(CLICK, type="Click"), "type", [TYPE_MSG]),
    ("type-empty", variant(CLICK, type=""), "type", [TYPE_MSG]),
    ("type-number", variant(CLICK, type=1), "type", [TYPE_MSG]),
    ("type-array", variant(FEEDBACK, type=["feedback"]), "type", [TYPE_MSG]),
]
for _field in ("query_id", "document_id", "content_source_id"):
    CASES += [
        (f"{_field}-missing", variant(CLICK, **{_field: DELETE}), _field, [f"{_field} is required"]),
        (f"{_field}-null", variant(FEEDBACK, **{_field: None}), _field, [f"{_field} is required"]),
        (f"{_field}-empty", variant(CLICK, **{_field: ""}), _field, [f"{_field} must not be blank"]),
        (f"{_field}-whitespace", variant(FEEDBACK, **{_field: "  \t"}), _field, [f"{_field} must not be blank"]),
        (f"{_field}-number", variant(CLICK, **{_field: 123}), _field, [f"{_field} must be a string"]),
        (f"{_field}-boolean", variant(CLICK, **{_field: True}), _field, [f"{_field} must be a string"]),
        (f"{_field}-object", variant(FEEDBACK, **{_field: {"id": "x"}}), _field, [f"{_field} must be a string"]),
    ]
for _field, _minimum in (("page", 1), ("rank", 0)):
    _bad = [_minimum - 1, -5, True, False, 1.5, float(_minimum + 1), str(_minimum), [1], {"n": 1}]
    CASES += [
        (f"{_field}-missing", variant(CLICK, **{_field: DELETE}), _field, [f"{_field} is required"]),
        (f"{_field}-null", variant(FEEDBACK, **{_field: None}), _field, [f"{_field} is required"]),
    ]
    CASES += [(f"{_field}-{value!r}", variant(CLICK, **{_field: value}), _field, [_int_msg(_field, _minimum)])
              for value in _bad]
CASES += [
    ("click-event-missing", variant(CLICK, event=DELETE), "event", ["event is required for click events"]),
    ("click-event-null", variant(CLICK, event=None), "event", ["event is required for click events"]),
    ("click-event-empty", variant(CLICK, event=""), "event", ["event must not be blank"]),
    ("click-event-number", variant(CLICK, event=5), "event", ["event must be a string"]),
    ("feedback-with-event", variant(FEEDBACK, event="app"), "event", ["event is not allowed for feedback events"]),
    ("feedback-score-missing", variant(FEEDBACK, score=DELETE), "score", ["score is required for feedback events"]),
    ("feedback-score-null", variant(FEEDBACK, score=None), "score", ["score is required for feedback events"]),
    ("click-with-score", variant(CLICK, score=1), "score", ["score is not allowed for click events"]),
]
CASES += [(f"score-{value!r}", variant(FEEDBACK, score=value), "score", [SCORE_MSG])
          for value in (0, 2, -2, 5, True, False, 1.0, -1.0, "1", "-1", [1])]
CASES += [
    ("everything-missing", {}, "type",
     ["type is required", "query_id is required", "page is required", "content_source_id is required",
      "document_id is required", "rank is required"]),
    ("only-unknown-fields", {"foo": 1}, "type",
     ["type is required", "query_id is required", "page is required", "content_source_id is required",
      "document_id is required", "rank is required"]),
    ("feedback-all-wrong", {"type": "feedback", "query_id": 7, "page": True, "content_source_id": " ",
                            "document_id": None, "rank": -1, "event": "ui", "score": 3}, "score",
     ["query_id must be a string", _int_msg("page", 1), "content_source_id must not be blank",
      "document_id is required", _int_msg("rank", 0), "event is not allowed for feedback events", SCORE_MSG]),
    ("click-all-wrong", {"type": "click", "query_id": "", "page": "2", "content_source_id": 5,
                         "document_id": "", "rank": 1.5, "score": -1}, "event",
     ["query_id must not be blank", _int_msg("page", 1), "content_source_id must be a string",
      "document_id must not be blank", _int_msg("rank", 0), "event is required for click events",
      "score is not allowed for click events"]),
    ("bad-type-still-checks-the-rest", {"type": "hover", "query_id": "q", "page": 0, "content_source_id": "c",
                                        "document_id": "d", "rank": 0, "event": 1, "score": 9}, "type",
     [TYPE_MSG, _int_msg("page", 1), "event must be a string", SCORE_MSG]),
]


@pytest.mark.parametrize(("body", "field", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_invalid_event_lists_every_problem(ws_app: Any, body: dict[str, Any], field: str,
                                           expected: list[str]) -> None:
    resp = ws_app.test_client().post(ROUTE, json=body, headers=BEARER_A)
    assert resp.status_code == 400
    assert resp.headers["Content-Type"] == JSON_UTF8
    assert resp.get_json() == {"errors": expected}
    assert any(message.startswith(field) for message in resp.get_json()["errors"])
    for message in resp.get_json()["errors"]:
        assert message.split(" ", 1)[0] in body or message.split(" ", 1)[0] in CLICK | FEEDBACK
    assert stored(get_state(ws_app).backend, "acme") == []


BODY_CASES = [
    ("array", b'[{"type": "click"}]', "application/json", "Request body must be a JSON object, not an array"),
    ("string", b'"click"', "application/json", "Request body must be a JSON object, not a string"),
    ("number", b"42", "application/json", "Request body must be a JSON object, not a number"),
    ("null", b"null", "application/json", "Request body must be a JSON object, not null"),
    ("boolean", b"true", "application/json", "Request body must be a JSON object, not a boolean"),
]


@pytest.mark.parametrize(("raw", "content_type", "expected"), [c[1:] for c in BODY_CASES],
                         ids=[c[0] for c in BODY_CASES])
def test_non_object_json_is_400(ws_client: Any, raw: bytes, content_type: str, expected: str) -> None:
    resp = ws_client.post(ROUTE, data=raw, headers={**BEARER_A, "Content-Type": content_type})
    assert (resp.status_code, resp.get_json()) == (400, {"errors": [expected]})


@pytest.mark.parametrize("raw", [b"{", b'{"type": "click",}', b"type=click", b'{"page": NaN}',
                                 b'{"rank": Infinity}', b'{"type": "\xff"}'],
                         ids=["truncated", "trailing-comma", "form", "nan", "infinity", "bad-utf8"])
def test_malformed_json_is_400_naming_the_body(ws_app: Any, raw: bytes) -> None:
    resp = ws_app.test_client().post(ROUTE, data=raw, headers={**BEARER_A, "Content-Type": "application/json"})
    assert resp.status_code == 400
    (message,) = resp.get_json()["errors"]
    assert message.startswith("Request body is not valid") and "JSON" in message
    assert stored(get_state(ws_app).backend, "acme") == []


@pytest.mark.parametrize("raw", [b"", b"  \n"], ids=["empty", "blank"])
def test_empty_body_is_400(ws_client: Any, raw: bytes) -> None:
    resp = ws_client.post(ROUTE, data=raw, headers={**BEARER_A, "Content-Type": "application/json"})
    assert resp.status_code == 400
    (message,) = resp.get_json()["errors"]
    assert message.startswith("Request body is empty")


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data"])
def test_non_json_content_type_is_415(ws_app: Any, content_type: str) -> None:
    import json

    resp = ws_app.test_client().post(ROUTE, data=json.dumps(CLICK), headers={**BEARER_A, "Content-Type": content_type})
    assert resp.status_code == 415
    assert resp.headers["Content-Type"] == JSON_UTF8
    (message,) = resp.get_json()["errors"]
    assert "Content-Type" in message and content_type in message
    assert stored(get_state(ws_app).backend, "acme") == []


# -- accepted variants -------------------------------------------------------------------------------

ACCEPTED = [
    ("click", CLICK, CLICK),
    ("feedback-positive", FEEDBACK, FEEDBACK),
    ("feedback-negative", variant(FEEDBACK, score=-1), variant(FEEDBACK, score=-1)),
    ("large-page-and-rank", variant(CLICK, page=10**6, rank=10**9), variant(CLICK, page=10**6, rank=10**9)),
    ("unicode", variant(CLICK, event="résultat ✓", document_id="doc/ü"),
     variant(CLICK, event="résultat ✓", document_id="doc/ü")),
    # strong parameters drop unpermitted keys: accepted, and not stored
    ("unknown-fields-ignored", variant(CLICK, user_id="u-1", nested={"a": [1]}, Type="x"), CLICK),
    # null counts as absent for the type-specific fields
    ("feedback-event-null", variant(FEEDBACK, event=None), FEEDBACK),
    ("click-score-null", variant(CLICK, score=None), CLICK),
]


@pytest.mark.parametrize(("body", "stored_data"), [c[1:] for c in ACCEPTED], ids=[c[0] for c in ACCEPTED])
def test_valid_events_are_accepted(ws_app: Any, body: dict[str, Any], stored_data: dict[str, Any]) -> None:
    resp = ws_app.test_client().post(ROUTE, json=body, headers=BEARER_A)
    assert (resp.status_code, resp.get_json()) == (200, {})
    assert resp.headers["Content-Type"] == JSON_UTF8
    (event,) = stored(get_state(ws_app).backend, "acme")
    assert event.data == stored_data
    assert event.type == stored_data["type"]


@pytest.mark.parametrize("headers", [{}, {"Content-Type": "application/json; charset=utf-8"},
                                     {"Content-Type": "application/vnd.api+json"}],
                         ids=["no-content-type", "json-with-charset", "plus-json"])
def test_json_content_types_and_none_are_read(ws_client: Any, headers: dict[str, str]) -> None:
    import json

    resp = ws_client.post(ROUTE, data=json.dumps(FEEDBACK), headers={**BEARER_A, **headers})
    assert (resp.status_code, resp.get_json()) == (200, {})
