"""Custom event schemas: field names and types, create/PATCH bodies, and published events checked against a schema.

Why: the Events API stores typed events; a schema maps field names (dotted paths, spaces allowed) to one of
``string|integer|float|boolean|date``, can only grow (PATCH ``add``/``rename``), and every published event must
fit it. These rules are pure functions here so the HTTP layer, the backends and the tests share them. Stored
events are flat dicts keyed by the dotted field name, dates as epoch milliseconds, with the implicit
``eventTimestamp`` (defaulting to the pickup time) and ``pickupTimestamp``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from gateway.jsonbody import json_type_name

FIELD_TYPES = ("string", "integer", "float", "boolean", "date")
IMPLICIT_FIELDS = {"eventTimestamp": "date", "pickupTimestamp": "date"}
SCHEMA_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,254}")
MAX_FIELD_NAME = 255
MAX_FIELDS = 1_500
INT64 = 2**63
MIN_DATE_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
MAX_DATE_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_BAD_FIELD_CHARS = re.compile(r"[`\x00-\x1f\x7f]")


class SchemaError(ValueError):
    """An invalid schema name, field name, type or update; ``field`` names the culprit when there is one."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class EventError(ValueError):
    """A published event that does not fit the schema: ``index`` (0-based position in the array) and ``field``."""

    def __init__(self, index: int, field: str | None, message: str) -> None:
        where = f"event {index}" + (f", field {field!r}" if field is not None else "")
        super().__init__(f"{where}: {message}")
        self.index = index
        self.field = field
        self.reason = message


# ---------------------------------------------------------------------------------------------- names and types
def check_schema_name(name: str) -> str:
    """A schema (event type) name: a letter, then letters, digits or underscores; at most 255 characters."""
    if not isinstance(name, str) or not SCHEMA_NAME.fullmatch(name):
        raise SchemaError(
            f"invalid schema name {name!r}: use a letter followed by letters, digits or underscores (max 255)"
        )
    return name


def check_field_name(name: Any) -> str:
    """A field name: dot-separated segments, each non-empty and not blank; spaces and punctuation are allowed
    (``metrics.End User Response Time (ms)``), back quotes and control characters are not."""
    if not isinstance(name, str) or not name:
        raise SchemaError("a field name must be a non-empty string", field=str(name))
    if len(name) > MAX_FIELD_NAME:
        raise SchemaError(f"field name longer than {MAX_FIELD_NAME} characters", field=name)
    if _BAD_FIELD_CHARS.search(name):
        raise SchemaError("field names cannot contain back quotes or control characters", field=name)
    if any(not seg.strip() or seg != seg.strip() for seg in name.split(".")):
        raise SchemaError("each dot-separated part of a field name must be non-empty, without outer spaces",
                          field=name)  # fmt: skip
    return name


def check_field_type(name: str, kind: Any) -> str:
    """One of :data:`FIELD_TYPES` (given as a bare string, case-insensitive)."""
    if not isinstance(kind, str) or kind.lower() not in FIELD_TYPES:
        raise SchemaError(f"field {name!r} has type {kind!r}; use one of {', '.join(FIELD_TYPES)}", field=name)
    return kind.lower()


def _check_fields(fields: Mapping[str, str]) -> None:
    """Whole-schema rules: the implicit fields keep type ``date``; no name is both a value and a parent path."""
    if len(fields) > MAX_FIELDS:
        raise SchemaError(f"a schema holds at most {MAX_FIELDS} fields; this one has {len(fields)}")
    for name, kind in fields.items():
        if name in IMPLICIT_FIELDS and kind != IMPLICIT_FIELDS[name]:
            raise SchemaError(f"{name} is an implicit field of type date", field=name)
    names = set(fields) | set(IMPLICIT_FIELDS)
    for name in fields:
        parts = name.split(".")
        for i in range(1, len(parts)):
            parent = ".".join(parts[:i])
            if parent in names:
                raise SchemaError(f"field {name!r} lies under field {parent!r}, which holds a value", field=name)


