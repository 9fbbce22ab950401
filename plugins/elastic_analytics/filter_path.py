"""Elasticsearch's ``filter_path`` response filtering: keep only the leaves the client asked for.

``filter_path=accepted,event.session.*`` keeps those paths; ``*`` matches within one key, ``**`` any depth;
a leading ``-`` excludes instead. Objects emptied by filtering disappear, as in ES.
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Any

_DROP = object()


def apply_filter_path(body: Any, expression: str | None) -> Any:
    """The body filtered by a comma list of paths (includes and ``-`` excludes)."""
    if not expression:
        return body
    paths = [p.strip() for p in expression.split(",") if p.strip()]
    includes = [p.split(".") for p in paths if not p.startswith("-")]
    excludes = [p[1:].split(".") for p in paths if p.startswith("-")]
    if includes:
        body = _include(body, includes)
        if body is _DROP:
            return {}
    for pattern in excludes:
        body = _exclude(body, pattern)
    return body


def _matches(pattern: list[str], key: str) -> list[list[str]]:
    """The remaining patterns after matching `key` against the first segment (``**`` may stay)."""
    head, rest = pattern[0], pattern[1:]
    if head == "**":
        out = [pattern]  # ** absorbs this key
        if rest and fnmatchcase(key, rest[0]):
            out.append(rest[1:])
        elif not rest:
            out.append([])
        return out
    return [rest] if fnmatchcase(key, head) else []


def _include(node: Any, patterns: list[list[str]]) -> Any:
    if any(not p for p in patterns):
        return node  # a pattern ended here: keep the whole subtree
    if not isinstance(node, dict):
        return _DROP
    out = {}
    for key, value in node.items():
        rest = [r for p in patterns for r in _matches(p, key)]
        if rest:
            kept = _include(value, rest)
            if kept is not _DROP:
                out[key] = kept
    return out or _DROP


def _exclude(node: Any, pattern: list[str]) -> Any:
    if not isinstance(node, dict) or not pattern:
        return node
    out = {}
    for key, value in node.items():
        if fnmatchcase(key, pattern[0]) and len(pattern) == 1:
            continue
        out[key] = _exclude(value, pattern[1:]) if fnmatchcase(key, pattern[0]) else value
    return out
