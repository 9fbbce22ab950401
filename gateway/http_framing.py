"""Where an HTTP/1.1 request ends, decided from the bytes received so far, without blocking.

The serving worker (`gateway.buffered_worker`) reads each request in its event loop and hands it to a
thread only once it is complete, so a client that stalls costs a buffer, never a thread. This module only
frames: it finds the end of the header block and of a ``Content-Length`` or chunked body. Validating the
request (methods, header names, NULs, limits per line) stays with gunicorn's parser, which gets the bytes
afterwards; anything this module cannot frame is handed over as it is, for that parser to reject.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum


class Verdict(Enum):
    """What to do with a connection's buffered bytes."""

    NEED_MORE = "need_more"  # keep reading in the event loop
    COMPLETE = "complete"  # a whole request (maybe more): hand it over
    OVERSIZE = "oversize"  # headers read, body over the limit: hand over, answer, then close
    MALFORMED = "malformed"  # cannot be framed: hand over for the parser to answer 400 and close
    HEADERS_TOO_LARGE = "headers_too_large"  # answer 431 without a thread


@dataclass(frozen=True, slots=True)
class Framing:
    verdict: Verdict
    expects_continue: bool = False  # the client waits for "100 Continue" before sending its body
    #: For a chunked body still arriving: (offset of the next chunk-size line, body bytes so far), to pass
    #: back as `resume` so each call walks only the new chunks (a body of 1-byte chunks stays linear).
    resume: tuple[int, int] | None = None


def frame(buf: bytes | bytearray, *, max_header_bytes: int, max_body_bytes: int,
          resume: tuple[int, int] | None = None) -> Framing:
    """Classify `buf`, the bytes of one connection received since its previous request ended.

    `resume` is the `Framing.resume` of the previous call on the same, since grown, buffer.
    """
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > max_header_bytes:
            first_line_end = buf.find(b"\r\n")
            # A request line alone past the limit: gunicorn's parser answers 414 from what we have.
            return Framing(Verdict.MALFORMED if first_line_end < 0 else Verdict.HEADERS_TOO_LARGE)
        return Framing(Verdict.NEED_MORE)
    if end > max_header_bytes:
        return Framing(Verdict.HEADERS_TOO_LARGE)
    body_start = end + 4
    length, chunked, expects = _body_headers(bytes(buf[:end]))
    if chunked:
        pos, total = resume or (body_start, 0)
        return _chunked(buf, pos, total, max_body_bytes, expects)
    if length is None:
        return Framing(Verdict.COMPLETE)
    if length < 0:
        return Framing(Verdict.MALFORMED)
    if length > max_body_bytes:
        return Framing(Verdict.OVERSIZE)
    if len(buf) - body_start >= length:
        return Framing(Verdict.COMPLETE)
    return Framing(Verdict.NEED_MORE, expects)


def _body_headers(head: bytes) -> tuple[int | None, bool, bool]:
    """(Content-Length or None, -1 when unusable; chunked?; Expect: 100-continue?) from the header block."""
    length: int | None = None
    chunked = expects = False
    for line in head.split(b"\r\n")[1:]:
        name, sep, value = line.partition(b":")
        if not sep:
            continue
        name, value = name.strip().lower(), value.strip()
        if name == b"content-length":
            if not value.isdigit() or (length is not None and int(value) != length):
                return -1, False, False
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = chunked or b"chunked" in value.lower()
        elif name == b"expect":
            expects = value.lower() == b"100-continue"
    if chunked and length is not None:
        return -1, False, False  # both framings at once: request smuggling territory, let the parser refuse
    return length, chunked, expects


def _chunked(buf: bytes | bytearray, pos: int, total: int, max_body_bytes: int, expects: bool) -> Framing:
    """Walk the chunks from `pos` (`total` body bytes before it): complete after the last chunk and trailers."""
    while True:
        line_end = buf.find(b"\r\n", pos)
        if line_end < 0:
            if len(buf) - pos > 1024:
                return Framing(Verdict.MALFORMED)
            return Framing(Verdict.NEED_MORE, expects, (pos, total))
        size_text = bytes(buf[pos:line_end]).split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            return Framing(Verdict.MALFORMED)
        if size < 0:
            return Framing(Verdict.MALFORMED)
        if total + size > max_body_bytes:
            return Framing(Verdict.OVERSIZE)
        if size and len(buf) < line_end + 2 + size + 2:
            return Framing(Verdict.NEED_MORE, expects, (pos, total))
        chunk_start, total, pos = pos, total + size, line_end + 2
        if size == 0:
            while True:  # trailer fields, then an empty line
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    if len(buf) - pos > 8192:
                        return Framing(Verdict.MALFORMED)
                    return Framing(Verdict.NEED_MORE, resume=(chunk_start, total - size))
                if line_end == pos:
                    return Framing(Verdict.COMPLETE)
                pos = line_end + 2
        pos += size + 2
