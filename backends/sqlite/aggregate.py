"""SQLite aggregations: bucket kinds as GROUP BY keys (arrays expanded by ``json_each``), metrics as SQL
aggregates, percentiles from sorted values, and the day-summary shortcut for counts by type and period.

Results are ordered, truncated and filled with the reference helpers (`gateway.query.aggregate`), so the
buckets come out as on every other backend.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any

from gateway.query import Aggregation
from gateway.query.aggregate import fill, order_buckets, percentiles
from gateway.query.calendar import DAY_MS, bucket_start, day_aligned, fixed_step
from gateway.query.semantics import normalize_key

from .compiler import CONSTANT_FIELDS, NUM_TYPES, SCALAR_ELEMENT, Compiler, KeySpec, day_folder, json_path, time_leaf

#: Events of the stream per bucket at least for a time histogram to be read bucket range by bucket range.
MIN_EVENTS_PER_BUCKET = 64


def key_spec(c: Compiler, agg: Aggregation, depth: int, fine: bool = False) -> KeySpec:
    """How a bucket aggregation groups rows: an expression of the event, or of its expanded values.

    With `fine`, a month or year histogram of a top-level field (one value per event) groups by day
    instead, and `KeySpec.fold` rolls days up in Python: no date function runs per row.
    """
    field = agg.source
    if fine and agg.kind == "date_histogram" and agg.interval in ("month", "year") \
            and not c.json_field(field):
        spec = key_spec(c, Aggregation(agg.name, agg.kind, field=field, interval="day"), depth)
        spec.agg, spec.fold = agg, day_folder(agg.interval)
        return spec
    alias = f"k{depth}"
    if c.json_field(field):
        join, value = c.values_join(field, alias, numeric=agg.kind == "date_histogram")
        if agg.kind == "terms":
            key = value
            dup = (f"SELECT 1 FROM json_each(e.data, {json_path(field)}) AS j WHERE j.key < {alias}.key "
                   f"AND {SCALAR_ELEMENT} AND j.value = {alias}.value")
        else:
            assert agg.interval is not None
            key = c.bucket_expr(f"CAST({value} AS INTEGER)", agg.interval)
            other = c.bucket_expr("CAST(j.value AS INTEGER)", agg.interval)
            dup = (f"SELECT 1 FROM json_each(e.data, {json_path(field)}) AS j WHERE j.key < {alias}.key "
                   f"AND j.type IN {NUM_TYPES} AND {other} = {key}")
        # An event counts once per key even when its array repeats a value.
        join += f" AND ({alias}.key IS NULL OR NOT EXISTS ({dup}))"
        return KeySpec(agg, key, join=join)
    expr, kind = c.column(field)
    if agg.kind == "terms":
        return KeySpec(agg, expr, cond="" if kind in ("int", "text") else f"{expr} IS NOT NULL")
    assert agg.interval is not None
    if kind == "int":
        return KeySpec(agg, c.bucket_expr(expr, agg.interval))
    if kind == "text":
        return KeySpec(agg, "NULL", cond="0")
    key = c.bucket_expr(f"CAST({expr} AS INTEGER)", agg.interval)
    return KeySpec(agg, key, cond=f"typeof({expr}) IN ('integer', 'real')")


def level_source(c: Compiler, where: str, ctx: Sequence[KeySpec]) -> tuple[str, str]:
    """FROM and WHERE of the rows of one aggregation level: events joined with expanded keys."""
    joins = "".join(f" {spec.join}" for spec in ctx if spec.join)
    conds = [where] + [spec.cond for spec in ctx if spec.cond]
    conds += [f"{spec.expr} IN ({c.bind_list(spec.selected)})" for spec in ctx if spec.selected is not None]
    return f"{c.source}{joins}", " AND ".join(conds)


def time_ranges(conn: sqlite3.Connection, c: Compiler, agg: Aggregation) -> list[tuple[int, int]] | None:
    """The buckets ``[start, end)`` of a fixed-interval histogram of the event time over one stream, to be read
    range by range through the time order of the events (their time index, or the typed table's key)
    instead of grouped by a sort of every event; None where a GROUP BY is cheaper (an empty bucket costs a
    statement, so there must be at least `MIN_EVENTS_PER_BUCKET` events of the stream per bucket)."""
    fixed = fixed_step(agg.interval) if agg.kind == "date_histogram" and agg.source == "timestamp" \
        and agg.interval is not None else None
    if fixed is None or len(c.stream_names) != 1:
        return None
    sid = next(iter(c.stream_names))
    lo, hi = conn.execute("SELECT min(timestamp), max(timestamp) FROM events WHERE stream_id = ?", (sid,)).fetchone()
    if lo is None:
        return []
    if c.query.start is not None:
        lo = max(lo, c.query.start)
    if c.query.end is not None:
        hi = min(hi, c.query.end - 1)
    if lo > hi:
        return []
    step, origin = fixed
    first = lo - (lo - origin) % step
    buckets = (hi - first) // step + 1
    if hi + step >= 2**63:
        return None
    events = conn.execute("SELECT coalesce(sum(n), 0) FROM event_days WHERE stream_id = ?", (sid,)).fetchone()[0]
    if buckets * MIN_EVENTS_PER_BUCKET > events:
        return None
    return [(first + i * step, first + (i + 1) * step) for i in range(buckets)]


def _simple(c: Compiler, agg: Aggregation) -> bool:
    """A metric computed by SQL aggregate functions in the scan that groups its buckets."""
    return agg.kind in ("count", "sum", "avg", "min", "max") or (agg.kind == "distinct_count"
                                                                  and not c.json_field(agg.field or ""))


def _metric_results(aggs: Sequence[Aggregation], values: Sequence[Any]) -> dict[str, Any]:
    """The results of simple metrics from their columns (`Compiler.metric_columns`) in one result row."""
    out: dict[str, Any] = {}
    rest = list(values)
    for a in aggs:
        if a.kind == "avg":
            total, count = rest.pop(0), rest.pop(0)
            out[a.name] = total / count if count else None
        else:
            value = rest.pop(0)
            out[a.name] = 0 if value is None and a.kind == "count" else value
    return out


def sql_aggregate(conn: sqlite3.Connection, c: Compiler, where: str, aggs: Sequence[Aggregation],
                  ctx: list[KeySpec]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Results of `aggs` for every group of the parent buckets in `ctx`, keyed by the parent keys."""
    out: dict[tuple[Any, ...], dict[str, Any]] = {}
    depth = len(ctx)
    keys = [spec.expr for spec in ctx]
    source, cond = level_source(c, where, ctx)
    select_keys = "".join(f"{k}, " for k in keys)
    group = f" GROUP BY {', '.join(keys)}" if keys else ""

    def put(anc: tuple[Any, ...], name: str, value: Any) -> None:
        out.setdefault(anc, {})[name] = value

    simple = [a for a in aggs if _simple(c, a)]
    if simple:
        columns = [col for a in simple for col in c.metric_columns(a)]
        sql = f"SELECT {select_keys}{', '.join(columns)} FROM {source} WHERE {cond}{group}"
        for row in conn.execute(sql, c.params):
            for name, value in _metric_results(simple, row[depth:]).items():
                put(tuple(row[:depth]), name, value)
    for a in aggs:
        if a.kind == "distinct_count" and a.field and c.json_field(a.field):
            join, value = c.values_join(a.field, "m", numeric=False)
            sql = f"SELECT {select_keys}count(DISTINCT {value}) FROM {source} {join} WHERE {cond}{group}"
            for row in conn.execute(sql, c.params):
                put(tuple(row[:depth]), a.name, row[depth])
        elif a.kind == "percentiles":
            assert a.field is not None
            if c.json_field(a.field):
                join, value = c.values_join(a.field, "m", numeric=True)
            else:
                expr, kind = c.column(a.field)
                join, value = "", c.numeric(expr, kind)
            sql = (f"SELECT {select_keys}{value} FROM {source} {join} WHERE {cond} AND {value} IS NOT NULL "
                   f"ORDER BY {value}")
            groups: dict[tuple[Any, ...], list[Any]] = {}
            for row in conn.execute(sql, c.params):
                groups.setdefault(tuple(row[:depth]), []).append(row[depth])
            for anc, values in groups.items():
                put(anc, a.name, percentiles(values, a.percents))
        elif a.kind in ("terms", "date_histogram"):
            spec = key_spec(c, a, depth, fine=not a.aggs)
            sub_ctx = [*ctx, spec]
            sub_source, sub_cond = level_source(c, where, sub_ctx)
            # A single time histogram below: one scan grouped by both keys gives both levels' counts
            # (every event of a bucket has exactly one time), instead of a scan per level.
            leaf = a.aggs[0] if len(a.aggs) == 1 and time_leaf(a.aggs[0]) else None
            child = key_spec(c, leaf, depth + 1, fine=True) if leaf is not None else None
            group_by = [*keys, spec.expr, *([child.expr] if child is not None else [])]
            # Simple metrics below come from the same scan (one GROUP BY instead of one per level).
            inline = list(a.aggs) if leaf is None and a.aggs and all(_simple(c, s) for s in a.aggs) else []
            metrics = "".join(f", {col}" for s in inline for col in c.metric_columns(s))
            ranges = time_ranges(conn, c, a) if not ctx and leaf is None and (inline or not a.aggs) else None
            if ranges is not None:
                sql = (f"SELECT count(*){metrics} FROM {c.source} WHERE {where} AND e.timestamp >= :range_lo "
                       "AND e.timestamp < :range_hi")
                rows: Iterable[Sequence[Any]] = (
                    (lo, *conn.execute(sql, {**c.params, "range_lo": lo, "range_hi": hi}).fetchone())
                    for lo, hi in ranges)
            else:
                sql = (f"SELECT {', '.join(group_by)}, count(*){metrics} FROM {sub_source} WHERE {sub_cond} "
                       f"GROUP BY {', '.join(group_by)}")
                rows = conn.execute(sql, c.params)
            counts: dict[tuple[Any, ...], dict[Any, int]] = {}
            below: dict[tuple[Any, ...], dict[Any, int]] = {}
            found: dict[tuple[Any, ...], dict[str, Any]] = {}
            for row in rows:
                if not row[len(group_by)]:
                    continue  # an empty range (a GROUP BY has no such group)
                anc, key, n = tuple(row[:depth]), row[depth], row[len(group_by)]
                if inline:
                    found[(*anc, key)] = _metric_results(inline, row[len(group_by) + 1:])
                if spec.fold is not None:
                    key = spec.fold(key)
                group_counts = counts.setdefault(anc, {})
                group_counts[key] = group_counts.get(key, 0) + n
                if child is not None:
                    sub_key = row[depth + 1] if child.fold is None else child.fold(row[depth + 1])
                    child_counts = below.setdefault((*anc, key), {})
                    child_counts[sub_key] = child_counts.get(sub_key, 0) + n
            chosen = {anc: order_buckets(a, group_counts) for anc, group_counts in counts.items()}
            sub: dict[tuple[Any, ...], dict[str, Any]] = {}
            if leaf is not None:
                sub = {path: {leaf.name: [{"key": normalize_key(k), "count": n}
                                          for k, n in order_buckets(leaf, child_counts)]}
                       for path, child_counts in below.items()}
            elif inline:
                sub = found
            elif a.aggs and chosen:
                truncated = any(len(chosen[anc]) < len(group_counts) for anc, group_counts in counts.items())
                if a.kind == "terms" and truncated:
                    kept = list({key: None for buckets in chosen.values() for key, _ in buckets})
                    spec.selected = kept if len(kept) <= 500 else None
                sub = sql_aggregate(conn, c, where, a.aggs, sub_ctx)
            for anc, buckets in chosen.items():
                put(anc, a.name, [{"key": normalize_key(key), "count": count,
                                   **fill(a.aggs, sub.get((*anc, key), {}))} for key, count in buckets])
    return out


def day_computable(agg: Aggregation) -> bool:
    """Whether (type, day, count) rows determine an aggregation: counts, terms on the type and calendar
    histograms of the event time with day-aligned buckets, nested only in one another."""
    if agg.kind == "count":
        return agg.field in (None, "type", "timestamp", "id", *CONSTANT_FIELDS)
    if agg.kind == "terms":
        ok = agg.field == "type"
    elif agg.kind == "date_histogram":
        interval = agg.interval
        ok = agg.source == "timestamp" and interval is not None and day_aligned(interval)
    else:
        ok = False
    return ok and all(map(day_computable, agg.aggs))


def day_aggregate(rows: Sequence[tuple[Any, int, int]], aggs: Sequence[Aggregation]) -> dict[str, Any]:
    """Aggregations accepted by `day_computable`, over (type, day, events) rows, in Python."""
    return {agg.name: day_aggregate_one(rows, agg) for agg in aggs}


def day_aggregate_one(rows: Sequence[tuple[Any, int, int]], agg: Aggregation) -> Any:
    if agg.kind == "count":
        return sum(n for kind, _, n in rows if kind is not None or agg.field != "type")
    groups: dict[Any, list[tuple[Any, int, int]]] = {}
    if agg.kind == "terms":
        for row in rows:
            if row[0] is not None:
                groups.setdefault(row[0], []).append(row)
    else:
        assert agg.interval is not None
        starts: dict[int, int] = {}
        for row in rows:
            key = starts.get(row[1])
            if key is None:
                key = starts[row[1]] = bucket_start(row[1] * DAY_MS, agg.interval)
            groups.setdefault(key, []).append(row)
    counts = {key: sum(n for _, _, n in group) for key, group in groups.items()}
    return [{"key": normalize_key(key), "count": count, **day_aggregate(groups[key], agg.aggs)}
            for key, count in order_buckets(agg, counts)]
