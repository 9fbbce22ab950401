"""The Flask class the gateway runs on: Flask, minus per-request work for features the gateway never changes.

Measured on the single-event ingest path (bench/RESULTS.md, issue 11), each of these cost microseconds on every
request, in the gateway's hooks and views or in Flask's own dispatch:

* `ensure_sync`: Flask asks `inspect.iscoroutinefunction` about every hook and view on every request (an
  ``async def`` one needs a bridge to an event loop). The gateway's hooks and views are a fixed set, so a
  function found synchronous once is remembered as such.
* URL matching: werkzeug walks its state machine (a regular expression per dynamic part, a sort of the
  converted groups) for every request; `CachingMap` remembers the last `MAX_REMEMBERED_MATCHES` successful
  matches by (host, path, method), so a tracker posting to the same collection matches once. Misses (404,
  405, redirects) are never remembered and cost what they did; the memory is cleared when a rule is added.
* The body limit: Flask's `Request.max_content_length` reads ``current_app.config["MAX_CONTENT_LENGTH"]``
  through context-local proxies on each access (twice a request). The gateway's limit is
  ``server.max_body_bytes``, fixed when the app is built, so its request class carries it (Flask's own
  per-request override, ``request.max_content_length = n``, still works).

Code on the hot path also reads `current_request` / `current_globals` once instead of going through the
``request`` and ``g`` proxies for each attribute: a proxy attribute read costs about twenty plain ones (werkzeug's
`LocalProxy` fails a normal lookup, formats an AttributeError and then resolves the context variable).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from flask import Flask, Request, g, request
from flask.ctx import _AppCtxGlobals
from werkzeug.routing import Map, Rule
from werkzeug.routing.matcher import StateMachineMatcher

#: Functions remembered as synchronous by one app at most (hooks and views are registered at start-up; this
#: only bounds the memory if something registered functions per request).
MAX_KNOWN_SYNC = 4096


#: Successful URL matches remembered per app (paths name collections and streams: the set is the client's to
#: grow, so it is cleared when full rather than kept in order).
MAX_REMEMBERED_MATCHES = 1024
_Match = tuple[Rule, dict[str, Any]]


class _RememberingMatcher(StateMachineMatcher):
    """werkzeug's matcher, answering a (host, path, method) it matched recently from memory."""

    def __init__(self, merge_slashes: bool) -> None:
        self._recent: dict[tuple[str, str, str, bool], _Match] = {}
        super().__init__(merge_slashes)

    @property  # type: ignore[override]  # a plain attribute in werkzeug; here changing it forgets the matches
    def merge_slashes(self) -> bool:
        return self._merge_slashes

    @merge_slashes.setter
    def merge_slashes(self, value: bool) -> None:
        self._merge_slashes = value
        self._recent.clear()

    def add(self, rule: Rule) -> None:
        self._recent.clear()
        super().add(rule)

    def update(self) -> None:
        self._recent.clear()
        super().update()

    def match(self, domain: str, path: str, method: str, websocket: bool) -> _Match:
        key = (domain, path, method, websocket)
        found = self._recent.get(key)
        if found is not None:
            return found[0], dict(found[1])
        rule, values = super().match(domain, path, method, websocket)  # raises for anything but a match
        if len(self._recent) >= MAX_REMEMBERED_MATCHES:
            self._recent.clear()
        self._recent[key] = (rule, dict(values))
        return rule, values


class CachingMap(Map):
    """A `werkzeug.routing.Map` whose matcher remembers recent successful matches (see the module doc).

    Falls back to werkzeug's own matcher if a werkzeug release no longer has the one this extends.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        matcher = getattr(self, "_matcher", None)
        if type(matcher) is StateMachineMatcher:
            remembering = _RememberingMatcher(matcher.merge_slashes)
            for rule in self._rules:
                remembering.add(rule)
            self._matcher = remembering


class GatewayFlask(Flask):
    """`flask.Flask` with a fixed body limit, remembered URL matches and `ensure_sync` answered from memory."""

    url_map_class = CachingMap

    def __init__(self, import_name: str, *, max_body_bytes: int) -> None:
        super().__init__(import_name)
        self.config["MAX_CONTENT_LENGTH"] = max_body_bytes
        self.request_class = cast(type[Request], type("GatewayRequest", (Request,), {
            "__module__": __name__, "__doc__": "A request whose body limit is the app's server.max_body_bytes.",
            "_max_content_length": max_body_bytes}))
        self._known_sync: set[Any] = set()

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        """`Flask.ensure_sync`, remembering the functions it found synchronous (returned as they are)."""
        known = self._known_sync
        try:
            if func in known:
                return func
        except TypeError:  # an unhashable callable object: asked every time, as Flask does
            return super().ensure_sync(func)
        result = super().ensure_sync(func)
        if result is func and len(known) < MAX_KNOWN_SYNC:
            known.add(func)
        return result


def current_request() -> Request:
    """The request being served (the object behind `flask.request`): read it once, then its attributes."""
    return cast(Request, request._get_current_object())  # type: ignore[attr-defined]


def current_globals() -> _AppCtxGlobals:
    """The app context's `flask.g` object itself, for several reads or writes in one function."""
    return cast(_AppCtxGlobals, g._get_current_object())  # type: ignore[attr-defined]
