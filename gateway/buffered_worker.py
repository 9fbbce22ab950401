"""gunicorn's threaded worker, reading every request whole in its event loop before a thread sees it.

Why: a thread-per-request server is taken down by clients that send half a request and stop (issue 10,
item 1): each stalled client holds a thread, and gunicorn never times out a partial request. Measured
against an async worker class, granian and nginx in front (``python -m bench.server_choice``, commit fac9a53), reading
requests in the worker's own selector loop kept ingest throughput and survived the stall test alone
without a second process to install and run. So here:

* the event loop accepts, receives without blocking, and frames requests with `gateway.http_framing`;
  a thread gets a connection only with a whole request buffered (headers and body);
* a request not complete within ``server.request_timeout`` seconds of its first byte (or of the end of
  the previous one) is answered 408 and closed, however slowly it trickles;
* requests the gateway refuses before a thread sees them, and those gunicorn's parser rejects, are
  answered in the gateway's JSON error format, never gunicorn's HTML, and logged without the client's
  address;
* a body over ``server.max_body_bytes`` is not read: the app answers 413 with ``Connection: close``.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from contextlib import suppress
from functools import partial
from typing import Any

from gunicorn import http
from gunicorn.http.errors import NoMoreData
from gunicorn.workers.gthread import _DEFER, TConn, ThreadWorker

from .http_framing import Verdict, frame
from .server_errors import error_response, log_rejection, rejection

#: Header blocks (request line + fields) past this many bytes are refused with 431 (nginx: 4 x 8 KiB).
MAX_HEADER_BYTES = 32 * 1024
#: After a final answer on a connection we close, what the client still sends (the rest of a refused body)
#: is read and discarded for at most this long, so our answer is not lost to a TCP reset (RFC 9112 9.6).
LINGER_SECONDS = 5.0
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def own_listeners(inherited: list[Any], backlog: int) -> list[socket.socket]:
    """A listening socket of this worker's own beside each inherited TCP one (``SO_REUSEPORT``, same address).

    With one shared listener, whichever worker wakes first accepts, and a load generator's keep-alive
    connections often all land on one worker (issue 11). With a socket per worker in the master's
    ``SO_REUSEPORT`` group the kernel spreads new connections across them by hash; the shared socket
    stays polled by every worker, so whatever the kernel queues there is still accepted.
    """
    own = []
    for listener in inherited:
        if listener.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        sock = socket.socket(listener.family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(listener.getsockname())
            sock.listen(backlog)
        except OSError:  # not in the group (e.g. the master's socket lacks SO_REUSEPORT): share only
            sock.close()
            continue
        own.append(sock)
    return own


class DeadlineSocket:
    """What gunicorn's parser reads from: the socket, with every read bounded by the request deadline."""

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline

    def recv(self, size: int) -> bytes:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise NoMoreData(b"")
        self.sock.settimeout(remaining)
        try:
            return self.sock.recv(size)
        except TimeoutError:
            raise NoMoreData(b"") from None
        finally:
            self.sock.settimeout(None)


