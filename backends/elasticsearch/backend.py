"""`ElasticsearchBackend`: the I/O of the Elasticsearch backend (catalog, bulk append with compensation,
search), on top of the pure translations of `mapping` and `dsl`; see the package docstring for the design."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from typing import Any, ClassVar, TypeVar

import elasticsearch

from gateway.events import Event, FieldSpec, Stream
from gateway.query import Condition, Query, QueryError, QueryResult
from gateway.query.checks import check_event
from gateway.query.evaluate import native_tree
from gateway.storage import (
    Backend,
    BackendUnavailable,
    SchemaConflict,
    StorageError,
    StreamExists,
    StreamNotFound,
)

from .calls import bounded_search, retrying, translate_errors
from .dsl import query_filter_dsl, query_result, search_request
from .mapping import (
    bulk_operations,
    event_doc_id,
    events_index_body,
    parse_bulk_response,
    parse_version,
    stream_doc_id,
    stream_document,
    stream_from_document,
    streams_index_body,
)
from .settings import parse_settings

log = logging.getLogger("backends.elasticsearch")
#: Hits per page of a scan.
SCAN_BATCH = 1000
T = TypeVar("T")


# -- the backend -------------------------------------------------------------------------------------
class ElasticsearchBackend(Backend):
    """Streams and events in an Elasticsearch 8 cluster; see the module docstring for the design."""

    schemes: ClassVar[tuple[str, ...]] = ("elasticsearch", "elasticsearch+https")
    multiprocess_safe = True

    _seq_lock = threading.Lock()
    _last_seq = 0

    def __init__(self, url: str, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(url, options)
        self.settings = parse_settings(url, self.options)
        self._client: elasticsearch.Elasticsearch | None = None
        self._ready = False
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------------
    @classmethod
    def next_seqs(cls, count: int) -> list[int]:
        """Strictly increasing insertion stamps (nanoseconds, bumped on collisions) shared by the process."""
        with cls._seq_lock:
            start = max(time.time_ns(), cls._last_seq + 1)
            cls._last_seq = start + count - 1
        return list(range(start, start + count))

    @property
    def client(self) -> elasticsearch.Elasticsearch:
        """The client, built on first use so that start-up does not need the cluster."""
        if self._client is None:
            with self._lock:
                if self._client is None:
                    # max_retries=0: `_retrying` retries with backoff (the transport retries at once)
                    self._client = elasticsearch.Elasticsearch(list(self.settings.hosts), max_retries=0,
                                                               **self.settings.client_kwargs)
        return self._client

    def _es(self) -> elasticsearch.Elasticsearch:
        """The client after making sure both indices exist (once per backend instance)."""
        client = self.client
        if not self._ready:
            with self._lock:
                if not self._ready:
                    def prepare() -> None:
                        version = self._version(client)
                        for index, body in ((self.settings.streams_index, streams_index_body()),
                                            (self.settings.events_index, events_index_body(version))):
                            self._create_index(client, index, body)

                    self._call("create indices", prepare)
                    self._ready = True
        return client

    def _call(self, action: str, call: Callable[[], T]) -> T:
        """`call` with this backend's bounded retries and backoff (`retrying`)."""
        return retrying(action, call, self.settings.retries, self.settings.retry_wait_ms)

    def _search(self, action: str, request: dict[str, Any]) -> dict[str, Any]:
        """A search for a query: retried, and stopped at the query's deadline (`bounded_search`)."""
        return bounded_search(self._es(), action, request, self.settings.retries, self.settings.retry_wait_ms)

    @staticmethod
    def _version(client: elasticsearch.Elasticsearch) -> tuple[int, int]:
        try:
            return parse_version(client.info()["version"]["number"])
        except elasticsearch.AuthorizationException:
            return (8, 3)  # a least-privilege key may not read cluster info: assume the oldest we support

    @staticmethod
    def _create_index(client: elasticsearch.Elasticsearch, index: str, body: dict[str, Any]) -> None:
        try:
            if client.indices.exists(index=index):
                return
            client.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
        except elasticsearch.AuthorizationException:
            # Least privilege: the operator created the indices (with these mappings) and the key may
            # only read and write documents; a missing index then shows up as an error on first use.
            log.warning("not allowed to check or create index [%s]; assuming it exists", index)
        except elasticsearch.BadRequestError as exc:
            if exc.message != "resource_already_exists_exception":  # another process won the race
                raise

    def _refresh_kwargs(self) -> dict[str, Any]:
        refresh = self.settings.refresh
        return {} if refresh is False else {"refresh": refresh}

    # -- catalog ---------------------------------------------------------------------------------
    def create_stream(self, stream: Stream) -> Stream:
        """Create the catalog document with ``op_type=create``: a 409 means the stream exists, unless an
        earlier attempt of this call wrote that very document and only its answer was lost."""
        es = self._es()
        doc_id = stream_doc_id(stream.tenant, stream.plugin, stream.name)
        document = stream_document(stream)
        attempts = 0

        def create() -> Any:
            nonlocal attempts
            attempts += 1
            return es.create(index=self.settings.streams_index, id=doc_id, document=document, refresh=True)

        try:
            self._call("create stream", create)
        except StorageError as exc:
            if not isinstance(exc.__cause__, elasticsearch.ConflictError):
                raise
            if attempts > 1:  # same creation time (ms) and schema: our own write, not another creator's
                stored = self._call("get stream", lambda: es.options(ignore_status=404).get(
                    index=self.settings.streams_index, id=doc_id))
                if stored.get("found") and stored["_source"] == document:
                    return stream
            raise StreamExists(f"stream [{stream.name}] already exists") from exc.__cause__
        return stream

    def get_stream(self, tenant: str, plugin: str, name: str) -> Stream | None:
        """Real-time GET of the catalog document."""
        es = self._es()
        doc = self._call("get stream", lambda: es.options(ignore_status=404).get(
            index=self.settings.streams_index, id=stream_doc_id(tenant, plugin, name)))
        return stream_from_document(doc["_source"]) if doc.get("found") else None

    def list_streams(self, tenant: str, plugin: str) -> list[Stream]:
        """Page through the catalog by name with ``search_after``."""
        es = self._es()
        streams: list[Stream] = []
        after: list[Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"search_after": after} if after is not None else {}
            response = self._call("list streams", lambda kwargs=kwargs: es.search(
                index=self.settings.streams_index, size=1000,
                query={"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"plugin": plugin}}]}},
                sort=[{"name": {"order": "asc"}}], track_total_hits=False, **kwargs))
            hits = response["hits"]["hits"]
            streams.extend(stream_from_document(hit["_source"]) for hit in hits)
            if len(hits) < 1000:
                return streams
            after = hits[-1]["sort"]

    def update_stream_schema(self, tenant: str, plugin: str, name: str, schema: tuple[FieldSpec, ...] | None, *,
                             expected: tuple[FieldSpec, ...] | None) -> Stream:
        """Real-time GET of the catalog document, then an index conditioned on its ``_seq_no`` and
        ``_primary_term`` (optimistic concurrency): a 409 means another update came in between."""
        es = self._es()
        doc_id = stream_doc_id(tenant, plugin, name)
        with translate_errors("update stream schema"):
            doc = es.options(ignore_status=404).get(index=self.settings.streams_index, id=doc_id)
            if not doc.get("found"):
                raise StreamNotFound(f"stream [{name}] does not exist")
            current = stream_from_document(doc["_source"])
            if current.schema != (None if expected is None else tuple(expected)):
                raise SchemaConflict(f"the schema of stream [{name}] changed meanwhile")
            updated = dataclasses.replace(current, schema=None if schema is None else tuple(schema))
            try:
                es.index(index=self.settings.streams_index, id=doc_id, document=stream_document(updated),
                         if_seq_no=doc["_seq_no"], if_primary_term=doc["_primary_term"], refresh=True)
            except elasticsearch.ConflictError as exc:
                raise SchemaConflict(f"the schema of stream [{name}] changed meanwhile") from exc
        return updated

    def delete_stream(self, tenant: str, plugin: str, name: str) -> bool:
        """Delete the stream's events, then its catalog document, then sweep events that raced in."""
        if self.get_stream(tenant, plugin, name) is None:
            return False
        es = self._es()
        events = {"bool": {"filter": [{"term": {"tenant": tenant}}, {"term": {"plugin": plugin}},
                                      {"term": {"stream": name}}]}}
        long_running = es.options(request_timeout=max(self.settings.request_timeout or 0, 300))
        def sweep() -> Any:
            return long_running.delete_by_query(index=self.settings.events_index, query=events, routing=tenant,
                                                conflicts="proceed", refresh=True, wait_for_completion=True)

        self._call("delete stream", sweep)
        deleted = self._call("delete stream", lambda: es.options(ignore_status=404).delete(
            index=self.settings.streams_index, id=stream_doc_id(tenant, plugin, name), refresh=True))
        self._call("delete stream", sweep)
        return deleted.get("result") == "deleted"

    # -- events ----------------------------------------------------------------------------------
    def append(self, events: Sequence[Event], create_streams: bool = False) -> int:
        """Check the streams (creating missing ones with `create_streams`), bulk-create with deterministic
        ids, compensate on failure (package docstring). Streams created here stay if the bulk then fails."""
        if not events:
            return 0
        for event in events:  # nothing is sent for a batch holding an event no backend could store
            check_event(event)
        es = self._es()
        streams = sorted({(e.tenant, e.plugin, e.stream) for e in events})
        found = self._call("check streams", lambda: es.mget(
            index=self.settings.streams_index, ids=[stream_doc_id(*s) for s in streams], source=False))
        for stream, doc in zip(streams, found["docs"], strict=True):
            if doc.get("found"):
                continue
            if not create_streams:
                raise StreamNotFound(f"stream [{stream[2]}] does not exist")
            with suppress(StreamExists):  # created meanwhile by another request
                self.create_stream(Stream(tenant=stream[0], plugin=stream[1], name=stream[2]))

        unique: dict[str, Event] = {}
        for event in events:
            unique.setdefault(event_doc_id(event), event)
        pending = list(unique.values())
        created: list[str] = []
        delay = self.settings.retry_wait_ms / 1000
        for attempt in range(self.settings.retries + 1):
            operations = bulk_operations(pending, self.settings.events_index, self.next_seqs(len(pending)))
            # a retried bulk finds the items an earlier attempt wrote as duplicates (deterministic ids)
            response = self._call("append", lambda ops=operations: es.bulk(operations=ops, **self._refresh_kwargs()))
            outcome = parse_bulk_response(response)
            created += outcome.created
            if not outcome.failures:
                return len(created)
            if not outcome.transient or attempt == self.settings.retries:
                break
            # items the cluster had no room for (429, 5xx): send those again, the batch stays one unit
            failed = {failure.get("_id") for failure in outcome.failures}
            pending = [event for doc_id, event in unique.items() if doc_id in failed]
            log.warning("elasticsearch append: %d item(s) rejected for load; retrying them in %.1fs (%d of %d)",
                        len(pending), delay, attempt + 1, self.settings.retries)
            time.sleep(delay)
            delay *= 2
        self._compensate(es, [(doc_id, unique[doc_id].tenant) for doc_id in created])
        first = outcome.failures[0]
        error = first.get("error") or {}
        message = (f"elasticsearch rejected {len(outcome.failures)} event(s) of the batch, which was "
                   f"rolled back: {first.get('status')} {error.get('type')}: {error.get('reason')}")
        raise BackendUnavailable(message) if outcome.transient else StorageError(message)

    def _compensate(self, es: elasticsearch.Elasticsearch, created: list[tuple[str, str]]) -> None:
        """Delete the events this failed batch created (best effort: a failure here is re-raised)."""
        if not created:
            return
        operations = [{"delete": {"_index": self.settings.events_index, "_id": doc_id, "routing": routing}}
                      for doc_id, routing in created]
        self._call("roll back a failed batch", lambda: es.bulk(operations=operations, refresh=True))

    def pushable(self, condition: Condition) -> bool:
        """Native filters and AND/OR/NOT trees of them translate to a ``bool`` query."""
        return native_tree(condition)

    def scan(self, query: Query) -> Iterator[tuple[int, Event]]:
        """``(seq, event)`` of the matching events, paged with ``search_after`` in insertion order."""
        after: list[Any] | None = None
        while True:
            kwargs: dict[str, Any] = {"search_after": after} if after is not None else {}
            response = self._search("scan", dict(
                index=self.settings.events_index, routing=query.tenant, query=query_filter_dsl(query),
                size=SCAN_BATCH, track_total_hits=False, sort=[{"seq": {"order": "asc"}}, {"uid": {"order": "asc"}}],
                **kwargs))
            hits = response["hits"]["hits"]
            for hit in hits:
                yield int(hit["sort"][0]), Event.from_dict(hit["_source"])
            if len(hits) < SCAN_BATCH:
                return
            after = hits[-1]["sort"]

    def answer(self, query: Query) -> QueryResult:
        """Translate, search (routed to the tenant's shard) and translate back."""
        request = search_request(query, self.settings.events_index)
        try:
            response = self._search("query", request)
        except StorageError as exc:
            cause = exc.__cause__
            if isinstance(cause, elasticsearch.BadRequestError):
                raise QueryError(f"elasticsearch could not answer the query: {cause.message} "
                                 f"({_reason(cause.body)})") from cause
            raise
        return query_result(query, response)

    def plugins_of(self, tenant: str) -> list[str]:
        """A terms aggregation on the catalog's ``plugin`` for the tenant."""
        es = self._es()
        response = self._call("list plugins", lambda: es.search(
            index=self.settings.streams_index, size=0, query={"term": {"tenant": tenant}},
            aggs={"plugins": {"terms": {"field": "plugin", "size": 10000, "order": {"_key": "asc"}}}}))
        return [bucket["key"] for bucket in response["aggregations"]["plugins"]["buckets"]]

    # -- operations ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """Ask the cluster who it is and how it is (``_cluster/health``: green, yellow or red), without
        retries (a probe answers fast); raise `BackendUnavailable` if it cannot be reached."""
        facts: dict[str, Any] = {"backend": "elasticsearch", "hosts": list(self.settings.hosts),
                                 "index_prefix": self.settings.index_prefix}
        with translate_errors("health check"):
            try:
                info = self.client.info()
            except elasticsearch.AuthorizationException:
                return facts  # authenticated and answering, just not allowed to read cluster info
            version = info.get("version", {}).get("number")
            facts.update(cluster_name=info.get("cluster_name"), version=version, server_version=version)
            try:
                health = self.client.cluster.health()
            except elasticsearch.AuthorizationException:
                return facts  # may read cluster info but not cluster health (monitor privilege)
        facts.update(cluster_health=health.get("status"), nodes=health.get("number_of_nodes"))
        return facts

    def drop_all(self) -> None:
        """Delete both indices of this prefix (tests and resets); they are re-created on next use."""
        with translate_errors("drop indices"):
            self.client.indices.delete(index=[self.settings.events_index, self.settings.streams_index],
                                       ignore_unavailable=True)
        self._ready = False

    def close(self) -> None:
        """Close the client's connections, if it was ever built."""
        if self._client is not None:
            self._client.close()
            self._client = None
            self._ready = False


def _reason(body: Any) -> str:
    try:
        return str(body["error"]["root_cause"][0]["reason"])
    except (KeyError, IndexError, TypeError):
        return str(body)[:200]
