"""The vendor-API conformance kit: every route of an API answers errors as JSON in the API's own format.

A plugin package runs it against itself with one import and one small class::

    from gateway.testing.conformance import VendorApiConformance

    class TestHelloConformance(VendorApiConformance):
        api = "hello"
        granted = {"X-Hello-Key": "admin-secret-1"}      # a credential holding every grant of the API
        ungranted = {"X-Hello-Key": "other-secret-1"}    # a valid credential holding none of them
        unknown = {"X-Hello-Key": "nope"}                # a credential the gateway does not know

        def make_app(self, **sections):                  # sections: config sections to merge in
            return create_app(my_config(**sections))

pytest then collects the ``test_*`` methods below. Each one drives the real app (routes are enumerated
from its URL map, never listed by hand) into one situation the core answers for the API: 401 (no
credential, an unknown one), 403 (no grant), 404 and 405 (routing), 413 (body over
``server.max_body_bytes``), 415 (a non-JSON Content-Type) and 429 (a named quota exhausted). The answer
must be JSON, never HTML, and *in the API's format*: the same status, media type, body keys (two levels
deep) and header names as the API's declared `render_error` gives for the core's error in the same
request. 403, 413 and 415 depend on the order in which a view checks its input, so for them every route
must answer JSON without a 5xx, and at least one route must answer exactly the rendered error. Set
`skip` to the statuses an API legitimately never gives (Buildless reads any media type as JSON: 415).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response
from werkzeug import exceptions as http
from werkzeug.routing import Rule

from gateway.errors import (
    Forbidden,
    GatewayError,
    InvalidCredentials,
    MissingCredentials,
    TooManyRequests,
    UnsupportedMediaType,
    from_http_exception,
)
from gateway.jsonbody import is_json_media_type
from gateway.quotas import QUOTA_ATTRIBUTE
from gateway.state import get_state

__all__ = ["VendorApiConformance", "assert_json", "route_probes"]

METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH")
BODY_METHODS = ("POST", "PUT", "PATCH")
#: Headers that differ between two answers for reasons unrelated to the format.
VOLATILE_HEADERS = frozenset({"content-length", "date"})


def assert_json(response: Any) -> Any:
    """The body as JSON, after checking it is not HTML and the response declares a JSON media type."""
    text = response.get_data(as_text=True)
    assert "<html" not in text.lower() and "<!doctype" not in text.lower(), text
    assert is_json_media_type(response.headers.get("Content-Type")), (response.status_code, response.content_type, text)
    return json.loads(text)


def _sample(converter: Any, name: str) -> Any:
    kind = type(converter).__name__
    if kind == "IntegerConverter":
        return 7
    if kind == "FloatConverter":
        return 1.5
    if kind == "UUIDConverter":
        return uuid.UUID(int=1)
    if kind == "PathConverter":
        return f"sample-{name}/part"
    if kind == "AnyConverter":
        return sorted(getattr(converter, "items", None) or ["sample"])[0]
    return f"sample-{name}"


def route_probes(app: Flask, api: str | None = None) -> list[tuple[str, str, str]]:
    """(endpoint, method, path) for every method of every plugin route (of `api` only, when given)."""
    adapter = app.url_map.bind("localhost")
    probes = []
    for rule in app.url_map.iter_rules():
        assert isinstance(rule, Rule)
        if rule.endpoint.startswith("_") or rule.endpoint == "static":  # the core's own routes (/_gateway, /docs ...)
            continue
        if api is not None and rule.endpoint.partition(".")[0] != api:
            continue
        values = {name: _sample(conv, name) for name, conv in rule._converters.items()}
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            path = adapter.build(rule.endpoint, values, method=method)
            endpoint, _ = adapter.match(path, method=method)
            assert endpoint == rule.endpoint, (rule.rule, path)
            probes.append((rule.endpoint, method, path))
    return probes


def _shape(body: Any) -> Any:
    """Top-level keys, and the keys of object values (the format, not the words)."""
    if not isinstance(body, dict):
        return type(body).__name__
    return {key: sorted(value) if isinstance(value, dict) else type(value).__name__ for key, value in body.items()}


class VendorApiConformance:
    """Mix into a ``Test...`` class; set `api`, the three credential header sets, and `make_app`."""

    api: str = ""
    granted: dict[str, str] = {}
    ungranted: dict[str, str] = {}
    unknown: dict[str, str] = {}
    skip: frozenset[int] = frozenset()

    def make_app(self, **sections: Any) -> Flask:
        """An app serving the API, with the given configuration sections merged into the plugin's own."""
        raise NotImplementedError("set make_app(self, **sections) on the conformance test class")

    # -- helpers ---------------------------------------------------------------------------------------
    def _app(self, **sections: Any) -> Flask:
        app = self.make_app(**sections)
        assert self.api in get_state(app).apis, f"the app does not serve the API [{self.api}]"
        return app

    def _probes(self, app: Flask) -> list[tuple[str, str, str]]:
        probes = route_probes(app, self.api)
        assert probes, f"the API [{self.api}] has no routes"
        return probes

    def expected(self, app: Flask, method: str, path: str, error: GatewayError) -> Response:
        """What the API's renderer answers for `error` on this request."""
        with app.test_request_context(path, method=method):
            try:
                return get_state(app).apis[self.api].render_error(error)
            except Exception as exc:  # a renderer that fails is answered in the gateway's format: not conforming
                raise AssertionError(f"render_error of [{self.api}] failed on {error!r}: {exc!r}") from exc

    def assert_rendered(self, app: Flask, response: Any, method: str, path: str, error: GatewayError) -> None:
        """`response` has the status, media type, body shape and header names of the rendered `error`."""
        want = self.expected(app, method, path, error)
        where = (method, path, response.status_code, response.get_data(as_text=True))
        body = assert_json(response)
        assert response.status_code == want.status_code, where
        assert response.mimetype == want.mimetype, where
        assert _shape(body) == _shape(json.loads(want.get_data(as_text=True))), where
        missing = {k.lower() for k, _ in want.headers.items()} - {k.lower() for k, _ in response.headers.items()}
        assert not (missing - VOLATILE_HEADERS), (where, missing)

    def _status_skipped(self, status: int) -> bool:
        return status in self.skip

    def _some_route_renders(self, app: Flask, answers: list[tuple[str, str, Any]], error: GatewayError) -> None:
        """Every answer is JSON below 500; at least one is exactly the rendered `error`."""
        matched = []
        for method, path, response in answers:
            assert_json(response)
            assert response.status_code < 500, (method, path, response.get_data(as_text=True))
            try:
                self.assert_rendered(app, response, method, path, error)
            except AssertionError:
                continue
            matched.append((method, path))
        assert matched, f"no route of [{self.api}] answered {error.status} as its renderer does: " + "; ".join(
            f"{m} {p} -> {r.status_code} {r.get_data(as_text=True)[:200]}" for m, p, r in answers)

    # -- 401 -------------------------------------------------------------------------------------------
    def test_conformance_401_without_credentials(self) -> None:
        app = self._app()
        client = app.test_client()
        for _, method, path in self._probes(app):
            response = client.open(path, method=method, data="{}", content_type="application/json")
            self.assert_rendered(app, response, method, path, MissingCredentials())

    def test_conformance_401_with_an_unknown_credential(self) -> None:
        app = self._app()
        client = app.test_client()
        for _, method, path in self._probes(app):
            response = client.open(path, method=method, headers=self.unknown, data="{}",
                                   content_type="application/json")
            self.assert_rendered(app, response, method, path, InvalidCredentials())

    # -- 403 -------------------------------------------------------------------------------------------
    def test_conformance_403_without_the_grant(self) -> None:
        if self._status_skipped(403):
            return
        app = self._app()
        client = app.test_client()
        answers = [(method, path, client.open(path, method=method, headers=self.ungranted))
                   for _, method, path in self._probes(app)]
        for method, path, response in answers:
            if response.status_code == 403:
                self.assert_rendered(app, response, method, path, Forbidden("forbidden", detail=f"{self.api}:*"))
        self._some_route_renders(app, answers, Forbidden("forbidden", detail=f"{self.api}:*"))

    # -- 404, 405 --------------------------------------------------------------------------------------
    def _unrouted_paths(self, app: Flask) -> Iterator[str]:
        for prefix, name in get_state(app).prefixes:
            if name == self.api and prefix != "/":  # a root route claims only "/" (see api_for_path)
                yield f"{prefix.rstrip('/')}/no-such-route-conformance/x"

    def test_conformance_404_under_the_api(self) -> None:
        app = self._app()
        client = app.test_client()
        paths = list(self._unrouted_paths(app))
        assert paths, f"the API [{self.api}] claims no path prefix"
        for path in paths:
            for method in ("GET", "POST"):
                response = client.open(path, method=method, headers={**self.granted, "Accept": "text/html, */*"})
                self.assert_rendered(app, response, method, path, from_http_exception(http.NotFound()))

    def test_conformance_405_on_every_route(self) -> None:
        app = self._app()
        client = app.test_client()
        adapter = app.url_map.bind("localhost")
        seen = 0
        for _, _, path in self._probes(app):
            for method in METHODS:
                try:
                    adapter.match(path, method=method)
                    continue
                except http.MethodNotAllowed as exc:
                    error = from_http_exception(exc)
                except http.HTTPException:
                    continue
                response = client.open(path, method=method, headers=self.granted)
                self.assert_rendered(app, response, method, path, error)
                seen += 1
        assert seen, f"no route of [{self.api}] refuses a method"

    # -- 413, 415 --------------------------------------------------------------------------------------
    def _body_probes(self, app: Flask) -> list[tuple[str, str]]:
        found = [(method, path) for _, method, path in self._probes(app) if method in BODY_METHODS]
        assert found, f"no route of [{self.api}] takes a body"
        return found

    def test_conformance_413_body_too_large(self) -> None:
        if self._status_skipped(413):
            return
        app = self._app(server={"max_body_bytes": 64})
        client = app.test_client()
        big = json.dumps({"padding": "x" * 1000})
        answers = [(method, path, client.open(path, method=method, headers=self.granted, data=big,
                                              content_type="application/json"))
                   for method, path in self._body_probes(app)]
        self._some_route_renders(app, answers, from_http_exception(http.RequestEntityTooLarge()))

    def test_conformance_415_not_json(self) -> None:
        if self._status_skipped(415):
            return
        app = self._app()
        client = app.test_client()
        answers = [(method, path, client.open(path, method=method, headers=self.granted, data="{}",
                                              content_type="text/plain"))
                   for method, path in self._body_probes(app)]
        self._some_route_renders(app, answers, UnsupportedMediaType("Content-Type must be application/json"))

    # -- 429 -------------------------------------------------------------------------------------------
    def test_conformance_429_quota_exhausted(self) -> None:
        if self._status_skipped(429):
            return
        declared = dict(get_state(self._app()).apis[self.api].declaration.quotas)
        assert declared, f"the API [{self.api}] declares no quota"
        app = self._app(quotas={self.api: {name: "1 per hour" for name in declared}})
        limited = [(method, path) for endpoint, method, path in self._probes(app)
                   if getattr(app.view_functions[endpoint], QUOTA_ATTRIBUTE, None)]
        assert limited, f"no route of [{self.api}] counts against a quota"
        for method, path in limited:
            client = app.test_client()
            client.open(path, method=method, headers=self.granted, data="", content_type="application/json")
            response = client.open(path, method=method, headers=self.granted, data="",
                                   content_type="application/json")
            self.assert_rendered(app, response, method, path, TooManyRequests("limit reached", retry_after=60))
            assert int(response.headers["Retry-After"]) >= 1
