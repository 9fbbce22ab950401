"""The backend-neutral query: what plugins ask for and what every backend must answer identically.

Plugins translate vendor queries (ADQL, Fluid Topics filters, ...) into a `Query`; backends translate a
`Query` into Python, SQL or Elasticsearch DSL. The semantics are fixed here and by the backend contract
tests (`gateway.testing.contract`), so a plugin can rely on them whatever storage an operator picks:

* Fields are the top-level event attributes (`id`, `type`, `timestamp`, `received_at`, `user_id`,
  `session_id`) or paths into the vendor document written ``data.a.b``, or a `Computed` value (a Python
  function of the event: math, string functions; usable wherever a field is).
* Time range is ``start <= timestamp < end`` in UTC epoch milliseconds; either bound may be open.
* ``eq``/``in`` on a field holding an array match when any element matches (as in Elasticsearch);
  ``ne``/``not_in`` are their negation (a missing field matches ``ne``; ``[1, 2] ne 1`` is false).
  ``lt``/``lte``/``gt``/``gte`` compare numbers with numbers and strings with strings (booleans count as
  1 and 0). ``exists`` (no value) is true when the field is present and not null. ``prefix`` and
  ``contains`` work on strings; ``regex`` holds when a string matches the whole pattern (Python `re`).
* Conditions: a query's `filters` must all hold; each is a `Filter` or a tree of `AllOf` (every),
  `AnyOf` (at least one; empty: never) and `Not` (so ``Not(eq)`` holds for a missing field).
* Sorting: missing values come first ascending and last descending; ties are broken by insertion order
  in the direction of the last sort key, so paging with `offset` or `cursor` has no gaps or duplicates.
* Aggregations are computed over every event matching the filters (not just the page), narrowed first by
  the aggregation's own `where` condition if any (a filtered metric):
  ``count`` (events; with a field, events where it exists), ``sum``/``avg``/``min``/``max`` over numeric
  values, ``stats`` ({count, min, max, avg, sum} of the numeric values), ``stdev`` (population),
  ``distinct_count``, ``percentiles`` (linear interpolation between closest ranks, as numpy's default),
  ``terms`` (buckets by value, most frequent first, then by key; the first `size`), ``date_histogram``
  (non-empty buckets by UTC calendar ``minute``/``hour``/``day``/``week`` (ISO, Monday)/``month``/``year``
  or a fixed interval in ms, ascending) and ``histogram`` (non-empty buckets ``floor(v / interval) *
  interval`` of a number, ascending). Bucket kinds nest sub-aggregations (each level its own `size`), may
  be ordered by ``_count``, ``_key`` or a metric sub-aggregation (`order`, `descending`; buckets without
  the value last, ties by key) and filtered by a `having` tree of `Having` conditions on those values
  (applied before `size`; histograms keep every remaining bucket).

Pushdown: a backend answers natively what `Backend.native` accepts and the core answers the rest with the
reference semantics over `Backend.scan` (`gateway.query.evaluate`): the top-level conditions the backend
declares `pushable` filter the scan, the others are evaluated on each scanned event, then the core counts,
pages (a bounded heap) and aggregates. The built-in backends push down:

* memory: it is the reference; natively the native model (plain filters with the operators above except
  ``regex``; terms, date histograms and the metrics other than ``stats``/``stdev``, without `where`,
  `order` or `having`); its scan applies the plain filters to its sorted runs; data fields are read from
  columns decoded once per field (a first query on a field pays one decoding pass).
* SQLite: the native model plus `AllOf`/`AnyOf`/`Not` trees of its filters, compiled to SQL (so are the
  scan's conditions); everything else is evaluated by the core over one streamed ``SELECT``.
* Elasticsearch: the same as SQLite, trees as ``bool`` queries; its scan pages with ``search_after`` in
  insertion order.
* PostgreSQL: the same as SQLite (percentiles pick the interpolated ranks with window functions); its
  scan streams one ``SELECT`` through a server-side cursor in one snapshot.

Before scanning, the core asks a backend for what it can answer by rewriting: the page and total when
only aggregations are beyond it; a top-level aggregation with a `where` the backend pushes down, as the
same aggregation over the query narrowed by that condition (a filtered ``count(*)`` costs what a filtered
query costs); a bucket aggregation whose only non-native parts are `order`/`having`, as every bucket
(up to `gateway.query.evaluate.RELAXED_SIZE` per terms level), ordered, filtered and cut by the core.
`Computed` fields, ``regex``, ``stats``, ``stdev``, ``histogram`` and `where` below the top level are
evaluated by the core over the scan on every built-in backend today; any of them may move into a
backend's `native` later without changing a result (the contract suite checks the native, rewritten and
scanned paths against the same hand-worked values).

Modules: `model` (the dataclasses, re-exported here), `semantics` (reading, comparing, matching and
ordering field values: the executable reference), `calendar` (UTC calendar buckets), `cursor` (the one
cursor encoding), `aggregate` (the reference aggregation engine), `evaluate` (the core evaluator over a
scan and the definition of the native model), `checks` (what no backend stores, and the canonical text
of a stored document).
"""

from .model import (
    BUCKET_KINDS,
    CALENDAR_INTERVALS,
    FILTER_OPS,
    HAVING_OPS,
    METRIC_KINDS,
    MISSING,
    Aggregation,
    AllOf,
    AnyOf,
    Computed,
    Condition,
    FieldRef,
    Filter,
    Having,
    Not,
    Query,
    QueryError,
    QueryResult,
    Sort,
    check_field,
)

__all__ = ["BUCKET_KINDS", "CALENDAR_INTERVALS", "FILTER_OPS", "HAVING_OPS", "METRIC_KINDS", "MISSING",
           "Aggregation", "AllOf", "AnyOf", "Computed", "Condition", "FieldRef", "Filter", "Having", "Not", "Query",
           "QueryError", "QueryResult", "Sort", "check_field"]
