"""The backend-neutral query as SQL: field access, filters, sort keys and cursor conditions.

Every rule is the one `gateway.query` documents, written over ``jsonb``:

* A field is a column or a path into ``data`` walked with ``->`` (objects only: an array is never
  indexed by a path segment). Its kind says what it can hold: ``int`` (times, never NULL), ``text`` (id,
  tenant, plugin, stream; never NULL), ``scalar`` (type/user_id/session_id: a jsonb scalar or NULL) or
  ``json`` (anything, arrays included).
* Comparable values are strings and numbers; booleans compare as 1/0 (`num`). On a ``json`` field a
  filter holds when any scalar element of an array does (``eq``/``in`` on strings use jsonb's ``?``/``?|``,
  which match a string or an array's string element). ``ne``/``not_in`` negate after COALESCE, so they hold
  for missing fields. Strings compare by code point (``COLLATE "C"``).
* A sort key becomes (rank, number, string): rank 0 for missing, 1 for numbers, 2 for strings, as the
  reference's `rank`; arrays sort by their smallest (ascending) or largest (descending) scalar element,
  picked in a LATERAL subquery. Ties go by ``seq`` in the last key's direction.

Values are bound as named parameters (`Compiler.params`); no user text is ever spliced into SQL.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from gateway.query import AllOf, AnyOf, Condition, Filter, Not, Query, Sort

from . import codec
from .reference import value_class

#: Top-level columns: SQL expression and kind.
COLUMNS = {
    "id": ("e.id", "text"),
    "type": ("e.type", "scalar"),
    "timestamp": ("e.timestamp", "int"),
    "received_at": ("e.received_at", "int"),
    "user_id": ("e.user_id", "scalar"),
    "session_id": ("e.session_id", "scalar"),
}
#: Fields with one value per stream: filters on them select streams (in Python, by the reference).
CONSTANT_FIELDS = ("tenant", "plugin", "stream")
SCALAR_TYPES = "('string', 'number', 'boolean')"
_RANGE = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}
_C = 'COLLATE "C"'


def num(x: str) -> str:
    """SQL: the number a jsonb value stands for (booleans as 1/0), else NULL."""
    return (f"(CASE jsonb_typeof({x}) WHEN 'number' THEN ({x})::numeric "
            f"WHEN 'boolean' THEN (CASE WHEN {x} = 'true'::jsonb THEN 1 ELSE 0 END) END)")


def text_of(x: str) -> str:
    """SQL: the string a jsonb value holds, else NULL."""
    return f"(CASE WHEN jsonb_typeof({x}) = 'string' THEN {x} #>> '{{}}' END)"


def elements(x: str) -> str:
    """SQL: a set of the jsonb values of a field (an array's elements, or the value itself) as ``v(j)``."""
    return (f"jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} "
            f"ELSE jsonb_build_array({x}) END) AS v(j)")


def each_value(x: str, columns: Callable[[str], str], keep: Callable[[str], str], distinct: bool = False) -> str:
    """SQL: a set of rows of `columns` over a jsonb field's values (for a LATERAL join): an array's
    elements passing `keep` (once per value with `distinct`), or the scalar itself when it passes `keep`.
    The scalar case costs no set-returning function (the common case: most fields are not arrays)."""
    elements_of = f"jsonb_array_elements(CASE WHEN jsonb_typeof({x}) = 'array' THEN {x} ELSE '[]'::jsonb END)"
    # The array branch's test on the field alone becomes a one-time filter: for a scalar, the set-returning
    # function (and DISTINCT's sort) never runs.
    return (f"(SELECT {'DISTINCT ' if distinct else ''}{columns('v.j')} FROM {elements_of} AS v(j) "
            f"WHERE jsonb_typeof({x}) = 'array' AND {keep('v.j')} "
            f"UNION ALL SELECT {columns(x)} WHERE jsonb_typeof({x}) <> 'array' AND {keep(x)})")


def per_event(x: str, aggregate: Callable[[str], str], scalar: str) -> str:
    """SQL: an aggregate of an array field's elements (`aggregate` of an element's SQL), or `scalar`
    for any other value (no subquery runs then)."""
    return (f"(CASE WHEN jsonb_typeof({x}) = 'array' THEN (SELECT {aggregate('v.j')} FROM jsonb_array_elements({x}) "
            f"AS v(j)) ELSE {scalar} END)")


class SortKey:
    """The SQL of one sort key: an optional LATERAL join and the (rank, number, string) expressions."""

    def __init__(self, sort: Sort, join: str, rank: str, number: str, string: str, kind: str) -> None:
        self.sort, self.join, self.rank, self.number, self.string, self.kind = sort, join, rank, number, string, kind

    def order(self) -> list[str]:
        """ORDER BY terms."""
        way = "DESC" if self.sort.descending else "ASC"
        if self.kind == "int":
            return [f"{self.number} {way}"]
        if self.kind == "text":
            return [f"{self.string} {_C} {way}"]
        return [f"{self.rank} {way}", f"{self.number} {way}", f"{self.string} {_C} {way}"]

    def columns(self) -> list[str]:
        """The three values selected with each row (to build the next page's cursor)."""
        return [self.rank, self.number, self.string]


def sort_value(rank: int, number: Any, string: str | None) -> Any:
    """The reference sort value of a row from its (rank, number, string) columns."""
    if rank == 1:
        return codec.number(number)
    if rank == 2:
        return codec.decode_str(string or "")
    return None


class Compiler:
    """SQL fragments of one query over ``events e``; parameters collect in `params`."""

    def __init__(self, query: Query, stream_names: Mapping[int, str]) -> None:
        self.query = query
        self.stream_names = stream_names
        self.params: dict[str, Any] = {}

    def bind(self, value: Any, cast: str = "") -> str:
        """A placeholder bound to `value` (with an optional ``::type`` cast)."""
        name = f"p{len(self.params)}"
        self.params[name] = value
        return f"%({name})s{cast}"

    # -- fields ------------------------------------------------------------------------------------
    def field(self, name: str) -> tuple[str, str]:
        """SQL expression and kind of a field reference."""
        if name.startswith("data."):
            path = "".join(f" -> {self.bind(codec.encode_str(key), '::text')}" for key in name.split(".")[1:])
            return f"(e.data{path})", "json"
        if name in COLUMNS:
            return COLUMNS[name]
        if name == "stream":
            cases = " ".join(f"WHEN {sid} THEN {self.bind(codec.encode_str(stream), '::text')}"
                             for sid, stream in self.stream_names.items())
            return (f"(CASE e.stream_id {cases} END)" if cases else "''::text"), "text"
        return self.bind(getattr(self.query, name), "::text"), "text"

    def any_value(self, x: str, kind: str, test: str) -> str:
        """SQL: `test` (with ``@X@`` standing for a jsonb value) holds for the field or any element."""
        if kind == "scalar":
            return f"COALESCE({test.replace('@X@', x)}, false)"
        return (f"(CASE jsonb_typeof({x}) WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) "
                f"AS v(j) WHERE {test.replace('@X@', 'v.j')}) ELSE COALESCE({test.replace('@X@', x)}, false) END)")

    # -- filters -----------------------------------------------------------------------------------
    def filters(self, filters: Sequence[Condition]) -> list[str]:
        """Conditions of a query's filters, but for top-level filters on constant fields (they select the
        streams, in Python)."""
        return [self.filter(f) for f in filters if not (isinstance(f, Filter) and f.field in CONSTANT_FIELDS)]

    def filter(self, flt: Condition) -> str:
        """The SQL condition of one filter or AND/OR/NOT tree of them (NULL where it does not hold, so
        negations COALESCE first)."""
        if isinstance(flt, AllOf):
            return "(" + " AND ".join(map(self.filter, flt.conditions)) + ")" if flt.conditions else "true"
        if isinstance(flt, AnyOf):
            return "(" + " OR ".join(map(self.filter, flt.conditions)) + ")" if flt.conditions else "false"
        if isinstance(flt, Not):
            return f"(NOT COALESCE({self.filter(flt.condition)}, false))"
        if not isinstance(flt, Filter) or not isinstance(flt.field, str):
            raise ValueError(f"not a native condition: {flt!r}")
        op, value = flt.op, flt.value
        if op in ("ne", "not_in"):
            positive = Filter(flt.field, "eq" if op == "ne" else "in", value)
            return f"(NOT COALESCE({self.filter(positive)}, false))"
        x, kind = self.field(flt.field)
        if op == "exists":
            if kind in ("int", "text"):
                return "true"
            if kind == "scalar":
                return f"({x} IS NOT NULL)"
            return (f"(CASE jsonb_typeof({x}) WHEN 'array' THEN EXISTS (SELECT 1 FROM jsonb_array_elements({x}) "
                    f"AS v(j) WHERE jsonb_typeof(v.j) <> 'null') WHEN 'null' THEN false ELSE {x} IS NOT NULL END)")
        if op in ("eq", "in"):
            values = [value] if op == "eq" else list(value)
            strings = list(dict.fromkeys(codec.encode_str(v) for v in values if isinstance(v, str)))
            numbers = [codec.decimal(v) for v in values if value_class(v) == "num"]
            parts = []
            if strings:
                parts.append(self._strings_equal(x, kind, strings))
            if numbers:
                parts.append(self._numbers_equal(x, kind, numbers))
            parts = [p for p in parts if p != "false"]
            return f"({' OR '.join(parts)})" if parts else "false"
        if op in _RANGE:
            cls = value_class(value)
            sql_op = _RANGE[op]
            if cls == "str":
                bound = self.bind(codec.encode_str(value), "::text")
                if kind == "int":
                    return "false"
                if kind == "text":
                    return f"({x} {_C} {sql_op} {bound})"
                return self.any_value(x, kind, f"({text_of('@X@')} {_C} {sql_op} {bound})")
            if cls == "num":
                if kind == "text":
                    return "false"
                if kind == "int":
                    return f"({x} {sql_op} {self.bind(codec.decimal(value), '::numeric')})"
                bound = self.bind(codec.decimal(value), "::numeric")
                return self.any_value(x, kind, f"({num('@X@')} {sql_op} {bound})")
            return "false"
        if op in ("prefix", "contains"):
            if not isinstance(value, str) or kind == "int":
                return "false"
            bound = self.bind(codec.encode_str(value), "::text")
            test = f"(starts_with(@S@, {bound}))" if op == "prefix" else f"(strpos(@S@, {bound}) > 0)"
            if kind == "text":
                return test.replace("@S@", x)
            return self.any_value(x, kind, test.replace("@S@", text_of("@X@")))
        raise ValueError(f"unknown filter operator [{op}]")

    def _strings_equal(self, x: str, kind: str, strings: list[str]) -> str:
        if kind == "int":
            return "false"
        if kind == "text":
            if len(strings) == 1:
                return f"({x} = {self.bind(strings[0], '::text')})"
            return f"({x} = ANY({self.bind(strings, '::text[]')}))"
        if kind == "scalar":  # plain equality on the column, so the (stream_id, type, ...) index serves
            texts = [json.dumps(s, ensure_ascii=False) for s in strings]
            if len(texts) == 1:
                return f"({x} = {self.bind(texts[0], '::jsonb')})"
            return f"({x} = ANY({self.bind(texts, '::text[]')}::jsonb[]))"
        if len(strings) == 1:
            test = f"{x} ? {self.bind(strings[0], '::text')}"
        else:
            test = f"{x} ?| {self.bind(strings, '::text[]')}"
        return f"(jsonb_typeof({x}) IN ('string', 'array') AND {test})"

    def _numbers_equal(self, x: str, kind: str, numbers: list[Any]) -> str:
        if kind == "text":
            return "false"
        if kind == "int":
            if len(numbers) == 1:
                return f"({x} = {self.bind(numbers[0], '::numeric')})"
            return f"({x} = ANY({self.bind(numbers, '::numeric[]')}))"
        bound = self.bind(numbers, "::numeric[]")
        return self.any_value(x, kind, f"({num('@X@')} = ANY({bound}))")

    # -- sorting and cursors -------------------------------------------------------------------------
    def sort_key(self, sort: Sort, alias: str) -> SortKey:
        """The SQL of a sort key (`alias` names its LATERAL join when it needs one)."""
        x, kind = self.field(sort.field)
        if kind == "int":
            return SortKey(sort, "", "1", x, "NULL::text", kind)
        if kind == "text":
            return SortKey(sort, "", "2", "NULL::numeric", x, kind)
        if kind == "scalar":
            rank = f"(CASE jsonb_typeof({x}) WHEN 'string' THEN 2 WHEN 'number' THEN 1 WHEN 'boolean' THEN 1 " \
                "ELSE 0 END)"
            return SortKey(sort, "", rank, num(x), text_of(x), kind)
        pick = "max" if sort.descending else "min"
        first, second = ("s", "n") if sort.descending else ("n", "s")
        rank = (f"CASE WHEN count(t.{first}) > 0 THEN {2 if first == 's' else 1} "
                f"WHEN count(t.{second}) > 0 THEN {2 if second == 's' else 1} ELSE 0 END")
        join = (f"CROSS JOIN LATERAL (SELECT {rank} AS r, {pick}(t.n) AS n, {pick}(t.s {_C}) AS s FROM "
                f"(SELECT {num('v.j')} AS n, {text_of('v.j')} AS s FROM {elements(x)}) AS t) AS {alias}")
        return SortKey(sort, join, f"{alias}.r", f"(CASE WHEN {alias}.r = 1 THEN {alias}.n END)",
                       f"(CASE WHEN {alias}.r = 2 THEN {alias}.s END)", kind)

    def after_cursor(self, keys: Sequence[SortKey], values: Sequence[Any], seq: int) -> str:
        """The condition selecting rows after a cursor position, in query order."""
        last_desc = bool(keys) and keys[-1].sort.descending
        plain = all(k.kind == "int" and k.sort.descending == last_desc for k in keys) and all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if plain:  # one row comparison: an index range scan on (stream_id, timestamp, seq)
            row = ", ".join([k.number for k in keys] + ["e.seq"])
            bound = ", ".join([self.bind(codec.decimal(v), "::numeric") if isinstance(v, float) else self.bind(v)
                               for v in values] + [self.bind(seq)])
            return f"(({row}) {'<' if last_desc else '>'} ({bound}))"
        branches: list[str] = []
        equal: list[str] = []
        for key, value in zip(keys, values, strict=True):
            if value is None:
                rc, column, bound = 0, "", ""
            elif isinstance(value, str):
                rc, column, bound = 2, f"{key.string} {_C}", self.bind(codec.encode_str(value), "::text")
            else:
                rc, column, bound = 1, key.number, self.bind(codec.decimal(value), "::numeric")
            if key.sort.descending:
                after = "false" if rc == 0 else f"({key.rank} < {rc} OR ({key.rank} = {rc} AND {column} < {bound}))"
            else:
                after = f"({key.rank} > 0)" if rc == 0 else \
                    f"({key.rank} > {rc} OR ({key.rank} = {rc} AND {column} > {bound}))"
            branches.append(" AND ".join([*equal, after]))
            equal.append(f"{key.rank} = {rc}" + (f" AND {column} = {bound}" if rc else ""))
        branches.append(" AND ".join([*equal, f"e.seq {'<' if last_desc else '>'} {self.bind(seq)}"]))
        return "(" + " OR ".join(f"({b})" for b in branches) + ")"
