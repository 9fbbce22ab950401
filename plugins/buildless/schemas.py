"""Marshmallow schemas of the Buildless telemetry ``Event`` envelope, read the way a proto3 JSON parser reads it.

Messages and rules come from the protocol (``buildless/service/v1/buildless-v1.proto``, message ``Event``;
``buildless/telemetry/event.proto``, message ``TelemetryEvent`` and its parts): field names, types,
``validate.rules`` (patterns, lengths, item counts, byte lengths, URIs, defined enums) and
``google.api.field_behavior``.

Proto3 JSON mapping (what gRPC-gateway's ``protojson`` accepts):

* a field is named by its JSON name (lowerCamelCase) or by its original proto name (snake_case); giving
  both for one field is an error. ``null`` means "not set". Unknown fields are dropped, as gRPC-gateway's
  default unmarshaler (``DiscardUnknown``) does;
* 32- and 64-bit integers are JSON numbers (integral values) or decimal strings, within range;
* enums are the value's name or its number; numbers and names the protocol does not define are refused;
* ``bytes`` are base64, standard or URL-safe, padded or not (stored as padded standard base64);
* ``double`` is a number or a numeric string; NaN and infinities are refused (a stored document is strict JSON);
* ``data`` is a ``google.protobuf.Any``: an object with an ``@type`` type URL and the message's fields.

Rules beyond the types:

* ``REQUIRED`` fields must be set to a non-default value (proto3 cannot tell ``""``/``0``/the zero enum
  from "not set"); a required message must be present (``{}`` is present);
* empty optional strings count as unset, so their patterns apply only to non-empty values;
* ``OUTPUT_ONLY`` fields (``event.scope``, ``timing.timehash|received|ingested``,
  ``location.sourceIp|nielsen|tag``) are ignored when a client sends them (AIP-203); the server fills them;
* ``event.timing.occurred`` is epoch milliseconds (the stored event time), at most year 9999;
* keys anywhere in ``event.data`` must not start with ``_buildless_`` nor contain ``buildless`` (any case);
* ``context[].action`` is only allowed together with ``context[].resource``.

Every problem is reported, each naming its field by its JSON path (``event.context[0].type``).
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from marshmallow import EXCLUDE, Schema, ValidationError, fields, pre_load, validates_schema

from gateway.validation import flatten_errors

UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
#: The latest accepted `timing.occurred`: 9999-12-31T23:59:59.999Z in epoch milliseconds.
MAX_EVENT_TIME_MS = 253_402_300_799_999

#: Enums of the protocol: name -> number, in number order.
REPOSITORY_PROVIDER = {"NO_REPOSITORY_PROVIDER": 0, "GITHUB": 1}
OS_FAMILY = {"UNKNOWN_OS_FAMILY": 0, "UNIX": 1, "LINUX": 2, "DARWIN": 3, "WINDOWS": 4, "OTHER_OS": 5}
PROCESSOR_ARCH = {"UNKNOWN_ARCH": 0, "X86": 1, "ARM": 2}

ID_PATTERN = r"^[a-zA-Z0-9]{12,64}$"
COLLECTION_PATTERN = r"^[a-zA-Z]{3,32}$"
TENANT_PATTERN = r"^org_[a-zA-Z0-9]{3,32}$"
CONTEXT_TYPE_PATTERN = r"^type.googleapis.com/buildless.context.[a-zA-Z.0-9]*$"
CONTEXT_RESOURCE_PATTERN = r"^[a-zA-Z]{3,12}::[a-zA-Z0-9]*"
TENANT_NAME_PATTERN = r"^[a-zA-Z]{1}[a-zA-Z0-9_-]{2,32}"
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
_DECIMAL = re.compile(r"-?[0-9]+")
_JSON_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
_NON_FINITE = frozenset({"NaN", "Infinity", "-Infinity"})
REQUIRED = "is required"


def _snake(name: str) -> str:
    return re.sub(r"([A-Z])", r"_\1", name).lower()


# -- scalar fields ---------------------------------------------------------------------------------------------
class ProtoField(fields.Field):
    """A proto3 scalar. `must_be_set`: REQUIRED, so the default value counts as missing.

    `kind` tells the query-parameter reader how to pre-convert a parameter's text.
    """

    kind = "string"

    def __init__(self, *, must_be_set: bool = False, **kwargs: Any) -> None:
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("required", REQUIRED)
        super().__init__(required=must_be_set, **kwargs)
        self.must_be_set = must_be_set

    def fail(self, message: str) -> ValidationError:
        return ValidationError(message)


class Text(ProtoField):
    """A proto3 ``string`` with the protocol's rules: length in characters, RE2-style pattern, URI."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "string", **({"maxLength": self.max_len} if self.max_len is not None else {}),
                **({"pattern": self.pattern} if self.pattern else {}), **({"format": "uri"} if self.uri else {})}

    def __init__(self, *, max_len: int | None = None, pattern: str | None = None, uri: bool = False,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_len = max_len
        self.pattern = pattern
        self.regex = re.compile(pattern) if pattern else None
        self.uri = uri

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("must be a string")
        if value == "":
            if self.must_be_set:
                raise self.fail(REQUIRED)
            return value
        if self.max_len is not None and len(value) > self.max_len:
            raise self.fail(f"must be at most {self.max_len} characters long (got {len(value)})")
        if self.regex is not None and not self.regex.search(value):
            raise self.fail(f'must match the pattern "{self.pattern}"')
        if self.uri and not _is_uri(value):
            raise self.fail("must be an absolute URI (with a scheme, e.g. https://github.com/acme/app)")
        return value


def _is_uri(value: str) -> bool:
    if any(ch.isspace() or ord(ch) < 0x20 for ch in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return bool(parts.scheme) and bool(_SCHEME.fullmatch(parts.scheme)) and bool(parts.netloc or parts.path)


class UInt(ProtoField):
    """A proto3 ``uint32``/``uint64``: a JSON number with an integral value, or a decimal string."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"oneOf": [{"type": "integer", "minimum": 0, "maximum": self.maximum},
                          {"type": "string", "pattern": "^[0-9]+$", "description": "a decimal string"}]}

    kind = "integer"

    def __init__(self, bits: int = 32, *, maximum: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.bits = bits
        self.maximum = (UINT32_MAX if bits == 32 else UINT64_MAX) if maximum is None else maximum

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> int:
        what = f"must be an unsigned {self.bits}-bit integer (a JSON number or a decimal string)"
        if isinstance(value, bool):
            raise self.fail(what)
        if isinstance(value, int):
            number = value
        elif isinstance(value, float):
            if not value.is_integer():
                raise self.fail(what)
            number = int(value)
        elif isinstance(value, str) and _DECIMAL.fullmatch(value):
            if len(value.lstrip("-0")) > 20:  # more digits than 2**64 has (and than int() may be asked to read)
                raise self.fail(f"must be between 0 and {self.maximum}")
            number = int(value)
        else:
            raise self.fail(what)
        if not 0 <= number <= self.maximum:
            raise self.fail(f"must be between 0 and {self.maximum} (got {number})")
        if number == 0 and self.must_be_set:
            raise self.fail(REQUIRED)
        return number


class Bool(ProtoField):
    """A proto3 ``bool``: JSON ``true`` or ``false``."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "boolean"}

    kind = "boolean"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail("must be true or false")
        return value


class Enum(ProtoField):
    """A proto3 enum: the value's name or its number; stored by name. Undefined values are refused."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``): a name or a number of the enum."""
        return {"oneOf": [{"type": "string", "enum": list(self.values)},
                          {"type": "integer", "enum": list(self.names)}], "title": self.type_name}

    kind = "enum"

    def __init__(self, values: Mapping[str, int], type_name: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.values = dict(values)
        self.names = {number: name for name, number in values.items()}
        self.type_name = type_name

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if isinstance(value, str) and value in self.values:
            name = value
        elif isinstance(value, int) and not isinstance(value, bool) and value in self.names:
            name = self.names[value]
        else:
            allowed = ", ".join(f"{n} ({v})" for n, v in self.values.items())
            raise self.fail(f"must be a {self.type_name} value: one of {allowed}, by name or number (got {value!r})")
        if self.values[name] == 0 and self.must_be_set:
            raise self.fail(f"{REQUIRED} ({name} is the unset value)")
        return name


class Bytes(ProtoField):
    """A proto3 ``bytes``: base64 (standard or URL-safe, padding optional); stored as padded standard base64."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "string", "contentEncoding": "base64"}

    kind = "bytes"

    def __init__(self, *, length: int | None = None, max_len: int | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.length = length
        self.max_len = max_len

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("must be a base64 string")
        text = value.strip().replace("-", "+").replace("_", "/").rstrip("=")
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise self.fail("must be base64 (standard or URL-safe alphabet)") from None
        if not raw and self.must_be_set:
            raise self.fail(REQUIRED)
        if self.length is not None and raw and len(raw) != self.length:
            raise self.fail(f"must be exactly {self.length} bytes (got {len(raw)})")
        if self.max_len is not None and len(raw) > self.max_len:
            raise self.fail(f"must be at most {self.max_len} bytes (got {len(raw)})")
        return base64.b64encode(raw).decode("ascii")


class Double(ProtoField):
    """A proto3 ``double``: a JSON number or a numeric string; must be finite."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``): a number or a numeric string."""
        return {"oneOf": [{"type": "number"}, {"type": "string", "pattern": _JSON_NUMBER.pattern}]}

    kind = "number"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> float:
        if isinstance(value, bool):
            raise self.fail("must be a number")
        if not isinstance(value, int | float) and not (
                isinstance(value, str) and (_JSON_NUMBER.fullmatch(value) or value in _NON_FINITE)):
            raise self.fail("must be a number")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the range of a double
            number = math.inf
        if not math.isfinite(number):
            raise self.fail("must be a finite number")
        return number


class AnyData(ProtoField):
    """``google.protobuf.Any`` in proto3 JSON: ``{"@type": "<type URL>", ...fields}`` (``{}`` is an empty Any)."""

    def openapi(self) -> dict[str, Any]:
        """The JSON Schema this field accepts (for ``/openapi.json``)."""
        return {"type": "object", "properties": {"@type": {"type": "string"}}, "additionalProperties": True}

    kind = "any"

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail('must be a JSON object (a google.protobuf.Any: {"@type": "<type URL>", ...})')
        problems: dict[str, list[str]] = {}
        type_url = value.get("@type")
        if value and type_url is None:
            problems["@type"] = [REQUIRED + " (the type URL of the data's message)"]
        elif value and (not isinstance(type_url, str) or "/" not in type_url or type_url.endswith("/")):
            problems["@type"] = ['must be a type URL such as "type.googleapis.com/acme.Build"']
        for path, key in _keys(value, ""):
            if key.lower().startswith("_buildless_"):
                problems.setdefault(path, []).append('must not be named with the prefix "_buildless_"')
            elif "buildless" in key.lower():
                problems.setdefault(path, []).append('must not be named with a name containing "buildless"')
        if problems:
            raise ValidationError(problems)
        return value


def _keys(value: Any, prefix: str) -> Iterator[tuple[str, str]]:
    """(path, key) of every object key inside `value`, depth first (arrays are walked too)."""
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            yield path, str(key)
            yield from _keys(item, path)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _keys(item, f"{prefix}[{index}]")


# -- messages --------------------------------------------------------------------------------------------------
def Message(schema: type[Schema], *, required: bool = False) -> fields.Nested:
    """A singular message field; `required`: it must be present (``{}`` counts)."""
    return fields.Nested(schema, required=required, error_messages={"required": REQUIRED, "null": REQUIRED,
                                                                    "type": "must be a JSON object"})


def Repeated(schema: type[Schema], *, min_items: int = 0, max_items: int | None = None,
             required: bool = False) -> fields.List:
    """A repeated message field with the protocol's item counts."""
    def count(items: list[Any]) -> None:
        if len(items) < min_items or (max_items is not None and len(items) > max_items):
            bounds = f"between {min_items} and {max_items}" if max_items is not None else f"at least {min_items}"
            raise ValidationError(f"must have {bounds} items (got {len(items)})")

    checks = [count] if min_items or max_items is not None else []
    inner = fields.Nested(schema, error_messages={"type": "must be a JSON object", "null": "must not be null"})
    return fields.List(inner, required=required, validate=checks,
                       error_messages={"required": REQUIRED, "invalid": "must be a JSON array"})


class ProtoSchema(Schema):
    """A proto3 message read from JSON: JSON or proto names, ``null`` as unset, unknown fields dropped.

    `OUTPUT_ONLY` names fields the server fills: a client's values are dropped before validation.
    """

    OUTPUT_ONLY: tuple[str, ...] = ()

    class Meta:
        unknown = EXCLUDE

    @classmethod
    def json_name(cls, name: str) -> str | None:
        """The JSON name of a field named by its JSON or proto name (None when the message has no such field)."""
        return _aliases(cls).get(name)

    @pre_load
    def _proto3_names(self, data: Any, **_: Any) -> dict[str, Any]:
        if not isinstance(data, dict):
            raise ValidationError("must be a JSON object")
        aliases = _aliases(type(self))
        out: dict[str, Any] = {}
        seen: dict[str, str] = {}
        problems: dict[str, list[str]] = {}
        for key, value in data.items():
            name = aliases.get(key)
            if name is None:
                continue  # unknown: dropped
            if name in seen:
                problems[name] = [f"is given twice (as {seen[name]} and as {key})"]
                continue
            seen[name] = key
            if value is None or name in self.OUTPUT_ONLY:
                continue  # null is "not set"; output-only values are the server's to fill
            out[name] = value
        if problems:
            raise ValidationError(problems)
        return out


_ALIAS_CACHE: dict[type[Schema], dict[str, str]] = {}


def _aliases(schema: type[Schema]) -> dict[str, str]:
    """JSON name and proto name -> JSON name, for declared and output-only fields of a message schema."""
    aliases = _ALIAS_CACHE.get(schema)
    if aliases is None:
        aliases = {}
        names = [*schema._declared_fields, *getattr(schema, "OUTPUT_ONLY", ())]
        for name in names:
            aliases[name] = name
            aliases.setdefault(_snake(name), name)
        _ALIAS_CACHE[schema] = aliases
    return aliases


class VersionInfo(ProtoSchema):
    major = UInt(32)
    minor = UInt(32)
    micro = UInt(32)
    build = Text()
    rc = Text()
    commit = Text()
    tag = Text()
    spec = Text()
    release = UInt(64)


class ToolInfo(ProtoSchema):
    name = Text(must_be_set=True)
    version = Message(VersionInfo, required=True)


class OSInfo(ProtoSchema):
    name = Text(must_be_set=True)
    family = Enum(OS_FAMILY, "buildless.telemetry.OSFamily", must_be_set=True)
    arch = Enum(PROCESSOR_ARCH, "buildless.telemetry.ProcessorArch", must_be_set=True)
    version = Message(VersionInfo, required=True)


class APIClientInfo(ProtoSchema):
    name = Text(must_be_set=True)
    version = Message(VersionInfo, required=True)


class TenantDetail(ProtoSchema):
    oid = UInt(32, must_be_set=True)
    name = Text(must_be_set=True, pattern=TENANT_NAME_PATTERN, max_len=32)


class UserDetail(ProtoSchema):
    uid = Text(must_be_set=True, max_len=128)
    email = Bytes(must_be_set=True, length=32)
    username = Text(max_len=32)


class RepositoryDetail(ProtoSchema):
    provider = Enum(REPOSITORY_PROVIDER, "buildless.code.RepositoryProvider", must_be_set=True)
    link = Text(must_be_set=True, uri=True)
    name = Text(max_len=32)


class ClientDetail(ProtoSchema):
    tool = Repeated(ToolInfo)
    os = Message(OSInfo)
    agent = Message(APIClientInfo)


class EventDetail(ProtoSchema):
    tenant = Message(TenantDetail)
    user = Message(UserDetail)
    repository = Message(RepositoryDetail)
    client = Message(ClientDetail)


class EventContext(ProtoSchema):
    type = Text(must_be_set=True, pattern=CONTEXT_TYPE_PATTERN, max_len=64)
    resource = Text(pattern=CONTEXT_RESOURCE_PATTERN, max_len=128)
    action = Text(max_len=32)
    event = Text(must_be_set=True, max_len=64)

    @validates_schema(skip_on_field_errors=False)
    def _action_needs_resource(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("action") and not data.get("resource"):
            raise ValidationError({"action": ["is only allowed together with resource"]})


class EventTiming(ProtoSchema):
    OUTPUT_ONLY = ("timehash", "received", "ingested")

    occurred = UInt(64, maximum=MAX_EVENT_TIME_MS, must_be_set=True)


class GeoPoint(ProtoSchema):
    lat = Double()
    lon = Double()


class EventLocation(ProtoSchema):
    OUTPUT_ONLY = ("sourceIp", "nielsen", "tag")

    timezone = Text()
    point = Message(GeoPoint)
    locality = Text()
    region = Text()
    country = Text()
    edge = Text()


class TelemetryEvent(ProtoSchema):
    OUTPUT_ONLY = ("scope",)

    id = Text(must_be_set=True, pattern=ID_PATTERN, max_len=64)
    tenant = Text(pattern=TENANT_PATTERN, max_len=64)
    user = Text(max_len=128)
    context = Repeated(EventContext, min_items=1, max_items=10, required=True)
    detail = Message(EventDetail, required=True)
    timing = Message(EventTiming, required=True)
    location = Message(EventLocation)
    timer = Bytes(max_len=32)
    ordinal = UInt(32)
    data = AnyData()


class Envelope(ProtoSchema):
    """``buildless.service.v1.Event``: the request of ``EventEmit``."""

    collection = Text(pattern=COLLECTION_PATTERN, max_len=32)
    fin = Bool()
    index = UInt(32)
    scope = Text()
    event = Message(TelemetryEvent, required=True)


ENVELOPE = Envelope()


# -- errors ----------------------------------------------------------------------------------------------------
def problems(errors: Any) -> list[tuple[str, str]]:
    """Marshmallow's nested error messages as (JSON path, message) pairs, in field order."""
    return flatten_errors(errors)


class InvalidEvent(ValueError):
    """The request does not validate; `problems` lists (JSON path, message) for every problem."""

    def __init__(self, found: list[tuple[str, str]]) -> None:
        self.problems = found
        super().__init__("; ".join(f"{path or 'request'} {message}" for path, message in found))

    @property
    def field(self) -> str | None:
        return self.problems[0][0] if self.problems else None


def load_envelope(raw: Any) -> dict[str, Any]:
    """The validated envelope in canonical proto3 JSON names (enums by name, bytes as base64, integers as numbers).

    Raises `InvalidEvent` naming every problem.
    """
    try:
        return ENVELOPE.load(raw)
    except ValidationError as err:
        raise InvalidEvent(problems(err.messages)) from None


# -- query parameters ------------------------------------------------------------------------------------------
_TRUE = frozenset({"1", "t", "T", "true", "TRUE", "True"})
_FALSE = frozenset({"0", "f", "F", "false", "FALSE", "False"})


def _param_value(field: fields.Field, text: str) -> Any:
    """A query parameter's text as the JSON value the schema reads (Go's ParseBool, enum numbers)."""
    kind = getattr(field, "kind", "string")
    if kind == "boolean":
        return True if text in _TRUE else False if text in _FALSE else text
    if kind == "enum" and _DECIMAL.fullmatch(text):
        return int(text)
    return text


def is_known_param(name: str) -> bool:
    """True when a query parameter names a field of the envelope (others are ignored, as gRPC-gateway does)."""
    return Envelope.json_name(name.split(".", 1)[0]) is not None


def envelope_from_params(params: list[tuple[str, list[str]]]) -> dict[str, Any]:
    """The envelope from gRPC-gateway style query parameters (``event.timing.occurred=...``).

    Each parameter is a dotted path of JSON or proto names; unknown paths are ignored. A path through a
    repeated message (``event.context.type``) is an extension of gRPC-gateway (which cannot express one):
    the n-th value of each such parameter goes to the n-th item. Messages and ``event.data`` cannot be
    given as values. Raises `InvalidEvent`.
    """
    out: dict[str, Any] = {}
    found: list[tuple[str, str]] = []
    for name, values in params:
        _assign(Envelope, out, name.split("."), values, "", found)
    if found:
        raise InvalidEvent(found)
    return out


def _assign(schema: type[Schema], target: dict[str, Any], segments: list[str], values: list[str], path: str,
            found: list[tuple[str, str]]) -> None:
    name = _aliases(schema).get(segments[0])
    if name is None or name in getattr(schema, "OUTPUT_ONLY", ()):
        return  # unknown or server-filled: ignored
    field = schema._declared_fields[name]
    here = f"{path}.{name}" if path else name
    rest = segments[1:]
    if isinstance(field, fields.List):
        inner = field.inner
        assert isinstance(inner, fields.Nested)
        if not rest:
            found.append((here, f"is a list of messages: give its fields as {here}.<field>"))
            return
        items = target.setdefault(name, [])
        for index, value in enumerate(values):
            while len(items) <= index:
                items.append({})
            _assign(inner.nested, items[index], rest, [value], f"{here}[{index}]", found)  # type: ignore[arg-type]
    elif isinstance(field, fields.Nested):
        if not rest:
            found.append((here, f"is a message: give its fields as {here}.<field>"))
            return
        _assign(field.nested, target.setdefault(name, {}), rest, values, here, found)  # type: ignore[arg-type]
    elif isinstance(field, AnyData):
        found.append((here, "cannot be sent as a query parameter: send the event as a JSON body"))
    elif rest:
        found.append((here, "is not a message: it has no field " + ".".join(rest)))
    elif len(values) > 1:
        found.append((here, f"is given {len(values)} times: it takes one value"))
    else:
        target[name] = _param_value(field, values[0])
