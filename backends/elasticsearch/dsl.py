"""Translating the neutral query into Elasticsearch's search DSL and the search response back into a
`QueryResult` (filters, sorting with the reference's missing-value order, ``search_after`` cursors,
aggregations); pure functions, tested without a cluster."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from gateway.events import Event
from gateway.query import Aggregation, AnyOf, Condition, Filter, Not, Query, QueryResult, Sort
from gateway.query.cursor import decode_cursor, encode_cursor

from .mapping import DATE_FIELDS, KEYWORD_FIELDS, NUM_COLUMN, PATHS_FIELD, STR_COLUMN

#: The most precise setting Elasticsearch's cardinality aggregation allows.
CARDINALITY_PRECISION = 40000
#: Sort value substituted for a missing double: the smallest double, so missing sorts first ascending.
MISSING_NUMBER = -1.7976931348623157e308

CALENDAR = {"minute": "1m", "hour": "1h", "day": "1d", "week": "1w", "month": "1M", "year": "1y"}
MATCH_NONE: dict[str, Any] = {"match_none": {}}
MATCH_ALL: dict[str, Any] = {"match_all": {}}


# -- query -> DSL --------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, int | float)


def _plain_value(value: Any) -> Any:
    # Booleans are the numbers 1/0 in queries as in storage (the reference semantics' reading).
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


def condition_dsl(condition: Condition) -> dict[str, Any]:
    """A filter, or an AND/OR/NOT tree of filters, as an Elasticsearch query clause."""
    if isinstance(condition, Filter):
        return filter_dsl(condition)
    if isinstance(condition, Not):
        return _not(condition_dsl(condition.condition))
    parts = [condition_dsl(c) for c in condition.conditions]  # type: ignore[union-attr]
    if isinstance(condition, AnyOf):
        return _any(parts)
    if MATCH_NONE in parts:
        return MATCH_NONE
    parts = [p for p in parts if p != MATCH_ALL]
    return {"bool": {"filter": parts}} if parts else MATCH_ALL


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
    clauses.extend(condition_dsl(condition) for condition in query.filters)
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
