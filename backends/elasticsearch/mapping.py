"""How streams and events are laid out in Elasticsearch: index settings and mappings, the catalog and event
documents (with the typed columns of the vendor document), deterministic ids, and ``_bulk`` bodies and
responses (see the package docstring for why the mapping is typed columns rather than dynamic)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gateway.events import Event, Stream
from gateway.storage import schema_from_json, schema_to_json

#: Longest string indexed as a keyword: Lucene's 32766-byte term limit at 4 bytes per character.
KEYWORD_IGNORE_ABOVE = 8191
#: Field budget of the shared events index (one field per distinct vendor path and type).
TOTAL_FIELDS_LIMIT = 10000
KEYWORD_FIELDS = frozenset({"id", "tenant", "plugin", "stream", "type", "user_id", "session_id"})
DATE_FIELDS = frozenset({"timestamp", "received_at"})
STR_COLUMN, NUM_COLUMN, PATHS_FIELD = "data_str", "data_num", "data_paths"


# -- mappings ----------------------------------------------------------------------------------------
def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": KEYWORD_IGNORE_ABOVE}


def events_index_body(version: tuple[int, int] = (8, 3)) -> dict[str, Any]:
    """Settings and mappings of the shared events index (see the module docstring for the reasons).

    On clusters from 8.13 on, vendor fields beyond the field budget are left unindexed instead of
    rejecting the event (one tenant's thousand random keys must not block every tenant's ingest).
    """
    total_fields: dict[str, Any] = {"limit": TOTAL_FIELDS_LIMIT}
    if version >= (8, 13):
        total_fields["ignore_dynamic_beyond_limit"] = True
    properties: dict[str, Any] = {name: _keyword() for name in sorted(KEYWORD_FIELDS)}
    properties.update({name: {"type": "date", "format": "epoch_millis"} for name in sorted(DATE_FIELDS)})
    properties.update({
        "data": {"type": "object", "enabled": False},
        "seq": {"type": "long"},
        "uid": {"type": "keyword"},
        PATHS_FIELD: _keyword(),
        STR_COLUMN: {"type": "object", "subobjects": False, "dynamic": True},
        NUM_COLUMN: {"type": "object", "subobjects": False, "dynamic": True},
    })
    return {
        "settings": {
            "index": {
                "auto_expand_replicas": "0-1",
                "mapping": {"total_fields": total_fields},
            },
        },
        "mappings": {
            "dynamic": "strict",
            "date_detection": False,
            "numeric_detection": False,
            "_routing": {"required": True},
            "_source": {"excludes": [STR_COLUMN, NUM_COLUMN, PATHS_FIELD]},
            "dynamic_templates": [
                {"vendor_strings": {"path_match": f"{STR_COLUMN}.*", "mapping": _keyword()}},
                {"vendor_numbers": {"path_match": f"{NUM_COLUMN}.*", "mapping": {"type": "double"}}},
            ],
            "properties": properties,
        },
    }


def parse_version(number: str) -> tuple[int, int]:
    """(major, minor) of an Elasticsearch version string such as ``8.15.0`` or ``9.0.0-SNAPSHOT``."""
    parts = [int("".join(ch for ch in part if ch.isdigit()) or 0) for part in number.split(".")[:2]]
    major, minor = [*parts, 0, 0][:2]
    return major, minor


def streams_index_body() -> dict[str, Any]:
    """Settings and mappings of the stream catalog index."""
    return {
        "settings": {"index": {"auto_expand_replicas": "0-1"}},
        "mappings": {
            "dynamic": "strict",
            "properties": {
                "tenant": {"type": "keyword"},
                "plugin": {"type": "keyword"},
                "name": {"type": "keyword"},
                "created_at": {"type": "date", "format": "epoch_millis"},
                "schema": {"type": "object", "enabled": False},
            },
        },
    }


# -- documents ---------------------------------------------------------------------------------------
def _key(*parts: str) -> str:
    digest = hashlib.sha256(json.dumps(parts, ensure_ascii=False).encode()).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def stream_doc_id(tenant: str, plugin: str, name: str) -> str:
    """The catalog document id of a stream: urlsafe, fixed length, unambiguous whatever the names hold."""
    return _key("stream", tenant, plugin, name)


def event_doc_id(event: Event) -> str:
    """The deterministic ``_id`` of an event, so Elasticsearch rejects a second copy (idempotent ingest)."""
    return _key("event", event.tenant, event.plugin, event.stream, str(event.id))


def stream_document(stream: Stream) -> dict[str, Any]:
    """The catalog document of a stream."""
    return {"tenant": stream.tenant, "plugin": stream.plugin, "name": stream.name,
            "created_at": stream.created_at, "schema": schema_to_json(stream.schema)}


def stream_from_document(doc: Mapping[str, Any]) -> Stream:
    """Inverse of `stream_document`."""
    schema = doc.get("schema")
    return Stream(tenant=doc["tenant"], plugin=doc["plugin"], name=doc["name"],
                  created_at=int(doc["created_at"]),
                  schema=schema_from_json(schema))


@dataclass
class TypedLeaves:
    """The vendor document's values by dotted path and type, ready to index (see `typed_leaves`)."""

    strings: dict[str, list[str]] = field(default_factory=dict)
    numbers: dict[str, list[int | float]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)


