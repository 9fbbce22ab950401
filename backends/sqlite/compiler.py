"""Compiling the neutral query into SQL fragments for the SQLite schema (`backends.sqlite.schema`).

Data fields are read with SQLite's JSON functions (``json_each`` when the stored value is an array), with
the comparison rules of `gateway.query.semantics`, unless the stream keeps the field in a typed column
(`backends.sqlite.typed`): then the column is read like a top-level field, from the typed table joined to
the events (alias ``t``) or alone in their place (alias ``e``, when the query needs nothing else). String
conditions on JSON fields are guarded by a substring pre-test on the stored text
(`gateway.query.checks.string_needles`), so most rows are rejected without parsing their document. Long
value lists are one bound JSON array matched as a set, and AND/OR trees are nested in balance, so no query
size meets SQLite's variable or expression-depth limits.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.events import EVENT_FIELDS
from gateway.query import Aggregation, AllOf, AnyOf, Condition, Filter, Not, Query, QueryError, Sort
from gateway.query.calendar import bucket_start, fixed_step
from gateway.query.checks import string_needles
from gateway.query.semantics import value_class

from .typed import TypedTable

NUM_TYPES = "('integer', 'real', 'true', 'false')"  # json_type() of numbers (booleans read as 1/0)
SQL_NUM_TYPES = "('integer', 'real')"  # typeof() of numbers
SCALAR_ELEMENT = "j.type NOT IN ('object', 'array', 'null')"
#: Longest value list bound value by value (``IN (?, ?, ...)``); longer ones are one JSON array.
INLINE_VALUES = 16


#: Top-level columns: SQL expression and what they can hold ("int" and "text" are never null).
COLUMNS = {
    "id": ("e.id", "text"),
    "type": ("e.type", "any"),
    "timestamp": ("e.timestamp", "int"),
    "received_at": ("e.received_at", "int"),
    "user_id": ("e.user_id", "any"),
    "session_id": ("e.session_id", "any"),
}
CONSTANT_FIELDS = ("tenant", "plugin", "stream")
assert set(COLUMNS) | set(CONSTANT_FIELDS) == set(EVENT_FIELDS)


def balanced(op: str, parts: Sequence[str]) -> str:
    """``(a op b op ...)`` nested as a balanced tree: SQLite parses a flat chain into a tree as deep as it
    is long and refuses depths over 1000 ("Expression tree is too large"); halves keep it logarithmic."""
    if len(parts) <= 8:
        return "(" + f" {op} ".join(parts) + ")"
    middle = len(parts) // 2
    return f"({balanced(op, parts[:middle])} {op} {balanced(op, parts[middle:])})"


def _json_safe(value: Any) -> bool:
    """Whether a value survives a JSON round trip through SQLite unchanged (finite numbers, strings)."""
    if isinstance(value, float):
        return math.isfinite(value)
    return not isinstance(value, int) or isinstance(value, bool) or -(2**63) <= value < 2**63


def json_path(field: str) -> str:
    """The SQL string literal of the JSON path of a ``data.`` field (``data.a.b`` -> ``'$."a"."b"'``)."""
    keys = field.split(".")[1:]
    if any('"' in key for key in keys):
        raise QueryError(f"field [{field}]: the SQLite backend cannot address keys containing '\"'")
    path = "$" + "".join(f'."{key}"' for key in keys)
    return "'" + path.replace("'", "''") + "'"


class Compiler:
    """Builds SQL fragments for one query; values are bound as named parameters in `params`."""

    def __init__(self, query: Query, stream_names: Mapping[int, str], typed: TypedTable | None = None,
                 alone: bool = False) -> None:
        self.query = query
        self.stream_names = stream_names
        self.params: dict[str, Any] = {}
        self.table = None if typed is None else typed.name
        self.alone = alone and typed is not None
        #: SQL of the data fields read from typed columns
        self.typed = {} if typed is None else {f: f"{'e' if self.alone else 't'}.{col}"
                                               for f, col in typed.columns.items()}

    @property
    def source(self) -> str:
        """The FROM clause: the events, joined with the typed table, or the typed table alone (as ``e``)."""
        if self.table is None:
            return "events e"
        if self.alone:
            return f"{self.table} e"
        return f"events e JOIN {self.table} t ON t.timestamp = e.timestamp AND t.seq = e.seq"

    def json_field(self, field: str) -> bool:
        """A data field read from the JSON document (no typed column stands for it)."""
        return field.startswith("data.") and field not in self.typed

    def bind(self, value: Any) -> str:
        """A placeholder bound to `value`."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return ":" + name

    def bind_list(self, values: Sequence[Any]) -> str:
        """Comma-separated placeholders for a list of values."""
        return ", ".join(self.bind(v) for v in values)

    def membership(self, values: Sequence[Any]) -> str:
        """The right side of a test against a list of values: ``= ?`` for one, ``IN (?, ...)`` for a few,
        and beyond `INLINE_VALUES` ``IN (SELECT value FROM json_each(?))`` over one bound JSON array: SQLite
        builds an index of it once per statement, so the cost per row does not grow with the list, and no
        list length reaches SQLite's limits on variables or expression depth. Values bind as they would one
        by one (text, integer, real; booleans as 1/0)."""
        if len(values) == 1:
            return f"= {self.bind(values[0])}"
        if len(values) <= INLINE_VALUES or not all(_json_safe(v) for v in values):
            return f"IN ({self.bind_list(values)})"
        return f"IN (SELECT value FROM json_each({self.bind(json.dumps(list(values)))}))"

    # -- field access ----------------------------------------------------------------------------
    def column(self, field: str) -> tuple[str, str]:
        """SQL expression and kind of a top-level field (constant fields become expressions too)."""
        if field in COLUMNS:
            return COLUMNS[field]
        if field in self.typed:
            return self.typed[field], "any"
        if field == "stream":
            cases = " ".join(f"WHEN {sid} THEN {self.bind(name)}" for sid, name in self.stream_names.items())
            return (f"(CASE e.stream_id {cases} END)" if cases else "NULL"), "any"
        return self.bind(getattr(self.query, field)), "any"

    @staticmethod
    def numeric(expr: str, kind: str) -> str:
        """The expression where it holds a number, else NULL."""
        if kind == "int":
            return expr
        if kind == "text":
            return "NULL"
        return f"(CASE WHEN typeof({expr}) IN ('integer', 'real') THEN {expr} END)"

    # -- filters ---------------------------------------------------------------------------------
    def filter(self, flt: Condition) -> str:
        """The SQL condition of one filter on a column or a data field, or of a tree of them (AND, OR, NOT).

        It may be NULL where it does not hold (NULL is false in WHERE) and stays plain where it can, so
        that ``type = ?`` or a timestamp range can use an index; negations therefore COALESCE first.
        """
        if isinstance(flt, AllOf):
            return balanced("AND", list(map(self.filter, flt.conditions))) if flt.conditions else "1"
        if isinstance(flt, AnyOf):
            return balanced("OR", list(map(self.filter, flt.conditions))) if flt.conditions else "0"
        if isinstance(flt, Not):
            return f"NOT COALESCE({self.filter(flt.condition)}, 0)"
        if flt.op == "ne":
            return f"NOT COALESCE({self.filter(Filter(flt.field, 'eq', flt.value))}, 0)"
        if flt.op == "not_in":
            return f"NOT COALESCE({self.filter(Filter(flt.field, 'in', flt.value))}, 0)"
        if self.json_field(flt.field):
            return self._data_filter(flt)
        expr, kind = self.column(flt.field)
        op, value = flt.op, flt.value
        if op == "exists":
            return "1" if kind in ("int", "text") else f"({expr} IS NOT NULL)"
        if op in ("eq", "in"):
            values = [value] if op == "eq" else list(value)
            wanted = {"int": "num", "text": "str"}.get(kind)
            values = [v for v in values if value_class(v) is not None and wanted in (None, value_class(v))]
            if not values:
                return "0"
            return f"{expr} {self.membership(values)}"
        return self._scalar_condition(expr, f"typeof({expr})", kind, op, value, sql_types=True)

    def _scalar_condition(self, expr: str, type_expr: str, kind: str, op: str, value: Any,
                          sql_types: bool) -> str:
        """Range, prefix and contains on one scalar; `type_expr` gives typeof()/json_type() of it."""
        cls = value_class(value)
        if op in ("prefix", "contains") and cls != "str":
            return "0"
        if cls is None or (kind == "int" and cls != "num") or (kind == "text" and cls != "str"):
            return "0"
        if cls == "str":
            guard = "" if kind == "text" else f"{type_expr} = 'text' AND "
        elif kind == "int":
            guard = ""
        else:
            guard = f"{type_expr} IN {SQL_NUM_TYPES if sql_types else NUM_TYPES} AND "
        if op == "prefix":
            return f"({guard}substr({expr}, 1, {len(value)}) = {self.bind(value)})"
        if op == "contains":
            return f"({guard}instr({expr}, {self.bind(value)}) > 0)"
        sql_op = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}[op]
        return f"({guard}{expr} {sql_op} {self.bind(value)})"

    def _data_filter(self, flt: Filter) -> str:
        """A filter on a data field: the scalar, or any scalar element when the value is an array."""
        data, path = "e.data", json_path(flt.field)
        jtype, jvalue = f"json_type({data}, {path})", f"json_extract({data}, {path})"
        each = f"json_each({data}, {path}) AS j"
        op, value = flt.op, flt.value
        if op == "exists":
            return (f"(CASE IFNULL({jtype}, 'null') WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} "
                    f"WHERE j.type <> 'null') WHEN 'null' THEN 0 ELSE 1 END)")
        if op in ("eq", "in"):
            values = [v for v in ([value] if op == "eq" else list(value)) if value_class(v) is not None]
            if not values:
                return "0"
            test = self.membership(values)
            condition = (f"(CASE {jtype} WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} WHERE "
                         f"{SCALAR_ELEMENT} AND j.value {test}) WHEN 'object' THEN 0 ELSE {jvalue} {test} END)")
            return self._prefiltered(flt, condition)
        scalar = self._scalar_condition(jvalue, jtype, "any", op, value, sql_types=False)
        element = self._scalar_condition("j.value", "j.type", "any", op, value, sql_types=False)
        if scalar == "0":
            return "0"
        condition = (f"(CASE {jtype} WHEN 'array' THEN EXISTS (SELECT 1 FROM {each} WHERE {element}) "
                     f"WHEN 'object' THEN 0 ELSE {scalar} END)")
        return self._prefiltered(flt, condition)

    def _prefiltered(self, flt: Filter, condition: str) -> str:
        """Guard a condition on a data field with a substring test on the stored JSON text when the filter
        allows one (`string_needles`), so that rows which cannot match are rejected without parsing their
        document."""
        needles = string_needles(flt)
        if not needles:
            return condition
        test = balanced("OR", [f"instr(e.data, {self.bind(needle)}) > 0" for needle in needles])
        return f"({test} AND {condition})"

    # -- sorting ---------------------------------------------------------------------------------
    def sort_expr(self, sort: Sort) -> tuple[str, bool]:
        """The SQL sort value of a key (arrays: smallest element ascending, largest descending) and
        whether it is never NULL."""
        if not self.json_field(sort.field):
            expr, kind = self.column(sort.field)
            return expr, kind in ("int", "text")
        data, path = "e.data", json_path(sort.field)
        pick = "max" if sort.descending else "min"
        return (f"(CASE json_type({data}, {path}) WHEN 'array' THEN (SELECT {pick}(j.value) FROM "
                f"json_each({data}, {path}) AS j WHERE {SCALAR_ELEMENT}) WHEN 'object' THEN NULL "
                f"ELSE json_extract({data}, {path}) END)"), False

    def after_cursor(self, exprs: Sequence[tuple[str, bool]], sorts: Sequence[Sort], values: Sequence[Any],
                     seq: int) -> str:
        """The condition selecting rows after the cursor position, in query order."""
        last_desc = bool(sorts) and sorts[-1].descending
        if all(not_null for _, not_null in exprs) and all(s.descending == last_desc for s in sorts) \
                and None not in values:
            row = ", ".join([e for e, _ in exprs] + ["e.seq"])
            bound = ", ".join([self.bind(v) for v in values] + [self.bind(seq)])
            return f"(({row}) {'<' if last_desc else '>'} ({bound}))"
        branches, equal = [], []
        for (expr, _), sort, value in zip(exprs, sorts, values, strict=True):
            if value is None:
                after = "0" if sort.descending else f"{expr} IS NOT NULL"
                same = f"{expr} IS NULL"
            else:
                bound = self.bind(value)
                after = f"({expr} < {bound} OR {expr} IS NULL)" if sort.descending else f"{expr} > {bound}"
                same = f"{expr} = {bound}"
            branches.append(" AND ".join([*equal, after]))
            equal.append(same)
        branches.append(" AND ".join([*equal, f"e.seq {'<' if last_desc else '>'} {self.bind(seq)}"]))
        return "(" + " OR ".join(f"({b})" for b in branches) + ")"

    # -- aggregations ----------------------------------------------------------------------------
    def values_join(self, field: str, alias: str, numeric: bool) -> tuple[str, str]:
        """A join expanding a data field into its scalar values (one row per array element)."""
        types = f"{alias}.type IN {NUM_TYPES}" if numeric else \
            f"{alias}.type NOT IN ('object', 'array', 'null')"
        join = (f"JOIN json_each(e.data, {json_path(field)}) AS {alias} "
                f"ON ({alias}.key IS NULL OR typeof({alias}.key) = 'integer') AND {types}")
        return join, f"{alias}.value"

    def metric_columns(self, agg: Aggregation) -> list[str]:
        """SQL aggregate expressions for a metric computable without expanding arrays into rows."""
        if agg.kind == "count" and agg.field is None:
            return ["count(*)"]
        assert agg.field is not None
        if not self.json_field(agg.field):
            expr, kind = self.column(agg.field)
            number = self.numeric(expr, kind)
            return {
                "count": [f"sum({expr} IS NOT NULL)"],
                "sum": [f"sum({number})"],
                "avg": [f"sum({number})", f"count({number})"],
                "min": [f"min({number})"],
                "max": [f"max({number})"],
                "distinct_count": [f"count(DISTINCT {expr})"],
            }[agg.kind]
        data, path = "e.data", json_path(agg.field)
        if agg.kind == "count":
            return [f"sum({self._data_filter(Filter(agg.field, 'exists'))})"]

        def per_event(fn: str, scalar: str) -> str:
            return (f"(CASE json_type({data}, {path}) WHEN 'array' THEN (SELECT {fn} FROM json_each({data}, "
                    f"{path}) AS j WHERE j.type IN {NUM_TYPES}) WHEN 'integer' THEN {scalar} WHEN 'real' THEN "
                    f"{scalar} WHEN 'true' THEN {scalar} WHEN 'false' THEN {scalar} END)")

        value = f"json_extract({data}, {path})"
        return {
            "sum": [f"sum({per_event('sum(j.value)', value)})"],
            "avg": [f"sum({per_event('sum(j.value)', value)})", f"sum({per_event('count(*)', '1')})"],
            "min": [f"min({per_event('min(j.value)', value)})"],
            "max": [f"max({per_event('max(j.value)', value)})"],
        }[agg.kind]

    def bucket_expr(self, value: str, interval: str | int) -> str:
        """The SQL start (epoch ms, UTC) of the date-histogram bucket of an integer ms expression."""
        fixed = fixed_step(interval)
        if fixed is not None:
            step, origin = fixed
            shifted = f"({value} - ({origin}))" if origin else value
            return f"({value} - ((({shifted}) % {step}) + {step}) % {step})"
        seconds = f"(({value} - ((({value}) % 1000) + 1000) % 1000) / 1000)"
        start = {"month": "start of month", "year": "start of year"}[interval]
        return f"(CAST(strftime('%s', {seconds}, 'unixepoch', '{start}') AS INTEGER) * 1000)"


class KeySpec:
    """A bucket aggregation as a grouping key: its SQL expression, join, condition and kept keys."""

    def __init__(self, agg: Aggregation, expr: str, join: str = "", cond: str = "",
                 fold: Callable[[Any], Any] | None = None) -> None:
        self.agg = agg
        self.expr = expr
        self.join = join
        self.cond = cond
        self.selected: list[Any] | None = None
        #: Maps a value of `expr` to the bucket key when `expr` groups finer than the buckets (days).
        self.fold = fold


def day_folder(interval: str | int) -> Callable[[int], int]:
    """Day start (epoch ms) -> start of its calendar bucket, memoized (one datetime computation per day)."""
    starts: dict[int, int] = {}

    def fold(day_start: int) -> int:
        key = starts.get(day_start)
        if key is None:
            key = starts[day_start] = bucket_start(day_start, interval)
        return key

    return fold


def time_leaf(agg: Aggregation) -> bool:
    """A histogram of the event or receipt time without sub-aggregations: one key for every event."""
    return agg.kind == "date_histogram" and not agg.aggs and agg.source in ("timestamp", "received_at")
