"""gateway.flaskapp: the Flask class the gateway runs on answers exactly as Flask does, with less work per request."""

from __future__ import annotations

import pytest
from flask import request
from werkzeug.exceptions import MethodNotAllowed, NotFound

from gateway.flaskapp import MAX_REMEMBERED_MATCHES, CachingMap, GatewayFlask


def _app() -> GatewayFlask:
    app = GatewayFlask("t", max_body_bytes=10)
    app.url_map.strict_slashes = False
    app.url_map.merge_slashes = False

    @app.post("/c/<name>/event/<kind>")
    def post(name: str, kind: str) -> dict[str, str]:
        request.get_data()  # werkzeug refuses a body over the limit when it is read
        return {"name": name, "kind": kind}

    @app.get("/c/<name>")
    def get(name: str) -> dict[str, str]:
        return {"get": name}

    return app


def test_remembered_matches_give_fresh_values_and_never_remember_misses() -> None:
    app = _app()
    adapter = app.url_map.bind("localhost")
    first = adapter.match("/c/a/event/page_view", "POST", return_rule=True)
    first[1]["name"] = "changed by a caller"
    again = adapter.match("/c/a/event/page_view", "POST", return_rule=True)
    assert again[0] is first[0] and again[1] == {"name": "a", "kind": "page_view"}
    assert adapter.match("/c/b/event/search", "POST")[1] == {"name": "b", "kind": "search"}
    for _ in range(2):  # a miss stays a miss, with the same exception
        with pytest.raises(MethodNotAllowed):
            adapter.match("/c/a/event/page_view", "GET")
        with pytest.raises(NotFound):
            adapter.match("/nothing/here", "GET")


def test_requests_are_answered_as_by_flask() -> None:
    client = _app().test_client()
    for _ in range(2):
        assert client.post("/c/x/event/y").get_json() == {"name": "x", "kind": "y"}
        assert client.get("/c/x").get_json() == {"get": "x"}
        assert client.get("/c/x/event/y").status_code == 405
        assert client.post("/c/x/event/y", data=b"x" * 11).status_code == 413  # the configured body limit


def test_adding_a_rule_or_changing_slash_merging_forgets_matches() -> None:
    app = _app()
    adapter = app.url_map.bind("localhost")
    assert adapter.match("/c/x", "GET")[0] == "get"
    app.add_url_rule("/c/special", "special", lambda: "s")
    assert app.url_map.bind("localhost").match("/c/special", "GET")[0] == "special"
    matcher = app.url_map._matcher
    assert matcher._recent
    app.url_map.merge_slashes = True
    assert not matcher._recent and matcher.merge_slashes is True


def test_the_memory_is_bounded() -> None:
    app = _app()
    adapter = app.url_map.bind("localhost")
    for index in range(MAX_REMEMBERED_MATCHES + 5):
        adapter.match(f"/c/n{index}", "GET")
    assert len(app.url_map._matcher._recent) <= MAX_REMEMBERED_MATCHES


def test_caching_map_keeps_rules_given_at_construction() -> None:
    from werkzeug.routing import Rule

    adapter = CachingMap([Rule("/a/<x>", endpoint="a")]).bind("localhost")
    assert adapter.match("/a/1") == ("a", {"x": "1"})
    assert adapter.match("/a/1") == ("a", {"x": "1"})


def test_body_limit_is_the_configured_one_and_can_still_be_set_per_request() -> None:
    app = _app()
    with app.test_request_context("/c/x/event/y", method="POST"):
        assert request.max_content_length == 10
        request.max_content_length = 20
        assert request.max_content_length == 20


def test_sync_functions_are_remembered_and_returned_unchanged() -> None:
    app = _app()

    def hook() -> None:
        return None

    assert app.ensure_sync(hook) is hook
    assert hook in app._known_sync
    assert app.ensure_sync(hook) is hook
