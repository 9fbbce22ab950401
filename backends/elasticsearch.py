"""Elasticsearch storage backend: streams and events in two indices of an Elasticsearch (8.3+) cluster.

Why it exists: operators who already run Elasticsearch (or need the volume and the analytics it gives)
can keep Event Gateway's events there instead of SQLite, with the query semantics of `gateway.query`.

URLs and options
    ``elasticsearch://host:9200`` talks HTTP, ``elasticsearch+https://host:9200`` HTTPS. Several nodes
    may be listed (``elasticsearch://a:9200,b:9200``), credentials may sit in the URL
    (``elasticsearch://user:pass@host``) and a path is kept as a proxy path prefix. ``[storage.options]``
    (or the URL's query string, which options override): ``api_key`` (encoded, or ``id:key``),
    ``basic_auth`` (``user:password``), ``ca_certs``, ``verify_certs``, ``index_prefix`` (default
    ``event-gateway``), ``refresh`` (``wait_for``, the default, so an acknowledged event is searchable;
    ``true``; ``false``), ``request_timeout`` (seconds). An unknown option is a configuration error. The
    client is built on first use, so a cluster that is down does not stop the gateway from starting;
    `health` reaches it and raises `BackendUnavailable` when it cannot. The indices are created on first
    use; a least-privilege key that may not read cluster info or create indices works once an operator
    has created them with `events_index_body`/`streams_index_body` (a warning is logged).

Indices
    ``{prefix}-streams`` is the stream catalog: one document per stream, id = urlsafe SHA-256 key of
    (tenant, plugin, name), written with ``op_type=create`` so Elasticsearch itself enforces
    `StreamExists` even between processes. ``{prefix}-events`` holds the events of every tenant, plugin
    and stream, with keyword fields ``tenant``/``plugin``/``stream`` that every query filters on and
    ``_routing`` = tenant (required by the mapping), so one tenant's events live on one shard: a query
    touches one shard and its terms/cardinality/percentile results are not merged across shards. One
    shared index rather than one per (tenant, plugin) or per stream because Elasticsearch copes badly
    with thousands of small indices (cluster state, shard count and heap), and deleting a stream is rare
    (``delete_by_query`` + catalog delete). Both indices use ``auto_expand_replicas: 0-1`` so a
    single-node cluster is green.

Mapping of the vendor document: typed columns instead of dynamic mapping
    A shared index has one mapping for every tenant, so plain dynamic mapping of ``data`` would let one
    tenant's ``data.value = 3`` make another tenant's ``data.value = "high"`` (or ``{"x": 1}``) fail to
    index (mapping conflicts are per index, not per tenant); it would also coerce ``"12"`` into a number
    field, and ``flattened`` is ruled out because it cannot sum, average or take percentiles. So ``data``
    is kept verbatim in ``_source`` but not indexed (``enabled: false``), and `typed_leaves` indexes its
    values under their dotted paths in two ``subobjects: false`` objects whose dynamic templates fix the
    type: ``data_str.<path>`` keyword (``ignore_above`` 8191 characters, the longest term Lucene accepts
    in UTF-8) and ``data_num.<path>`` double; ``data_paths`` lists every path that "exists" (present and
    not null; an array only with a non-null element). No document can conflict with another (``a`` and
    ``a.b`` may both be leaves), strings compare with strings and numbers with numbers as the contract
    says, sums ignore strings, and arrays get Elasticsearch's any-element semantics for free. Paths are
    read as the reference backend (`backends.memory`) reads them: they walk objects only (an array of
    objects is not looked into), keys holding a dot or only blanks are not addressable (kept in
    ``_source``, not indexed), and booleans are the numbers 1/0 (filters, sums, terms keys, sorting).
    The derived fields are dropped from the stored ``_source`` (``_source.excludes``); `event_document`
    re-derives them from ``data``, which is what a re-index must run. ``timestamp``/``received_at`` are
    ``date`` fields with format ``epoch_millis``: ranges, sorting and ``date_histogram`` work natively on
    them and Kibana sees a time field. ``subobjects: false`` needs Elasticsearch 8.3 or later (an older
    cluster refuses the mapping on first use). Numbers are doubles: integers above 2**53 lose precision in
    filters and aggregations (never in the returned event). Every distinct vendor path is a field of the
    shared mapping; the budget is 10000 fields, and from Elasticsearch 8.13 paths beyond it are left
    unindexed (``ignore_dynamic_beyond_limit``) rather than failing every tenant's new events; on older
    clusters such events are refused (`StorageError`).

Atomic batches (best effort, honestly)
    Elasticsearch has no transactions. `append` first checks every named stream in the catalog (one
    real-time ``mget``) and raises `StreamNotFound` before writing anything. It then sends one ``_bulk``
    of ``create`` operations whose ``_id`` is derived from (tenant, plugin, stream, event id): a 409
    ``version_conflict_engine_exception`` item is a duplicate (counted as not new, not an error). If any
    item fails for another reason, the items this request created are deleted again (compensation) and
    the call raises. Residual windows: if the bulk request itself times out or the connection drops, we
    cannot know which items were written, so nothing is deleted (deleting could remove events stored
    earlier) and `BackendUnavailable` is raised; the client's retry is deduplicated by the deterministic
    ids, so the batch converges to "stored once". A compensating delete can also remove an event that a
    concurrent request appended with the same id (that request saw a duplicate and reported success),
    and a stream deleted between the catalog check and the bulk may keep a few events (`delete_stream`
    sweeps twice to narrow that window). Durability: Elasticsearch acknowledges after the translog fsync.

Query translation
    Filters become a ``bool`` filter (``term``/``terms``, ``must_not``, ``range``, ``exists`` (a term on
    ``data_paths`` for the vendor document), ``prefix``, ``wildcard`` for ``contains``), picking the typed
    column from the Python type of the value; a value of a type the field cannot hold (or None) matches
    nothing, and then ``ne``/``not_in`` match everything. ``ne``/``not_in`` are ``must_not``: an event
    matches when no element equals, and when the field is missing.
    Sorting uses a custom ``missing`` equal to the smallest value of the column (``""``, ``-Double.MAX``),
    which puts missing values first ascending and last descending and keeps every sort value a plain
    JSON value that ``search_after`` accepts back (``_first`` would expose ``-Infinity``/``null``
    sentinels). A vendor field sorts on its string column, then its number column, so ascending goes
    missing < numbers < strings, the reference backend's order. Caveats: an actual ``""`` ties with
    "missing" and is then ordered by insertion; an array holding both strings and numbers sorts with the
    strings ascending (the reference takes its smallest element, a number). Ties are broken by ``seq``,
    a per-process strictly increasing nanosecond stamp taken when the gateway stores the event
    (insertion order; across processes, arrival order by each process's clock), then by the document id,
    so the order is total and ``search_after`` can neither skip nor repeat; both follow the direction of
    the last sort key. The cursor is the last hit's sort values as urlsafe base64 JSON. ``offset`` is
    ``from``; Elasticsearch refuses ``offset + limit`` beyond ``index.max_result_window`` (10000), which
    is reported as a `QueryError`. Pages fetch one extra hit so ``next_cursor`` is None exactly on the
    last page.

Aggregations
    ``count`` is a ``filter`` aggregation (``match_all`` or the field's ``exists``), so it counts events,
    not values. ``sum``/``avg``/``min``/``max`` read a ``stats`` aggregation so "no value seen" gives None
    rather than Elasticsearch's 0 sum. ``distinct_count`` is ``cardinality`` with ``precision_threshold``
    40000 (the maximum): HyperLogLog++, practically exact below 40000 distinct values, approximate above
    (a vendor field adds its two columns' counts: their values are disjoint). ``percentiles`` uses
    Elasticsearch's TDigest: from Elasticsearch 8.9 the default hybrid digest keeps every value below
    20 x compression (2000) values and then computes exactly the linear interpolation between closest
    ranks the contract asks for (numpy's default); above that, and on older clusters, results are TDigest
    approximations (typically within 0.1-1%). ``terms`` orders by count descending then key ascending
    (on a vendor field the two columns' buckets are merged, numbers before strings on equal counts, and
    the first ``size`` kept). ``date_histogram`` uses ``calendar_interval`` (ISO weeks start on Monday)
    or ``fixed_interval: <n>ms`` with ``min_doc_count`` 1, in UTC (``time_zone`` is given for the date
    attributes only: Elasticsearch refuses it on a number field such as ``data_num.at``, which it buckets
    as epoch milliseconds in UTC). Metric aggregations on keyword
    attributes (say ``sum`` of ``user_id``) have no numeric values and answer None. Numeric results are
    doubles (``6.0`` where the reference sums to ``6``); bucket keys that are whole numbers are ints.

The pure translation functions (mappings, documents, bulk body, query/aggregation DSL, response
translation, URL parsing) are separate from the I/O in `ElasticsearchBackend` so they can be tested
without a cluster.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

import elastic_transport
import elasticsearch

from gateway.events import Event, FieldSpec, Stream
from gateway.hookspecs import hookimpl
from gateway.query import Aggregation, Filter, Query, QueryError, QueryResult, Sort
from gateway.storage import Backend, BackendUnavailable, StorageError, StreamExists, StreamNotFound
from gateway.urls import redact_url

log = logging.getLogger(__name__)

DEFAULT_INDEX_PREFIX = "event-gateway"
DEFAULT_PORT = 9200
#: Longest string indexed as a keyword: Lucene's 32766-byte term limit at 4 bytes per character.
KEYWORD_IGNORE_ABOVE = 8191
#: The most precise setting Elasticsearch's cardinality aggregation allows.
CARDINALITY_PRECISION = 40000
#: Field budget of the shared events index (one field per distinct vendor path and type).
TOTAL_FIELDS_LIMIT = 10000
#: Sort value substituted for a missing double: the smallest double, so missing sorts first ascending.
MISSING_NUMBER = -1.7976931348623157e308

KEYWORD_FIELDS = frozenset({"id", "tenant", "plugin", "stream", "type", "user_id", "session_id"})
DATE_FIELDS = frozenset({"timestamp", "received_at"})
STR_COLUMN, NUM_COLUMN, PATHS_FIELD = "data_str", "data_num", "data_paths"
CALENDAR = {"minute": "1m", "hour": "1h", "day": "1d", "week": "1w", "month": "1M", "year": "1y"}
MATCH_NONE: dict[str, Any] = {"match_none": {}}
MATCH_ALL: dict[str, Any] = {"match_all": {}}
OPTIONS = frozenset({"api_key", "basic_auth", "ca_certs", "verify_certs", "index_prefix", "refresh",
                     "request_timeout"})
_BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')


# -- configuration -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Settings:
    """Everything the backend needs from its URL and options, parsed once and checked at construction."""

    hosts: tuple[str, ...]
    index_prefix: str = DEFAULT_INDEX_PREFIX
    refresh: bool | str = "wait_for"
    request_timeout: float | None = None
    client_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)  # holds secrets

    @property
    def events_index(self) -> str:
        """The shared events index."""
        return f"{self.index_prefix}-events"

    @property
    def streams_index(self) -> str:
        """The stream catalog index."""
        return f"{self.index_prefix}-streams"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"elasticsearch option [{name}] must be true or false, not [{value}]")


def _pair(name: str, value: Any) -> tuple[str, str]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return str(value[0]), str(value[1])
    if isinstance(value, str) and ":" in value:
        user, _, secret = value.partition(":")
        return user, secret
    raise ValueError(f"elasticsearch option [{name}] must be 'user:password'")


def check_index_prefix(prefix: str) -> str:
    """Validate an index prefix against Elasticsearch's index-name rules (fail at start-up, not on use)."""
    if (not prefix or prefix != prefix.lower() or prefix[0] in "-_+." or _BAD_INDEX_CHARS & set(prefix)
            or len(prefix.encode()) > 200):
        raise ValueError(f"elasticsearch index_prefix [{prefix}] is not a valid lowercase index name prefix")
    return prefix


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> Settings:
    """Turn a storage URL and its options into `Settings` (node URLs, auth, TLS, index names, refresh).

    ``elasticsearch://`` (and ``http://``) means HTTP, ``elasticsearch+https://`` (and ``https://``)
    HTTPS; the default port is 9200. Options override values given in the URL's query string.
    """
    parts = urlsplit(url)
    schemes = {"elasticsearch": "http", "elasticsearch+http": "http", "http": "http",
               "elasticsearch+https": "https", "https": "https"}
    if parts.scheme not in schemes:
        raise ValueError(f"not an elasticsearch storage URL: [{parts.scheme}://]")
    http_scheme = schemes[parts.scheme]
    merged: dict[str, Any] = dict(parse_qsl(parts.query))
    merged.update(options or {})
    unknown = sorted(set(merged) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown elasticsearch option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(OPTIONS))}")
    netloc = parts.netloc
    userinfo = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
    path = parts.path.rstrip("/")
    hosts = []
    for node in filter(None, (n.strip() for n in netloc.split(","))):
        node_parts = urlsplit(f"//{node}")
        host = node_parts.hostname
        if not host:
            raise ValueError(f"elasticsearch URL [{redact_url(url)}] names no host")
        port = node_parts.port or DEFAULT_PORT
        host = f"[{host}]" if ":" in host else host
        hosts.append(f"{http_scheme}://{host}:{port}{path}")
    if not hosts:
        hosts.append(f"{http_scheme}://localhost:{DEFAULT_PORT}{path}")

    client: dict[str, Any] = {}
    if "basic_auth" in merged:
        client["basic_auth"] = _pair("basic_auth", merged["basic_auth"])
    elif userinfo:
        user, _, secret = userinfo.partition(":")
        client["basic_auth"] = (unquote(user), unquote(secret))
    if "api_key" in merged:
        key = merged["api_key"]
        client["api_key"] = _pair("api_key", key) if not isinstance(key, str) or ":" in key else key
    if "ca_certs" in merged:
        client["ca_certs"] = str(merged["ca_certs"])
    if "verify_certs" in merged:
        client["verify_certs"] = _as_bool("verify_certs", merged["verify_certs"])
    timeout = None
    if merged.get("request_timeout") is not None:
        timeout = float(merged["request_timeout"])
        if timeout <= 0:
            raise ValueError("elasticsearch option [request_timeout] must be a positive number of seconds")
        client["request_timeout"] = timeout
    refresh: bool | str = "wait_for"
    if "refresh" in merged:
        raw = merged["refresh"]
        refresh = "wait_for" if str(raw).strip().lower() == "wait_for" else _as_bool("refresh", raw)
    prefix = check_index_prefix(str(merged.get("index_prefix", DEFAULT_INDEX_PREFIX)))
    return Settings(hosts=tuple(hosts), index_prefix=prefix, refresh=refresh, request_timeout=timeout,
                    client_kwargs=client)


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
    schema = None
    if stream.schema is not None:
        schema = [{"name": spec.name, "type": spec.type} for spec in stream.schema]
    return {"tenant": stream.tenant, "plugin": stream.plugin, "name": stream.name,
            "created_at": stream.created_at, "schema": schema}


