"""Reading request bodies: the size limit for every transfer encoding, and one strict JSON parser.

Every API reads JSON, and every one must answer bad JSON with a 4xx in its own format rather than a 500.
`parse_json` refuses what the vendors' parsers refuse — invalid UTF-8, ``NaN``/``Infinity``, unpaired
surrogate escapes (they could never be written back out as UTF-8), integers too long to convert, nesting
deeper than `MAX_DEPTH` — and, on request, duplicate keys (Elasticsearch's parser rejects them). Problems
raise `InvalidJSON`, a `BadRequest` with code ``invalid_json`` and the position, rendered by the plugin.

`read_json` is what a view calls: the Content-Type check (415), the body (413 beyond the limit), the
strict parse and the shape the view expects, each failure a distinct type (`EmptyBody`, `WrongShape`,
`InvalidJSON`, `UnsupportedMediaType`) that the API words in its vendor's terms.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from flask import Request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType

MAX_DEPTH = 512
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


class InvalidJSON(BadRequest):
    """The body is not acceptable JSON; `line`/`column` locate the problem when known."""

    code = "invalid_json"

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None,
                 duplicate_key: str | None = None, too_deep: bool = False) -> None:
        super().__init__(message)
        self.line, self.column = line, column
        self.duplicate_key = duplicate_key  # set for a repeated key, so plugins can word it their way
        self.too_deep = too_deep  # nesting beyond MAX_DEPTH (plugins with a lower limit say theirs)

    def describe(self) -> str:
        """The message with its position, for plugins that word errors themselves."""
        return f"{self.message} (line {self.line}, column {self.column})" if self.line is not None else self.message


class EmptyBody(InvalidJSON):
    """The request has no body (or only whitespace) where a JSON document is expected."""

    def __init__(self) -> None:
        super().__init__("the request body is empty")


class WrongShape(InvalidJSON):
    """The body is valid JSON of another type than expected; `found` names it (``a string``, ``null`` ...)."""

    def __init__(self, found: str, value: Any) -> None:
        super().__init__(f"the request body must not be {found}")
        self.found, self.value = found, value


def json_type_name(value: Any) -> str:
    """How a JSON value's type reads in a message: ``null``, ``a boolean``, ``a number``, ``an object`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    return "an array"


def read_json(request: Request, *, expect: type | tuple[type, ...] = (dict, list),
              reject_duplicate_keys: bool = False) -> Any:
    """The request's JSON body, parsed strictly, of the type(s) in `expect` (``dict``, ``list`` or both).

    A Content-Type that is not JSON (``application/json`` or ``application/*+json``) is a 415; a request
    without one is read as JSON (curl and scripts sometimes omit it). Raises `EmptyBody`, `InvalidJSON`
    or `WrongShape` (all 400s) for the API to word.
    """
    header = request.headers.get("Content-Type")
    if header and not is_json_media_type(header):
        raise UnsupportedMediaType(f"Content-Type must be application/json (got {header})")
    raw = request.get_data(cache=False)
    if not raw.strip():
        raise EmptyBody()
    value = parse_json(raw, reject_duplicate_keys=reject_duplicate_keys)
    if not isinstance(value, expect) or (bool not in _as_tuple(expect) and isinstance(value, bool)):
        raise WrongShape(json_type_name(value), value)
    return value


def _as_tuple(expect: type | tuple[type, ...]) -> tuple[type, ...]:
    return expect if isinstance(expect, tuple) else (expect,)


def is_json_media_type(header: str | None) -> bool:
    """Whether a Content-Type names JSON: ``application/json`` or any ``application/*+json`` (None: no)."""
    if not header:
        return False
    media = header.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


def read_body(request: Request, max_bytes: int) -> bytes:
    """The whole body, at most `max_bytes` (413 beyond), whether sent with Content-Length or chunked."""
    if request.content_length is not None:
        return request.get_data()  # werkzeug enforces MAX_CONTENT_LENGTH: 413 beyond it
    cached = getattr(request, "_cached_data", None)
    if cached is not None:
        return cached
    stream = request.environ.get("wsgi.input")
    data = stream.read(max_bytes + 1) if stream is not None else b""
    if len(data) > max_bytes:
        raise PayloadTooLarge("request body is larger than the configured limit")
    request._cached_data = data  # later get_data() calls see the same bytes
    return data


def parse_json(raw: bytes | str, *, reject_duplicate_keys: bool = False) -> Any:
    """Parse a request body strictly; raise `InvalidJSON` for anything a strict vendor parser refuses."""
    if isinstance(raw, bytes):
        data = raw
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InvalidJSON(f"Invalid UTF-8 start byte at offset {exc.start}") from None
    else:
        text, data = raw, raw.encode("utf-8", "surrogatepass")
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        value = (_UNIQUE_KEYS_DECODER if reject_duplicate_keys else _DECODER).decode(text)
    except json.JSONDecodeError as exc:
        raise InvalidJSON(exc.msg, line=exc.lineno, column=exc.colno) from None
    except RecursionError:
        raise InvalidJSON(f"nesting is deeper than {MAX_DEPTH} levels", too_deep=True) from None
    except ValueError as exc:  # e.g. an integer literal beyond int_max_str_digits
        raise InvalidJSON(str(exc)) from None
    if _deeper_than(text, MAX_DEPTH - 1) and _too_deep(value, MAX_DEPTH):  # a scalar inside 512 containers is at 513
        raise InvalidJSON(f"nesting is deeper than {MAX_DEPTH} levels", too_deep=True)
    if _SURROGATE_ESCAPE.search(data):
        _check(value)
    return value


def _too_deep(value: Any, limit: int) -> bool:
    """Whether any value sits deeper than `limit` levels (the root is level 1), visiting containers only.

    Many documents with over `limit` brackets are big and flat (an array of 1,000 events); walking their
    containers and not every string is what keeps the check cheap for them.
    """
    stack = [(value, 1)] if type(value) in _CONTAINERS else []
    while stack:
        node, depth = stack.pop()
        items = node.values() if type(node) is dict else node
        if depth >= limit and items:  # its items are at depth + 1
            return True
        stack.extend((item, depth + 1) for item in items if type(item) in _CONTAINERS)
    return False


_CONTAINERS = (dict, list)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e400 overflows to infinity, which JSON cannot carry back out
        raise InvalidJSON(f"Numeric value ({text}) out of range of double")
    return value


def _no_constant(name: str) -> Any:
    raise InvalidJSON(f"Non-standard token '{name}': not allowed in JSON")


def _deeper_than(text: str, limit: int) -> bool:
    """Cheap pre-check: only documents with many brackets can be deeply nested."""
    return text.count("{") + text.count("[") > limit


def _check(value: Any) -> None:
    """Depth and unpaired surrogates, walked only for the rare documents that may have either."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise InvalidJSON(f"nesting is deeper than {MAX_DEPTH} levels", too_deep=True)
        if isinstance(node, dict):
            for key, item in node.items():
                _check_text(key)
                stack.append((item, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, str):
            _check_text(node)


def _check_text(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidJSON("Invalid unpaired surrogate in a string") from None


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))
        raise InvalidJSON(f"Duplicate field '{duplicate}'", duplicate_key=duplicate)
    return out


# Built once (json.loads with options builds a decoder per call). Sharing one between threads is what
# json.loads does with its default decoder: a scan keeps its state on the stack, the scanner's only shared
# state is a key-interning memo.
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)
_UNIQUE_KEYS_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float,
                                        object_pairs_hook=_unique_keys)
