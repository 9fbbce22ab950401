"""The backend-neutral query: what plugins ask for and what every backend must answer identically.

Plugins translate vendor queries (ADQL, Fluid Topics filters, ...) into a `Query`; backends translate a
`Query` into Python, SQL or Elasticsearch DSL. The semantics are fixed here and by the backend contract
tests (`gateway.testing.contract`), so a plugin can rely on them whatever storage an operator picks:

* Fields are the top-level event attributes (`id`, `type`, `timestamp`, `received_at`, `user_id`,
  `session_id`) or paths into the vendor document written ``data.a.b``.
* Time range is ``start <= timestamp < end`` in UTC epoch milliseconds; either bound may be open.
* ``eq``/``in`` on a field holding an array match when any element matches (as in Elasticsearch);
  ``ne``/``not_in`` are their negation (a missing field matches ``ne``; ``[1, 2] ne 1`` is false).
  ``lt``/``lte``/``gt``/``gte`` compare numbers with numbers and strings with strings (booleans count as
  1 and 0). ``exists`` (no value) is true when the field is present and not null. ``prefix`` and
  ``contains`` work on strings.
* Sorting: missing values come first ascending and last descending; ties are broken by insertion order
  in the direction of the last sort key, so paging with `offset` or `cursor` has no gaps or duplicates.
* Aggregations are computed over every event matching the filters (not just the page):
  ``count`` (events; with a field, events where it exists), ``sum``/``avg``/``min``/``max`` over numeric
  values, ``distinct_count``, ``percentiles`` (linear interpolation between closest ranks, as
  numpy's default), ``terms`` (buckets by value, most frequent first, then by key) and
  ``date_histogram`` (non-empty buckets by UTC calendar ``minute``/``hour``/``day``/``week`` (ISO,
  Monday)/``month``/``year`` or a fixed interval in ms, ascending). Bucket kinds may nest sub-aggregations.

Modules: `model` (the dataclasses, re-exported here), `semantics` (reading, comparing, matching and
ordering field values: the executable reference), `calendar` (UTC calendar buckets), `cursor` (the one
cursor encoding), `aggregate` (the reference aggregation engine), `checks` (what no backend stores, and
the canonical text of a stored document).
"""

from .model import (
    BUCKET_KINDS,
    CALENDAR_INTERVALS,
    FILTER_OPS,
    METRIC_KINDS,
    Aggregation,
    Filter,
    Query,
    QueryError,
    QueryResult,
    Sort,
    check_field,
)

__all__ = ["BUCKET_KINDS", "CALENDAR_INTERVALS", "FILTER_OPS", "METRIC_KINDS", "Aggregation", "Filter", "Query",
           "QueryError", "QueryResult", "Sort", "check_field"]
