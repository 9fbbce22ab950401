"""The request framing the serving worker uses to decide when a request has arrived whole."""

from __future__ import annotations

from gateway.http_framing import Verdict, frame

HEAD = b"POST /x HTTP/1.1\r\nHost: h\r\n"


def verdict(buf: bytes, max_header_bytes: int = 1000, max_body_bytes: int = 100) -> Verdict:
    return frame(buf, max_header_bytes=max_header_bytes, max_body_bytes=max_body_bytes).verdict


def test_headers_arrive_in_pieces() -> None:
    assert verdict(b"GET / HTTP/1.1\r\nHo") is Verdict.NEED_MORE
    assert verdict(b"GET / HTTP/1.1\r\nHost: h\r\n") is Verdict.NEED_MORE
    assert verdict(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n") is Verdict.COMPLETE


def test_content_length_body() -> None:
    assert verdict(HEAD + b"Content-Length: 5\r\n\r\nabc") is Verdict.NEED_MORE
    assert verdict(HEAD + b"content-length: 5\r\n\r\nabcde") is Verdict.COMPLETE
    assert verdict(HEAD + b"Content-Length: 5\r\n\r\nabcdeGET / HTTP/1.1\r\n") is Verdict.COMPLETE  # pipelined


def test_body_over_the_limit_is_not_waited_for() -> None:
    assert verdict(HEAD + b"Content-Length: 101\r\n\r\n") is Verdict.OVERSIZE
    assert verdict(HEAD + b"Content-Length: 100\r\n\r\n") is Verdict.NEED_MORE


def test_unusable_lengths_go_to_the_parser() -> None:
    assert verdict(HEAD + b"Content-Length: -1\r\n\r\n") is Verdict.MALFORMED
    assert verdict(HEAD + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n") is Verdict.MALFORMED
    assert verdict(HEAD + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n") is Verdict.MALFORMED


def test_chunked_body() -> None:
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    assert verdict(head + b"5\r\nab") is Verdict.NEED_MORE
    assert verdict(head + b"5\r\nabcde\r\n") is Verdict.NEED_MORE
    assert verdict(head + b"5;ext=1\r\nabcde\r\n0\r\n") is Verdict.NEED_MORE
    assert verdict(head + b"5\r\nabcde\r\n0\r\n\r\n") is Verdict.COMPLETE
    assert verdict(head + b"5\r\nabcde\r\n0\r\nTrailer: x\r\n\r\n") is Verdict.COMPLETE
    assert verdict(head + b"zz\r\n") is Verdict.MALFORMED
    assert verdict(head + b"40\r\n" + b"a" * 64 + b"\r\n40\r\n") is Verdict.OVERSIZE


def test_header_limits() -> None:
    assert verdict(b"GET /" + b"a" * 2000) is Verdict.MALFORMED  # no line end: the parser answers 414
    assert verdict(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000) is Verdict.HEADERS_TOO_LARGE
    assert verdict(b"GET / HTTP/1.1\r\nX: " + b"a" * 2000 + b"\r\n\r\n") is Verdict.HEADERS_TOO_LARGE


def test_expect_continue_is_reported_while_the_body_is_awaited() -> None:
    framing = frame(HEAD + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n", max_header_bytes=1000,
                    max_body_bytes=100)
    assert framing.verdict is Verdict.NEED_MORE and framing.expects_continue


def test_a_chunked_body_arriving_in_pieces_is_walked_once() -> None:
    """Each call resumes after the chunks already seen, so tiny chunks cannot make framing quadratic."""
    head = HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
    buf = bytearray(head)
    resume = None
    for _ in range(50):
        buf += b"1\r\na\r\n"
        framing = frame(buf, max_header_bytes=1000, max_body_bytes=100, resume=resume)
        assert framing.verdict is Verdict.NEED_MORE
        resume = framing.resume
    assert resume == (len(buf), 50)
    buf += b"0\r\n"
    framing = frame(buf, max_header_bytes=1000, max_body_bytes=100, resume=resume)
    assert framing.verdict is Verdict.NEED_MORE and framing.resume == resume
    buf += b"\r\n"
    assert frame(buf, max_header_bytes=1000, max_body_bytes=100, resume=framing.resume).verdict is Verdict.COMPLETE
    assert frame(buf + b"1\r\na\r\n" * 60, max_header_bytes=1000, max_body_bytes=100).verdict is Verdict.COMPLETE
    over = bytearray(head) + b"1\r\na\r\n" * 101
    assert frame(over, max_header_bytes=1000, max_body_bytes=100).verdict is Verdict.OVERSIZE
