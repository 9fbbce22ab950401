"""A deliberately naive reference evaluator of ADQL over a list of events: the oracle for property tests.

Why: the real implementation compiles ADQL to the core query model and pushes work down to a backend; this
module computes the same answer the slowest, most obvious way (loops over every event, nested dicts of groups)
so that the two can be compared on random inputs. It shares only the parser, the semantic pass and the column
typing with the plugin, never its evaluation code.

Events are flat dicts keyed by dotted field name with typed values: dates (``eventTimestamp`` ...) as epoch ms.
Semantics (the plugin must match them):
- time range: SINCE/UNTIL override the request's start/end; both bounds inclusive on ``eventTimestamp``.
- predicates on null are false; negated forms (``!=``, NOT IN, NOT LIKE, NOT REGEXP, NOT BETWEEN, NOT) are their
  complement, so they are true on null (Elasticsearch ``must_not`` semantics).
- literals compared with a field are read as the field's type (ISO strings or epoch ms for dates, numeric strings
  for numbers, numbers as strings for strings).
- math: null in -> null out; integer / integer truncates toward zero; % keeps the dividend's sign; x / 0 and x % 0
  give null.
- raw queries: ORDER BY keys (nulls last either way), then newest ``eventTimestamp`` first (the whole default
  order when there is no ORDER BY); remaining ties keep publish order; LIMIT, else the request's limit.
- grouped queries: one level per group-by term, outermost first; events whose term value is null are left out;
  each level ordered by the ORDER BY keys that concern it (its own key, or a metric computed over the level's
  group), then by event count descending and key ascending (buckets: key ascending only); a term keeps its top
  LIMIT groups (default 10, max 1,000 first, 100 later); buckets keep every non-empty bucket. Rows come depth
  first. HAVING filters the finished rows. No group-by terms: exactly one row, even over no events.
- metrics ignore nulls: count(*) counts events, count(x) non-null values, sum of nothing 0, avg/min/max/stdev/
  percentile of nothing null; stdev is the population standard deviation; percentile interpolates linearly
  between closest ranks (rank = p/100 * (n-1)).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from plugins.appdynamics.adql import ast as A
from plugins.appdynamics.adql.parser import parse
from plugins.appdynamics.adql.semantics import Analysis, analyze
from plugins.appdynamics.results import full_schema, output_columns

_MISSING = object()


def run(
    query: str,
    events: Sequence[Mapping[str, Any]],
    schema: Mapping[str, str],
    now_ms: int,
    start: int | None = None,
    end: int | None = None,
    limit: int = 100,
) -> dict[str, Any]:
    """``{"fields": [(label, field, aggregation, type)...], "results": rows, "total": n, "moreData": bool}``
    with rows rendered as the API renders them (dates as ISO strings, time-bucket keys as epoch ms)."""
    analysis = analyze(parse(query))
    types = full_schema(schema)
    columns = output_columns(analysis, schema)
    ev = _Evaluator(types, now_ms)
    select = analysis.select
    if select.since is not None:  # computed here by hand, not with Analysis.time_bounds
        start = select.since.resolve(now_ms)
        end = select.until.resolve(now_ms) if select.until is not None else now_ms
    matching = [
        e for e in events
        if (start is None or e["eventTimestamp"] >= start) and (end is None or e["eventTimestamp"] <= end)
        and (analysis.where is None or ev.cond(analysis.where, e))
    ]  # fmt: skip
    if analysis.aggregated:
        rows = _grouped(analysis, matching, ev)
        more = False
    else:
        rows = _raw(analysis, matching, ev, types, limit)
        more = len(matching) > len(rows)
    rendered = []
    for row in rows:
        out = []
        for value, (_label, _field, _agg, kind), role in zip(row, columns, _roles(analysis, types), strict=True):
            out.append(_iso(value) if kind == "date" and role != "bucket" and value is not None else value)
        rendered.append(out)
    return {"fields": columns, "results": rendered, "total": len(matching), "moreData": more}


def _roles(analysis: Analysis, types: Mapping[str, str]) -> list[str]:
    return ["value"] * len(types) if analysis.select.star else [c.role for c in analysis.columns]


def _iso(ms: int) -> str:
    seconds, millis = divmod(int(ms), 1000)
    return datetime.fromtimestamp(seconds, tz=UTC).isoformat(timespec="seconds")[:-6] + f".{millis:03d}Z"


# ---------------------------------------------------------------------------------------------- raw
def _raw(analysis: Analysis, events: list, ev: _Evaluator, types: Mapping[str, str], limit: int) -> list[list]:
    ordered = list(events)
    specs = analysis.order_by or ()
    if not specs:
        ordered = _sort(ordered, [(lambda e: e.get("eventTimestamp"), True)])
    else:
        keys = []
        for spec in specs:
            expr = spec.expr
            keys.append(((lambda e, x=expr: ev.expr(x, e)), spec.descending))
        keys.append((lambda e: e.get("eventTimestamp"), True))  # ties: newest first
        ordered = _sort(ordered, keys)
    cap = analysis.row_limit if analysis.row_limit is not None else limit
    ordered = ordered[:cap]
    if analysis.select.star:
        return [[e.get(name) for name in types] for e in ordered]
    return [[ev.expr(c.expr, e) for c in analysis.columns] for e in ordered]


def _sort(items: list, keys: list[tuple[Any, bool]]) -> list:
    """Stable multi-key sort, nulls last in both directions (applied from the last key to the first)."""
    out = list(items)
    for key, descending in reversed(keys):
        present = [x for x in out if key(x) is not None]
        absent = [x for x in out if key(x) is None]
        present.sort(key=lambda x, k=key: _sortable(k(x)), reverse=descending)
        out = present + absent
    return out


def _sortable(value: Any) -> Any:
    if isinstance(value, bool):
        return (0, int(value))
    if isinstance(value, int | float):
        return (1, value)
    return (2, str(value))


# ---------------------------------------------------------------------------------------------- grouped
def _grouped(analysis: Analysis, events: list, ev: _Evaluator) -> list[list]:
    columns = analysis.columns
    terms = analysis.group_terms
    rows: list[list] = []

    def level(depth: int, group: list, keys: dict[int, Any]) -> None:
        if depth == len(terms):
            rows.append([keys[i] if c.role in ("group", "bucket") else ev.metric_column(c, group)
                         for i, c in enumerate(columns)])  # fmt: skip
            return
        term = terms[depth]
        buckets: dict[Any, list] = {}
        for e in group:
            key = ev.term_key(term.expr, e)
            if key is not None:
                buckets.setdefault(key, []).append(e)
        items = list(buckets.items())
        is_bucket = columns[term.column].role == "bucket"
        if is_bucket and isinstance(term.expr, A.RangeBuckets):
            order = _range_labels(term.expr.bounds)
            items.sort(key=lambda kv: order.index(kv[0]))
        elif is_bucket:
            items.sort(key=lambda kv: kv[0])
        else:
            items.sort(key=lambda kv: _sortable(kv[0]))
            items.sort(key=lambda kv: len(kv[1]), reverse=True)
        sort_keys = []
        for spec in analysis.order_by:
            if spec.column == term.column:
                sort_keys.append((lambda kv: kv[0], spec.descending))
            elif spec.column is not None and columns[spec.column].role == "metric":
                col = columns[spec.column]
                sort_keys.append(((lambda kv, c=col: ev.metric_column(c, kv[1])), spec.descending))
        if sort_keys:
            items = _sort(items, sort_keys)
        if term.limit is not None:
            items = items[: term.limit]
        for key, sub in items:
            level(depth + 1, sub, {**keys, term.column: key})

    level(0, events, {})
    if analysis.having is not None:
        rows = [r for r in rows if ev.cond(analysis.having, {}, row=r)]
    return rows


def _range_labels(bounds: tuple) -> list[str]:
    fmt = [_num_text(b) for b in bounds]
    return [f"*-{fmt[0]}"] + [f"{fmt[i]}-{fmt[i + 1]}" for i in range(len(fmt) - 1)] + [f"{fmt[-1]}-*"]


def _num_text(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


# ---------------------------------------------------------------------------------------------- evaluation
class _Evaluator:
    def __init__(self, types: Mapping[str, str], now_ms: int) -> None:
        self.types = types
        self.now_ms = now_ms

    # ---- expressions over one event
    def expr(self, node: A.Node, event: Mapping[str, Any], row: list | None = None) -> Any:
        if isinstance(node, A.Field):
            return event.get(node.name)
        if isinstance(node, A.Literal):
            return node.value
        if isinstance(node, A.ColumnRef):
            return row[node.index]
        if isinstance(node, A.Negate):
            value = self.expr(node.operand, event, row)
            return None if value is None else -value
        if isinstance(node, A.BinaryOp):
            return arith(node.op, self.expr(node.left, event, row), self.expr(node.right, event, row))
        if isinstance(node, A.FuncCall):
            return self.func(node, event, row)
        raise AssertionError(f"not a per-event expression: {node!r}")

    def func(self, node: A.FuncCall, event, row) -> Any:
        if node.name == "now":
            return self.now_ms
        args = [self.expr(a, event, row) for a in node.args]
        if any(a is None for a in args):
            return None
        if node.name == "length":
            return len(args[0])
        if node.name == "trim":
            return args[0].strip()
        if node.name == "concat":
            return "".join(str(a) for a in args)
        if node.name == "indexof":
            return args[0].find(str(args[1]))
        if node.name == "substring":
            text, begin = args[0], max(0, args[1])
            if len(args) == 3:
                return text[begin : begin + max(0, args[2])]
            return text[begin:]
        raise AssertionError(node.name)

    def term_key(self, node: A.Node, event) -> Any:
        if isinstance(node, A.Series):
            value = self.expr(node.expr, event)
            if value is None:
                return None
            width = node.interval
            key = math.floor(value / width) * width
            return int(key) if isinstance(width, int) and isinstance(value, int) else float(key)
        if isinstance(node, A.RangeBuckets):
            value = self.expr(node.expr, event)
            if value is None:
                return None
            labels = _range_labels(node.bounds)
            for i, bound in enumerate(node.bounds):
                if value < bound:
                    return labels[i]
            return labels[-1]
        return self.expr(node, event)

    # ---- conditions
    def cond(self, node: A.Node, event, row: list | None = None) -> bool:
        if isinstance(node, A.And):
            return all(self.cond(c, event, row) for c in node.operands)
        if isinstance(node, A.Or):
            return any(self.cond(c, event, row) for c in node.operands)
        if isinstance(node, A.Not):
            return not self.cond(node.operand, event, row)
        if isinstance(node, A.IsNull):
            return (self.expr(node.expr, event, row) is None) != node.negated
        if isinstance(node, A.Compare):
            if node.op == "!=":
                return not self.cond(A.Compare(op="=", left=node.left, right=node.right), event, row)
            left, right = self._pair(node.left, node.right, event, row)
            if left is None or right is None:
                return False
            return _compare(node.op, left, right)
        if isinstance(node, A.InList):
            hit = False
            for value in node.values:
                left, right = self._pair(node.expr, value, event, row)
                if left is not None and right is not None and _compare("=", left, right):
                    hit = True
            return hit != node.negated
        if isinstance(node, A.Between):
            value, low = self._pair(node.expr, node.low, event, row)
            _, high = self._pair(node.expr, node.high, event, row)
            hit = (
                value is not None and low is not None and high is not None
                and _compare(">=" if node.low_inclusive else ">", value, low)
                and _compare("<=" if node.high_inclusive else "<", value, high)
            )  # fmt: skip
            return hit != node.negated
        if isinstance(node, A.Like):
            value = self.expr(node.expr, event, row)
            hit = isinstance(value, str) and like_regex(node.pattern).fullmatch(value) is not None
            return hit != node.negated
        if isinstance(node, A.Regexp):
            value = self.expr(node.expr, event, row)
            hit = isinstance(value, str) and re.fullmatch(node.pattern, value, re.DOTALL) is not None
            return hit != node.negated
        return self.expr(node, event, row) is True

    def _pair(self, subject: A.Node, other: A.Node, event, row) -> tuple[Any, Any]:
        """Both sides, the literal side read as the subject's type."""
        left = self.expr(subject, event, row)
        right = self.expr(other, event, row)
        kind = self._kind(subject)
        if isinstance(other, A.Literal) and kind is not None:
            right = _coerce(right, kind)
        return left, right

    def _kind(self, node: A.Node) -> str | None:
        if isinstance(node, A.Field):
            return self.types.get(node.name)
        if isinstance(node, A.FuncCall) and node.name == "now":
            return "date"
        return None

    # ---- metrics over a group
    def metric_column(self, column, group: list) -> Any:
        expr = column.expr
        if isinstance(expr, A.Funnel):
            return self.funnel(expr, group, column.part)
        if isinstance(expr, A.Aggregate) and expr.kind in ("stats", "percentile"):
            kind = column.part if expr.kind == "stats" else "percentile"
            params = () if expr.kind == "stats" else (column.part,)
            return self.aggregate(kind, expr, group, params)
        return self.metric_expr(expr, group)

    def metric_expr(self, node: A.Node, group: list) -> Any:
        if isinstance(node, A.Aggregate):
            return self.aggregate(node.kind, node, group, tuple(a.value for a in node.args[1:]))
        if isinstance(node, A.Literal):
            return node.value
        if isinstance(node, A.Negate):
            value = self.metric_expr(node.operand, group)
            return None if value is None else -value
        if isinstance(node, A.BinaryOp):
            return arith(node.op, self.metric_expr(node.left, group), self.metric_expr(node.right, group))
        raise AssertionError(f"not a metric expression: {node!r}")

    def aggregate(self, kind: str, agg: A.Aggregate, group: list, params: tuple) -> Any:
        events = [e for e in group if agg.filter is None or self.cond(agg.filter, e)]
        if isinstance(agg.args[0], A.Star):
            return len(events)
        values = [v for v in (self.expr(agg.args[0], e) for e in events) if v is not None]
        if kind == "count":
            return len(values)
        if kind == "distinctcount":
            return len(set(values))
        if kind == "sum":
            total = 0
            for v in values:
                total += v
            return float(total) if any(isinstance(v, float) for v in values) else total
        if not values:
            return None
        if kind == "min":
            return min(values)
        if kind == "max":
            return max(values)
        if kind == "avg":
            return sum(values) / len(values)
        if kind == "stdev":
            mean = sum(values) / len(values)
            return math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        if kind == "percentile":
            ordered = sorted(values)
            rank = params[0] / 100 * (len(ordered) - 1)
            low = math.floor(rank)
            high = min(low + 1, len(ordered) - 1)
            return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))
        raise AssertionError(kind)

    def funnel(self, funnel: A.Funnel, group: list, step: int) -> int:
        reached = None
        for cond in funnel.steps[: step + 1]:
            ids = {self.expr(funnel.count_field, e) for e in group if self.cond(cond, e)} - {None}
            reached = ids if reached is None else reached & ids
        return len(reached or ())


