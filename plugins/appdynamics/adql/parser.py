"""ADQL text -> :class:`~.ast.Select`, with errors that name the line and column.

Why here: one LALR(1) lark grammar (``grammar.lark``) does all lexing and parsing; this module only turns the
lark tree into the frozen AST, checks what a context-free grammar cannot (function arity, time units, literal
patterns) and words errors for people who write SQL (``GROUP BY``, ``SINCE 1 hour ago``). The parser is built
once per process; parse time is linear in the query length (5,000 characters at most).
"""

from __future__ import annotations

import math
import re
from functools import cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from . import ast as A

MAX_QUERY_CHARS = 5_000
MAX_DEPTH = 200
#: Words the docs reserve; ``'between'`` in single quotes is a field name in a field position (see _subject).
RESERVED = frozenset(
    ("select", "from", "where", "orderby", "and", "or", "exists", "not", "like", "regex", "regexp", "compare", "list",
     "in", "between", "count", "distinct", "min", "max", "stats", "sum", "avg", "stdev", "filter", "percentile",
     "range", "series", "substring", "indexof", "length", "trim", "concat", "now", "having", "since", "until",
     "limit", "order", "by", "as", "asc", "desc", "is", "null")
)  # fmt: skip
#: The grammar's own keywords: never a bare field name (a later path segment, ``x.from``, is fine).
KEYWORDS = frozenset(
    ("select", "distinct", "from", "where", "since", "until", "having", "order", "by", "orderby", "asc", "desc",
     "limit", "as", "and", "or", "not", "in", "between", "like", "regexp", "regex", "is", "null", "true", "false")
)  # fmt: skip
_UNITS = {
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "week": "w", "weeks": "w",
}  # fmt: skip
_SERIES_INTERVAL = re.compile(r"\s*(\d+)\s*([a-zA-Z]+)\s*")
_SERIES_UNITS = {**_UNITS, "s": "s", "sec": "s", "second": "s", "seconds": "s"}
_READABLE = {
    "NAME": "a name", "BQ_NAME": "a `quoted name`", "STRING_SQ": "a 'string'", "STRING_DQ": 'a "string"',
    "NUMBER": "a number", "INT": "an integer", "COMP_OP": "a comparison", "LPAR": "'('", "RPAR": "')'",
    "COMMA": "','", "STAR": "'*'", "ORDER_BY": "ORDER BY", "$END": "end of query", "DOT": "'.'",
    "PLUS": "'+'", "MINUS": "'-'", "SLASH": "'/'", "PERCENT": "'%'", "OPEN_BRACKET": "'['", "RSQB": "']'",
}  # fmt: skip


class AdqlError(ValueError):
    """A query that is not valid ADQL. ``line``/``column`` are 1-based and point at the offending text."""

    def __init__(self, message: str, line: int = 1, column: int = 1) -> None:
        super().__init__(f"{message} (line {line}, column {column})")
        self.reason = message
        self.line = line
        self.column = column


def error_at(message: str, node: A.Node | None) -> AdqlError:
    """An :class:`AdqlError` placed at a node's position (line 1, column 1 when it has none)."""
    if node is not None and node.pos is not None:
        return AdqlError(message, node.pos[0], node.pos[1])
    return AdqlError(message)


@cache
def _lark() -> Lark:
    grammar = (Path(__file__).parent / "grammar.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", lexer="contextual", propagate_positions=True, maybe_placeholders=True)


def parse(text: str) -> A.Select:
    """Parse one ADQL statement. Raises :class:`AdqlError` for any invalid input."""
    if not isinstance(text, str):
        raise AdqlError("the query must be text")
    if len(text) > MAX_QUERY_CHARS:
        line = text.count("\n", 0, MAX_QUERY_CHARS) + 1
        column = MAX_QUERY_CHARS - (text.rfind("\n", 0, MAX_QUERY_CHARS) + 1) + 1
        raise AdqlError(f"the query is {len(text):,} characters long; ADQL allows at most {MAX_QUERY_CHARS:,}",
                        line, column)  # fmt: skip
    if not text.strip():
        raise AdqlError("the query is empty; expected SELECT ... FROM ...")
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    _check_depth(tree)
    try:
        return _ToAst(text).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, AdqlError):
            raise exc.orig_exc from None
        raise


def _check_depth(tree: Tree) -> None:
    """Refuse trees deeper than :data:`MAX_DEPTH` (checked without recursion), so that every later recursive
    walk of the AST stays far from Python's recursion limit."""
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_DEPTH:
            meta = node.meta
            line, column = (meta.line, meta.column) if not meta.empty else (1, 1)
            raise AdqlError(f"the query nests expressions more than {MAX_DEPTH} levels deep", line, column)
        stack.extend((child, depth + 1) for child in node.children if isinstance(child, Tree))


