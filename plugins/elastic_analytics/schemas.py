"""Marshmallow schemas of the three Behavioral Analytics event types, with Elasticsearch's rules.

Elasticsearch parses events with ``ObjectParser``: unknown fields are rejected at every level, ids must
not be blank, ``search.filters`` values become arrays, pagination must not be negative, strings must be
JSON strings. The schemas carry short error codes; `to_es_error` turns marshmallow's error tree into the
exception ES would raise for the *first* problem in document order (ES stops at the first).
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate

from gateway.fastload import fast_loader

from .errors import EsError

# error codes carried by marshmallow messages, translated by `to_es_error`
TYPE, BLANK, NEGATIVE, REQUIRED, UNKNOWN, FILTER = "!type", "!blank", "!negative", "!required", "!unknown", "!filter"
INT_RANGE = "!int_range"
INT_MIN, INT_MAX = -(2**31), 2**31 - 1
_COMMON = {"required": REQUIRED, "null": TYPE}


def _string(**kwargs: Any) -> fields.String:
    return fields.String(error_messages={**_COMMON, "invalid": TYPE}, **kwargs)


def _id(**kwargs: Any) -> fields.String:
    return _string(validate=validate.Predicate("strip", error=BLANK), required=True, **kwargs)


class JavaInt(fields.Integer):
    """A Java ``int`` as ES's ``declareInt`` reads it: numbers and numeric strings, decimals truncated
    (``"7.5"`` -> 7), and values outside 32 bits refused."""

    def _format_num(self, value: Any) -> int:
        if isinstance(value, str):
            value = float(value.strip())  # ValueError -> marshmallow's "invalid"
        return int(value)

    def _validated(self, value: Any) -> int:
        number = super()._validated(value)
        if not INT_MIN <= number <= INT_MAX:
            raise ValidationError(INT_RANGE)
        return number


def _int(**kwargs: Any) -> JavaInt:
    return JavaInt(error_messages={**_COMMON, "invalid": TYPE, "too_large": INT_RANGE}, **kwargs)


def _count(**kwargs: Any) -> JavaInt:
    return _int(validate=validate.Range(min=0, error=NEGATIVE), **kwargs)


def _nested(schema: type[Schema], **kwargs: Any) -> fields.Nested:
    return fields.Nested(schema, error_messages={**_COMMON, "type": TYPE}, **kwargs)


class _Strict(Schema):
    """Unknown keys are errors, as with ES's ObjectParser."""

    parser_name = ""
    error_messages = {"unknown": UNKNOWN, "type": TYPE}

    class Meta:
        unknown = RAISE


class SessionSchema(_Strict):
    parser_name = "session"
    id = _id()


class UserSchema(_Strict):
    parser_name = "user"
    id = _id()


class PageSchema(_Strict):
    parser_name = "page"
    url = _string(required=True)
    title = _string()
    referrer = _string()


class DocumentSchema(_Strict):
    parser_name = "document"
    id = _id()
    index = _string()


class SortSchema(_Strict):
    parser_name = "sort"
    name = _id()
    direction = _string()


class PaginationSchema(_Strict):
    parser_name = "page"
    current = _count(required=True)
    size = _count(required=True)


class ResultItemSchema(_Strict):
    parser_name = "item"
    document = _nested(DocumentSchema)
    page = _nested(PageSchema)


class ResultsSchema(_Strict):
    parser_name = "results"
    items = fields.List(_nested(ResultItemSchema), error_messages={**_COMMON, "invalid": TYPE})
    total_results = _int()


