"""Values between Python and PostgreSQL: strings PostgreSQL cannot hold, numbers, jsonb text.

PostgreSQL's ``text`` and ``jsonb`` cannot hold the character U+0000, which JSON allows (and the gateway
accepts). Strings containing it are stored in ``jsonb`` and ``text`` columns with a reversible escape:
U+E000 (a private-use character) becomes U+E000 U+E001 and U+0000 becomes U+E000 U+E002. The escape
maps each character on its own, so equality, ``prefix`` and ``contains`` filters keep working on escaped
values; only the sort order of strings holding U+0000 or U+E000 differs from the other backends.
Documents without either character (virtually all) are stored and read without any rewriting.

(Documents are also stored as their exact JSON text, which escapes U+0000, and are read back from it.)

``numeric`` results come back as `Decimal`; `number` turns them into the int or float the document held
(a scale of 0 means an integer: jsonb keeps numbers as decimals, so a float such as ``1e20`` seen by an
aggregation is the integer 100000000000000000000, equal in value).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

ESC = "\ue000"
_ESC_ESC, _ESC_NUL = ESC + "\ue001", ESC + "\ue002"
_ESC_UTF8 = ESC.encode()


def encode_str(value: str) -> str:
    """A string as stored (U+0000 and U+E000 escaped)."""
    if "\x00" not in value and ESC not in value:
        return value
    return value.replace(ESC, _ESC_ESC).replace("\x00", _ESC_NUL)


def decode_str(value: str) -> str:
    """Inverse of `encode_str`."""
    if ESC not in value:
        return value
    return value.replace(_ESC_NUL, "\x00").replace(_ESC_ESC, ESC)


def _walk(value: Any, fix: Any) -> Any:
    if isinstance(value, str):
        return fix(value)
    if isinstance(value, dict):
        return {fix(k): _walk(v, fix) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, fix) for v in value]
    return value


def encode_value(value: Any) -> Any:
    """JSON-shaped data with every string (keys included) escaped."""
    return _walk(value, encode_str)


def canonical(data: Any) -> str:
    """The exact stored text of a document (column ``doc``): compact, ASCII-only JSON, which any text
    column holds (U+0000 is the six characters of its escape)."""
    return json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))


def document_text(data: Any, text: str | None = None) -> str:
    """The jsonb input text of a document (column ``data``); `text` is its `canonical` text when made."""
    if text is None:
        text = canonical(data)
    if "\\u0000" in text or "\\ue000" in text:
        return json.dumps(encode_value(data), ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    return text


def scalar_text(value: Any, what: str) -> str | None:
    """The jsonb text of a top-level attribute (type, user_id, session_id): a JSON scalar, or None."""
    if value is None:
        return None
    if isinstance(value, dict | list):
        raise ValueError(f"event {what} must be a string, number or boolean")
    return json.dumps(encode_value(value), ensure_ascii=True, allow_nan=False)


def loads(data: bytes | str) -> Any:
    """The jsonb loader of every connection: JSON, with escaped strings restored."""
    if isinstance(data, memoryview):
        data = bytes(data)
    value = json.loads(data)
    escaped = _ESC_UTF8 in data if isinstance(data, bytes) else ESC in data
    return _walk(value, decode_str) if escaped else value


def number(value: Decimal | int | float | None) -> int | float | None:
    """A numeric result as the JSON number it stands for (int when it has no fractional digits)."""
    if value is None or isinstance(value, int | float):
        return value
    if value.as_tuple().exponent >= 0:  # type: ignore[operator]
        return int(value)
    return float(value)


def decimal(value: int | float | bool) -> Decimal:
    """A number bound as a parameter compared with ``numeric`` values (floats by their shortest repr)."""
    if isinstance(value, float):
        return Decimal(repr(value))
    return Decimal(int(value))
