"""Opaque page cursors: one encoding for every backend.

A cursor names the position after which the next page starts: the sort values of the last event handed
out plus whatever the backend breaks ties with (an insertion sequence number; Elasticsearch adds the
document id). It is URL-safe base64 of compact JSON, so plugins may pass it through query strings and
vendor scroll ids unchanged. A cursor that was not made for the query (other sort keys, garbage) is a
`QueryError`, never a crash.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any

from .model import QueryError
from .semantics import is_scalar


def encode_cursor(values: Sequence[Any]) -> str:
    """The opaque cursor of a position given as JSON scalars (sort values, then tie-breakers)."""
    raw = json.dumps({"v": list(values)}, separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, n_values: int) -> list[Any]:
    """Inverse of `encode_cursor`; a cursor without exactly `n_values` scalars is a `QueryError`."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        doc = json.loads(base64.urlsafe_b64decode(padded.encode()))
        values = doc["v"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise QueryError("invalid cursor") from exc
    if not isinstance(values, list) or len(values) != n_values:
        raise QueryError("invalid cursor: it belongs to a query with other sort keys")
    if not all(v is None or is_scalar(v) for v in values):
        raise QueryError("invalid cursor")
    return values


def encode_position(values: Sequence[Any], seq: int) -> str:
    """The cursor of a (sort values, insertion sequence) position (the memory and SQLite backends)."""
    return encode_cursor([*values, seq])


def decode_position(cursor: str, n_sorts: int) -> tuple[list[Any], int]:
    """Inverse of `encode_position`: the sort values and the insertion sequence number."""
    values = decode_cursor(cursor, n_sorts + 1)
    seq = values.pop()
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise QueryError("invalid cursor")
    return values, seq
