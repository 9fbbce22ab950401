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
from lark.exceptions import UnexpectedInput, VisitError

from . import ast as A
from .errors import AdqlError, error_at, syntax_error
from .functions import WhereArg, build_call

MAX_QUERY_CHARS = 5_000
MAX_DEPTH = 200

__all__ = ["MAX_DEPTH", "MAX_QUERY_CHARS", "AdqlError", "error_at", "parse"]
@cache
def _terminals() -> dict[str, str]:
    return {t.name: t.pattern.value for t in _lark().terminals}


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
        raise syntax_error(text, exc, _terminals()) from None
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


def _pos(meta) -> A.Pos | None:
    if getattr(meta, "empty", True):
        return None
    return (meta.line, meta.column, meta.start_pos, meta.end_pos)


def _unquote(tok: Token) -> str:
    raw = tok.value
    if tok.type == "BQ_NAME":
        return raw[1:-1].replace("``", "`")
    quote = raw[0]
    body = raw[1:-1].replace(quote * 2, quote)
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), body)


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
            unit = A.TIME_UNIT_WORDS.get(unit_tok.value.lower())
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
        if first.type == "NAME" and first.value.lower() in A.KEYWORDS:
            raise AdqlError(f"{first.value} is a reserved word; write `{first.value}` to use it as a field name",
                            first.line, first.column)  # fmt: skip
        path = tuple(_unquote(t) if t.type == "BQ_NAME" else t.value for t in children)
        return A.Field(path=path, pos=_pos(meta))

    def args(self, meta, children):
        return tuple(children)

    def star_arg(self, meta, children):
        return A.Star(pos=_pos(meta))

    def where_arg(self, meta, children):
        return WhereArg(children[1], _pos(meta))

    def call(self, meta, children):
        name_tok, args = children
        return build_call(name_tok.value.lower(), name_tok, tuple(args or ()), self._subject, _pos(meta))

    # ------------------------------------------------------------------------------ helpers
    def _subject(self, expr):
        """A single-quoted reserved word in a field position names a field (the Events API docs' escape)."""
        if self.single_quoted.get(id(expr)) is expr and str(expr.value).lower() in A.RESERVED:
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