# ---------------------------------------------------------------------------------------------- helpers
def arith(op: str, left: Any, right: Any) -> Any:
    """ADQL math on two values (ints stay ints; / and % by zero give null)."""
    if left is None or right is None:
        return None
    both_int = isinstance(left, int) and isinstance(right, int)
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    if right == 0:
        return None
    if op == "/":
        if both_int:
            quotient = abs(left) // abs(right)
            return quotient if (left >= 0) == (right >= 0) else -quotient
        return left / right
    if op == "%":
        remainder = abs(left) % abs(right)
        return remainder if left >= 0 else -remainder
    raise AssertionError(op)


def _compare(op: str, left: Any, right: Any) -> bool:
    if isinstance(left, str) != isinstance(right, str) or isinstance(left, bool) != isinstance(right, bool):
        return False
    return {"=": left == right, "<": left < right, "<=": left <= right, ">": left > right,
            ">=": left >= right}[op]  # fmt: skip


def _coerce(value: Any, kind: str) -> Any:
    """A literal read as a field's type, written independently of the plugin's ``coerce_literal`` (None when it
    cannot be read so; the schema check turns those into 400s before evaluation)."""
    if kind == "date":
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.replace("z", "Z"))
            except ValueError:
                return None
            if moment.tzinfo is None:
                moment = moment.replace(tzinfo=UTC)
            return int(moment.replace(microsecond=0).timestamp()) * 1000 + moment.microsecond // 1000
        return None if isinstance(value, bool) else int(value)
    if kind in ("integer", "float"):
        if isinstance(value, str):
            try:
                return int(value) if value.strip().lstrip("+-").isdigit() else float(value)
            except ValueError:
                return None
        return None if isinstance(value, bool) else value
    if kind == "boolean":
        if isinstance(value, str):
            return {"true": True, "false": False}.get(value.lower())
        return value if isinstance(value, bool) else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def like_regex(pattern: str) -> re.Pattern:
    """``*`` and ``%`` any run, ``?`` one character, the rest literal; case-insensitive, whole value."""
    parts = []
    for ch in pattern:
        parts.append(".*" if ch in "*%" else "." if ch == "?" else re.escape(ch))
    return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)
