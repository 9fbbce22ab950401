"""Aggregations pushed down to PostgreSQL: one grouped statement per aggregation level.

Every aggregation kind of `gateway.query` runs in SQL over the events matching the query:

* ``count``/``sum``/``avg``/``min``/``max`` in one statement per level; array values are summarised per
  event by a subquery (booleans count as 1/0). Sums are exact (``numeric``): an all-integer sum
  is an int, as in the reference; a sum with fractions is the correctly rounded float of the exact sum.
* ``distinct_count``, and ``terms`` without sub-aggregations, on jsonb fields: GROUP BY the raw jsonb value
  (one cheap grouping, no per-row expansion); the few distinct values are turned into keys by the
  reference's `scalar_values`/`normalize_key` (an array counts once for each distinct element; true and 1
  are one key). On other fields: ``count(DISTINCT ...)`` and grouping by the key expression.
* ``percentiles``: ``row_number()``/``count(*)`` windows pick, for each percent, the two ranks the
  reference interpolates between (the rank arithmetic is the reference's, in float8, so the ranks are the
  same); only those rows come back, and `reference.percentile` interpolates them — results are identical to
  the reference's ``percentile_cont``-style linear interpolation.
* ``terms`` with sub-aggregations and ``date_histogram``: GROUP BY the bucket key (an array's distinct
  values through a LATERAL join; calendar buckets with integer arithmetic for fixed intervals and ISO
  weeks, ``date_trunc(..., 'UTC')`` for months and years); the reference's `order_buckets` picks and orders
  buckets. Sub-aggregations run one statement per level grouped by every ancestor key, restricted to the
  kept terms keys.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from gateway.query import Aggregation, Filter

from . import codec
from .compiler import SCALAR_TYPES, Compiler, each_value, num, per_event, text_of
from .reference import (
    FIXED_INTERVALS_MS,
    WEEK_ORIGIN_MS,
    fill,
    normalize_key,
    order_buckets,
    percentile,
    scalar_values,
)

Rows = Callable[[str, dict[str, Any]], list[tuple[Any, ...]]]
_NUMERIC_TYPES = "('number', 'boolean')"
#: Numbers a date histogram reads must fit a bigint once truncated (the reference would work with any).
_BIGINT_GUARD = "9.2e18"


def bucket_sql(ms: str, interval: str | int) -> str:
    """SQL: the start (epoch ms, UTC) of the date-histogram bucket of a bigint ms expression."""
    if isinstance(interval, int) or interval in FIXED_INTERVALS_MS:
        step = interval if isinstance(interval, int) else FIXED_INTERVALS_MS[interval]
        origin = WEEK_ORIGIN_MS if interval == "week" else 0
        return f"({ms} - mod(mod({ms} - ({origin}::bigint), {step}::bigint) + {step}::bigint, {step}::bigint))"
    seconds = f"(({ms} - mod(mod({ms}, 1000::bigint) + 1000::bigint, 1000::bigint)) / 1000)"
    unit = {"month": "month", "year": "year"}[interval]
    return f"(extract(epoch FROM date_trunc('{unit}', to_timestamp({seconds}::float8), 'UTC')) * 1000)::bigint"


class KeySpec:
    """A bucket aggregation as grouping columns: (number, string) key expressions, a join, a condition."""

    def __init__(self, kn: str, ks: str, join: str = "", cond: str = "") -> None:
        self.kn, self.ks, self.join, self.cond = kn, ks, join, cond
        self.selected = ""  # a condition restricting the key to kept buckets

    def text(self) -> str:
        """One text per distinct key value (numbers by value: 1, 1.0 and true are one key)."""
        return f"COALESCE('n' || trim_scale({self.kn})::text, 's' || {self.ks})"


def key_of(kn: Any, ks: Any) -> Any:
    """The Python bucket key of a (number, string) pair."""
    return codec.number(kn) if kn is not None else codec.decode_str(ks)


class Aggregator:
    """Computes a query's aggregations with one connection, over ``table e WHERE where``."""

    def __init__(self, rows: Rows, compiler: Compiler, table: str, where: str) -> None:
        self.rows, self.c, self.table, self.where = rows, compiler, table, where

    def run(self, aggs: Sequence[Aggregation]) -> dict[str, Any]:
        """Every aggregation's result."""
        return fill(aggs, self.level(aggs, []).get((), {}))

    # -- building blocks -----------------------------------------------------------------------------
    def key_spec(self, agg: Aggregation, depth: int) -> KeySpec:
        """The grouping key of a terms or date_histogram aggregation."""
        x, kind = self.c.field(agg.source)
        alias = f"k{depth}"
        if agg.kind == "terms":
            if kind == "int":
                return KeySpec(f"{x}::numeric", "NULL::text")
            if kind == "text":
                return KeySpec("NULL::numeric", x)
            if kind == "scalar":
                return KeySpec(num(x), text_of(x), cond=f"jsonb_typeof({x}) IN {SCALAR_TYPES}")
            values = each_value(x, lambda j: f"{num(j)} AS kn, {text_of(j)} AS ks",
                                lambda j: f"jsonb_typeof({j}) IN {SCALAR_TYPES}", distinct=True)
            join = f"CROSS JOIN LATERAL {values} AS {alias}"
            return KeySpec(f"{alias}.kn", f"{alias}.ks", join=join)
        assert agg.interval is not None
        if kind == "int":
            return KeySpec(bucket_sql(x, agg.interval), "NULL::text")
        if kind == "text":
            return KeySpec("NULL::numeric", "NULL::text", cond="false")
        if kind == "scalar":
            guard = f"jsonb_typeof({x}) IN {_NUMERIC_TYPES} AND abs({num(x)}) < {_BIGINT_GUARD}"
            return KeySpec(bucket_sql(f"trunc({num(x)})::bigint", agg.interval), "NULL::text", cond=guard)
        interval = agg.interval
        values = each_value(x, lambda j: f"{bucket_sql(f'trunc({num(j)})::bigint', interval)} AS kn, NULL::text AS ks",
                            lambda j: f"jsonb_typeof({j}) IN {_NUMERIC_TYPES} AND abs({num(j)}) < {_BIGINT_GUARD}",
                            distinct=True)
        join = f"CROSS JOIN LATERAL {values} AS {alias}"
        return KeySpec(f"{alias}.kn", "NULL::text", join=join)

    def source(self, ctx: Sequence[KeySpec], extra_join: str = "") -> str:
        """FROM ... WHERE ... of the rows of one level: events joined with their ancestor keys."""
        joins = "".join(f" {spec.join}" for spec in ctx if spec.join)
        conds = [self.where, *(spec.cond for spec in ctx if spec.cond),
                 *(spec.selected for spec in ctx if spec.selected)]
        return f"FROM {self.table} e{joins}{extra_join} WHERE {' AND '.join(conds)}"

    @staticmethod
    def ancestors(ctx: Sequence[KeySpec]) -> list[str]:
        """The grouping columns of the ancestor keys."""
        return [col for spec in ctx for col in (spec.kn, spec.ks)]

    def values(self, field: str, alias: str) -> tuple[str, str]:
        """A join yielding per event a summary of a field's numbers (sum, cnt, min, max), and its alias."""
        x, kind = self.c.field(field)
        if kind == "int":
            value = f"{x}::numeric"
        elif kind == "text":
            value = "NULL::numeric"
        elif kind == "scalar":
            value = num(x)
        else:
            n = num(x)
            return (f" CROSS JOIN LATERAL (SELECT {per_event(x, lambda j: f'sum({num(j)})', n)} AS sum, "
                    f"{per_event(x, lambda j: f'count({num(j)})', f'CASE WHEN {n} IS NULL THEN 0 ELSE 1 END')} AS cnt, "
                    f"{per_event(x, lambda j: f'min({num(j)})', n)} AS min, "
                    f"{per_event(x, lambda j: f'max({num(j)})', n)} AS max) AS {alias}"), alias
        return (f" CROSS JOIN LATERAL (SELECT {value} AS sum, CASE WHEN {value} IS NULL THEN 0 ELSE 1 END AS cnt, "
                f"{value} AS min, {value} AS max) AS {alias}"), alias

    # -- one level -----------------------------------------------------------------------------------
    def level(self, aggs: Sequence[Aggregation], ctx: list[KeySpec]) -> dict[tuple[Any, ...], dict[str, Any]]:
        """Results of `aggs` for every group of the ancestor buckets in `ctx`, keyed by ancestor keys."""
        out: dict[tuple[Any, ...], dict[str, Any]] = {}
        depth = len(ctx)
        anc_cols = self.ancestors(ctx)
        group = f" GROUP BY {', '.join(anc_cols)}" if anc_cols else ""
        select = "".join(f"{col}, " for col in anc_cols)

        def anc_of(row: Sequence[Any]) -> tuple[Any, ...]:
            return tuple(key_of(row[2 * i], row[2 * i + 1]) for i in range(depth))

        def put(anc: tuple[Any, ...], name: str, value: Any) -> None:
            out.setdefault(anc, {})[name] = value

        metrics = [a for a in aggs if a.kind in ("count", "sum", "avg", "min", "max")]
        if metrics:
            columns, joins = [], ""
            for i, a in enumerate(metrics):
                if a.kind == "count":
                    cond = "true" if a.field is None else self.c.filter(Filter(a.field, "exists"))
                    columns.append(f"count(*) FILTER (WHERE {cond})")
                    continue
                assert a.field is not None
                join, m = self.values(a.field, f"m{i}")
                joins += join
                columns.append({"sum": f"sum({m}.sum)", "avg": f"sum({m}.sum), sum({m}.cnt)",
                                "min": f"min({m}.min)", "max": f"max({m}.max)"}[a.kind])
            sql = f"SELECT {select}{', '.join(columns)} {self.source(ctx, joins)}{group}"
            for row in self.rows(sql, self.c.params):
                anc, values = anc_of(row), list(row[2 * depth:])
                for a in metrics:
                    if a.kind == "avg":
                        total, count = codec.number(values.pop(0)), int(values.pop(0) or 0)
                        put(anc, a.name, total / count if count else None)
                    elif a.kind == "count":
                        put(anc, a.name, values.pop(0))
                    else:
                        put(anc, a.name, codec.number(values.pop(0)))
        for a in aggs:
            if a.kind == "distinct_count" and self.c.field(a.field or "")[1] in ("json", "scalar"):
                seen: dict[tuple[Any, ...], set[Any]] = {}
                for anc, keys, _ in self.raw_values(a.field or "", ctx):
                    seen.setdefault(anc, set()).update(keys)
                for anc, keys in seen.items():
                    put(anc, a.name, len(keys))
            elif a.kind == "distinct_count":
                spec = self.key_spec(Aggregation(a.name, "terms", field=a.field), depth)
                sql = (f"SELECT {select}count(DISTINCT {spec.text()}) "
                       f"{self.source([*ctx, spec])}{group}")
                for row in self.rows(sql, self.c.params):
                    put(anc_of(row), a.name, row[-1])
            elif a.kind == "percentiles":
                for anc, result in self.percentiles(a, ctx).items():
                    put(anc, a.name, result)
            elif a.kind in ("terms", "date_histogram"):
                for anc, buckets in self.buckets(a, ctx).items():
                    put(anc, a.name, buckets)
        return out

    def percentiles(self, agg: Aggregation, ctx: list[KeySpec]) -> dict[tuple[Any, ...], dict[float, Any]]:
        """For each ancestor group: the reference interpolation between the ranks it reads, fetched alone."""
        assert agg.field is not None
        depth = len(ctx)
        join, m = self.values_each(agg.field)
        anc_cols = self.ancestors(ctx)
        partition = f"PARTITION BY {', '.join(anc_cols)} " if anc_cols else ""
        named = "".join(f"{col} AS g{i}, " for i, col in enumerate(anc_cols))
        wanted = []
        for p in agg.percents:
            position = f"floor((t.cnt - 1)::float8 * {self.c.bind(float(p), '::float8')} / 100.0::float8)"
            wanted += [f"t.r = {position}", f"t.r = {position} + 1"]
        inner = (f"SELECT {named}{m} AS n, row_number() OVER ({partition}ORDER BY {m}) - 1 AS r, "
                 f"count(*) OVER ({partition.strip()}) AS cnt {self.source(ctx, join)} AND {m} IS NOT NULL")
        outer_cols = "".join(f"t.g{i}, " for i in range(len(anc_cols)))
        sql = f"SELECT {outer_cols}t.cnt, t.r, t.n FROM ({inner}) AS t WHERE {' OR '.join(wanted)}"
        groups: dict[tuple[Any, ...], tuple[int, dict[int, Any]]] = {}
        for row in self.rows(sql, self.c.params):
            anc = tuple(key_of(row[2 * i], row[2 * i + 1]) for i in range(depth))
            count, rank, value = row[-3], row[-2], codec.number(row[-1])
            groups.setdefault(anc, (count, {}))[1][rank] = value
        return {anc: {p: percentile(_Ranks(count, picked), p) for p in agg.percents}
                for anc, (count, picked) in groups.items()}

    def raw_values(self, field: str, ctx: list[KeySpec]) -> list[tuple[tuple[Any, ...], set[Any], int]]:
        """(ancestor keys, terms keys, events) per distinct jsonb value of a field, grouped in SQL by the
        raw value (cheaper than expanding every row) and turned into keys by the reference's rules."""
        x, _ = self.c.field(field)
        depth = len(ctx)
        cols = [*self.ancestors(ctx), x]
        sql = f"SELECT {', '.join(cols)}, count(*) {self.source(ctx)} AND {x} IS NOT NULL GROUP BY {', '.join(cols)}"
        out = []
        for row in self.rows(sql, self.c.params):
            anc = tuple(key_of(row[2 * i], row[2 * i + 1]) for i in range(depth))
            keys = {normalize_key(v) for v in scalar_values(row[2 * depth])}
            if keys:
                out.append((anc, keys, row[-1]))
        return out

    def values_each(self, field: str) -> tuple[str, str]:
        """A join yielding one row per numeric value of a field (array elements each), and its column."""
        x, kind = self.c.field(field)
        if kind == "int":
            return "", f"{x}::numeric"
        if kind == "text":
            return "", "NULL::numeric"
        if kind == "scalar":
            return "", num(x)
        values = each_value(x, lambda j: f"{num(j)} AS n", lambda j: f"jsonb_typeof({j}) IN {_NUMERIC_TYPES}")
        return f" CROSS JOIN LATERAL {values} AS pv", "pv.n"

    def buckets(self, agg: Aggregation, ctx: list[KeySpec]) -> dict[tuple[Any, ...], list[dict[str, Any]]]:
        """Bucket lists per ancestor group, with their sub-aggregations."""
        depth = len(ctx)
        spec = self.key_spec(agg, depth)
        sub_ctx = [*ctx, spec]
        counts: dict[tuple[Any, ...], dict[Any, int]] = {}
        if agg.kind == "terms" and self.c.field(agg.source)[1] in ("json", "scalar"):
            for anc, keys, n in self.raw_values(agg.source, ctx):
                group = counts.setdefault(anc, {})
                for key in keys:
                    group[key] = group.get(key, 0) + n
        else:
            cols = self.ancestors(sub_ctx)
            sql = f"SELECT {', '.join(cols)}, count(*) {self.source(sub_ctx)} GROUP BY {', '.join(cols)}"
            for row in self.rows(sql, self.c.params):
                anc = tuple(key_of(row[2 * i], row[2 * i + 1]) for i in range(depth))
                key = key_of(row[2 * depth], row[2 * depth + 1])
                if key is None:
                    continue
                group = counts.setdefault(anc, {})
                group[key] = group.get(key, 0) + row[-1]
        chosen = {anc: order_buckets(agg, group) for anc, group in counts.items()}
        sub: dict[tuple[Any, ...], dict[str, Any]] = {}
        if agg.aggs and chosen:
            kept = {key for buckets in chosen.values() for key, _ in buckets}
            if agg.kind == "terms" and len(kept) <= 1000:
                numbers = [codec.decimal(k) for k in kept if not isinstance(k, str)]
                strings = [codec.encode_str(k) for k in kept if isinstance(k, str)]
                parts = []
                if numbers:
                    parts.append(f"{spec.kn} = ANY({self.c.bind(numbers, '::numeric[]')})")
                if strings:
                    parts.append(f"{spec.ks} = ANY({self.c.bind(strings, '::text[]')})")
                # The events of the kept buckets are those matching `in kept` (same-class equality, any array
                # element): that filter, cheap on jsonb, narrows the rows before their keys are expanded.
                narrow = self.c.filter(Filter(agg.source, "in", list(kept)))
                spec.selected = f"({' OR '.join(parts)}) AND {narrow}"
            sub = self.level(agg.aggs, sub_ctx)
        return {anc: [{"key": normalize_key(key), "count": count, **fill(agg.aggs, sub.get((*anc, key), {}))}
                      for key, count in buckets] for anc, buckets in chosen.items()}


class _Ranks:
    """The sorted values of a group as far as `percentile` reads them: its length and the fetched ranks."""

    def __init__(self, count: int, picked: dict[int, Any]) -> None:
        self.count, self.picked = count, picked

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> Any:
        return self.picked[index]
