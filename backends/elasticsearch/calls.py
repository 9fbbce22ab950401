"""How the Elasticsearch backend calls the cluster: error mapping, bounded retries, and query deadlines.

Every call goes through `retrying` (client errors mapped by `translate_errors`: unreachable, timing out,
overloaded or 5xx -> `BackendUnavailable`, retried with backoff when retrying may help). Searches made for a
query also go through `bounded_search`: inside a query deadline (`gateway.query.deadline`, set from
``storage.query_timeout``) the search carries the time left both as the search's own ``timeout`` (the
cluster stops collecting) and as the client's request timeout (the gateway stops waiting), and a search that
timed out becomes `QueryTimeout` (503) instead of partial results or a retry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import elastic_transport
import elasticsearch

from gateway.query import deadline
from gateway.query.deadline import QueryTimeout
from gateway.storage import BackendUnavailable, StorageError

log = logging.getLogger("backends.elasticsearch")
T = TypeVar("T")


# -- errors --------------------------------------------------------------------------------------------
@contextmanager
def translate_errors(action: str) -> Iterator[None]:
    """Map client errors to the storage errors: unreachable, timing out, overloaded or 5xx -> unavailable."""
    try:
        yield
    except elasticsearch.UnsupportedProductError as exc:
        raise BackendUnavailable(f"elasticsearch {action}: the server is not Elasticsearch") from exc
    except elastic_transport.ApiError as exc:
        status = exc.meta.status
        if status in (401, 403, 408, 429) or status >= 500:
            raise BackendUnavailable(f"elasticsearch {action} failed: {status} {exc.message}") from exc
        raise StorageError(f"elasticsearch {action} failed: {status} {exc.message}") from exc
    except elastic_transport.TransportError as exc:  # connection refused/reset, timeouts, TLS
        raise BackendUnavailable(f"elasticsearch {action}: cannot reach the cluster ({exc})") from exc


def transient(exc: BaseException) -> bool:
    """Whether retrying may help: the cluster was unreachable, timed out, overloaded (429) or failed (5xx).

    Not transient: authentication and authorisation failures, a server that is not Elasticsearch, 4xx.
    """
    cause = exc.__cause__ if isinstance(exc, BackendUnavailable) else exc
    if isinstance(cause, elasticsearch.UnsupportedProductError):
        return False
    if isinstance(cause, elastic_transport.ApiError):
        return cause.meta.status == 429 or cause.meta.status >= 500
    return isinstance(cause, elastic_transport.TransportError)


def retrying(action: str, call: Callable[[], T], retries: int, wait_ms: int) -> T:
    """`call` under `translate_errors`, retried `retries` times on transient failures, waiting `wait_ms`
    (doubled after each attempt) in between; then the last `BackendUnavailable` is raised (-> 503).

    Safe for every call of this backend: reads are idempotent, appends use deterministic ids (a retried bulk
    finds its earlier items as duplicates) and stream creation uses ``op_type=create``.
    """
    delay = wait_ms / 1000
    for attempt in range(retries + 1):
        try:
            with translate_errors(action):
                return call()
        except BackendUnavailable as exc:
            if attempt == retries or not transient(exc):
                raise
            log.warning("elasticsearch %s: %s; retrying in %.1fs (%d of %d)", action, exc, delay, attempt + 1,
                        retries)
            time.sleep(delay)
            delay *= 2
    raise AssertionError("unreachable")  # pragma: no cover


def bounded_search(es: elasticsearch.Elasticsearch, action: str, request: dict[str, Any], retries: int,
                   wait_ms: int) -> dict[str, Any]:
    """``es.search(**request)`` with retries, stopped at the current query deadline (`QueryTimeout`)."""
    def call() -> Any:
        left = deadline.remaining()
        if left is None:
            return es.search(**request)
        if left <= 0:
            raise QueryTimeout()
        try:
            response = es.options(request_timeout=left).search(timeout=f"{max(1, int(left * 1000))}ms", **request)
        except elastic_transport.ConnectionTimeout as exc:
            if deadline.expired():
                raise QueryTimeout() from exc
            raise
        if response.get("timed_out"):
            raise QueryTimeout()
        return response

    return retrying(action, call, retries, wait_ms)

