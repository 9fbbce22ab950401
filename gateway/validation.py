"""Marshmallow's nested error messages as a flat list of (path, message) pairs: one walker for every API.

Each vendor words validation errors its own way, but all of them start from the same question: which
field, which message, in which order. `error_items` answers it once (paths as tuples of keys, messages in
the schema's field order when the schema is given), `flatten_errors` formats the paths as JSON paths
(``event.detail.tool[0].name``); callers word the pairs for their vendor.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from marshmallow import Schema, fields

Path = tuple[str | int, ...]


def _nested_schema(schema: Schema | None, key: Any) -> Schema | None:
    if schema is None or not isinstance(key, str):
        return None
    field = schema.fields.get(key)
    return field.schema if isinstance(field, fields.Nested) else None


def error_items(messages: Any, schema: Schema | None = None, path: Path = ()) -> Iterator[tuple[Path, str]]:
    """Every (path, message) of a marshmallow error tree; ``_schema`` errors belong to the enclosing path.

    With `schema`, keys follow its declared field order (other keys after, by name), recursively through
    `Nested` fields; without one, the order marshmallow reported them in.
    """
    if isinstance(messages, dict):
        keys = list(messages)
        if schema is not None:
            order = {name: index for index, name in enumerate(schema.fields)}
            keys.sort(key=lambda k: (order.get(k, len(order)) if isinstance(k, str) else len(order), str(k)))
        for key in keys:
            sub = path if key == "_schema" else (*path, key)
            yield from error_items(messages[key], _nested_schema(schema, key), sub)
    elif isinstance(messages, list | tuple):
        for item in messages:
            yield from error_items(item, schema, path)
    else:
        yield path, str(messages)


def json_path(path: Path, prefix: str = "") -> str:
    """A path as written in JSON documentation: ``a.b[0].c`` (after `prefix`, if any)."""
    out = prefix
    for key in path:
        out = f"{out}[{key}]" if isinstance(key, int) else (f"{out}.{key}" if out else str(key))
    return out


def flatten_errors(messages: Any, schema: Schema | None = None, prefix: str = "") -> list[tuple[str, str]]:
    """(JSON path, message) for every problem, in field order; the root's own errors have the path `prefix`."""
    return [(json_path(path, prefix), message) for path, message in error_items(messages, schema)]
