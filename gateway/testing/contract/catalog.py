"""The backend contract, part 1: the stream catalog and atomic, idempotent appends."""

from __future__ import annotations

import pytest

from gateway.events import Event, FieldSpec, Stream
from gateway.query import Filter
from gateway.storage import Backend, SchemaConflict, StreamExists, StreamNotFound

from .base import ContractBase, P, T, ev, ids, q


class CatalogContract(ContractBase):
    """Streams: create, get, list, delete, ensure; appends: atomic, idempotent by id, checked."""

    # -- catalog -----------------------------------------------------------------------------------------
    def test_create_and_get_stream(self, backend: Backend) -> None:
        schema = (FieldSpec("price", "float"), FieldSpec("sku", "string"))
        created = backend.create_stream(Stream(T, P, "orders", created_at=1234, schema=schema))
        assert (created.tenant, created.plugin, created.name, created.created_at, created.schema) == \
            (T, P, "orders", 1234, schema)
        got = backend.get_stream(T, P, "orders")
        assert got is not None
        assert (got.tenant, got.plugin, got.name, got.created_at, got.schema) == (T, P, "orders", 1234, schema)
        plain = backend.create_stream(Stream(T, P, "plain", created_at=99))
        assert plain.schema is None
        assert backend.get_stream(T, P, "plain").schema is None

    def test_update_stream_schema(self, backend: Backend) -> None:
        first = (FieldSpec("price", "float"), FieldSpec("sku", "string"))
        backend.create_stream(Stream(T, P, "orders", created_at=1234, schema=first))
        backend.create_stream(Stream(T, P, "other", created_at=5, schema=first))
        backend.append([ev("a", "orders", 1, data={"sku": "x1"})])
        # a renamed field keeps its stored path; an added one comes last
        second = (FieldSpec("cost", "float", "price"), FieldSpec("sku", "string"), FieldSpec("qty", "integer"))
        updated = backend.update_stream_schema(T, P, "orders", second, expected=first)
        assert (updated.name, updated.created_at, updated.schema) == ("orders", 1234, second)
        got = backend.get_stream(T, P, "orders")
        assert (got.created_at, got.schema) == (1234, second)
        assert got.schema[0].path == "price" and got.schema[1].path is None
        assert [s.schema for s in backend.list_streams(T, P)] == [second, first]  # "orders", "other" untouched
        assert backend.get_stream(T, P, "other").schema == first
        assert [e.data for e in backend.query(q(streams=("orders",))).events] == [{"sku": "x1"}]  # events untouched
        # a stream without a schema can get one, and lose it again
        backend.create_stream(Stream(T, P, "plain"))
        assert backend.update_stream_schema(T, P, "plain", first, expected=None).schema == first
        assert backend.update_stream_schema(T, P, "plain", None, expected=first).schema is None
        assert backend.get_stream(T, P, "plain").schema is None

    def test_update_stream_schema_is_compare_and_set(self, backend: Backend) -> None:
        first = (FieldSpec("price", "float"),)
        backend.create_stream(Stream(T, P, "orders", schema=first))
        second = (*first, FieldSpec("a", "string"))
        backend.update_stream_schema(T, P, "orders", second, expected=first)
        # a writer that read `first` before that update must not overwrite it
        with pytest.raises(SchemaConflict):
            backend.update_stream_schema(T, P, "orders", (*first, FieldSpec("b", "string")), expected=first)
        with pytest.raises(SchemaConflict):  # a path is part of the schema
            backend.update_stream_schema(T, P, "orders", first,
                                         expected=(FieldSpec("price", "float", "x"), FieldSpec("a", "string")))
        assert backend.get_stream(T, P, "orders").schema == second
        with pytest.raises(StreamNotFound):
            backend.update_stream_schema(T, P, "missing", first, expected=None)
        with pytest.raises(StreamNotFound):  # another tenant's stream of that name does not exist for it
            backend.update_stream_schema("other", P, "orders", first, expected=second)
        backend.delete_stream(T, P, "orders")
        with pytest.raises(StreamNotFound):
            backend.update_stream_schema(T, P, "orders", first, expected=second)

    def test_create_existing_stream_raises(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        with pytest.raises(StreamExists):
            backend.create_stream(Stream(T, P, "s"))
        # the same name is free for another tenant and another plugin
        backend.create_stream(Stream("other", P, "s"))
        backend.create_stream(Stream(T, "other", "s"))

    def test_get_missing_stream(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        assert backend.get_stream(T, P, "nope") is None
        assert backend.get_stream("other", P, "s") is None
        assert backend.get_stream(T, "other", "s") is None

    def test_list_streams_ordered_and_isolated(self, backend: Backend) -> None:
        for name in ["zeta", "alpha", "mid"]:
            backend.create_stream(Stream(T, P, name))
        backend.create_stream(Stream("other", P, "beta"))
        backend.create_stream(Stream(T, "other", "gamma"))
        assert [s.name for s in backend.list_streams(T, P)] == ["alpha", "mid", "zeta"]
        assert [s.name for s in backend.list_streams("other", P)] == ["beta"]
        assert [s.name for s in backend.list_streams(T, "other")] == ["gamma"]
        assert backend.list_streams("nobody", P) == []

    def test_delete_stream_removes_events(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        backend.create_stream(Stream(T, P, "keep"))
        backend.append([ev("a", "s", 1), ev("b", "keep", 2)])
        assert backend.delete_stream(T, P, "s") is True
        assert backend.delete_stream(T, P, "s") is False
        assert backend.delete_stream("other", P, "keep") is False
        assert backend.get_stream(T, P, "s") is None
        assert ids(backend) == ["b"]
        backend.create_stream(Stream(T, P, "s"))
        assert ids(backend, streams=("s",)) == []
        # the old events' ids are free again in the recreated stream
        assert backend.append([ev("a", "s", 1)]) == 1

    def test_ensure_stream(self, backend: Backend) -> None:
        first = backend.ensure_stream(Stream(T, P, "s", created_at=10))
        again = backend.ensure_stream(Stream(T, P, "s", created_at=20))
        assert first.created_at == again.created_at == 10
        assert [s.name for s in backend.list_streams(T, P)] == ["s"]

    def test_plugins_of(self, backend: Backend) -> None:
        assert backend.plugins_of(T) == []
        backend.create_stream(Stream(T, "zz", "s"))
        backend.create_stream(Stream(T, "aa", "s"))
        backend.create_stream(Stream(T, "aa", "t"))
        backend.create_stream(Stream("other", "mm", "s"))
        assert sorted(backend.plugins_of(T)) == ["aa", "zz"]
        assert backend.plugins_of("other") == ["mm"]

    # -- append ------------------------------------------------------------------------------------------
    def test_append_reads_back_every_field(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        data = {"text": "héllo ✓", "int": -3, "float": 2.5, "bool": False, "null": None, "list": [1, "two", None],
                "obj": {"deep": {"er": [{"x": 1}]}}}
        event = Event(tenant=T, plugin=P, stream="s", type="custom.type", data=data, timestamp=1_700_000_000_123,
                      received_at=1_700_000_000_456, id="evt-1", user_id="user-9", session_id="sess-7")
        assert backend.append([event]) == 1
        (got,) = backend.query(q()).events
        assert got.to_dict() == event.to_dict()
        bare = Event(tenant=T, plugin=P, stream="s", type="t", data={}, timestamp=5, received_at=6, id="evt-2")
        backend.append([bare])
        got = backend.query(q(filters=(Filter("id", "eq", "evt-2"),))).events[0]
        assert got.to_dict() == bare.to_dict()

    def test_append_empty_batch(self, backend: Backend) -> None:
        assert backend.append([]) == 0

    def test_duplicates_skipped_sequentially(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        assert backend.append([ev("a", "s", 1, data={"v": 1}), ev("b", "s", 2)]) == 2
        assert backend.append([ev("a", "s", 9, data={"v": 2})]) == 0
        assert backend.append([ev("b", "s", 3), ev("c", "s", 4)]) == 1
        events = backend.query(q()).events
        assert [e.id for e in events] == ["a", "b", "c"]
        assert events[0].data == {"v": 1} and events[0].timestamp == 1  # the first copy wins

    def test_duplicates_within_batch(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        assert backend.append([ev("a", "s", 1), ev("a", "s", 2), ev("b", "s", 3), ev("a", "s", 4)]) == 2
        assert ids(backend) == ["a", "b"]
        assert backend.query(q()).total == 2

    def test_same_id_in_other_stream_or_tenant_is_new(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        backend.create_stream(Stream(T, P, "t"))
        backend.create_stream(Stream("other", P, "s"))
        assert backend.append([ev("a", "s", 1), ev("a", "t", 2), ev("a", "s", 3, tenant="other")]) == 3

    def test_failing_batch_stores_nothing(self, backend: Backend) -> None:
        backend.create_stream(Stream(T, P, "s"))
        batch = [ev("a", "s", 1), ev("b", "s", 2), ev("c", "missing", 3), ev("d", "s", 4)]
        with pytest.raises(StreamNotFound):
            backend.append(batch)
        assert backend.query(q()).total == 0
        # a stream of another tenant does not count either
        backend.create_stream(Stream("other", P, "x"))
        with pytest.raises(StreamNotFound):
            backend.append([ev("a", "s", 1), ev("b", "x", 2)])
        assert backend.query(q()).total == 0
        assert backend.append(batch[:2]) == 2  # nothing of the failed batches was kept, not even the ids