# ---------------------------------------------------------------------------------------------- create / PATCH
def validate_create_body(body: Any) -> dict[str, str]:
    """``{"schema": {field: type, ...}}`` -> the field map (user fields only, in body order)."""
    if not isinstance(body, dict) or "schema" not in body:
        raise SchemaError('the body must be {"schema": {"fieldName": "string|integer|float|boolean|date", ...}}')
    extra = sorted(set(body) - {"schema"})
    if extra:
        raise SchemaError(f"unknown key {extra[0]!r} in the schema body; only \"schema\" is allowed", field=extra[0])
    fields = body["schema"]
    if not isinstance(fields, dict) or not fields:
        raise SchemaError('"schema" must be a non-empty object of field names to types', field="schema")
    out: dict[str, str] = {}
    for name, kind in fields.items():
        out[check_field_name(name)] = check_field_type(name, kind)
    _check_fields(out)
    return {name: kind for name, kind in out.items() if name not in IMPLICIT_FIELDS}


def apply_patch(current: Mapping[str, str], body: Any) -> dict[str, str]:
    """Apply ``{"add": {...}, "rename": {old: new}}`` (or an array of such objects, in order) to ``current`` and
    return the new field map. Adding a field that exists with the same type is a no-op; any change of type,
    removal, rename of a missing or implicit field, or rename onto an existing name is an error. All or nothing."""
    updates = body if isinstance(body, list) else [body]
    if not updates:
        raise SchemaError('the PATCH body must be {"add": {...}, "rename": {...}} or an array of them')
    fields = dict(current)
    for update in updates:
        if not isinstance(update, dict) or not update:
            raise SchemaError('each PATCH update must be an object with "add" and/or "rename"')
        for key in update:
            if key not in ("add", "rename"):
                raise SchemaError(f"unsupported schema update {key!r}: existing fields cannot be removed or changed; "
                                  'use "add" or "rename"', field=key)  # fmt: skip
        added = update.get("add", {})
        renamed = update.get("rename", {})
        if not isinstance(added, dict) or not isinstance(renamed, dict):
            raise SchemaError('"add" and "rename" must be objects')
        for name, kind in added.items():
            check_field_name(name)
            kind = check_field_type(name, kind)
            existing = fields.get(name, IMPLICIT_FIELDS.get(name))
            if existing is not None and existing != kind:
                raise SchemaError(f"field {name!r} exists with type {existing}; existing fields cannot be changed",
                                  field=name)  # fmt: skip
            if name not in IMPLICIT_FIELDS:
                fields[name] = kind
        for old, new in renamed.items():
            if old in IMPLICIT_FIELDS:
                raise SchemaError(f"{old} is an implicit field and cannot be renamed", field=old)
            if old not in fields:
                raise SchemaError(f"cannot rename {old!r}: no such field", field=old)
            if not isinstance(new, str) or not new:
                raise SchemaError(f"rename of {old!r} needs a new name; existing fields cannot be removed", field=old)
            check_field_name(new)
            if new in fields or new in IMPLICIT_FIELDS:
                raise SchemaError(f"cannot rename {old!r} to {new!r}: that field exists", field=new)
            fields = {(new if name == old else name): kind for name, kind in fields.items()}
    _check_fields(fields)
    return fields


# ---------------------------------------------------------------------------------------------- dates
_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?"
)


def parse_date(value: str) -> int:
    """An ISO 8601 date-time (``Z``, ``+hh:mm``, ``+hhmm`` or no offset = UTC; fraction truncated to ms) or a
    ``yyyy-MM-dd`` date (UTC midnight) -> epoch milliseconds. Raises ValueError otherwise."""
    text = value.strip()
    if _DATE_ONLY.fullmatch(text):
        day = datetime.strptime(text, "%Y-%m-%d").replace(tzinfo=UTC)
        return int(day.timestamp()) * 1000
    m = _ISO.fullmatch(text)
    if m is None:
        raise ValueError(f"{value!r} is not an ISO 8601 date")
    year, month, day, hour, minute, second, fraction, zone = m.groups()
    moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), tzinfo=UTC)
    millis = int((fraction or "0").ljust(3, "0")[:3])
    offset_ms = 0
    if zone and zone not in ("Z", "z"):
        digits = zone[1:].replace(":", "")
        offset_ms = (int(digits[:2]) * 60 + int(digits[2:4] or 0)) * 60_000
        if int(digits[:2]) > 23 or int(digits[2:4] or 0) > 59:
            raise ValueError(f"{value!r} has an invalid UTC offset")
        offset_ms = offset_ms if zone[0] == "+" else -offset_ms
    return int(moment.timestamp()) * 1000 + millis - offset_ms


