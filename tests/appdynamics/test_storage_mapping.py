"""The mapping of schemas and events to core streams (`plugins.appdynamics.storage`): renames keep stored paths,
added fields never clash with a stored path still in use, events nest by stored path."""

from __future__ import annotations

import pytest

from gateway.events import FieldSpec, Stream
from plugins.appdynamics.schema_types import SchemaError
from plugins.appdynamics.storage import field_paths, logical_schema, nest, new_schema, patched_schema


def paths(specs: tuple[FieldSpec, ...]) -> dict[str, str]:
    return field_paths(Stream("t", "appdynamics", "s", schema=specs))


def test_new_schema_stores_fields_under_their_names() -> None:
    specs = new_schema({"a": "string", "b.c": "integer"})
    assert specs == (FieldSpec("a", "string"), FieldSpec("b.c", "integer"))
    assert paths(specs) == {"a": "a", "b.c": "b.c"}


def test_rename_keeps_the_stored_path_and_renaming_back_clears_it() -> None:
    specs = patched_schema(new_schema({"a": "string", "z": "float"}), {"rename": {"a": "b"}})
    assert specs == (FieldSpec("b", "string", "a"), FieldSpec("z", "float"))
    again = patched_schema(specs, {"rename": {"b": "c"}})
    assert again[0] == FieldSpec("c", "string", "a")
    back = patched_schema(again, {"rename": {"c": "a"}})
    assert back[0] == FieldSpec("a", "string")  # path None: stored under its name again


@pytest.mark.parametrize(("added", "path"), [("a", "a~1"), ("a.x", "a~1.x"), ("q", "q"), ("a~1", "a~1")])
def test_added_fields_avoid_stored_paths_in_use(added: str, path: str) -> None:
    specs = patched_schema(new_schema({"a": "string"}), {"rename": {"a": "b"}})
    specs = patched_schema(specs, {"add": {added: "integer"}})
    assert paths(specs)[added] == path
    assert paths(specs)["b"] == "a"


def test_suffixes_count_up_and_nested_stored_paths_clash() -> None:
    specs = new_schema({"a.x": "string"})
    specs = patched_schema(specs, [{"rename": {"a.x": "k"}}, {"add": {"a": "integer"}}])  # "a" is a parent of a.x
    assert paths(specs) == {"k": "a.x", "a": "a~1"}
    specs = patched_schema(specs, [{"rename": {"a": "m"}}, {"add": {"a": "float"}}])
    assert paths(specs) == {"k": "a.x", "m": "a~1", "a": "a~2"}
    assert logical_schema(Stream("t", "appdynamics", "s", schema=specs)) == {"k": "string", "m": "integer",
                                                                             "a": "float"}


def test_invalid_patches_raise_schema_errors() -> None:
    with pytest.raises(SchemaError):
        patched_schema(new_schema({"a": "string"}), {"add": {"a": "integer"}})
    with pytest.raises(SchemaError):
        patched_schema(new_schema({"a": "string"}), {"rename": {"b": "c"}})


def test_nest_builds_data_by_stored_path() -> None:
    flat = {"c": 1, "m.x": "v", "eventTimestamp": 5, "pickupTimestamp": 6}
    assert nest(flat, {"c": "a.b", "m.x": "m.x"}) == {"a": {"b": 1}, "m": {"x": "v"}}
