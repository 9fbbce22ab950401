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
    ``true``; ``false``), ``request_timeout`` (seconds), ``retries`` (2, at most 10) and ``retry_wait_ms``
    (200, at most 10000). An unknown option is a configuration error. The
    client is built on first use, so a cluster that is down does not stop the gateway from starting;
    `health` reaches it (``GET /`` and ``_cluster/health``: version, green/yellow/red) and raises
    `BackendUnavailable` when it cannot. The indices are created on first
    use; a least-privilege key that may not read cluster info or create indices works once an operator
    has created them with `events_index_body`/`streams_index_body` (a warning is logged).

Outages
    A cluster that cannot be reached, times out, or answers 429 or 5xx is retried ``retries`` times,
    waiting ``retry_wait_ms`` and doubling the wait each time (the client's own retries, which do not
    wait, are off); then `BackendUnavailable` is raised, which the APIs answer with 503 in the vendor's
    format and ``Retry-After``. Nothing is kept broken: the next request tries the cluster afresh, so the
    gateway recovers by itself. Every call is safe to retry (reads; bulk creates with deterministic ids,
    whose earlier items come back as duplicates; catalog creates with ``op_type=create``). Items a
    ``_bulk`` rejects for load (429 or 5xx per item) are sent again with the same backoff; when the
    retries run out, the items the batch created are deleted again and the request gets 503. Searches
    made for a query stop at the ``storage.query_timeout`` deadline (search ``timeout`` and request
    timeout set to the time left; a timed-out search is a 503, never partial results).

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
    read as the reference semantics (`gateway.query.semantics`) read them: they walk objects only (an array of
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
    real-time ``mget``) and raises `StreamNotFound` before writing anything (with ``create_streams`` it
    creates the missing ones instead, and they stay even if the bulk then fails). It then sends one ``_bulk``
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
    missing < numbers < strings, the reference order. Caveats: an actual ``""`` ties with
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

Modules: `settings` (URL and options), `mapping` (index bodies, documents, bulk bodies), `dsl` (query,
sort and aggregation DSL and the translation of responses), `backend` (the I/O). The pure translation
functions are separate from the I/O in `ElasticsearchBackend` so they can be tested without a cluster.
"""

from __future__ import annotations

from gateway.hookspecs import hookimpl
from gateway.storage import Backend

from .backend import ElasticsearchBackend
from .calls import translate_errors
from .dsl import (
    CALENDAR,
    CARDINALITY_PRECISION,
    MATCH_ALL,
    MATCH_NONE,
    MISSING_NUMBER,
    agg_results,
    aggs_dsl,
    condition_dsl,
    filter_dsl,
    query_filter_dsl,
    query_result,
    search_request,
    sort_dsl,
)
from .mapping import (
    NUM_COLUMN,
    PATHS_FIELD,
    STR_COLUMN,
    bulk_operations,
    event_doc_id,
    event_document,
    events_index_body,
    parse_bulk_response,
    parse_version,
    stream_doc_id,
    stream_document,
    stream_from_document,
    streams_index_body,
    typed_leaves,
)
from .settings import Settings, parse_settings

__all__ = ["CALENDAR", "CARDINALITY_PRECISION", "MATCH_ALL", "MATCH_NONE", "MISSING_NUMBER", "NUM_COLUMN",
           "PATHS_FIELD", "STR_COLUMN", "ElasticsearchBackend", "Settings", "agg_results", "aggs_dsl",
           "bulk_operations", "condition_dsl", "event_doc_id", "event_document", "events_index_body", "filter_dsl",
           "parse_bulk_response", "parse_settings", "parse_version", "query_filter_dsl", "query_result",
           "search_request", "sort_dsl", "storage_backends", "stream_doc_id", "stream_document",
           "stream_from_document", "streams_index_body", "translate_errors", "typed_leaves"]


@hookimpl
def storage_backends() -> list[type[Backend]]:
    """Register the Elasticsearch backend for the ``elasticsearch://`` and ``elasticsearch+https://`` URLs."""
    return [ElasticsearchBackend]