def stream_from_document(doc: Mapping[str, Any]) -> Stream:
    """Inverse of `stream_document`."""
    schema = doc.get("schema")
    return Stream(tenant=doc["tenant"], plugin=doc["plugin"], name=doc["name"],
                  created_at=int(doc["created_at"]),
                  schema=None if schema is None else tuple(FieldSpec(f["name"], f["type"]) for f in schema))


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
    """Index the vendor document the way `backends.memory` reads it (the contract's reference).

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


def check_event(event: Event) -> None:
    """Reject an event no backend stores (the reference backend's checks): non-integer times, a non-string
    id, or a document that is not strict JSON (NaN/Infinity would make Elasticsearch refuse the request)."""
    for name in ("timestamp", "received_at"):
        value = getattr(event, name)
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"event [{event.id}]: {name} must be integer epoch milliseconds")
    if not isinstance(event.id, str):
        raise ValueError("event id must be a string")
    try:
        json.dumps(event.data, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"event [{event.id}]: data is not JSON ({exc})") from exc


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


# -- query -> DSL --------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def _plain_value(value: Any) -> Any:
    # Booleans are the numbers 1/0 in queries as in storage (the reference backend's reading).
    return int(value) if isinstance(value, bool) else value


def _data_path(name: str) -> str:
    return name[len("data."):]


def _column(name: str, value: Any) -> str | None:
    """The indexed field holding values of `value`'s type for field `name`, or None if it holds none."""
    if name in KEYWORD_FIELDS:
        return name if isinstance(value, str) else None
    if name in DATE_FIELDS:
        return name if _is_number(value) else None
    path = _data_path(name)
    if _is_number(value):
        return f"{NUM_COLUMN}.{path}"
    if isinstance(value, str):
        return f"{STR_COLUMN}.{path}"
    return None


def _not(query: dict[str, Any]) -> dict[str, Any]:
    if query == MATCH_NONE:
        return MATCH_ALL
    if query == MATCH_ALL:
        return MATCH_NONE
    inner = query.get("bool", {})
    if list(query) == ["bool"] and list(inner) == ["must_not"] and len(inner["must_not"]) == 1:
        return inner["must_not"][0]  # not(not(q)) is q
    return {"bool": {"must_not": [query]}}


def _any(queries: list[dict[str, Any]]) -> dict[str, Any]:
    queries = [q for q in queries if q != MATCH_NONE]
    if not queries:
        return MATCH_NONE
    if MATCH_ALL in queries:
        return MATCH_ALL
    if len(queries) == 1:
        return queries[0]
    return {"bool": {"should": queries, "minimum_should_match": 1}}


def _exists(name: str) -> dict[str, Any]:
    if name.startswith("data."):
        return {"term": {PATHS_FIELD: _data_path(name)}}
    return {"exists": {"field": name}}


def _in(name: str, values: Any) -> dict[str, Any]:
    by_column: dict[str, list[Any]] = {}
    queries = []
    for value in map(_plain_value, values):
        column = _column(name, value)
        if column is not None and value not in by_column.setdefault(column, []):
            by_column[column].append(value)
    for column, column_values in by_column.items():
        if len(column_values) == 1:
            queries.append({"term": {column: column_values[0]}})
        elif column_values:
            queries.append({"terms": {column: column_values}})
    return _any(queries)


def _wildcard_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("*", "\\*").replace("?", "\\?")


def filter_dsl(flt: Filter) -> dict[str, Any]:
    """One `Filter` as an Elasticsearch query clause (``match_none`` when no stored value can match)."""
    name, op, value = flt.field, flt.op, flt.value
    if op == "exists":
        return _exists(name)
    if op in ("eq", "ne"):
        query = _in(name, [value])
        return query if op == "eq" else _not(query)
    if op in ("in", "not_in"):
        query = _in(name, list(value))
        return query if op == "in" else _not(query)
    value = _plain_value(value)
    column = _column(name, value)
    if op in ("lt", "lte", "gt", "gte"):
        if column is None:
            return MATCH_NONE
        return {"range": {column: {op: value}}}
    if column is None or not isinstance(value, str):  # prefix / contains work on strings only
        return MATCH_NONE
    if op == "prefix":
        return {"prefix": {column: {"value": value}}}
    return {"wildcard": {column: {"value": f"*{_wildcard_escape(value)}*"}}}  # contains


def query_filter_dsl(query: Query) -> dict[str, Any]:
    """The ``bool`` query selecting a `Query`'s events: tenant, plugin, streams, time range and filters."""
    clauses: list[dict[str, Any]] = [{"term": {"tenant": query.tenant}}, {"term": {"plugin": query.plugin}}]
    if query.streams is not None:
        clauses.append({"terms": {"stream": list(query.streams)}})
    if query.start is not None or query.end is not None:
        bounds: dict[str, int] = {}
        if query.start is not None:
            bounds["gte"] = query.start
        if query.end is not None:
            bounds["lt"] = query.end
        clauses.append({"range": {"timestamp": bounds}})
    clauses.extend(filter_dsl(flt) for flt in query.filters)
    return {"bool": {"filter": clauses}}


def sort_dsl(sort: Sequence[Sort]) -> list[dict[str, Any]]:
    """Sort keys with the contract's missing-value placement plus the insertion-order tiebreak."""
    keys: list[dict[str, Any]] = []
    for key in sort:
        order = "desc" if key.descending else "asc"
        if key.field in DATE_FIELDS:
            keys.append({key.field: {"order": order, "missing": "_last" if key.descending else "_first"}})
        elif key.field in KEYWORD_FIELDS:
            keys.append({key.field: {"order": order, "missing": ""}})
        else:
            path = _data_path(key.field)
            keys.append({f"{STR_COLUMN}.{path}": {"order": order, "missing": "", "unmapped_type": "keyword"}})
            keys.append({f"{NUM_COLUMN}.{path}": {"order": order, "missing": MISSING_NUMBER,
                                                   "unmapped_type": "double"}})
    tiebreak = "desc" if sort and sort[-1].descending else "asc"
    keys.append({"seq": {"order": tiebreak}})
    keys.append({"uid": {"order": tiebreak}})
    return keys


def encode_cursor(sort_values: Sequence[Any]) -> str:
    """An opaque, URL-safe cursor holding the last hit's sort values (``search_after``)."""
    raw = json.dumps({"v": 1, "after": list(sort_values)}, separators=(",", ":"), allow_nan=False)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, expected_len: int) -> list[Any]:
    """Inverse of `encode_cursor`; a cursor that is not ours or was made for another sort is a QueryError."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        after = payload["after"]
    except (binascii.Error, ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
        raise QueryError("invalid cursor") from exc
    if payload.get("v") != 1 or not isinstance(after, list) or len(after) != expected_len:
        raise QueryError("invalid cursor (not made for this query's sort)")
    return after


# -- aggregations --------------------------------------------------------------------------------------
def _agg_name(index: int, suffix: str = "") -> str:
    # Positional names: user-chosen names may hold characters Elasticsearch forbids ([, ], >).
    return f"g{index}{suffix}"


def _numeric_source(name: str) -> str | None:
    if name in DATE_FIELDS:
        return name
    if name in KEYWORD_FIELDS:
        return None
    return f"{NUM_COLUMN}.{_data_path(name)}"


def _typed_sources(name: str) -> list[tuple[str, str]]:
    """(suffix, field) of every indexed column holding values of `name`."""
    if name in KEYWORD_FIELDS or name in DATE_FIELDS:
        return [("", name)]
    path = _data_path(name)
    return [("s", f"{STR_COLUMN}.{path}"), ("n", f"{NUM_COLUMN}.{path}")]


def aggs_dsl(aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """The ``aggs`` object for a tuple of aggregations, nesting sub-aggregations inside bucket kinds."""
    out: dict[str, Any] = {}
    for i, agg in enumerate(aggs):
        name = _agg_name(i)
        kind = agg.kind
        if kind == "count":
            out[name] = {"filter": MATCH_ALL if agg.field is None else _exists(agg.field)}
        elif kind in ("sum", "avg", "min", "max"):
            source = _numeric_source(agg.source)
            if source is not None:
                out[name] = {"stats": {"field": source}}
        elif kind == "percentiles":
            source = _numeric_source(agg.source)
            if source is not None:
                out[name] = {"percentiles": {"field": source, "percents": [float(p) for p in agg.percents],
                                             "keyed": False}}
        elif kind == "distinct_count":
            for suffix, source in _typed_sources(agg.source):
                out[name + suffix] = {"cardinality": {"field": source,
                                                      "precision_threshold": CARDINALITY_PRECISION}}
        elif kind == "terms":
            for suffix, source in _typed_sources(agg.source):
                out[name + suffix] = {"terms": {"field": source, "size": agg.size,
                                                "order": [{"_count": "desc"}, {"_key": "asc"}]}}
                if agg.aggs:
                    out[name + suffix]["aggs"] = aggs_dsl(agg.aggs)
        elif kind == "date_histogram":
            source = _numeric_source(agg.source)
            if source is None:
                continue
            histogram: dict[str, Any] = {"field": source, "min_doc_count": 1}
            if source in DATE_FIELDS:  # numeric fields refuse any time_zone (their buckets are UTC anyway)
                histogram["time_zone"] = "UTC"
            if isinstance(agg.interval, int):
                histogram["fixed_interval"] = f"{agg.interval}ms"
            else:
                histogram["calendar_interval"] = CALENDAR[agg.interval or "day"]
            out[name] = {"date_histogram": histogram}
            if agg.aggs:
                out[name]["aggs"] = aggs_dsl(agg.aggs)
    return out


def _plain_number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53:
        return int(value)
    return value


def _type_rank(key: Any) -> int:
    return 1 if isinstance(key, int | float) else 2  # numbers before strings, as the reference ranks them


def agg_results(aggs: Sequence[Aggregation], container: Mapping[str, Any]) -> dict[str, Any]:
    """Translate an Elasticsearch ``aggregations`` object (or a bucket) into `QueryResult` shapes."""
    out: dict[str, Any] = {}
    for i, agg in enumerate(aggs):
        name = _agg_name(i)
        kind = agg.kind
        if kind == "count":
            out[agg.name] = int(container[name]["doc_count"])
        elif kind in ("sum", "avg", "min", "max"):
            stats = container.get(name)
            out[agg.name] = None if not stats or not stats.get("count") else stats.get(kind)
        elif kind == "percentiles":
            values = {}
            for item in (container.get(name) or {}).get("values", []):
                values[float(item["key"])] = item.get("value")
            out[agg.name] = {p: values.get(float(p)) for p in agg.percents}
        elif kind == "distinct_count":
            out[agg.name] = sum(int(container[name + suffix]["value"])
                                for suffix, _source in _typed_sources(agg.source))
        elif kind == "terms":
            buckets = []
            for suffix, _source in _typed_sources(agg.source):
                for bucket in container[name + suffix]["buckets"]:
                    entry = {"key": _plain_number(bucket["key"]), "count": int(bucket["doc_count"])}
                    entry.update(agg_results(agg.aggs, bucket))
                    buckets.append(entry)
            buckets.sort(key=lambda b: (-b["count"], _type_rank(b["key"]), b["key"]))
            out[agg.name] = buckets[: agg.size]
        elif kind == "date_histogram":
            buckets = []
            for bucket in (container.get(name) or {}).get("buckets", []):
                if not bucket.get("doc_count"):
                    continue
                entry = {"key": int(bucket["key"]), "count": int(bucket["doc_count"])}
                entry.update(agg_results(agg.aggs, bucket))
                buckets.append(entry)
            out[agg.name] = buckets
    return out


def search_request(query: Query, index: str) -> dict[str, Any]:
    """Keyword arguments of ``Elasticsearch.search`` answering `query` (one extra hit detects a next page)."""
    sort = sort_dsl(query.sort)
    request: dict[str, Any] = {
        "index": index,
        "routing": query.tenant,
        "query": query_filter_dsl(query),
        "size": query.limit + 1 if query.limit else 0,
        "track_total_hits": bool(query.count_total),
    }
    if query.limit:
        request["sort"] = sort
        if query.cursor is not None:
            request["search_after"] = decode_cursor(query.cursor, len(sort))
        elif query.offset:
            request["from_"] = query.offset
    if query.aggregations:
        request["aggs"] = aggs_dsl(query.aggregations)
    return request


def query_result(query: Query, response: Mapping[str, Any]) -> QueryResult:
    """Translate a search response into a `QueryResult` (page, total, next cursor, aggregations)."""
    hits = response.get("hits", {}).get("hits", []) if query.limit else []
    page = hits[: query.limit]
    next_cursor = encode_cursor(page[-1]["sort"]) if len(hits) > query.limit and page else None
    total = None
    if query.count_total:
        total = int(response["hits"]["total"]["value"])
    aggregations = agg_results(query.aggregations, response.get("aggregations", {}))
    return QueryResult(events=[Event.from_dict(hit["_source"]) for hit in page], total=total,
                       next_cursor=next_cursor, aggregations=aggregations)


# -- errors --------------------------------------------------------------------------------------------
@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Map client errors to the storage errors: unreachable, timing out, overloaded or 5xx -> unavailable."""
    try:
        yield
    except elasticsearch.UnsupportedProductError as exc:
        raise BackendUnavailable(f"elasticsearch {action}: the server is not Elasticsearch") from exc
    except elastic_transport.ApiError as exc:
        status = exc.meta.status
        if status in (401, 403, 408, 429) or status >= 500:
            raise BackendUnavailable(f"elasticsearch {action} failed: {status} {exc.message}") from exc
        raise StorageError(f"elasticsearch {action} failed: {status} {exc.message}") from exc
    except elastic_transport.TransportError as exc:  # connection refused/reset, timeouts, TLS
        raise BackendUnavailable(f"elasticsearch {action}: cannot reach the cluster ({exc})") from exc


