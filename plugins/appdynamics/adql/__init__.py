"""ADQL: grammar (``grammar.lark``), parser (text -> AST), AST node types and the semantic pass."""

from .parser import MAX_QUERY_CHARS, AdqlError, parse

__all__ = ["MAX_QUERY_CHARS", "AdqlError", "parse"]