class FiltersField(fields.Field):
    """``{"brand": "elastic", "tags": ["a", "b"]}`` -> every value an array of strings."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``): each value a string or strings."""
        return {"type": "object", "additionalProperties": {
            "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, list[str]]:
        if not isinstance(value, dict):
            raise ValidationError(TYPE)
        out: dict[str, list[str]] = {}
        for key, item in value.items():
            if isinstance(item, str):
                out[key] = [item]
            elif isinstance(item, list) and all(isinstance(v, str) for v in item):
                out[key] = list(item)
            else:
                raise ValidationError(f"{FILTER}{key}")
        return out


class SearchSchema(_Strict):
    parser_name = "search"
    query = _string(required=True)
    search_application = _string()
    sort = _nested(SortSchema)
    filters = FiltersField()
    page = _nested(PaginationSchema)
    results = _nested(ResultsSchema)


class PageViewEventSchema(_Strict):
    parser_name = "page_view_event"
    required_sets = (("session",), ("user",), ("page",))
    session = _nested(SessionSchema, required=True)
    user = _nested(UserSchema, required=True)
    page = _nested(PageSchema, required=True)
    document = _nested(DocumentSchema)


class SearchEventSchema(_Strict):
    parser_name = "search_event"
    required_sets = (("session",), ("user",), ("search",))
    session = _nested(SessionSchema, required=True)
    user = _nested(UserSchema, required=True)
    search = _nested(SearchSchema, required=True)


class SearchClickEventSchema(_Strict):
    parser_name = "search_click_event"
    required_sets = (("session",), ("user",), ("search",), ("document", "page"))
    session = _nested(SessionSchema, required=True)
    user = _nested(UserSchema, required=True)
    search = _nested(SearchSchema, required=True)
    document = _nested(DocumentSchema)
    page = _nested(PageSchema)


#: event type -> schema instance (schemas are stateless; build once)
EVENT_SCHEMAS: dict[str, _Strict] = {
    "page_view": PageViewEventSchema(),
    "search": SearchEventSchema(),
    "search_click": SearchClickEventSchema(),
}


def json_token(value: Any) -> str:
    """The Jackson token name ES reports for a JSON value of the wrong type."""
    if isinstance(value, bool):
        return "VALUE_BOOLEAN"
    if isinstance(value, int | float):
        return "VALUE_NUMBER"
    if isinstance(value, str):
        return "VALUE_STRING"
    if isinstance(value, list):
        return "START_ARRAY"
    if isinstance(value, dict):
        return "START_OBJECT"
    return "VALUE_NULL"


def _first_message(messages: Any) -> str:
    while isinstance(messages, list | dict):
        if not messages:
            return ""
        messages = messages[0] if isinstance(messages, list) else next(iter(messages.values()))
    return str(messages)


def _schema_of(schema: Schema, key: str) -> Schema | None:
    field = schema.fields.get(key)
    if isinstance(field, fields.Nested):
        return field.schema
    if isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
        return field.inner.schema
    return None


def to_es_error(schema: Schema, raw: Any, errors: Any) -> EsError:
    """The ES exception for the first problem of `raw` (in document order) under `schema`."""
    name = getattr(schema, "parser_name", "") or "object"
    if not isinstance(raw, dict):
        return EsError("x_content_parse_exception", f"[{name}] Expected START_OBJECT but was {json_token(raw)}")
    if isinstance(errors, dict) and "_schema" in errors and errors["_schema"] == [TYPE]:
        return EsError("x_content_parse_exception", f"[{name}] Expected START_OBJECT but was {json_token(raw)}")
    for key, value in raw.items():
        if key not in errors:
            continue
        messages = errors[key]
        first = _first_message(messages)
        if first == UNKNOWN and isinstance(messages, list):
            return EsError("x_content_parse_exception", f"[{name}] unknown field [{key}]")
        inner = _field_error(schema, key, value, messages, first)
        if inner is None:
            continue
        if first == TYPE and not isinstance(messages, dict):
            return inner  # the parser itself rejects the token; ES does not wrap it
        return EsError("x_content_parse_exception", f"[{name}] failed to parse field [{key}]", cause=inner,
                       field=key)
    missing = [group for group in getattr(schema, "required_sets", ((k,) for k in errors))
               if not any(k in raw for k in group)]
    if missing:
        reason = "".join(f"Required one of fields [{', '.join(group)}], but none were specified. "
                         for group in missing)
        return EsError("illegal_argument_exception", reason, field=missing[0][0])
    return EsError("illegal_argument_exception", f"[{name}] invalid event: {errors}")


def _field_error(schema: Schema, key: str, value: Any, messages: Any, first: str) -> EsError | None:
    nested = _schema_of(schema, key)
    name = getattr(schema, "parser_name", "") or "object"
    is_list = isinstance(schema.fields.get(key), fields.List)
    if nested is not None and isinstance(messages, dict):
        indexes = [i for i in messages if isinstance(i, int)]
        if is_list and isinstance(value, list) and indexes:  # list of nested objects: errors keyed by index
            return to_es_error(nested, value[min(indexes)], messages[min(indexes)])
        if isinstance(value, dict):
            return to_es_error(nested, value, messages)
        return EsError("x_content_parse_exception", f"[{name}] {key} doesn't support values of type: "
                                                    f"{json_token(value)}")
    if first == TYPE:
        return EsError("x_content_parse_exception", f"[{name}] {key} doesn't support values of type: "
                                                    f"{json_token(value)}")
    if first == BLANK:
        return EsError("illegal_argument_exception", f"field [{key}] can't be blank")
    if first == INT_RANGE:
        return EsError("x_content_parse_exception",
                       f"Numeric value ({value}) out of range of int ({INT_MIN} - {INT_MAX})")
    if first == NEGATIVE:
        return EsError("illegal_argument_exception", f"field [{key}] must be positive")
    if first.startswith(FILTER):
        return EsError("illegal_argument_exception",
                       f"[{first[len(FILTER):]}] must be a string or an array of string.")
    if first == REQUIRED:
        return None
    return EsError("illegal_argument_exception", f"[{name}] field [{key}]: {first}")


#: event type -> compiled loader (marshmallow's result, fast for valid bodies; see gateway.fastload)
_LOADERS = {event_type: fast_loader(schema) for event_type, schema in EVENT_SCHEMAS.items()}


def load_event(event_type: str, raw: Any) -> dict[str, Any]:
    """Validate and normalise an event body; raise the `EsError` Elasticsearch would."""
    schema = EVENT_SCHEMAS[event_type]
    if not isinstance(raw, dict):
        raise to_es_error(schema, raw, {})
    try:
        payload = _LOADERS[event_type](raw)
    except ValidationError as err:
        raise to_es_error(schema, raw, err.messages) from None
    for group in schema.required_sets:  # search_click: document or page (ObjectParser's required field set)
        for key in group:
            if key in payload:
                break
        else:
            missing = [group for group in schema.required_sets if not any(key in payload for key in group)]
            raise to_es_error(schema, raw, {group[0]: [REQUIRED] for group in missing})
    return payload
