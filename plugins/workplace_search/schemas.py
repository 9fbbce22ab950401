"""Marshmallow schema of a Workplace Search analytics event; every problem is reported, each naming its field.

Rules (the vendor's API reference, the Ruby client's docstring and issue 3):

* ``type`` is ``click`` or ``feedback``;
* ``query_id``, ``document_id``, ``content_source_id`` are required strings, not blank (Rails' ``presence``
  and ``params.require`` treat ``""`` and whitespace-only strings as missing);
* ``page`` is an integer >= 1 and ``rank`` an integer >= 0. JSON integers only: ``true``/``false``, ``1.0``
  and ``"1"`` are refused (Python's ``bool`` is an ``int``; it is checked first);
* ``event`` (a non-blank string) is required for clicks and not allowed for feedback; ``score`` (exactly
  ``1`` or ``-1``) is required for feedback and not allowed for clicks. Both are marked "(Click/Feedback
  events only)" in the reference; ``null`` counts as absent.

Unknown keys are ignored and not stored: Enterprise Search is a Rails app whose strong parameters
(``params.permit``) drop unpermitted keys silently, so a client that sends extra keys succeeds there and
must succeed here.
"""

from __future__ import annotations

from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from gateway.validation import flatten_errors

from .errors import WsError

EVENT_TYPES = ("click", "feedback")
#: The order in which problems are reported (the order of the reference's request templates).
FIELD_ORDER = ("type", "query_id", "page", "content_source_id", "document_id", "rank", "event", "score")


def _required(name: str) -> str:
    return f"{name} is required"


def _text(name: str, *, required: bool = True) -> fields.String:
    """A string that must not be blank; when not `required`, null counts as absent."""
    return fields.String(
        required=required, allow_none=not required,
        validate=validate.Predicate("strip", error=f"{name} must not be blank"),
        error_messages={"invalid": f"{name} must be a string", "required": _required(name),
                        "null": _required(name)},
    )


class StrictInteger(fields.Field):
    """A JSON integer greater than or equal to `minimum` (no booleans, floats or numeric strings)."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "integer", "minimum": self.minimum}

    def __init__(self, name: str, minimum: int, **kwargs: Any) -> None:
        message = f"{name} must be an integer greater than or equal to {minimum}"
        super().__init__(required=True, error_messages={"invalid": message, "required": _required(name),
                                                        "null": _required(name)}, **kwargs)
        self.minimum = minimum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < self.minimum:
            raise self.make_error("invalid")
        return value


class Score(fields.Field):
    """Exactly the integer ``1`` or ``-1`` (``true`` is not 1, ``1.0`` is not an integer)."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "integer", "enum": [1, -1]}

    default_error_messages = {"invalid": "score must be 1 or -1"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(allow_none=True, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value not in (1, -1):
            raise self.make_error("invalid")
        return value


class AnalyticsEventSchema(Schema):
    """One click or feedback event (`load` reports every field's problems at once)."""

    class Meta:
        unknown = EXCLUDE  # strong parameters: unpermitted keys are dropped, not refused

    type = fields.String(
        required=True, validate=validate.OneOf(EVENT_TYPES, error="type must be click or feedback"),
        error_messages={"invalid": "type must be click or feedback", "required": _required("type"),
                        "null": _required("type")},
    )
    query_id = _text("query_id")
    page = StrictInteger("page", 1)
    content_source_id = _text("content_source_id")
    document_id = _text("document_id")
    rank = StrictInteger("rank", 0)
    event = _text("event", required=False)
    score = Score()

    @validates_schema(pass_original=True, skip_on_field_errors=False)
    def _per_type(self, data: dict[str, Any], original: dict[str, Any], **_: Any) -> None:
        """``event`` belongs to clicks and ``score`` to feedback (checked only when ``type`` is valid)."""
        kind = data.get("type")
        errors: dict[str, list[str]] = {}
        own, other = {"click": ("event", "score"), "feedback": ("score", "event")}.get(kind, (None, None))
        if own is None:
            return
        if original.get(own) is None:
            errors[own] = [f"{own} is required for {kind} events"]
        if original.get(other) is not None:
            errors[other] = [f"{other} is not allowed for {kind} events"]
        if errors:
            raise ValidationError(errors)


SCHEMA = AnalyticsEventSchema()


def load_event(raw: dict[str, Any]) -> dict[str, Any]:
    """The validated event (known fields, in the client's order, nulls dropped); `WsError` 400 listing all problems."""
    try:
        data = SCHEMA.load(raw)
    except ValidationError as err:
        found = flatten_errors(err.messages, SCHEMA)  # in the schema's field order, which is FIELD_ORDER
        raise WsError([message for _, message in found], 400, field=found[0][0] or None) from None
    return {key: data[key] for key in raw if key in data and data[key] is not None}
