"""Marshmallow schemas of the three web services, with every problem reported and each naming its field.

Messages carry the placeholder ``$FIELD``; `problems` replaces it with the full path of the field
(``filters.user.role``, ``paging.perPage``, ``[2].appName`` for the third event of an array), so every
400 names what is wrong. JSON types are strict: ``true`` is not a number, ``1.0`` and ``"1"`` are not
integers, ``"false"`` is not a boolean.

* Ingest (`IngestEventSchema`): ``offline`` (boolean), ``appName``, ``appVersion``, ``name`` (non-blank
  strings) are required; ``contentLocale``, ``uiLocale``, ``sessionId`` are optional strings; ``user`` is
  an optional object with ``id`` (string), ``realm``, ``groups``, ``roles`` (arrays of strings; a single
  string is taken as a one-element array). Other top-level fields are the event's parameters.
* Retrieve (`RetrieveRequestSchema`) and count (`CountRequestSchema`): the documented fields only; an
  unknown field is a 400 (a misspelt filter would otherwise silently return unfiltered data). Each filter
  list holds at most `MAX_FILTER_VALUES` values (a bound on the work one request may ask for).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, RAISE, Schema, ValidationError, fields

from gateway.validation import flatten_errors

FIELD = "$FIELD"
REQUIRED = f"{FIELD} is required"
UNKNOWN = f"{FIELD} is not a known field"
OBJECT = f"{FIELD} must be a JSON object"
STRING = f"{FIELD} must be a string"
BLANK = f"{FIELD} must not be blank"
BOOLEAN = f"{FIELD} must be a boolean (true or false)"
STRINGS = f"{FIELD} must be an array of strings"
DATE_FORMATS_TEXT = "YYYY-MM-DD, YYYY-MM-DDTHH:MM or YYYY-MM-DDTHH:MM:SS (UTC)"
DATE = f"{FIELD} must be a date-time string in one of the formats {DATE_FORMATS_TEXT}"
BAD_DATE = f"{FIELD} is not a valid calendar date and time"

#: Documented upper bound of ``paging.perPage`` (also the page size when ``paging`` is absent).
MAX_PER_PAGE = 1000
#: Most values one filter list (``filters.name``, ``filters.user.id|realm|group|role``) may hold: the
#: gateway's bound on the work one request may ask for (Fluid Topics documents none).
MAX_FILTER_VALUES = 1000
#: Largest ``paging.page`` (a Java int, as Fluid Topics' own services take).
MAX_PAGE = 2**31 - 1
SORT_ORDERS = {"latestfirst": "LatestFirst", "oldestfirst": "OldestFirst"}
PERIODS = ("day", "week", "month")

_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?")
_DATE_FORMATS = {10: "%Y-%m-%d", 16: "%Y-%m-%dT%H:%M", 19: "%Y-%m-%dT%H:%M:%S"}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = datetime(1970, 1, 1, 0, 0, 0, 1000, tzinfo=UTC) - _EPOCH


@dataclass(frozen=True, slots=True)
class Moment:
    """A request date: UTC epoch milliseconds, and whether it was given as a bare date."""

    ms: int
    date_only: bool

    @property
    def moment(self) -> datetime:
        return datetime.fromtimestamp(self.ms / 1000, UTC)


def parse_date(text: str) -> Moment | None:
    """``YYYY-MM-DD``, ``YYYY-MM-DDTHH:MM`` or ``YYYY-MM-DDTHH:MM:SS`` in UTC; None when not a valid one."""
    if not _DATE_RE.fullmatch(text):
        return None
    try:
        moment = datetime.strptime(text, _DATE_FORMATS[len(text)]).replace(tzinfo=UTC)
    except ValueError:
        return None
    return Moment((moment - _EPOCH) // _MS, len(text) == 10)


def _messages(**extra: str) -> dict[str, str]:
    return {"required": REQUIRED, "null": REQUIRED, **extra}


class Text(fields.Field):
    """A JSON string; with `blank` False, not empty or whitespace only."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "string"} if self.blank else {"type": "string", "pattern": r"\S"}

    def __init__(self, *, blank: bool = True, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", _messages(invalid=STRING, blank=BLANK))
        super().__init__(**kwargs)
        self.blank = blank

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.make_error("invalid")
        if not self.blank and not value.strip():
            raise self.make_error("blank")
        return value


class Boolean(fields.Field):
    """A JSON ``true`` or ``false`` (no strings, no numbers)."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "boolean"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(error_messages=_messages(invalid=BOOLEAN), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Integer(fields.Field):
    """A JSON integer in [minimum, maximum] (``true``, ``1.0`` and ``"1"`` are refused)."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "integer", "minimum": self.minimum, "maximum": self.maximum}

    def __init__(self, minimum: int, maximum: int, **kwargs: Any) -> None:
        message = f"{FIELD} must be an integer between {minimum} and {maximum}"
        super().__init__(error_messages=_messages(invalid=message), **kwargs)
        self.minimum, self.maximum = minimum, maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not self.minimum <= value <= self.maximum:
            raise self.make_error("invalid")
        return value


class Strings(fields.Field):
    """An array of strings; a single string counts as a one-element array. Null gives None.

    With `max_items`, a longer array is refused with a message giving its length and the limit.
    """

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``): one string or an array of them."""
        array = {"type": "array", "items": {"type": "string"},
                 **({"maxItems": self.max_items} if self.max_items is not None else {})}
        return {"oneOf": [{"type": "string"}, array]}

    def __init__(self, *, max_items: int | None = None, **kwargs: Any) -> None:
        super().__init__(allow_none=True, error_messages=_messages(invalid=STRINGS), **kwargs)
        self.max_items = max_items

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> list[str]:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise self.make_error("invalid")
        if self.max_items is not None and len(value) > self.max_items:
            raise ValidationError(f"{FIELD} lists {len(value):,} values: at most {self.max_items:,} are allowed "
                                  "per request")
        return list(value)


class Date(fields.Field):
    """A request date in one of the three documented formats, as a `Moment`."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "string", "pattern": f"^{_DATE_RE.pattern}$", "description": DATE_FORMATS_TEXT}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(error_messages=_messages(invalid=DATE, calendar=BAD_DATE), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Moment:
        if not isinstance(value, str) or not _DATE_RE.fullmatch(value):
            raise self.make_error("invalid")
        parsed = parse_date(value)
        if parsed is None:
            raise self.make_error("calendar")
        return parsed


