"""Quotas: a default per credential across all APIs, plus named per-plugin limits.

* ``quotas.default`` is keyed by credential id, so one key's traffic to every API counts against one budget.
* An API declares named limits in its `VendorApi.quotas` (e.g. ``{"post_event": "1000 per second"}``)
  and marks views with ``@quota("post_event")``; ``[quotas.<plugin>] post_event = "..."`` overrides the
  value. A named limit is shared by every view carrying the name, per credential or per tenant.
* A view that can only tell the key once it has read the request (AppDynamics counts searches per account
  *and event type*, named in the query text) calls ``gateway.api.count_quota(name, *key)`` instead.
* ``quotas.storage_url`` is ``memory://`` (per process: each gunicorn worker counts alone) or Redis,
  which holds quotas across workers and hosts.

The counting is done by `limits`, the rate-limit engine of flask-limiter (same storages, strategies and
rate strings), called directly: limits are parsed once at start-up and each request costs one ``hit`` per
applicable limit. flask-limiter's own per-request machinery (re-resolving which limits apply on every
request, before and around the view) measured ~300 µs per request, half of the gateway's overhead
(bench/profile_ingest.py). A breach raises `TooManyRequests` with ``Retry-After``, rendered by the plugin.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

from flask import Flask
from limits import RateLimitItem, parse_many
from limits.storage import MemoryStorage, Storage, storage_from_string
from limits.strategies import STRATEGIES, FixedWindowRateLimiter

from .auth import Credential
from .errors import GatewayError, ServiceUnavailable, TooManyRequests
from .state import Api, GatewayState

F = TypeVar("F", bound=Callable[..., Any])
QUOTA_ATTRIBUTE = "__gateway_quotas__"


def quota(name: str, *, per: str = "credential") -> Callable[[F], F]:
    """Mark a view as counting against the plugin's named quota `name`, per credential or per tenant."""
    if per not in ("credential", "tenant"):
        raise ValueError("per must be 'credential' or 'tenant'")

    def mark(view: F) -> F:
        setattr(view, QUOTA_ATTRIBUTE, (*getattr(view, QUOTA_ATTRIBUTE, ()), (name, per)))
        return view

    return mark


class _Hit(NamedTuple):
    """One limit a request counts against, with what counting it needs worked out in advance."""

    key: str  # the counter's key in the storage (`RateLimitItem.key_for`)
    expiry: int  # the window, in seconds
    amount: int  # the limit
    item: RateLimitItem
    scope: str
    who: str


@dataclass(frozen=True, slots=True)
class NamedQuota:
    """One named plugin limit as applied to a view."""

    scope: str  # "<api>:<name>"
    items: tuple[RateLimitItem, ...]
    per_tenant: bool


class InlineExpiryMemoryStorage(MemoryStorage):
    """limits' in-process storage, minus its expiry timer thread, plus a lean `count` for the hot path.

    `MemoryStorage` restarts a `threading.Timer` every 10 ms while traffic flows, and `Thread.start()` waits
    for the new thread to get the GIL: with busy request threads that is up to the interpreter's switch
    interval per start. Measured on the ingest benchmark, quotas on memory:// cost 15% of throughput that
    way. Expired counters are already dropped when read; the periodic sweep (memory hygiene for keys never
    read again) runs inline here, at most once per `SWEEP_SECONDS`.
    """

    STORAGE_SCHEME = ["event-gateway-memory"]  # never chosen by URL: built directly for memory://
    SWEEP_SECONDS = 10.0

    def __init__(self, uri: str | None = None, **options: Any) -> None:
        super().__init__(uri, **options)
        self.timer.cancel()
        self._next_sweep = time.time() + self.SWEEP_SECONDS

    def _MemoryStorage__schedule_expiry(self) -> None:
        now = time.time()
        if now >= self._next_sweep:
            self._next_sweep = now + self.SWEEP_SECONDS
            self._MemoryStorage__expire_events()

    def count(self, key: str, expiry: float) -> int:
        """``incr(key, expiry)`` (add one, start the window on the first hit; the new count), in one call.

        The same counters, expiry times and per-key locks as limits' own `incr`, so its reads (window stats
        for ``Retry-After``, `get`, `clear`) see them; without the two error-wrapping layers limits puts
        around each storage method (`Storage.__init_subclass__` wraps them again for every subclass) and the
        nested `get` call: a third of a request's quota cost.
        """
        now = time.time()
        if self.expirations.get(key, 0) <= now:  # limits' `get`: an expired window starts again from zero
            self.storage.pop(key, None)
            self.expirations.pop(key, None)
            self.locks.pop(key, None)
        if now >= self._next_sweep:
            self._MemoryStorage__schedule_expiry()
        with self.locks[key]:
            value = self.storage[key] + 1
            self.storage[key] = value
            if value == 1:
                self.expirations[key] = now + expiry
        return value


def quota_storage(url: str) -> Storage:
    """The counter storage for ``quotas.storage_url`` (memory:// without a timer thread)."""
    if url.startswith("memory://"):
        return InlineExpiryMemoryStorage()
    return storage_from_string(url)


