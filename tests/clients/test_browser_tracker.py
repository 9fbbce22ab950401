"""Elastic's browser tracker in headless Chromium, on a page served from another origin than the gateway.

The npm package ``@elastic/behavioral-analytics-browser-tracker`` ships a browser build (dist/iife) that puts
``window.elasticAnalytics`` on the page: ``createTracker({endpoint, collectionName, apiKey})`` (apiKey is the
``ApiKey`` value `keys new` prints), a ``page_view`` on ``pageshow``, ``trackSearch`` and ``trackSearchClick``.
Its ``fetch`` sends ``Content-Type: application/json`` and ``Authorization: Apikey …`` cross-origin, so the
browser preflights every event: what reaches the gateway went through CORS. The page is served by a tiny
static server on a second port (the allowed origin) and a third (an origin the gateway does not allow, whose
events must never be stored). Chromium is Debian's, driven by Playwright with ``executable_path``.
"""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from clients.clients_kit import encoded_api_key, export
from support import RunningServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TENANT = "shopfront"
PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Shop front</title><link rel="icon" href="data:,">
<script src="tracker.js"></script>
<script>
  window.elasticAnalytics.createTracker({endpoint: "%(endpoint)s", collectionName: "%(collection)s",
                                         apiKey: "%(api_key)s"});
</script>
</head><body><h1>Shop front</h1></body></html>
"""


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory, node_modules: Path, client_gateway: RunningServer,
          page_ports: tuple[int, int]) -> Iterator[dict[str, str]]:
    """Two static servers (allowed and refused origin) serving the same shop page and the tracker build."""
    root = tmp_path_factory.mktemp("pages")
    bundle = node_modules / "@elastic" / "behavioral-analytics-browser-tracker" / "dist" / "iife" / "index.js"
    shutil.copy(bundle, root / "tracker.js")
    for collection in ("shop", "refused"):
        (root / f"{collection}.html").write_text(PAGE % {"endpoint": client_gateway.url, "collection": collection,
                                                         "api_key": encoded_api_key("browser")})
    servers = []
    for port in page_ports:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(_Quiet, directory=str(root)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    allowed, refused = (f"http://127.0.0.1:{port}" for port in page_ports)
    yield {"allowed": f"{allowed}/shop.html", "refused": f"{refused}/refused.html"}
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (.ci/run installs it with apt)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def collections(client_gateway: RunningServer) -> None:
    """The site owner's collections exist (`browser` may only post events, as a tracker key should)."""
    for name in ("shop", "refused"):
        response = requests.put(f"{client_gateway.url}/_application/analytics/{name}", timeout=10,
                                headers={"Authorization": f"ApiKey {encoded_api_key('shop-owner')}"})
        assert response.status_code == 201, response.text


def _posted(response: Any, event_type: str) -> bool:
    return response.request.method == "POST" and response.url.split("?")[0].endswith(f"/event/{event_type}")


def test_tracker_events_reach_the_gateway_through_cors(browser: Any, pages: dict[str, str], collections: None,
                                                       client_gateway: RunningServer) -> None:
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    preflights: list[tuple[str, str]] = []  # the CORS preflights Chromium sent (DevTools protocol)
    devtools = context.new_cdp_session(page)
    devtools.on("Network.requestWillBeSent", lambda event: preflights.append(
        (event["request"]["method"], event["request"]["url"])) if event["request"]["method"] == "OPTIONS" else None)
    devtools.send("Network.enable")
    with page.expect_response(lambda r: _posted(r, "page_view"), timeout=20_000) as viewed:
        page.goto(pages["allowed"])  # the tracker posts page_view on `pageshow`
    with page.expect_response(lambda r: _posted(r, "search"), timeout=20_000) as searched:
        page.evaluate("""() => window.elasticAnalytics.trackSearch({search: {
            query: "laptop", page: {current: 1, size: 10}, sort: {name: "relevance"}, search_application: "website",
            results: {items: [{document: {id: "123", index: "products"}, page: {url: "http://shop.example/p/123"}}],
                      total_results: 100}}})""")
    with page.expect_response(lambda r: _posted(r, "search_click"), timeout=20_000) as clicked:
        page.evaluate("""() => window.elasticAnalytics.trackSearchClick({
            document: {id: "123", index: "products"}, search: {query: "laptop", search_application: "website"}})""")
    origin = pages["allowed"].rsplit("/", 1)[0]
    for answer in (viewed.value, searched.value, clicked.value):
        assert answer.status == 202, answer.text()
        assert answer.json() == {"accepted": True}  # readable by the page: CORS let it through
        assert answer.headers["access-control-allow-origin"] == origin
    cookies = {c["name"]: c["value"] for c in context.cookies()}
    # each event URL was preflighted once (then cached for cors.max_age)
    assert sorted(preflights) == sorted(("OPTIONS", r.url) for r in (viewed.value, searched.value, clicked.value))
    context.close()
    assert errors == []

    stored = export(client_gateway, TENANT)
    assert sorted(event["type"] for event in stored) == ["page_view", "search", "search_click"]
    assert {event["stream"] for event in stored} == {"shop"}
    assert {event["user_id"] for event in stored} == {cookies["EA_UID"]}  # the tracker's own ids
    assert {event["session_id"] for event in stored} == {cookies["EA_SID"]}
    by_type = {event["type"]: event["data"] for event in stored}
    assert by_type["page_view"]["page"]["url"] == pages["allowed"]
    assert by_type["page_view"]["page"]["title"] == "Shop front"
    assert by_type["search"]["search"]["query"] == "laptop"
    assert by_type["search"]["search"]["results"]["total_results"] == 100
    assert by_type["search_click"]["document"] == {"id": "123", "index": "products"}
    assert all(data["session"]["user_agent"].startswith("Mozilla/5.0") for data in by_type.values())


def test_a_page_on_an_origin_not_allowed_is_refused(browser: Any, pages: dict[str, str], collections: None,
                                                    client_gateway: RunningServer) -> None:
    page = browser.new_page()
    with page.expect_console_message(lambda m: m.type == "error" and "TrackEventError" in m.text,
                                     timeout=20_000):
        page.goto(pages["refused"])  # page_view on pageshow: the preflight is refused, nothing is sent
    page.evaluate("() => window.elasticAnalytics.trackSearch({search: {query: 'refused'}})")
    page.wait_for_timeout(500)
    page.close()
    preflight = requests.options(f"{client_gateway.url}/_application/analytics/refused/event/search", timeout=10,
                                 headers={"Origin": pages["refused"].rsplit("/", 1)[0],
                                          "Access-Control-Request-Method": "POST",
                                          "Access-Control-Request-Headers": "authorization,content-type"})
    assert preflight.status_code == 403  # what the browser was told
    assert [event for event in export(client_gateway, TENANT) if event["stream"] == "refused"] == []