def _syntax_error(text: str, exc: UnexpectedInput) -> AdqlError:
    line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if isinstance(exc, UnexpectedToken):
            line, column = _end_position(text)
        return AdqlError(f"the query ends too early; expected {_expected(exc)}", line, column)
    offset = exc.pos_in_stream if exc.pos_in_stream is not None else 0
    word = re.match(r"\w*", text[offset:]).group(0).lower()
    before = text[:offset].rstrip().lower()
    history = getattr(exc, "token_history", None) or []
    last = history[-1] if history else None
    if last is not None and last.type == "NAME" and last.value.lower() in KEYWORDS and word != "group":
        return AdqlError(f"{last.value} is a reserved word, read here as a name; write `{last.value}` if it is one",
                         last.line, last.column)  # fmt: skip
    if word == "group":
        msg = "GROUP BY is not ADQL: fields listed beside aggregate functions in SELECT are the group-by terms"
    elif word == "ago":
        msg = "'ago' is not ADQL: write SINCE 1 hour (relative to now) or SINCE <epoch ms>"
    elif before.endswith(("since", "until")) or re.search(r"(since|until)\s+\d+\s+\w+$", before):
        msg = "SINCE/UNTIL take an integer and an optional unit (m, h, d, w) or epoch milliseconds"
    elif isinstance(exc, UnexpectedCharacters) and text[offset] in "'\"`":
        what = "back-quoted name" if text[offset] == "`" else "string"
        msg = f"unterminated {what}: no closing {text[offset]} after this one"
    elif isinstance(exc, UnexpectedCharacters):
        msg = f"unexpected character {text[offset]!r}; expected {_expected(exc)}"
    else:
        token = exc.token if isinstance(exc, UnexpectedToken) else None
        shown = token.value if token is not None else text[offset : offset + 10]
        msg = f"unexpected {shown!r}; expected {_expected(exc)}"
    return AdqlError(msg, line, column)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _expected(exc: UnexpectedInput) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    words = []
    for name in names:
        readable = _READABLE.get(name, name if name.isupper() and len(name) > 1 else None)
        if readable is None:
            term = next((t for t in _lark().terminals if t.name == name), None)
            readable = repr(term.pattern.value) if term is not None else name
        if readable not in words:
            words.append(readable)
    if not words:
        return "something else"
    return ", ".join(words[:10]) + (", ..." if len(words) > 10 else "")


def _pos(meta) -> A.Pos | None:
    if getattr(meta, "empty", True):
        return None
    return (meta.line, meta.column, meta.start_pos, meta.end_pos)


def _tok_pos(tok: Token) -> A.Pos:
    return (tok.line, tok.column, tok.start_pos, tok.end_pos)


