"""The storage backend interface and the registry that picks a backend by URL scheme.

Backends know nothing about vendors: they keep streams and events (`gateway.events`) and answer the
backend-neutral `gateway.query.Query`: a new backend implements the catalog, `append` and `answer` (the
native model), and gets the rest of the query model from the core evaluator over `scan` (whose default
pages through `answer`); `gateway.testing.contract` checks it. Each backend class declares the URL
schemes it serves (the idea of the `limits` library's storage registry); built-in and third-party
backends arrive through the `storage_backends` hook, and `backend_from_url` builds the one `storage.url`
names.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import urlsplit

from .events import Event, FieldSpec, Stream
from .query import Condition, Filter, Query, QueryResult, Sort
from .query.evaluate import evaluate, is_native, native_filter


class StorageError(Exception):
    """Base class of everything a backend raises on purpose."""


class BackendUnavailable(StorageError):
    """The store cannot be reached or failed; the request gets 503 and nothing is acknowledged."""


class StreamExists(StorageError):
    """`create_stream` for a name the tenant already has."""


class StreamNotFound(StorageError):
    """An append or lookup named a stream the tenant does not have; a batch naming one stores nothing."""


class SchemaConflict(StorageError):
    """`update_stream_schema` found another schema than the caller read: a concurrent update won."""


def schema_to_json(schema: Sequence[FieldSpec] | None) -> list[dict[str, str]] | None:
    """A stream schema as JSON-ready data (``path`` only when set), for backends that store it as a document."""
    if schema is None:
        return None
    return [{"name": f.name, "type": f.type, **({"path": f.path} if f.path is not None else {})} for f in schema]


def schema_from_json(doc: Sequence[Mapping[str, Any]] | None) -> tuple[FieldSpec, ...] | None:
    """Inverse of `schema_to_json`."""
    if doc is None:
        return None
    return tuple(FieldSpec(f["name"], f["type"], f.get("path")) for f in doc)


class Backend(abc.ABC):
    """Stream catalog, atomic batch append and the neutral query.

    Streams are identified by (tenant, plugin, name). Event ids are unique per stream: appending an
    event whose id the stream already holds stores nothing for it and is not an error (idempotent
    ingest; the backend enforces it, so two racing appends store one event).
    """

    #: URL schemes this class serves, e.g. ("sqlite",).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: False when several processes cannot share one store (each would see its own data); may be set
    #: per instance (an SQLite ``:memory:`` database is not shareable, an SQLite file is).
    multiprocess_safe: bool = True

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        self.url = url
        self.options = dict(options or {})

    # -- catalog ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_stream(self, stream: Stream) -> Stream:
        """Create a stream; raise `StreamExists` when the tenant already has it."""

    @abc.abstractmethod
    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """The stream, or None."""

    @abc.abstractmethod
    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Every stream of the tenant for the plugin, ordered by name."""

    @abc.abstractmethod
    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream and its events; False when it did not exist."""

    @abc.abstractmethod
    def update_stream_schema(self, tenant: str, plugin: str, name: str, schema: tuple[FieldSpec, ...] | None, *,
                             expected: tuple[FieldSpec, ...] | None) -> Stream:
        """Replace the stream's schema, if it is still `expected` (compare-and-set: two concurrent updates
        cannot lose one another's changes); return the updated stream. Raise `StreamNotFound` when the
        stream does not exist, `SchemaConflict` when its schema is not `expected`. Events are untouched."""

    def ensure_stream(self, stream: Stream) -> Stream:
        """Get the stream, creating it first if needed (for plugins whose streams are implicit)."""
        found = self.get_stream(stream.tenant, stream.plugin, stream.name)
        if found is not None:
            return found
        try:
            return self.create_stream(stream)
        except StreamExists:
            found = self.get_stream(stream.tenant, stream.plugin, stream.name)
            assert found is not None
            return found

    # -- events ----------------------------------------------------------------------------------
    @abc.abstractmethod
    def append(self, events: Sequence[Event], create_streams: bool = False) -> int:
        """Store the batch atomically and durably; return how many were new (duplicates by id are skipped).

        Every event must pass `gateway.query.checks.check_event` (else `ValueError`, nothing stored). All
        events must name existing streams; otherwise raise `StreamNotFound` and store nothing. With
        `create_streams` (plugins whose streams are implicit), the missing streams are created instead, in
        the same transaction as the events where the store has transactions. Returning means the events
        survive a crash of this process.
        """

    def query(self, query: Query) -> QueryResult:
        """Answer a query with the semantics documented in `gateway.query`: natively (`answer`) when the
        backend says it can (`native`), else by the core evaluator (`gateway.query.evaluate`), which asks
        `answer` for the parts it can take and evaluates the rest over `scan`, with the same results."""
        if self.native(query):
            return self.answer(query)
        return evaluate(query, self)

    def native(self, query: Query) -> bool:
        """Whether `answer` handles the whole query (default: the native model, `gateway.query.evaluate`)."""
        return is_native(query, self.pushable)

    def pushable(self, condition: Condition) -> bool:
        """Whether `answer` and `scan` evaluate this top-level filter themselves (default: native filters)."""
        return isinstance(condition, Filter) and native_filter(condition)

    @abc.abstractmethod
    def answer(self, query: Query) -> QueryResult:
        """Answer a query that `native` accepted (`gateway.query.semantics` is the executable reference;
        `gateway.testing.contract` checks a backend against it)."""

    def scan(self, query: Query) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of every event of the query's streams and time range matching its filters (all
        `pushable`), in any order; ``seq`` orders events by insertion and must not change between calls.

        This default pages through `answer` in time order and numbers the events in that order; backends
        override it with a plain read of their store (and their own insertion sequence).
        """
        cursor, seq = None, 0
        while True:
            page = self.answer(Query(tenant=query.tenant, plugin=query.plugin, streams=query.streams,
                                     start=query.start, end=query.end, filters=query.filters,
                                     sort=(Sort("timestamp"),), limit=1000, cursor=cursor, count_total=False))
            for event in page.events:
                yield seq, event
                seq += 1
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def iter_events(
        self,
        tenant: str,
        plugin: str,
        streams: tuple[str, ...] | None = None,
        start: int | None = None,
        end: int | None = None,
        batch_size: int = 1000,
    ) -> Iterator[Event]:
        """Every matching event oldest first, fetched page by page (constant memory; used by export)."""
        cursor = None
        while True:
            page = self.query(Query(tenant=tenant, plugin=plugin, streams=streams, start=start, end=end,
                                    sort=(Sort("timestamp"),), limit=batch_size, cursor=cursor,
                                    count_total=False))
            yield from page.events
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    @abc.abstractmethod
    def plugins_of(self, tenant: str) -> list[str]:
        """The plugins that have streams for the tenant (export walks them)."""

    # -- operations ------------------------------------------------------------------------------
    @abc.abstractmethod
    def health(self) -> dict[str, Any]:
        """Reach the store; return facts safe to show (no secrets), raise `BackendUnavailable` if down."""

    def close(self) -> None:  # noqa: B027 - optional for backends holding nothing
        """Release connections."""


def scheme_of(url: str) -> str:
    """The scheme of a storage URL (``sqlite:///x.db`` -> ``sqlite``)."""
    return urlsplit(url).scheme


def backend_from_url(url: str, options: Mapping[str, Any],
                     classes: Mapping[str, type[Backend]] | Iterable[type[Backend]]) -> Backend:
    """Build the backend serving the URL's scheme among the registered classes (scheme -> class, or classes)."""
    if isinstance(classes, Mapping):
        by_scheme = dict(classes)
    else:
        by_scheme = {}
        for cls in classes:
            for scheme in cls.schemes:
                by_scheme.setdefault(scheme, cls)
    scheme = scheme_of(url)
    if scheme not in by_scheme:
        known = ", ".join(f"{s}://" for s in sorted(by_scheme)) or "none"
        raise ValueError(f"no storage backend serves [{scheme}://] (known: {known})")
    return by_scheme[scheme](url, options)
