"""What every backend checks before storing an event, and the one stored text of an event document.

`check_event` is the single rule of what no backend stores (so a batch is refused the same way whatever
storage is configured): times that are not 64-bit integer epoch milliseconds, an id that is not a
string, a document that is not strict JSON. It returns the document's canonical text
(`encode_document`), which the memory and SQLite backends store as is: checking costs no extra
encoding on the ingest path.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..events import Event
from .model import Filter

_INT64 = range(-(2**63), 2**63)
# One encoder for every call (what json.dumps would build anew each time with these options).
_ENCODE = json.JSONEncoder(ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode


def encode_document(data: Mapping[str, Any]) -> str:
    """The stored text of an event document: compact, ASCII-only JSON.

    One escape per character makes the substring pre-test of `string_needles` sound; a backend that stores
    this text relies on the exact encoding (changing it needs a migration rewriting every document).
    """
    return _ENCODE(data)


def check_event(event: Event) -> str:
    """Reject an event no backend stores (`ValueError` naming it); return its `encode_document` text."""
    timestamp, received_at = event.timestamp, event.received_at
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) or timestamp not in _INT64:
        raise ValueError(f"event [{event.id}]: timestamp must be integer epoch milliseconds")
    if not isinstance(received_at, int) or isinstance(received_at, bool) or received_at not in _INT64:
        raise ValueError(f"event [{event.id}]: received_at must be integer epoch milliseconds")
    if not isinstance(event.id, str):
        raise ValueError("event id must be a string")
    try:
        return encode_document(event.data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event [{event.id}]: data is not JSON ({exc})") from exc


#: Longest ``in`` list pre-tested by substrings: each needle is one more scan of the text per event, so
#: beyond a few the set lookup on the decoded value is cheaper (and the cost stops growing with the list).
MAX_NEEDLES = 8


def string_needles(flt: Filter) -> tuple[str, ...] | None:
    """Substrings of which the stored text (`encode_document`) of any event matching a ``data.`` filter
    must contain at least one, or None when the filter allows no such pre-test (or an ``in`` list is
    longer than `MAX_NEEDLES`).

    Sound because every string is encoded character by character: a matching value's (or, for
    ``contains``, substring's) encoding appears verbatim in the document's text.
    """
    op, value = flt.op, flt.value
    if op == "eq" and isinstance(value, str):
        return (json.dumps(value),)
    if op == "in" and len(value) <= MAX_NEEDLES and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(json.dumps(v) for v in value))
    if op == "prefix" and isinstance(value, str):
        return (json.dumps(value)[:-1],)
    if op == "contains" and isinstance(value, str) and value:
        return (json.dumps(value)[1:-1],)
    return None