class Quotas:
    """The app's quota enforcer: parsed limits, the counter storage and the strategy."""

    def __init__(self, settings: dict[str, Any]) -> None:
        self.storage = quota_storage(settings["storage_url"])
        self.strategy = STRATEGIES[settings["strategy"]](self.storage)
        self.default = tuple(parse_many(settings["default"]))
        self.by_endpoint: dict[str, tuple[NamedQuota, ...]] = {}
        # Fixed window (the default): one counter increment per limit, with each limit's key and expiry worked
        # out once per (endpoint, credential) instead of per request (`_plan`).
        fixed = type(self.strategy) is FixedWindowRateLimiter
        self._incr: Callable[[str, float], int] | None = (
            None if not fixed else getattr(self.storage, "count", None) or self.storage.incr)
        self._plans: dict[tuple[str, str], tuple[_Hit, ...]] = {}  # finite: endpoints x configured credentials
        self._parsed: dict[str, tuple[RateLimitItem, ...]] = {}

    def attach(self, app: Flask, state: GatewayState) -> None:
        """Resolve every marked view's named quotas once, with the configured overrides applied."""
        for endpoint, view in app.view_functions.items():
            api = state.apis.get(endpoint.partition(".")[0])
            marks = getattr(view, QUOTA_ATTRIBUTE, ())
            if api is None or not marks:
                continue
            resolved = []
            for name, per in marks:
                if name not in api.quotas:
                    raise ValueError(f"view {endpoint} uses quota [{name}] that plugin [{api.name}] does not declare")
                resolved.append(NamedQuota(f"{api.name}:{name}", tuple(parse_many(api.quotas[name])),
                                           per == "tenant"))
            self.by_endpoint[endpoint] = tuple(resolved)

    def check(self, credential: Credential, endpoint: str | None) -> None:
        """Count one request of `credential` to `endpoint`; raise `TooManyRequests` when a limit is spent."""
        plan = self._plans.get((endpoint or "", credential.id))
        if plan is None:
            plan = self._plan(credential, endpoint or "")
        incr = self._incr
        if incr is None:  # moving window and the like: limits' strategy does the counting
            for hit in plan:
                if not self.strategy.hit(hit.item, hit.scope, hit.who):
                    raise self._breach(hit.item, hit.scope, hit.who)
            return
        for hit in plan:
            if incr(hit.key, hit.expiry) > hit.amount:  # `FixedWindowRateLimiter.hit`, key and expiry cached
                raise self._breach(hit.item, hit.scope, hit.who)

    def _plan(self, credential: Credential, endpoint: str) -> tuple[_Hit, ...]:
        """The limits a request of `credential` to `endpoint` counts against: the default, then the view's."""
        hits = [(item, "default", credential.id) for item in self.default]
        for named in self.by_endpoint.get(endpoint, ()):
            who = f"tenant:{credential.tenant}" if named.per_tenant else credential.id
            hits.extend((item, named.scope, who) for item in named.items)
        plan = tuple(_Hit(item.key_for(scope, who), item.get_expiry(), item.amount, item, scope, who)
                     for item, scope, who in hits)
        self._plans[(endpoint, credential.id)] = plan
        return plan

    def count(self, api: Api, name: str, *key: str) -> None:
        """Count one use of `api`'s named quota `name` for `key` (parts chosen by the view, e.g. the tenant
        and an event type named in the body); raise `TooManyRequests` when it is spent. For limits a view
        can only key once it has read the request; declared and overridable like the others."""
        if name not in api.quotas:
            raise ValueError(f"plugin [{api.name}] counts quota [{name}] that it does not declare")
        text = api.quotas[name]
        items = self._parsed.get(text)
        if items is None:
            items = self._parsed[text] = tuple(parse_many(text))
        scope = f"{api.name}:{name}"
        for item in items:
            if not self.strategy.hit(item, scope, *key):
                raise self._breach(item, scope, *key)  # keys from request bodies: not cached

    def _breach(self, item: RateLimitItem, *identifiers: str) -> TooManyRequests:
        reset = self.strategy.get_window_stats(item, *identifiers).reset_time
        return TooManyRequests(f"rate limit exceeded: {item}", retry_after=math.ceil(reset - time.time()))

    def reachable(self) -> bool:
        """Whether the counter storage answers (for `event-gateway check` and health)."""
        return bool(self.storage.check())


def init_app(app: Flask, state: GatewayState) -> Quotas:
    """Build the app's enforcer and resolve the named quotas of its views."""
    quotas = Quotas(state.config.quotas)
    quotas.attach(app, state)
    state.quotas = quotas
    return quotas


def as_gateway_error(exc: BaseException) -> GatewayError | None:
    """An unreachable quota store (Redis down) as 503, so nothing is accepted unmetered; else None."""
    if type(exc).__module__.startswith(("redis", "limits")):
        return ServiceUnavailable("the quota store is unavailable")
    return None
