"""How an AppDynamics schema and its events live in the core model (one stream per schema).

Why a module of its own: the schema routes, publish and the query engine must agree on one mapping between
the names users see and where values are stored. A schema is the stream's ``schema`` (`FieldSpec`s in
definition order, user fields only); a renamed field keeps its values where they are — its `FieldSpec.path`
records the stored path, its `name` the new name — so a rename rewrites no event, and events published after
it land beside the old ones. Event ``data`` nests values by stored path segments (``a.b`` -> ``{"a": {"b":
v}}``); ``eventTimestamp`` is the event's ``timestamp``, ``pickupTimestamp`` its ``received_at`` (README,
section ``appdynamics``, "Storage"). The engine resolves ADQL names with `field_paths` (``engine.stream_fields``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateway.events import FieldSpec, Stream

from .schema_types import MAX_FIELDS, SchemaError, apply_patch

PLUGIN = "appdynamics"


def stored_path(spec: FieldSpec) -> str:
    """Where a field's values are stored in ``Event.data`` (a dotted path)."""
    return spec.path or spec.name


def logical_schema(stream: Stream) -> dict[str, str]:
    """``{field name: type}`` of the user fields, in definition order (what ``GET /events/schema`` shows)."""
    return {spec.name: spec.type for spec in stream.schema or ()}


def field_paths(stream: Stream) -> dict[str, str]:
    """``{field name: stored dotted path}`` of the user fields (the engine resolves ADQL names with it)."""
    return {spec.name: stored_path(spec) for spec in stream.schema or ()}


def _overlap(a: str, b: str) -> bool:
    """Two stored paths clash when equal or when one lies under the other (``a`` and ``a.x``)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def _free_path(name: str, taken: Iterable[str]) -> str:
    """`name` if no stored path clashes with it, else its first segment suffixed ``~1``, ``~2`` ..."""
    used = list(taken)
    if not any(_overlap(name, path) for path in used):
        return name
    head, dot, rest = name.partition(".")
    n = 1
    while True:
        candidate = f"{head}~{n}{dot}{rest}"
        if not any(_overlap(candidate, path) for path in used):
            return candidate
        n += 1


def _spec(name: str, kind: str, path: str) -> FieldSpec:
    return FieldSpec(name, kind, None if path == name else path)


def new_schema(fields: Mapping[str, str]) -> tuple[FieldSpec, ...]:
    """The `FieldSpec`s of a new schema (validated field map, as `schema_types.validate_create_body` gives)."""
    return tuple(FieldSpec(name, kind) for name, kind in fields.items())


def patched_schema(current: Sequence[FieldSpec], body: Any) -> tuple[FieldSpec, ...]:
    """Apply a PATCH body (``add``/``rename``, an object or an array of them) to the stored schema.

    `schema_types.apply_patch` validates the whole body against the field names (raising `SchemaError`);
    this replays it on the specs so that renamed fields keep their stored paths and added fields get paths
    that clash with no stored path still in use.
    """
    _check_size(body)
    logical = {spec.name: spec.type for spec in current}
    expected = apply_patch(logical, body)
    entries = [[spec.name, spec.type, stored_path(spec)] for spec in current]
    for update in body if isinstance(body, list) else [body]:
        for name, kind in update.get("add", {}).items():
            if name in IMPLICIT or any(entry[0] == name for entry in entries):
                continue
            entries.append([name, kind.lower(), _free_path(name, (entry[2] for entry in entries))])
        for old, new in update.get("rename", {}).items():
            entry = next(entry for entry in entries if entry[0] == old)
            entry[0] = new
    result = tuple(_spec(name, kind, path) for name, kind, path in entries)
    if {spec.name: spec.type for spec in result} != expected:  # the replay must agree with the validation
        raise AssertionError("schema patch replay disagrees with apply_patch")
    return result


IMPLICIT = ("eventTimestamp", "pickupTimestamp")
#: Most adds and renames one PATCH may carry (a schema holds at most as many fields): bounds the request's cost,
#: each rename costing a pass over the schema.
MAX_PATCH_CHANGES = MAX_FIELDS


def _check_size(body: Any) -> None:
    updates = body if isinstance(body, list) else [body]
    changes = len(updates) + sum(len(u.get(key) or ()) for u in updates if isinstance(u, dict)
                                 for key in ("add", "rename") if isinstance(u.get(key), dict))
    if changes > MAX_PATCH_CHANGES:
        raise SchemaError(f"a schema update may carry at most {MAX_PATCH_CHANGES} changes; this one has {changes}")


def nest(flat: Mapping[str, Any], paths: Mapping[str, str | tuple[str, ...]]) -> dict[str, Any]:
    """A validated event's user fields (by field name) as ``data`` nested by stored path segments. `paths` maps
    names to dotted paths or to their segments (split once per request by `publishing.to_events`)."""
    data: dict[str, Any] = {}
    for name, value in flat.items():
        if name in IMPLICIT:
            continue
        path = paths[name]
        segments = path.split(".") if isinstance(path, str) else path
        if len(segments) == 1:
            data[segments[0]] = value
            continue
        node = data
        for part in segments[:-1]:
            node = node.setdefault(part, {})
        node[segments[-1]] = value
    return data