class Choice(fields.Field):
    """A string among `choices`, compared case-insensitively; gives the canonical spelling."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``): the choices, in any case."""
        return {"type": "string", "enum": list(dict.fromkeys(self.choices.values())),
                "description": "case-insensitive"}

    def __init__(self, choices: dict[str, str], **kwargs: Any) -> None:
        listed = " or ".join(dict.fromkeys(choices.values()))
        message = f"{FIELD} must be one of {listed} (case-insensitive)"
        kwargs.setdefault("error_messages", _messages(invalid=message))
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str) or value.lower() not in self.choices:
            raise self.make_error("invalid")
        return self.choices[value.lower()]


class Object(fields.Nested):
    """A nested JSON object (anything else is refused with a message naming the field)."""

    def __init__(self, nested: type[Schema], **kwargs: Any) -> None:
        super().__init__(nested, error_messages=_messages(type=OBJECT), **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, dict):
            raise ValidationError(OBJECT)
        return super()._deserialize(value, attr, data, **kwargs)


class _Strict(Schema):
    """Unknown fields are refused, naming them."""

    error_messages = {"unknown": UNKNOWN, "type": OBJECT}

    class Meta:
        unknown = RAISE


# -- ingest -----------------------------------------------------------------------------------------
class IngestUserSchema(_Strict):
    id = Text(allow_none=True)
    realm = Strings()
    groups = Strings()
    roles = Strings()


class IngestEventSchema(Schema):
    """The documented fields of a posted event (the others are its parameters, see `split_event`)."""

    error_messages = {"type": OBJECT}

    class Meta:
        unknown = EXCLUDE  # the event's own fields: split off as parameters

    offline = Boolean(required=True)
    appName = Text(required=True, blank=False)
    appVersion = Text(required=True, blank=False)
    name = Text(required=True, blank=False)
    contentLocale = Text(allow_none=True)
    uiLocale = Text(allow_none=True)
    sessionId = Text(allow_none=True)
    user = Object(IngestUserSchema, allow_none=True)


#: Fields of a posted event that are not parameters.
EVENT_FIELDS = tuple(IngestEventSchema._declared_fields)
#: Fields the server sets: a client's values are ignored (neither stored nor kept as parameters).
SERVER_FIELDS = ("id", "datetime", "tenantId", "userAgent", "userIp")


# -- retrieve ---------------------------------------------------------------------------------------
class UserFilterSchema(_Strict):
    id = Strings(max_items=MAX_FILTER_VALUES)
    realm = Strings(max_items=MAX_FILTER_VALUES)
    group = Strings(max_items=MAX_FILTER_VALUES)
    role = Strings(max_items=MAX_FILTER_VALUES)


class RetrieveFiltersSchema(_Strict):
    name = Strings(max_items=MAX_FILTER_VALUES)
    user = Object(UserFilterSchema, allow_none=True)


