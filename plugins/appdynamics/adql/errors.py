"""ADQL errors: the exception every invalid query raises, and syntax errors worded for people who write SQL.

Why a module of its own: the parser, the function builders and the semantic pass all raise :class:`AdqlError`
with a line and column; turning lark's exceptions into clear messages (``GROUP BY``, ``SINCE 1 hour ago``,
reserved words, unterminated strings) is a job of its own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast as A

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


def syntax_error(text: str, exc: UnexpectedInput, terminals: Mapping[str, str]) -> AdqlError:
    """A lark parse failure as an :class:`AdqlError` at the right line and column. ``terminals`` maps terminal
    names to their patterns (to word what was expected)."""
    line, column = getattr(exc, "line", 1) or 1, getattr(exc, "column", 1) or 1
    if isinstance(exc, UnexpectedEOF) or (isinstance(exc, UnexpectedToken) and exc.token.type == "$END"):
        if isinstance(exc, UnexpectedToken):
            line, column = _end_position(text)
        return AdqlError(f"the query ends too early; expected {_expected(exc, terminals)}", line, column)
    offset = exc.pos_in_stream if exc.pos_in_stream is not None else 0
    word = re.match(r"\w*", text[offset:]).group(0).lower()
    before = text[:offset].rstrip().lower()
    history = getattr(exc, "token_history", None) or []
    last = history[-1] if history else None
    if last is not None and last.type == "NAME" and last.value.lower() in A.KEYWORDS and word != "group":
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
        msg = f"unexpected character {text[offset]!r}; expected {_expected(exc, terminals)}"
    else:
        token = exc.token if isinstance(exc, UnexpectedToken) else None
        shown = token.value if token is not None else text[offset : offset + 10]
        msg = f"unexpected {shown!r}; expected {_expected(exc, terminals)}"
    return AdqlError(msg, line, column)


def _end_position(text: str) -> tuple[int, int]:
    lines = text.split("\n")
    return len(lines), len(lines[-1]) + 1


def _expected(exc: UnexpectedInput, terminals: Mapping[str, str]) -> str:
    names = sorted(getattr(exc, "expected", None) or getattr(exc, "allowed", None) or ())
    words = []
    for name in names:
        readable = _READABLE.get(name, name if name.isupper() and len(name) > 1 else None)
        if readable is None:
            readable = repr(terminals[name]) if name in terminals else name
        if readable not in words:
            words.append(readable)
    if not words:
        return "something else"
    return ", ".join(words[:10]) + (", ..." if len(words) > 10 else "")