def _addressable(key: str) -> bool:
    # A query path ``data.a.b`` walks object keys split on dots, so a key holding a dot (or an empty
    # one) can never be named; Elasticsearch also rejects empty and whitespace-only field names.
    return bool(key.strip()) and "." not in key


def typed_leaves(data: Mapping[str, Any]) -> TypedLeaves:
    """Index the vendor document the way `gateway.query.semantics` reads it (the contract's reference).

    A path walks objects only (``data.items.sku`` does not look inside an array of objects); an array
    contributes its scalar elements; booleans are the numbers 1/0 (as in the reference and SQLite);
    a path "exists" when present and not null, and an array only when it holds a non-null element.
    Non-finite or out-of-range numbers are kept in ``_source`` but not indexed.
    """
    out = TypedLeaves()

    def scalar(path: str, value: Any) -> None:
        if isinstance(value, str):
            out.strings.setdefault(path, []).append(value)
        elif isinstance(value, int | float):
            value = int(value) if isinstance(value, bool) else value
            try:
                number = float(value)
            except OverflowError:
                return
            if math.isfinite(number):
                exact = isinstance(value, int) and abs(value) <= 2**53
                out.numbers.setdefault(path, []).append(value if exact else number)

    def walk(prefix: str, node: Mapping[str, Any]) -> None:
        for key, value in node.items():
            key = str(key)
            if value is None or not _addressable(key):
                continue
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                out.paths.append(path)
                walk(f"{path}.", value)
            elif isinstance(value, list | tuple):
                if any(item is not None for item in value):
                    out.paths.append(path)
                for item in value:
                    scalar(path, item)
            else:
                out.paths.append(path)
                scalar(path, value)

    walk("", data)
    return out


def event_document(event: Event, seq: int) -> dict[str, Any]:
    """The indexed document of an event: `Event.to_dict` plus ``seq``, ``uid`` and the typed columns."""
    doc = event.to_dict()
    leaves = typed_leaves(event.data or {})
    doc.update({
        "seq": seq,
        "uid": event_doc_id(event),
        STR_COLUMN: leaves.strings,
        NUM_COLUMN: leaves.numbers,
        PATHS_FIELD: leaves.paths,
    })
    return doc


def bulk_operations(events: Sequence[Event], index: str, seqs: Sequence[int]) -> list[dict[str, Any]]:
    """The ``_bulk`` body: one ``create`` action (deterministic id, routed by tenant) and document per event."""
    operations: list[dict[str, Any]] = []
    for event, seq in zip(events, seqs, strict=True):
        operations.append({"create": {"_index": index, "_id": event_doc_id(event), "routing": event.tenant}})
        operations.append(event_document(event, seq))
    return operations


@dataclass
class BulkOutcome:
    """What a ``_bulk`` of creates did: ids created, duplicates and real failures."""

    created: list[str] = field(default_factory=list)
    duplicates: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def transient(self) -> bool:
        """True when every failure is the cluster's state (429/5xx), so retrying the batch may work."""
        return all(f.get("status", 500) == 429 or f.get("status", 500) >= 500 for f in self.failures)


def parse_bulk_response(response: Mapping[str, Any]) -> BulkOutcome:
    """Classify each item of a ``_bulk`` response: 201 created, 409 version conflict duplicate, else failure."""
    outcome = BulkOutcome()
    for item in response.get("items", []):
        (_action, result), = item.items()
        status = result.get("status", 0)
        if 200 <= status < 300:
            outcome.created.append(result["_id"])
        elif status == 409 and (result.get("error") or {}).get("type") == "version_conflict_engine_exception":
            outcome.duplicates += 1
        else:
            outcome.failures.append(result)
    return outcome