class PagingSchema(_Strict):
    page = Integer(1, MAX_PAGE, required=True)
    perPage = Integer(1, MAX_PER_PAGE, required=True)


class RetrieveRequestSchema(_Strict):
    startDate = Date(required=True)
    endDate = Date(allow_none=True)
    filters = Object(RetrieveFiltersSchema, allow_none=True)
    paging = Object(PagingSchema, allow_none=True)
    sortOrder = Choice(SORT_ORDERS, allow_none=True)


# -- count ------------------------------------------------------------------------------------------
class CountFiltersSchema(_Strict):
    name = Strings(max_items=MAX_FILTER_VALUES)


class CountRequestSchema(_Strict):
    startDate = Date(required=True)
    endDate = Date(required=True)
    groupByPeriod = Choice({p: p for p in PERIODS}, required=True)
    filters = Object(CountFiltersSchema, allow_none=True)


INGEST = IngestEventSchema()
RETRIEVE = RetrieveRequestSchema()
COUNT = CountRequestSchema()


class _Unusual(Exception):  # control flow only: the event needs marshmallow's full treatment
    """Raised by `load_ingest`'s fast path for anything but the common valid shape."""


_REQUIRED_TEXT = ("appName", "appVersion", "name")
_OPTIONAL_TEXT = ("contentLocale", "uiLocale", "sessionId")
_USER_LISTS = ("realm", "groups", "roles")
_USER_FIELDS = frozenset(("id", *_USER_LISTS))


def _fast_ingest(raw: dict[str, Any]) -> dict[str, Any]:
    """``INGEST.load(raw)`` for a valid event, in plain checks (issue 11: marshmallow cost ~100 us an event).

    Same keys in the same (declared) order and the same values as the schema gives; `_Unusual` for
    anything else, which then goes to the schema itself, so errors and edge cases stay marshmallow's.
    """
    offline = raw.get("offline")
    if not isinstance(offline, bool):
        raise _Unusual
    out: dict[str, Any] = {"offline": offline}
    for key in _REQUIRED_TEXT:
        value = raw.get(key)
        if not isinstance(value, str) or not value.strip():
            raise _Unusual
        out[key] = value
    for key in _OPTIONAL_TEXT:
        if key in raw:
            value = raw[key]
            if value is not None and not isinstance(value, str):
                raise _Unusual
            out[key] = value
    if "user" in raw:
        user = raw["user"]
        if user is not None:
            if not isinstance(user, dict) or not _USER_FIELDS.issuperset(user):
                raise _Unusual
            loaded: dict[str, Any] = {}
            if "id" in user:
                if user["id"] is not None and not isinstance(user["id"], str):
                    raise _Unusual
                loaded["id"] = user["id"]
            for key in _USER_LISTS:
                if key in user:
                    value = user[key]
                    if isinstance(value, str):
                        value = [value]
                    elif isinstance(value, list) and all(isinstance(item, str) for item in value):
                        value = list(value)
                    elif value is not None:
                        raise _Unusual
                    loaded[key] = value
            user = loaded
        out["user"] = user
    return out


def load_ingest(raw: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """`load` with `INGEST` for one posted event, fast for the common valid shape."""
    try:
        return _fast_ingest(raw), []
    except _Unusual:
        return load(INGEST, raw, prefix)


# -- errors -----------------------------------------------------------------------------------------
def problems(messages: Any, schema: Schema | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """Marshmallow's error tree as (field path, message) pairs, in the schema's field order (``body`` at the root)."""
    out = []
    for path, message in flatten_errors(messages, schema, prefix):
        path = path or "body"
        out.append((path, message.replace(FIELD, path)))
    return out


def load(schema: Schema, raw: dict[str, Any], prefix: str = "") -> tuple[dict[str, Any], list[tuple[str, str]]]:
    """The loaded data and the problems found (empty when valid)."""
    try:
        return schema.load(raw), []
    except ValidationError as err:
        return {}, problems(err.messages, schema, prefix)


def split_event(raw: dict[str, Any]) -> dict[str, Any]:
    """The parameters of a posted event: its fields that are neither documented nor server-set.

    A ``parameters`` object sent by the client (the shape the retrieve service returns) is merged in
    first, so a stored event posted back keeps its parameters.
    """
    parameters: dict[str, Any] = {}
    sent = raw.get("parameters")
    if isinstance(sent, dict):
        parameters.update(sent)
    for key, value in raw.items():
        if key not in EVENT_FIELDS and key not in SERVER_FIELDS and key != "parameters":
            parameters[key] = value
    return parameters
