"""gateway.fastload: for any input, the compiled loader answers exactly as ``schema.load`` does.

Random inputs (valid documents and thousands of mutations of them) go through both; results must be
equal including key order, and errors must carry the same messages. The fast path must really be taken
for valid input (counted), or it would be a slower copy of marshmallow.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from gateway.fastload import fast_loader
from plugins.elastic_analytics.schemas import EVENT_SCHEMAS


class Inner(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1))
    rank = fields.Integer(validate=validate.Range(min=0))
    score = fields.Float()
    on = fields.Boolean(load_default=False)


class Outer(Schema):
    class Meta:
        unknown = RAISE

    id = fields.String(required=True)
    inner = fields.Nested(Inner, required=True)
    items = fields.List(fields.Nested(Inner))
    tags = fields.List(fields.String())
    when = fields.DateTime()  # not compiled: falls back to marshmallow for documents that carry it


VALID_OUTER = {"id": "a", "inner": {"name": "n", "rank": 3, "score": 1.5},
               "items": [{"name": "x"}, {"name": "y", "on": True}], "tags": ["t1", "t2"]}
VALID_ES = {
    "page_view": {"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://e", "title": "T"},
                  "document": {"id": "d", "index": "i"}},
    "search": {"session": {"id": "s"}, "user": {"id": "u"},
               "search": {"query": "q", "filters": {"a": "b", "c": ["d"]}, "page": {"current": 0, "size": 10},
                          "sort": {"name": "n", "direction": "asc"},
                          "results": {"items": [{"document": {"id": "d"}}, {}], "total_results": 3}}},
    "search_click": {"session": {"id": "s"}, "user": {"id": "u"}, "search": {"query": ""},
                     "page": {"url": "u"}},
}
ODD_VALUES = [None, True, False, 0, -1, 1.5, float("inf"), "", " ", "12", "x", [], [1], ["a"], {}, {"k": 1},
              {"id": "z"}, 2**70]


def _mutations(doc: Any, rng: random.Random, count: int) -> list[Any]:
    """Random edits of a JSON document: replace, drop or add a key somewhere in it."""
    out = []
    for _ in range(count):
        copy = json.loads(json.dumps(doc))
        node = copy
        while isinstance(node, dict) and node and rng.random() < 0.6:
            key = rng.choice(list(node))
            if isinstance(node[key], dict | list) and node[key]:
                child = node[key]
                node = child if isinstance(child, dict) else (child[0] if isinstance(child[0], dict) else node)
                if node is not child and not isinstance(child, dict):
                    break
            else:
                break
        if isinstance(node, dict) and node:
            key = rng.choice(list(node))
            action = rng.random()
            if action < 0.5:
                node[key] = rng.choice(ODD_VALUES)
            elif action < 0.75:
                del node[key]
            else:
                node[f"extra{rng.randint(0, 3)}"] = rng.choice(ODD_VALUES)
        out.append(copy)
    return out


def _outcome(load: Any, data: Any) -> tuple[str, Any]:
    try:
        result = load(data)
    except ValidationError as err:
        return "error", err.messages
    return "ok", json.dumps(result, sort_keys=False, default=str)


@pytest.mark.parametrize(("schema", "valid"), [(Outer(), VALID_OUTER)] +
                         [(EVENT_SCHEMAS[t], VALID_ES[t]) for t in sorted(VALID_ES)],
                         ids=["outer", *sorted(VALID_ES)])
def test_fast_loader_answers_exactly_like_marshmallow(schema: Schema, valid: dict[str, Any]) -> None:
    rng = random.Random(20261122)
    fast = fast_loader(schema)
    inputs = [valid, *_mutations(valid, rng, 3000), [], "x", None]
    outcomes = {"ok": 0, "error": 0}
    for data in inputs:
        expected = _outcome(schema.load, data)
        assert _outcome(fast, data) == expected, data
        outcomes[expected[0]] += 1
    assert outcomes["ok"] > 50 and outcomes["error"] > 50  # both kinds were really exercised


def test_valid_input_takes_the_fast_path() -> None:
    calls = []

    class Counted(Outer):
        def load(self, *args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            return super().load(*args, **kwargs)

    fast = fast_loader(Counted())
    assert fast(VALID_OUTER) == Counted().load(VALID_OUTER)
    calls.clear()
    for _ in range(10):
        fast(VALID_OUTER)
    assert calls == []
    with pytest.raises(ValidationError):
        fast({"id": 1, "inner": {"name": "n"}})
    assert calls == [1]  # the failure was marshmallow's own


def test_schemas_with_hooks_are_not_compiled() -> None:
    class Hooked(Outer):
        @validates_schema
        def _never(self, data: dict[str, Any], **_: Any) -> None:
            raise ValidationError("hook ran")

    schema = Hooked()
    assert fast_loader(schema) == schema.load
    with pytest.raises(ValidationError, match="hook ran"):
        fast_loader(schema)(VALID_OUTER)