class BufferedThreadWorker(ThreadWorker):
    """`ThreadWorker` whose threads only ever see whole requests (see the module docstring)."""

    #: Set by `gateway.server.GatewayServer` in the master before it forks (gunicorn has no such settings).
    request_timeout: float = 30.0
    max_body_bytes: int = 1_048_576

    def init_process(self) -> None:
        self.lingering: deque[Any] = deque()
        if self.cfg.reuse_port:
            self.sockets = [*self.sockets, *own_listeners(self.sockets, self.cfg.backlog)]
        super().init_process()

    # -- event loop (main thread) --------------------------------------------------------------------------

    def accept(self, listener: socket.socket) -> None:
        """Accept one connection and start buffering its first request."""
        try:
            client_sock, client_addr = listener.accept()
        except (BlockingIOError, ConnectionAbortedError, InterruptedError):
            return
        self.nr_conns += 1
        self._buffer(TConn(self.cfg, client_sock, client_addr, listener.getsockname()), b"")

    def _buffer(self, conn: Any, initial: bytes) -> None:
        conn.sock.setblocking(False)
        conn.pre = bytearray(initial)
        conn.resume = None
        conn.must_close = False
        conn.sent_continue = False
        conn.timeout = time.monotonic() + self.request_timeout
        conn.waiting = False
        # Usually the request is already there: read it now rather than after another trip through select().
        if not initial and self._receive(conn) is None:
            return
        if conn.pre and self._advance(conn):
            return
        conn.waiting = True
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, 1, partial(self._on_readable, conn))  # 1: selectors.EVENT_READ

    def _receive(self, conn: Any) -> bool | None:
        """Read what has arrived: True if bytes came, False if none yet, None if the client went away."""
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            data = b""
        if not data:  # the client closed (mid-request, or between requests)
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()
            return None
        conn.pre += data
        return True

    def _on_readable(self, conn: Any, sock: socket.socket) -> None:
        if self._receive(conn):
            self._advance(conn)

    def _advance(self, conn: Any) -> bool:
        """Act on the buffered bytes; True when the connection left the buffering stage."""
        framing = frame(conn.pre, max_header_bytes=MAX_HEADER_BYTES, max_body_bytes=self.max_body_bytes,
                        resume=conn.resume)
        if framing.verdict is Verdict.NEED_MORE:
            conn.resume = framing.resume
            if framing.expects_continue and not conn.sent_continue:
                conn.sent_continue = True
                with suppress(OSError):
                    conn.sock.send(CONTINUE)
            return False
        self._forget(conn)  # leaves the buffering stage (a no-op for bytes left over from a previous request)
        if framing.verdict is Verdict.HEADERS_TOO_LARGE:
            log_rejection(self.log, 431, f"header block over {MAX_HEADER_BYTES} bytes")
            self._answer_and_close(conn, rejection(431))
            return True
        conn.must_close = framing.verdict is not Verdict.COMPLETE
        self._hand_over(conn)
        return True

    def _hand_over(self, conn: Any) -> None:
        conn.sock.setblocking(True)
        if conn.parser is None:  # first request on this connection; later ones reuse it, as gunicorn does
            conn.source = DeadlineSocket(conn.sock, conn.timeout)
            conn.parser = http.get_parser(self.cfg, conn.source, conn.client)
        conn.source.deadline = conn.timeout
        conn.parser.unreader.unread(bytes(conn.pre))
        conn.pre = bytearray()
        conn.initialized = conn.data_ready = True
        self.enqueue_req(conn)

    def _forget(self, conn: Any) -> None:
        """Stop waiting for this connection's bytes (the poller's KeyError would cost a socket repr)."""
        if conn.waiting:
            conn.waiting = False
            with suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            with suppress(ValueError):
                self.pending_conns.remove(conn)

    def _answer_and_close(self, conn: Any, payload: bytes) -> None:
        if payload:
            with suppress(OSError):
                conn.sock.send(payload)
        self._linger(conn)

    def _linger(self, conn: Any) -> None:
        """Close without blocking the loop: send FIN, discard what still arrives, close on EOF or in time."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self.nr_conns -= 1
            conn.close()
            return
        conn.timeout = time.monotonic() + LINGER_SECONDS
        conn.discard_left = 4 * self.max_body_bytes + MAX_HEADER_BYTES
        self.lingering.append(conn)
        self.poller.register(conn.sock, 1, partial(self._on_lingering_readable, conn))

    def _on_lingering_readable(self, conn: Any, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        conn.discard_left -= len(data)
        if not data or conn.discard_left <= 0:
            with suppress(ValueError):
                self.lingering.remove(conn)
            self._close_lingering(conn)

    def _close_lingering(self, conn: Any) -> None:
        with suppress(KeyError, ValueError, OSError):
            self.poller.unregister(conn.sock)
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Answer 408 to, and close, every connection whose request did not arrive whole in time."""
        now = time.monotonic()
        while self.pending_conns and self.pending_conns[0].timeout <= now:
            conn = self.pending_conns.popleft()
            conn.waiting = False
            with suppress(KeyError, ValueError, OSError):
                self.poller.unregister(conn.sock)
            if conn.pre:
                log_rejection(self.log, 408, f"request incomplete after {self.request_timeout:g}s")
            self._answer_and_close(conn, rejection(408) if conn.pre else b"")
        while self.lingering and self.lingering[0].timeout <= now:
            self._close_lingering(self.lingering.popleft())

    def on_client_socket_readable(self, conn: Any, client: socket.socket) -> None:
        """A kept-alive connection sends its next request: buffer it like a new one."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        self._buffer(conn, b"")

    def finish_request(self, conn: Any, fs: Any) -> None:
        """After a request: keep the connection alive (buffering what the client pipelined) or close it."""
        try:
            result = fs.result() if not fs.cancelled() else False
            if result and result is not _DEFER:
                leftover = conn.parser.unreader.take_buffered()
                if leftover:
                    self._buffer(conn, leftover)
                    return
                conn.sock.setblocking(False)
                conn.set_timeout()
                if not self.alive:
                    conn.timeout = min(conn.timeout, time.monotonic() + 2.0)
                self.keepalived_conns.append(conn)
                self.poller.register(conn.sock, 1, partial(self.on_client_socket_readable, conn))
            else:
                self._linger(conn)
        except Exception:
            self.nr_conns -= 1
            conn.close()

    # -- request threads ---------------------------------------------------------------------------------

    def handle_request(self, req: Any, conn: Any) -> bool:
        """Serve one request; one whose body was not read whole ends the connection (``Connection: close``)."""
        if conn.must_close:
            req.must_close = True
        return super().handle_request(req, conn)

    def _keepalive_after(self, conn: Any, keepalive: bool) -> bool:
        return False if conn.must_close else super()._keepalive_after(conn, keepalive)

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """gunicorn's answer to a request it could not parse, as JSON and logged without the address."""
        status, payload = error_response(exc)
        if status == 500:
            self.log.exception("Error handling request")
        else:
            log_rejection(self.log, status, str(exc))
        try:
            client.sendall(payload)
        except OSError:
            self.log.debug("Failed to send error message.")
