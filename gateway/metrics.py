"""Prometheus metrics: requests, latency, events, quota rejections and backend calls, at ``GET /metrics``.

The metric objects are process-wide (Prometheus' model: one set per process). Under ``event-gateway serve``
`PROMETHEUS_MULTIPROC_DIR` is set by the CLI to a fresh temporary directory before anything imports
prometheus_client, so every gunicorn worker writes its figures there and ``/metrics``, whichever worker
answers, reports the sum over all workers. Only counters and histograms are used: they need no per-worker
clean-up when a worker exits (its totals must stay in the sums), and the CLI removes the directory when the
server stops.

The hot path stays small: each URL rule gets its label values bound once at start-up (`RouteSlot`, attached
to the werkzeug rule), and updates are gathered per process and written about once a second
(`gateway.metrics_batch`), so a request costs a rule attribute read, a dict lookup and a few additions.
``/metrics`` needs a credential holding ``gateway:metrics`` (ApiKey, Basic or Bearer, like Prometheus'
``basic_auth``/``authorization``) unless ``[server] metrics = "open"``; ``"off"`` removes the route.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Blueprint, Flask, Request, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import Rule

from .auth import standard_scheme
from .errors import Forbidden, InvalidCredentials, MissingCredentials
from .flaskapp import current_globals, current_request
from .metrics_batch import BATCH
from .state import get_state

if TYPE_CHECKING:
    from .accesslog import AccessLog
    from .state import GatewayState
    from .storage import Backend

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
GRANT = ("gateway", "metrics")
UNMATCHED = "<unmatched>"
#: Backend calls that are timed and whose errors are counted: the ones that do real work.
BACKEND_CALLS = ("append", "query", "create_stream", "delete_stream", "health")
#: Catalog lookups made on every request (mostly answered from memory): only their errors are counted, since a
#: latency histogram costs two shared-memory writes per call.
BACKEND_LOOKUPS = ("get_stream", "list_streams", "ensure_stream")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

REGISTRY = CollectorRegistry(auto_describe=True)
#: Requests answered and their latency; ``_count`` is the number of requests (no separate counter: one fewer
#: shared-memory write per request).
LATENCY = Histogram("event_gateway_request_duration_seconds",
                    "Time to answer a request, by API, route (URL rule), method and status; _count counts requests",
                    ("api", "route", "method", "status"), buckets=_BUCKETS, registry=REGISTRY)
EVENTS_ACCEPTED = Counter("event_gateway_events_accepted", "Events stored durably, by API",
                          ("api",), registry=REGISTRY)
EVENTS_REJECTED = Counter("event_gateway_events_rejected",
                          "POST requests to an API answered with an error (nothing stored), by API and reason",
                          ("api", "reason"), registry=REGISTRY)
QUOTA_REJECTIONS = Counter("event_gateway_quota_rejections", "Requests refused by a quota (429), by API and route",
                           ("api", "route"), registry=REGISTRY)
BACKEND_LATENCY = Histogram("event_gateway_backend_call_duration_seconds", "Storage backend calls, by operation",
                            ("operation",), buckets=_BUCKETS, registry=REGISTRY)  # BACKEND_CALLS
BACKEND_ERRORS = Counter("event_gateway_backend_errors", "Storage backend calls that raised, by operation and error",
                         ("operation", "error"), registry=REGISTRY)

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})
#: HTTP status -> the reason a rejected request is counted under.
REASONS = {400: "invalid", 401: "unauthenticated", 403: "forbidden", 404: "not_found", 405: "method",
           406: "media_type", 413: "too_large", 415: "media_type", 429: "quota", 500: "error", 503: "unavailable"}


class RouteSlot:
    """The label values of one URL rule, and its metric children by (method, status), made on first use."""

    __slots__ = ("api", "children", "log_prefix", "quota", "rejected", "route")

    def __init__(self, api: str, route: str) -> None:
        from .accesslog import AccessLog

        self.api = api
        self.route = route
        self.log_prefix = AccessLog.prefix(api if api != "_gateway" else None, route if route != UNMATCHED else None)
        self.children: dict[tuple[str, int], Any] = {}
        self.rejected: dict[int, Any] = {}
        self.quota = QUOTA_REJECTIONS.labels(api, route) if api != "_gateway" else None

    def observe(self, method: str, status: int, seconds: float) -> None:
        """Count one answered request (a method outside HTTP's usual ones is labelled ``other``)."""
        child = self.children.get((method, status))
        if child is None and method not in METHODS:  # client-chosen: never a new series per invented method
            method = "other"
            child = self.children.get((method, status))
        if child is None:
            child = self.children[(method, status)] = LATENCY.labels(self.api, self.route, method, str(status))
        BATCH.observe(child, seconds)
        if status >= 400 and method == "POST" and self.quota is not None:
            child = self.rejected.get(status)
            if child is None:
                child = self.rejected[status] = EVENTS_REJECTED.labels(self.api, REASONS.get(status, f"http_{status}"))
            BATCH.inc(child)
            if status == 429:
                BATCH.inc(self.quota)


def init_app(app: Flask, state: GatewayState, mode: str, access_log: AccessLog | None = None) -> None:
    """Bind every rule's labels, time every request, count events and backend calls, add ``/metrics``.

    The same hook writes the access-log line (`access_log`), so the request's facts are read once.
    """
    if mode != "off":
        app.register_blueprint(_blueprint(mode))
    for rule in app.url_map.iter_rules():
        api = rule.endpoint.partition(".")[0]
        rule.gateway_metrics = RouteSlot(api if api in state.apis else "_gateway", rule.rule)
    unmatched: dict[str, RouteSlot] = {}
    clock = time.perf_counter
    write = access_log.write if access_log is not None else None

    def start() -> None:
        current_globals().started = clock()

    def finish(response: Response) -> Response:
        facts = current_globals()  # one proxy lookup instead of one per attribute
        started = getattr(facts, "started", None)
        if started is None:
            return response
        seconds = clock() - started
        req = current_request()
        rule = req.url_rule
        slot = getattr(rule, "gateway_metrics", None) if rule is not None else None
        if slot is None and isinstance(req.routing_exception, MethodNotAllowed):  # 405: the path's route
            slot = getattr(_rule_for_other_methods(app, req, req.routing_exception), "gateway_metrics", None)
        if slot is None:  # no rule matched: label by the API that claims the path
            api = state.api_for_path(req.path)
            name = api.name if api is not None else "_gateway"
            slot = unmatched.get(name) or unmatched.setdefault(name, RouteSlot(name, UNMATCHED))
        status = response.status_code
        slot.observe(req.method, status, seconds)
        if write is not None:
            write(slot.log_prefix, req.method, status, seconds, getattr(facts, "credential", None))
        return response

    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request(finish)
    instrument_backend(state.backend)


_ACCEPTED: dict[str, Any] = {}


def count_accepted(api: str, count: int) -> None:
    """Events of `api` now stored durably (called by `gateway.api.store_events`)."""
    child = _ACCEPTED.get(api)
    if child is None:
        child = _ACCEPTED[api] = EVENTS_ACCEPTED.labels(api)
    BATCH.inc(child, count)


def _rule_for_other_methods(app: Flask, req: Request, refused: MethodNotAllowed) -> Rule | None:
    """The URL rule of a path that exists, for other methods than the one asked (a 405), so that the answer is
    counted under that route rather than as unmatched."""
    if not refused.valid_methods:
        return None
    adapter = app.create_url_adapter(req)
    try:
        rule, _ = adapter.match(method=refused.valid_methods[0], return_rule=True)  # type: ignore[union-attr]
    except HTTPException:
        return None
    return rule


def instrument_backend(backend: Backend) -> None:
    """Time the backend's storage calls and count their errors (wrapping the instance's bound methods once)."""
    if getattr(backend, "_gateway_metrics", False):
        return
    for names, wrap in ((BACKEND_CALLS, _timed), (BACKEND_LOOKUPS, _counted)):
        for name in names:
            method = getattr(backend, name, None)
            if callable(method):
                setattr(backend, name, wrap(name, method))
    backend._gateway_metrics = True  # type: ignore[attr-defined]


def _timed(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    latency = BACKEND_LATENCY.labels(name)

    def call(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            BATCH.inc(BACKEND_ERRORS.labels(name, type(exc).__name__))
            raise
        finally:
            BATCH.observe(latency, time.perf_counter() - started)

    call.__wrapped__ = method  # type: ignore[attr-defined]
    call.__doc__ = method.__doc__
    return call


def _counted(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return method(*args, **kwargs)
        except Exception as exc:
            BATCH.inc(BACKEND_ERRORS.labels(name, type(exc).__name__))
            raise

    call.__wrapped__ = method  # type: ignore[attr-defined]
    call.__doc__ = method.__doc__
    return call


def exposition() -> bytes:
    """The metrics in Prometheus' text format: summed over every worker under ``serve``.

    This process's pending updates are written first; other workers' are at most `FLUSH_SECONDS` old.
    """
    BATCH.flush()
    if values.ValueClass is not values.MutexValue and os.environ.get(MULTIPROC_ENV):  # files, not this process
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(REGISTRY)


def _blueprint(mode: str) -> Blueprint:
    blueprint = Blueprint("_metrics", __name__)

    @blueprint.get("/metrics")
    def metrics() -> Response:
        """Prometheus metrics (text format), summed over the server's workers."""
        if mode != "open":
            presented = standard_scheme(request)
            if presented is None:
                raise MissingCredentials()
            credential = get_state().credentials.authenticate(presented)
            if credential is None:
                raise InvalidCredentials()
            g.credential = credential  # for the access log
            if not credential.allows(*GRANT):
                raise Forbidden(f"action [{':'.join(GRANT)}] is unauthorized for credential [{credential.id}]")
        return Response(exposition(), content_type=CONTENT_TYPE_LATEST)

    return blueprint
