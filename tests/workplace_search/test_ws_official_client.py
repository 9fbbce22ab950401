"""The official `elastic-enterprise-search` client against a running `event-gateway serve`.

`WorkplaceSearch(url, bearer_auth=token).create_analytics_event(body=...)` must succeed, and the client
must raise the exception its status map names (notes §6): 400 `BadRequestError`, 401 `UnauthorizedError`,
403 `ForbiddenError`, with the ``{"errors": [...]}`` body in ``e.body`` and in the message.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest
from support import write_config
from workplace_search.ws_helpers import (
    DOC_TOKEN_A,
    DOC_TOKEN_B,
    FEEDBACK,
    NO_GRANT_TOKEN,
    PLUGIN,
    STREAM,
    stored,
    ws_config,
)

from gateway import create_app
from gateway.events import now_ms
from gateway.state import get_state

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # "Enterprise Search is not in 9.0" on import
    from elastic_enterprise_search import (
        BadRequestError,
        ForbiddenError,
        UnauthorizedError,
        WorkplaceSearch,
    )

pytestmark = [
    pytest.mark.slow,
    # the 8.18 client warns on every call that "'body' is deprecated ... use the 'body' parameter" (its bug)
    pytest.mark.filterwarnings("ignore:The 'body' parameter is deprecated:DeprecationWarning"),
]

SEARCH_UI_CLICK = {"type": "click", "query_id": "b1c2d3", "page": 2, "content_source_id": "601c0ee3a2fa0410731ab185",
                   "document_id": "doc-42", "rank": 13, "event": "search-ui-result-click"}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One running gateway (SQLite, two workers) for the module, and a backend reading its store."""
    from support import start_server

    tmp_path = tmp_path_factory.mktemp("ws-client")
    config = ws_config(tmp_path)
    server = start_server(write_config(tmp_path / "gateway.toml", config))
    backend = get_state(create_app(write_config(tmp_path / "reader.toml", config))).backend
    yield server, backend
    server.stop()


def _client(url: str, token: str | None) -> WorkplaceSearch:
    return WorkplaceSearch(url, bearer_auth=token) if token else WorkplaceSearch(url)


def test_create_analytics_event_succeeds_and_is_stored(gateway: Any) -> None:
    server, backend = gateway
    before = now_ms()
    resp = _client(server.url, DOC_TOKEN_A).create_analytics_event(body=SEARCH_UI_CLICK)
    after = now_ms()
    assert resp.meta.status == 200
    assert resp.body == {}
    assert resp.meta.headers["content-type"] == "application/json;charset=utf-8"
    resp = _client(server.url, DOC_TOKEN_A).create_analytics_event(body={**FEEDBACK, "score": -1})
    assert (resp.meta.status, resp.body) == (200, {})

    events = stored(backend, "acme", start=before)
    clicks = [e for e in events if e.type == "click" and e.data == SEARCH_UI_CLICK]
    assert len(clicks) == 1
    assert clicks[0].stream == STREAM and clicks[0].plugin == PLUGIN
    assert before <= clicks[0].timestamp <= after
    assert any(e.type == "feedback" and e.data["score"] == -1 for e in events)


def test_bad_request_names_every_field(gateway: Any) -> None:
    server, backend = gateway
    body = {"type": "click", "query_id": "", "page": 0, "content_source_id": "cs", "document_id": "d", "rank": True}
    before = now_ms()
    with pytest.raises(BadRequestError) as caught:
        _client(server.url, DOC_TOKEN_B).create_analytics_event(body=body)
    err = caught.value
    assert err.meta.status == 400
    assert err.body == {"errors": ["query_id must not be blank",
                                   "page must be an integer greater than or equal to 1",
                                   "rank must be an integer greater than or equal to 0",
                                   "event is required for click events"]}
    for name in ("query_id", "page", "rank", "event"):
        assert name in err.message
    assert stored(backend, "globex", start=before) == []


def test_missing_and_unknown_tokens_raise_unauthorized(gateway: Any) -> None:
    server, _ = gateway
    for token in (None, "not-a-configured-token"):
        with pytest.raises(UnauthorizedError) as caught:
            _client(server.url, token).create_analytics_event(body=SEARCH_UI_CLICK)
        assert caught.value.meta.status == 401
        errors = caught.value.body["errors"]
        assert len(errors) == 1 and "access token" in errors[0]
        assert caught.value.meta.headers["www-authenticate"].startswith("Bearer")


def test_token_without_the_grant_raises_forbidden(gateway: Any) -> None:
    server, backend = gateway
    before = now_ms()
    with pytest.raises(ForbiddenError) as caught:
        _client(server.url, NO_GRANT_TOKEN).create_analytics_event(body=SEARCH_UI_CLICK)
    assert caught.value.meta.status == 403
    assert "workplace_search:write" in caught.value.body["errors"][0]
    assert stored(backend, "acme", start=before) == []