def to_epoch_ms(value: Any) -> int:
    """A ``date`` value as sent by a client: epoch ms (integer, or an integral float) or an ISO 8601 string,
    between the years 1 and 9999 (so that every stored date renders as ISO 8601)."""
    ms = _to_epoch_ms(value)
    if not MIN_DATE_MS <= ms <= MAX_DATE_MS:
        raise ValueError("date out of range (years 0001 to 9999)")
    return ms


def _to_epoch_ms(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected a date (ISO 8601 string or epoch milliseconds), got a boolean")
    if isinstance(value, int):
        if abs(value) >= INT64:
            raise ValueError("epoch milliseconds out of range")
        return value
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer() or abs(value) >= INT64:
            raise ValueError("epoch milliseconds must be a whole number")
        return int(value)
    if isinstance(value, str):
        return parse_date(value)
    raise ValueError(f"expected a date (ISO 8601 string or epoch milliseconds), got {_kind(value)}")


# ---------------------------------------------------------------------------------------------- events
_kind = json_type_name  # how a JSON value's type reads in a message (the core's wording)


def coerce_value(kind: str, value: Any) -> Any:
    """A JSON value as a value of field type ``kind``; raises ValueError with a message naming what was got."""
    if kind == "string":
        if isinstance(value, str):
            return value
        raise ValueError(f"expected a string, got {_kind(value)}")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            if abs(value) >= INT64:
                raise ValueError("integer out of the 64-bit range")
            return value
        if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < INT64:
            return int(value)
        got = repr(value) if isinstance(value, float) else _kind(value)
        raise ValueError(f"expected an integer, got {got}")
    if kind == "float":
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an integer beyond the largest double
                raise ValueError("number out of the range of a double") from None
            if math.isfinite(number):
                return number
        raise ValueError(f"expected a number, got {_kind(value)}")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected true or false, got {_kind(value)}")
    if kind == "date":
        return to_epoch_ms(value)
    raise ValueError(f"unknown field type {kind}")


def _flatten(event: Mapping[str, Any], prefix: str, out: dict[str, Any], index: int, schema: Mapping[str, str]):
    for key, value in event.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and name not in schema:
            _flatten(value, f"{name}.", out, index, schema)
            continue
        if name in out:
            raise EventError(index, name, "given twice (as a dotted key and inside a nested object)")
        out[name] = value


def validate_events(body: Any, schema: Mapping[str, str], pickup_ms: int) -> list[dict[str, Any]]:
    """A publish body (JSON array of objects) -> stored events: flat dicts by dotted field name, typed values
    (dates as epoch ms), nulls dropped, ``pickupTimestamp`` = ``pickup_ms`` and ``eventTimestamp`` defaulting
    to it. The first problem raises :class:`EventError` naming the event's index and the field."""
    if not isinstance(body, list):
        raise EventError(0, None, "the body must be a JSON array of event objects")
    types = event_types(schema)
    return [validate_event(event, index, types, pickup_ms) for index, event in enumerate(body)]


def event_types(schema: Mapping[str, str]) -> dict[str, str]:
    """The types an event is checked against: the schema's fields and the implicit ones."""
    return {**schema, **IMPLICIT_FIELDS}


def validate_event(event: Any, index: int, types: Mapping[str, str], pickup_ms: int) -> dict[str, Any]:
    """One event of a publish body (at `index`) -> its stored flat dict (see `validate_events`)."""
    if not isinstance(event, dict):
        raise EventError(index, None, f"an event must be a JSON object, got {_kind(event)}")
    flat: dict[str, Any] = {}
    _flatten(event, "", flat, index, types)
    out: dict[str, Any] = {}
    for name, value in flat.items():
        kind = types.get(name)
        if kind is None:
            raise EventError(index, name, "not a field of this schema")
        if name == "pickupTimestamp" or value is None:
            continue
        try:
            out[name] = coerce_value(kind, value)
        except ValueError as exc:
            raise EventError(index, name, f"{kind} field: {exc}") from None
    out["pickupTimestamp"] = pickup_ms
    out.setdefault("eventTimestamp", pickup_ms)
    return out
