"""A fast path for marshmallow: `schema.load` results for valid input at a fraction of the cost.

Marshmallow builds a lot of machinery per call (about a fifth of a whole ingest request went into
loading one small nested event). `fast_loader(schema)` compiles the schema once into plain checks for the
common field types; when an input passes them, the result is exactly what ``schema.load`` returns (same
keys, order, values). On *anything* else — a failed check, an unusual value, a field type or schema
feature it does not compile — it calls ``schema.load`` itself, so errors, messages and edge cases remain
marshmallow's own. Schemas with load hooks (``pre_load``, ``validates_schema``, ...) or a non-RAISE
``unknown`` policy are not compiled at all: their loader is ``schema.load``; a field of a type it does not
compile sends every document carrying that field to ``schema.load``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields
from marshmallow.utils import missing

Loader = Callable[[Any], Any]


class _Fallback(Exception):  # control flow only, never escapes this module
    """The input needs marshmallow's full treatment."""


def fast_loader(schema: Schema) -> Loader:
    """`schema.load` with a compiled fast path for inputs that are valid."""
    checker = _compile_schema(schema)
    if checker is None:
        return schema.load

    def load(data: Any) -> Any:
        try:
            return checker(data)
        except _Fallback:
            return schema.load(data)

    return load


def _compile_schema(schema: Schema) -> Callable[[Any], dict[str, Any]] | None:
    if schema.unknown != RAISE or any(schema._hooks.values()) or schema.many or schema.partial:
        return None
    plan = []
    for name, field in schema.fields.items():
        if field.dump_only or field.data_key not in (None, name) or field.attribute not in (None, name):
            return None
        check = _compile_field(field) or _needs_marshmallow  # an uncompiled field: fall back when present
        plan.append((name, field.required, field.load_default, check))
    known = frozenset(name for name, *_ in plan)

    def check_object(data: Any) -> dict[str, Any]:
        if type(data) is not dict or not known.issuperset(data):
            raise _Fallback
        out: dict[str, Any] = {}
        for name, required, default, check in plan:
            value = data.get(name, missing)
            if value is missing:
                if required:
                    raise _Fallback
                if default is not missing:
                    out[name] = default() if callable(default) else default
                continue
            if value is None:
                raise _Fallback  # allow_none and its messages: marshmallow decides
            out[name] = check(value)
        return out

    return check_object


def _needs_marshmallow(value: Any) -> Any:
    raise _Fallback


def _compile_field(field: fields.Field) -> Callable[[Any], Any] | None:
    if _is_custom(field):
        def check_custom(value: Any) -> Any:  # marshmallow's own code for it, validators included
            try:
                return field.deserialize(value)
            except ValidationError:
                raise _Fallback from None
        return check_custom
    base = _compile_type(field)
    if base is None:
        return None
    validators = tuple(field.validators)
    if not validators:
        return base

    def check(value: Any) -> Any:
        result = base(value)
        for validator in validators:
            try:
                if validator(result) is False:
                    raise _Fallback
            except ValidationError:
                raise _Fallback from None
        return result

    return check


def _compile_type(field: fields.Field) -> Callable[[Any], Any] | None:
    kind = type(field)
    if kind is fields.String:
        return _typed(str)
    if kind is fields.Integer and not field.strict:
        return _typed(int)
    if kind is fields.Boolean:
        return _typed(bool)
    if kind is fields.Float:
        def check_float(value: Any) -> float:
            if type(value) not in (int, float) or not math.isfinite(value):
                raise _Fallback
            return float(value)
        return check_float
    if kind is fields.Nested and not field.many and isinstance(field.schema, Schema) and not field.only \
            and not field.exclude and field.unknown is None:
        return _compile_schema(field.schema)
    if kind is fields.List:
        inner = _compile_field(field.inner)
        if inner is None:
            return None

        def check_list(value: Any) -> list[Any]:
            if type(value) is not list:
                raise _Fallback
            return [inner(item) for item in value]
        return check_list
    return None


def _is_custom(field: fields.Field) -> bool:
    """A field class defined outside marshmallow (a plugin's own), with its own deserialization."""
    return type(field).__module__ != fields.__name__ and type(field)._deserialize is not fields.Field._deserialize


def _typed(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        if type(value) is not kind:
            raise _Fallback
        return value
    return check