# -- the backend -------------------------------------------------------------------------------------
class ElasticsearchBackend(Backend):
    """Streams and events in an Elasticsearch 8 cluster; see the module docstring for the design."""

    schemes: ClassVar[tuple[str, ...]] = ("elasticsearch", "elasticsearch+https")
    multiprocess_safe = True

    _seq_lock = threading.Lock()
    _last_seq = 0

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.settings = parse_settings(url, self.options)
        self._client: elasticsearch.Elasticsearch | None = None
        self._ready = False
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------
    @classmethod
    def next_seqs(cls, count: int) -> list[int]:
        """Strictly increasing insertion stamps (nanoseconds, bumped on collisions) shared by the process."""
        with cls._seq_lock:
            start = max(time.time_ns(), cls._last_seq + 1)
            cls._last_seq = start + count - 1
        return list(range(start, start + count))

    @property
    def client(self) -> elasticsearch.Elasticsearch:
        """The client, built on first use so that start-up does not need the cluster."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    self._client = elasticsearch.Elasticsearch(list(self.settings.hosts),
                                                               **self.settings.client_kwargs)
        return self._client

    def _es(self) -> elasticsearch.Elasticsearch:
        """The client after making sure both indices exist (once per backend instance)."""
        client = self.client
        if not self._ready:
            with self._lock:
                if not self._ready:
                    with translate_errors("create indices"):
                        version = self._version(client)
                        for index, body in ((self.settings.streams_index, streams_index_body()),
                                            (self.settings.events_index, events_index_body(version))):
                            self._create_index(client, index, body)
                    self._ready = True
        return client

    @staticmethod
    def _version(client: elasticsearch.Elasticsearch) -> tuple[int, int]:
        try:
            return parse_version(client.info()["version"]["number"])
        except elasticsearch.AuthorizationException:
            return (8, 3)  # a least-privilege key may not read cluster info: assume the oldest we support

    @staticmethod
    def _create_index(client: elasticsearch.Elasticsearch, index: str, body: dict[str, Any]) -> None:
        try:
            if client.indices.exists(index=index):
                return
            client.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
        except elasticsearch.AuthorizationException:
            # Least privilege: the operator created the indices (with these mappings) and the key may
            # only read and write documents; a missing index then shows up as an error on first use.
            log.warning("not allowed to check or create index [%s]; assuming it exists", index)
        except elasticsearch.BadRequestError as exc:
            if exc.message != "resource_already_exists_exception":  # another process won the race
                raise

    def _refresh_kwargs(self) -> dict[str, Any]:
        refresh = self.settings.refresh
        return {} if refresh is False else {"refresh": refresh}

    # -- catalog ---------------------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        """Create the catalog document with ``op_type=create``: a 409 means the stream exists."""
        es = self._es()
        doc_id = stream_doc_id(stream.tenant, stream.plugin, stream.name)
        with translate_errors("create stream"):
            try:
                es.create(index=self.settings.streams_index, id=doc_id, document=stream_document(stream),
                          refresh=True)
            except elasticsearch.ConflictError as exc:
                raise StreamExists(f"stream [{stream.name}] already exists") from exc
        return stream

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """Real-time GET of the catalog document."""
        es = self._es()
        with translate_errors("get stream"):
            doc = es.options(ignore_status=404).get(index=self.settings.streams_index,
                                                    id=stream_doc_id(tenant, plugin, name))
        return stream_from_document(doc["_source"]) if doc.get("found") else None

    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Page through the catalog by name with ``search_after``."""
        es = self._es()
        streams: list[Stream] = []
        after: list[Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"search_after": after} if after is not None else {}
            with translate_errors("list streams"):
                response = es.search(index=self.settings.streams_index, size=1000,
                                     query={"bool": {"filter": [{"term": {"tenant": tenant}},
                                                                {"term": {"plugin": plugin}}]}},
                                     sort=[{"name": {"order": "asc"}}], track_total_hits=False, **kwargs)
            hits = response["hits"]["hits"]
            streams.extend(stream_from_document(hit["_source"]) for hit in hits)
            if len(hits) < 1000:
                return streams
            after = hits[-1]["sort"]

    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream's events, then its catalog document, then sweep events that raced in."""
        if self.get_stream(tenant, plugin, name) is None:
            return False
        es = self._es()
        events = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"plugin": plugin}},
                                      {"term": {"stream": name}}]}}
        long_running = es.options(request_timeout=max(self.settings.request_timeout or 0, 300))
        with translate_errors("delete stream"):
            long_running.delete_by_query(index=self.settings.events_index, query=events, routing=tenant,
                                         conflicts="proceed", refresh=True, wait_for_completion=True)
            deleted = es.options(ignore_status=404).delete(index=self.settings.streams_index,
                                                           id=stream_doc_id(tenant, plugin, name),
                                                           refresh=True)
            long_running.delete_by_query(index=self.settings.events_index, query=events, routing=tenant,
                                         conflicts="proceed", refresh=True, wait_for_completion=True)
        return deleted.get("result") == "deleted"

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event]) -> int:
        """Check the streams, bulk-create with deterministic ids, compensate on failure (module docstring)."""
        if not events:
            return 0
        for event in events:  # nothing is sent for a batch holding an event no backend could store
            check_event(event)
        es = self._es()
        streams = sorted({(e.tenant, e.plugin, e.stream) for e in events})
        with translate_errors("check streams"):
            found = es.mget(index=self.settings.streams_index, ids=[stream_doc_id(*s) for s in streams],
                            source=False)
        for stream, doc in zip(streams, found["docs"], strict=True):
            if not doc.get("found"):
                raise StreamNotFound(f"stream [{stream[2]}] does not exist")

        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event_doc_id(event), event)
        batch = list(unique.values())
        operations = bulk_operations(batch, self.settings.events_index, self.next_seqs(len(batch)))
        with translate_errors("append"):
            response = es.bulk(operations=operations, **self._refresh_kwargs())
        outcome = parse_bulk_response(response)
        if outcome.failures:
            self._compensate(es, [(doc_id, unique[doc_id].tenant) for doc_id in outcome.created])
            first = outcome.failures[0]
            error = first.get("error") or {}
            message = (f"elasticsearch rejected {len(outcome.failures)} event(s) of the batch, which was "
                       f"rolled back: {first.get('status')} {error.get('type')}: {error.get('reason')}")
            raise BackendUnavailable(message) if outcome.transient else StorageError(message)
        return len(outcome.created)

    def _compensate(self, es: elasticsearch.Elasticsearch, created: list[tuple[str, str]]) -> None:
        """Delete the events this failed batch created (best effort: a failure here is re-raised)."""
        if not created:
            return
        operations = [{"delete": {"_index": self.settings.events_index, "_id": doc_id, "routing": routing}}
                      for doc_id, routing in created]
        with translate_errors("roll back a failed batch"):
            es.bulk(operations=operations, refresh=True)

    def query(self, query: Query) -> QueryResult:
        """Translate, search (routed to the tenant's shard) and translate back."""
        request = search_request(query, self.settings.events_index)
        es = self._es()
        with translate_errors("query"):
            try:
                response = es.search(**request)
            except elasticsearch.BadRequestError as exc:
                raise QueryError(f"elasticsearch could not answer the query: {exc.message} "
                                 f"({_reason(exc.body)})") from exc
        return query_result(query, response)

    def plugins_of(self, tenant: str) -> list[str]:
        """A terms aggregation on the catalog's ``plugin`` for the tenant."""
        es = self._es()
        with translate_errors("list plugins"):
            response = es.search(index=self.settings.streams_index, size=0,
                                 query={"term": {"tenant": tenant}},
                                 aggs={"plugins": {"terms": {"field": "plugin", "size": 10000,
                                                             "order": {"_key": "asc"}}}})
        return [bucket["key"] for bucket in response["aggregations"]["plugins"]["buckets"]]

    # -- operations ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Ask the cluster who it is; raise `BackendUnavailable` if it cannot be reached."""
        facts: dict[str, Any] = {"backend": "elasticsearch", "hosts": list(self.settings.hosts),
                                 "index_prefix": self.settings.index_prefix}
        with translate_errors("health check"):
            try:
                info = self.client.options(max_retries=0).info()
            except elasticsearch.AuthorizationException:
                return facts  # authenticated and answering, just not allowed to read cluster info
        facts.update(cluster_name=info.get("cluster_name"), version=info.get("version", {}).get("number"))
        return facts

    def drop_all(self) -> None:
        """Delete both indices of this prefix (tests and resets); they are re-created on next use."""
        with translate_errors("drop indices"):
            self.client.indices.delete(index=[self.settings.events_index, self.settings.streams_index],
                                       ignore_unavailable=True)
        self._ready = False

    def close(self) -> None:
        """Close the client's connections, if it was ever built."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False


def _reason(body: Any) -> str:
    try:
        return str(body["error"]["root_cause"][0]["reason"])
    except (KeyError, IndexError, TypeError):
        return str(body)[:200]


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register the Elasticsearch backend for the ``elasticsearch://`` and ``elasticsearch+https://`` URLs."""
    return [ElasticsearchBackend]
