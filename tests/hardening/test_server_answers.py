"""Issue 10, items 5-7: the server's own answers are JSON, a 413 leaves the connection usable, and neither the
logs nor the unauthenticated health answer give away client addresses or file-system paths.

Every test talks to a real ``event-gateway serve`` on 127.0.0.1 with raw sockets (or `requests` where the
finding was seen with it).
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest
import requests
from support import RunningServer, api_key, base_config

pytestmark = pytest.mark.slow

INGEST = "/_application/analytics/site/event/page_view"
EVENT = {"page": {"url": "https://example.com/"}, "session": {"id": "s1"}, "user": {"id": "u1"}}
MAX_BODY = 4096


def _port(server: RunningServer) -> int:
    return int(server.url.rsplit(":", 1)[1])


def _exchange(server: RunningServer, payload: bytes, timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Send raw bytes, read until the server closes: (status, lower-cased headers, body)."""
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=timeout) as sock:
        sock.sendall(payload)
        data = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep:
                length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
                if length and len(body) >= int(length.group(1)):
                    break
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 "), data[:300]
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def _assert_json_error(status: int, headers: dict[str, str], body: bytes, expected: int) -> dict:
    assert status == expected, body[:300]
    assert headers.get("content-type", "").startswith("application/json"), (headers, body[:300])
    doc = json.loads(body)
    assert doc["error"]["status"] == expected and doc["error"]["message"], doc
    return doc


@pytest.fixture
def server(serve, tmp_path: Path) -> RunningServer:
    running = serve(base_config(tmp_path, server={"max_body_bytes": MAX_BODY, "request_timeout": 5},
                                plugins={"enabled": ["elastic_analytics", "buildless"]}))
    created = requests.put(f"{running.url}/_application/analytics/site", timeout=10,
                           headers={"Authorization": f"ApiKey {api_key('admin')}"})
    assert created.status_code in (200, 201), created.text
    return running


# -- item 5: the server's own rejections are JSON ------------------------------------------------------------

def test_request_line_over_8190_bytes_is_414_json(server: RunningServer) -> None:
    request = b"GET /_gateway/health?q=" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    _assert_json_error(*_exchange(server, request), 414)


def test_a_header_field_too_large_is_431_json(server: RunningServer) -> None:
    request = b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n"
    _assert_json_error(*_exchange(server, request), 431)


def test_a_header_block_too_large_is_431_json(server: RunningServer) -> None:
    fields = b"".join(b"X-F%d: %s\r\n" % (n, b"c" * 4000) for n in range(12))  # 48 KB in fields of 4 KB
    request = b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n"
    _assert_json_error(*_exchange(server, request), 431)


def test_nul_in_a_header_is_400_json(server: RunningServer) -> None:
    request = b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n"
    doc = _assert_json_error(*_exchange(server, request), 400)
    assert "header" in doc["error"]["message"]


def test_a_request_that_is_not_http_is_400_json(server: RunningServer) -> None:
    _assert_json_error(*_exchange(server, b"HELLO\r\n\r\n"), 400)


def test_a_stalled_request_is_answered_408_json(serve, tmp_path: Path) -> None:
    quick = serve(base_config(tmp_path, server={"request_timeout": 1}))
    began = time.monotonic()
    status, headers, body = _exchange(quick, b"POST " + INGEST.encode() + b" HTTP/1.1\r\nHost: x\r\n")
    _assert_json_error(status, headers, body, 408)
    assert 0.9 <= time.monotonic() - began < 4
    assert headers.get("connection") == "close"


# -- item 6: a 413 leaves the client's next request working ---------------------------------------------------

def test_413_then_the_next_request_on_the_same_session_works_every_time(server: RunningServer) -> None:
    headers = {"Authorization": f"ApiKey {api_key('admin')}"}
    big = json.dumps({**EVENT, "pad": "x" * (MAX_BODY * 50)})
    failures = []
    with requests.Session() as session:
        for attempt in range(20):
            refused = session.post(f"{server.url}{INGEST}", data=big, timeout=10,
                                   headers={**headers, "Content-Type": "application/json"})
            assert refused.status_code == 413, refused.text
            assert refused.headers["Content-Type"].startswith("application/json")
            assert refused.headers.get("Connection") == "close"
            try:
                followed = session.post(f"{server.url}{INGEST}", json=EVENT, headers=headers, timeout=10)
                if followed.status_code != 202:
                    failures.append((attempt, followed.status_code))
            except requests.ConnectionError as exc:
                failures.append((attempt, type(exc).__name__))
    assert not failures, failures


def test_413_for_a_chunked_body_closes_too(server: RunningServer) -> None:
    chunk = b"x" * 2000
    body = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)) + b"0\r\n\r\n"
    request = (b"POST " + INGEST.encode() + b" HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Authorization: ApiKey " + api_key("admin").encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
    status, headers, _ = _exchange(server, request)
    assert status == 413
    assert headers.get("connection") == "close"


def _read_responses(sock: socket.socket, count: int, deadline: float) -> list[int]:
    """Statuses of `count` whole responses read from `sock` (bodies framed by Content-Length)."""
    data, statuses = b"", []
    while len(statuses) < count and time.monotonic() < deadline:
        head, sep, rest = data.partition(b"\r\n\r\n")
        length = re.search(rb"(?im)^content-length:\s*(\d+)", head) if sep else None
        if length and len(rest) >= int(length.group(1)):
            statuses.append(int(head.split()[1]))
            data = rest[int(length.group(1)):]
            continue
        chunk = sock.recv(65536)
        assert chunk, "server closed the kept-alive connection"
        data += chunk
    assert data == b""
    return statuses


def test_keep_alive_and_pipelined_requests_still_work(server: RunningServer) -> None:
    one = b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", _port(server)), timeout=10) as sock:
        deadline = time.monotonic() + 10
        sock.sendall(one * 3)
        assert _read_responses(sock, 3, deadline) == [200, 200, 200]
        sock.sendall(one)  # and the connection is still open for a fourth
        assert _read_responses(sock, 1, deadline) == [200]


# -- item 7: no client address in logs, no path in health --------------------------------------------------

def test_logs_never_contain_the_client_address(server: RunningServer) -> None:
    bad = [b"GET /_gateway/health HTTP/1.1\r\nHost: x\r\nX-Nul: a\x00b\r\n\r\n",
           b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
           b"POST /v1/events HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n",  # a Buildless route
           b"POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
           b"NOT HTTP AT ALL\r\n\r\n"]
    for payload in bad:
        status, _, _ = _exchange(server, payload)
        assert 400 <= status < 500
    requests.post(f"{server.url}/v1/events", data=b"{", timeout=10, headers={"X-API-Key": "nope"})
    time.sleep(0.5)  # let the workers flush their log lines
    log = server.log()
    assert "Refused request" in log  # the rejections were logged...
    # ...without the address (the start-up banner names the server's own URL, which is not a client's)
    assert "127.0.0.1" not in log.replace(f"{server.url}/", "").replace(f"listening on {server.url}", "")
    assert "ip=" not in log


def test_health_shows_no_file_system_path(server: RunningServer, tmp_path: Path) -> None:
    answer = requests.get(f"{server.url}/_gateway/health", timeout=10)
    assert answer.status_code == 200
    text = answer.text
    assert str(tmp_path) not in text and "events.db" not in text, text
    assert json.loads(text)["storage"]["backend"] == "sqlite"