def _unquote(tok: Token) -> str:
    raw = tok.value
    if tok.type == "BQ_NAME":
        return raw[1:-1].replace("``", "`")
    quote = raw[0]
    body = raw[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


class _WhereArg:
    """``WHERE cond`` inside a function's arguments (only ``filter`` takes one)."""

    def __init__(self, cond: A.Cond, pos: A.Pos | None) -> None:
        self.cond, self.pos = cond, pos


@v_args(meta=True)
class _ToAst(Transformer):
    """lark tree -> AST. Keyword tokens arrive as children and are skipped by type."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.single_quoted: dict[int, A.Literal] = {}  # Literals written in single quotes, by id (kept alive)

    # ------------------------------------------------------------------------------ statement
    def start(self, meta, children):
        star, distinct, items = children[1]
        clauses = dict(c for c in children[4:] if c is not None)
        since, until = clauses.get("since", (None, None))
        return A.Select(
            items=items,
            from_schema=children[3],
            star=star,
            distinct=distinct,
            where=clauses.get("where"),
            since=since,
            until=until,
            having=clauses.get("having"),
            order_by=clauses.get("order", ()),
            limits=clauses.get("limit", ()),
            text=self.text,
            pos=_pos(meta),
        )

    def select_star(self, meta, children):
        return (True, False, ())

    def select_items(self, meta, children):
        distinct = children[0] is not None
        return (False, distinct, tuple(children[1:]))

    def select_item(self, meta, children):
        expr, as_tok, alias = children
        expr = self._subject(expr)
        end = as_tok.start_pos if as_tok is not None else meta.end_pos
        text = _strip_parens(self.text[meta.start_pos : end].strip())
        return A.SelectItem(expr=expr, alias=alias, text=text, pos=_pos(meta))

    def alias(self, meta, children):
        return _unquote(children[0]) if children[0].type != "NAME" else children[0].value

    def schema_name(self, meta, children):
        tok = children[0]
        return _unquote(tok) if tok.type == "BQ_NAME" else tok.value

    def where_clause(self, meta, children):
        return ("where", children[1])

    def having_clause(self, meta, children):
        return ("having", children[1])

    def since_clause(self, meta, children):
        values = [c for c in children if isinstance(c, A.TimeValue)]
        return ("since", (values[0], values[1] if len(values) > 1 else None))

    def time_value(self, meta, children):
        amount_tok, unit_tok = children
        unit = None
        if unit_tok is not None:
            unit = _UNITS.get(unit_tok.value.lower())
            if unit is None:
                raise AdqlError(
                    f"unknown time unit {unit_tok.value!r}; use m, h, d or w (minute(s), hour(s), day(s), week(s))",
                    unit_tok.line,
                    unit_tok.column,
                )
        amount = int(amount_tok.value)
        if amount >= 2**53:
            raise AdqlError(f"the time value {amount} is out of range", amount_tok.line, amount_tok.column)
        return A.TimeValue(amount=amount, unit=unit, pos=_pos(meta))

    def order_clause(self, meta, children):
        return ("order", tuple(children[1:]))

    def order_key(self, meta, children):
        expr, direction = children
        descending = direction is not None and direction.type == "DESC"
        return A.OrderKey(expr=self._subject(expr), descending=descending, pos=_pos(meta))

    def limit_clause(self, meta, children):
        return ("limit", tuple(int(t.value) for t in children[1:]))

    # ------------------------------------------------------------------------------ conditions
    def or_expr(self, meta, children):
        return A.Or(operands=tuple(c for c in children if not isinstance(c, Token)), pos=_pos(meta))

    def and_expr(self, meta, children):
        return A.And(operands=tuple(c for c in children if not isinstance(c, Token)), pos=_pos(meta))

    def not_(self, meta, children):
        return A.Not(operand=children[1], pos=_pos(meta))

    def compare(self, meta, children):
        left, op, right = children
        return A.Compare(
            op="!=" if op.value == "<>" else op.value, left=self._subject(left), right=right, pos=_pos(meta)
        )

    def in_list(self, meta, children):
        expr, negated = children[0], children[1] is not None
        values = tuple(c for c in children[3:])
        return A.InList(expr=self._subject(expr), values=values, negated=negated, pos=_pos(meta))

    def between(self, meta, children):
        expr, not_tok, _kw, low, _and, high = children
        return A.Between(expr=self._subject(expr), low=low, high=high, negated=not_tok is not None, pos=_pos(meta))

    def between_brackets(self, meta, children):
        expr, not_tok, _kw, _open, low, high, close = children
        return A.Between(
            expr=self._subject(expr),
            low=low,
            high=high,
            low_inclusive=True,
            high_inclusive=close == "]",
            negated=not_tok is not None,
            pos=_pos(meta),
        )

    def between_parens(self, meta, children):
        expr, not_tok, _kw, low, high, close = children
        return A.Between(
            expr=self._subject(expr),
            low=low,
            high=high,
            low_inclusive=False,
            high_inclusive=close == "]",
            negated=not_tok is not None,
            pos=_pos(meta),
        )

    def close(self, meta, children):
        return children[0].value

    def bound_number(self, meta, children):
        return A.Literal(value=_number(children[0]), pos=_pos(meta))

    def bound_negative(self, meta, children):
        return A.Literal(value=-_number(children[0]), pos=_pos(meta))

    def bound_string(self, meta, children):
        return A.Literal(value=_unquote(children[0]), pos=_pos(meta))

    def like(self, meta, children):
        expr, not_tok, _kw, pattern = children
        return A.Like(
            expr=self._subject(expr),
            pattern=self._pattern(pattern, "LIKE"),
            negated=not_tok is not None,
            pos=_pos(meta),
        )

    def regexp(self, meta, children):
        expr, not_tok, _kw, pattern = children
        text = self._pattern(pattern, "REGEXP")
        try:
            re.compile(text)
        except re.error as exc:
            raise error_at(f"REGEXP pattern {text!r} is not a valid regular expression: {exc}", pattern) from None
        return A.Regexp(expr=self._subject(expr), pattern=text, negated=not_tok is not None, pos=_pos(meta))

    def is_null(self, meta, children):
        expr, _is, not_tok, _null = children
        return A.IsNull(expr=self._subject(expr), negated=not_tok is not None, pos=_pos(meta))

    # ------------------------------------------------------------------------------ expressions
    def add(self, meta, children):
        return A.BinaryOp(op="+", left=children[0], right=children[1], pos=_pos(meta))

    def sub(self, meta, children):
        return A.BinaryOp(op="-", left=children[0], right=children[1], pos=_pos(meta))

    def mul(self, meta, children):
        return A.BinaryOp(op="*", left=children[0], right=children[1], pos=_pos(meta))

    def div(self, meta, children):
        return A.BinaryOp(op="/", left=children[0], right=children[1], pos=_pos(meta))

    def mod(self, meta, children):
        return A.BinaryOp(op="%", left=children[0], right=children[1], pos=_pos(meta))

    def neg(self, meta, children):
        operand = children[0]
        if (
            isinstance(operand, A.Literal)
            and isinstance(operand.value, int | float)
            and not isinstance(operand.value, bool)
        ):
            return A.Literal(value=-operand.value, pos=_pos(meta))
        return A.Negate(operand=operand, pos=_pos(meta))

    def number(self, meta, children):
        return A.Literal(value=_number(children[0]), pos=_pos(meta))

    def string_sq(self, meta, children):
        lit = A.Literal(value=_unquote(children[0]), pos=_pos(meta))
        self.single_quoted[id(lit)] = lit
        return lit

    def string_dq(self, meta, children):
        return A.Literal(value=_unquote(children[0]), pos=_pos(meta))

    def true(self, meta, children):
        return A.Literal(value=True, pos=_pos(meta))

    def false(self, meta, children):
        return A.Literal(value=False, pos=_pos(meta))

    def field(self, meta, children):
        first = children[0]
        if first.type == "NAME" and first.value.lower() in KEYWORDS:
            raise AdqlError(f"{first.value} is a reserved word; write `{first.value}` to use it as a field name",
                            first.line, first.column)  # fmt: skip
        path = tuple(_unquote(t) if t.type == "BQ_NAME" else t.value for t in children)
        return A.Field(path=path, pos=_pos(meta))

    def args(self, meta, children):
        return tuple(children)

    def star_arg(self, meta, children):
        return A.Star(pos=_pos(meta))

    def where_arg(self, meta, children):
        return _WhereArg(children[1], _pos(meta))

    def call(self, meta, children):
        name_tok, args = children
        return _build_call(name_tok.value.lower(), name_tok, tuple(args or ()), self, _pos(meta))

    # ------------------------------------------------------------------------------ helpers
    def _subject(self, expr):
        """A single-quoted reserved word in a field position names a field (the Events API docs' escape)."""
        if self.single_quoted.get(id(expr)) is expr and str(expr.value).lower() in RESERVED:
            return A.Field(path=(expr.value,), pos=expr.pos)
        return expr

    def _pattern(self, node, operator: str) -> str:
        if not isinstance(node, A.Literal) or not isinstance(node.value, str):
            raise error_at(f"{operator} needs a quoted string pattern", node)
        return node.value


def _strip_parens(text: str) -> str:
    """``(x)`` -> ``x`` when the parentheses wrap the whole text (``distinct(x)`` labels its column ``x``)."""
    while text.startswith("(") and text.endswith(")"):
        depth = 0
        for i, ch in enumerate(text):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(text) - 1:
                return text
        text = text[1:-1].strip()
    return text


def _number(tok: Token) -> int | float:
    """A numeric literal; out of the 64-bit integer range or not finite -> error at the token."""
    raw = tok.value
    value = float(raw) if any(c in raw for c in ".eE") else int(raw)
    if (isinstance(value, int) and value >= 2**63) or (isinstance(value, float) and not math.isfinite(value)):
        raise AdqlError(f"the number {raw} is out of range", tok.line, tok.column)
    return value


def _build_call(name: str, tok: Token, args: tuple, tr: _ToAst, pos: A.Pos | None) -> A.Node:
    """A function call by name: metric, bucketing, modifier, funnel or scalar."""
    where_args = [a for a in args if isinstance(a, _WhereArg)]
    if where_args and name != "filter":
        raise AdqlError(f"WHERE is only allowed inside filter(...), not in {name}(...)", tok.line, tok.column)
    if any(isinstance(a, A.Star) for a in args) and not (name == "count" and len(args) == 1):
        raise AdqlError("'*' is only allowed as count(*)", tok.line, tok.column)

    def need(low: int, high: int | None, shape: str) -> None:
        if len(args) < low or (high is not None and len(args) > high):
            raise AdqlError(f"{name}() takes {shape}; got {len(args)} argument(s)", tok.line, tok.column)

    if name in A.AGGREGATE_KINDS:
        if name == "percentile":
            need(2, None, "a field and one or more percentiles, e.g. percentile(responseTime, 50, 90)")
            for p in args[1:]:
                if not (isinstance(p, A.Literal) and _is_num(p.value) and 0 < p.value <= 100):
                    raise error_at("percentile() values must be numbers above 0 and at most 100", p)
        else:
            need(1, 1, "exactly one argument")
        return A.Aggregate(kind=name, args=(tr._subject(args[0]), *args[1:]), pos=pos)
    if name == "filter":
        need(2, 2, "an aggregate and a WHERE condition, e.g. filter(count(*), WHERE x = 1)")
        if not isinstance(args[1], _WhereArg):
            raise AdqlError("filter()'s second argument must start with WHERE", tok.line, tok.column)
        inner, cond = args[0], args[1].cond
        if not any(isinstance(n, A.Aggregate) for n in A.walk(inner)):
            raise error_at("filter()'s first argument must be a metric function such as count(*)", inner)
        return _apply_filter(inner, cond)
    if name == "series":
        need(2, 2, "a field and an interval, e.g. series(eventTimestamp, '1m') or series(price, 10)")
        return _series(tr._subject(args[0]), args[1], pos)
    if name == "range":
        need(2, None, "a field and ascending bucket bounds, e.g. range(responseTime, 100, 500, 1000)")
        bounds = []
        for b in args[1:]:
            if not (isinstance(b, A.Literal) and _is_num(b.value)):
                raise error_at("range() bounds must be numbers", b)
            if bounds and b.value <= bounds[-1]:
                raise error_at("range() bounds must be strictly ascending", b)
            bounds.append(b.value)
        return A.RangeBuckets(expr=tr._subject(args[0]), bounds=tuple(bounds), pos=pos)
    if name == "funnel":
        need(2, None, "a count field and one or more step conditions")
        return A.Funnel(count_field=tr._subject(args[0]), steps=tuple(args[1:]), pos=pos)
    if name in A.SCALAR_FUNCTIONS:
        arity = {
            "substring": (2, 3),
            "indexof": (2, 2),
            "length": (1, 1),
            "trim": (1, 1),
            "concat": (2, None),
            "now": (0, 0),
        }[name]
        need(
            arity[0],
            arity[1],
            {
                "substring": "(text, start[, length])",
                "indexof": "(text, search)",
                "length": "(text)",
                "trim": "(text)",
                "concat": "(text, text, ...)",
                "now": "no arguments",
            }[name],
        )
        return A.FuncCall(name=name, args=tuple(tr._subject(a) if i == 0 else a for i, a in enumerate(args)), pos=pos)
    if name == "distinct":
        raise AdqlError("DISTINCT must come right after SELECT", tok.line, tok.column)
    if name == "exists":
        raise AdqlError("EXISTS is reserved but not supported; use IS NOT NULL", tok.line, tok.column)
    raise AdqlError(f"unknown function {tok.value}()", tok.line, tok.column)


def _is_num(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _series(expr: A.Expr, interval: A.Node, pos: A.Pos | None) -> A.Series:
    if isinstance(interval, A.Literal) and isinstance(interval.value, str):
        m = _SERIES_INTERVAL.fullmatch(interval.value)
        unit = _SERIES_UNITS.get(m.group(2).lower()) if m else None
        if m is None or unit is None or int(m.group(1)) <= 0:
            raise error_at(
                f"series() interval {interval.value!r} must look like '30s', '1m', '6h', '1d' or '1w'", interval
            )
        return A.Series(expr=expr, interval=int(m.group(1)) * A.TIME_UNITS_MS[unit], time=True, pos=pos)
    if isinstance(interval, A.Literal) and _is_num(interval.value) and interval.value > 0:
        return A.Series(expr=expr, interval=interval.value, time=False, pos=pos)
    raise error_at("series() interval must be a time string like '1m' or a positive number", interval)


def _apply_filter(node: A.Node, cond: A.Cond) -> A.Node:
    """Attach ``cond`` to every aggregate inside ``node`` (ANDed with a filter it already has)."""
    if isinstance(node, A.Aggregate):
        merged = cond if node.filter is None else A.And(operands=(node.filter, cond), pos=cond.pos)
        return A.Aggregate(kind=node.kind, args=node.args, filter=merged, pos=node.pos)
    if isinstance(node, A.BinaryOp):
        return A.BinaryOp(
            op=node.op, left=_apply_filter(node.left, cond), right=_apply_filter(node.right, cond), pos=node.pos
        )
    if isinstance(node, A.Negate):
        return A.Negate(operand=_apply_filter(node.operand, cond), pos=node.pos)
    return node
