"""One JSON access-log line per request, written by the app (gunicorn's own access log stays off).

The line holds what an operator needs to follow traffic and nothing a client sent as a secret:
``{"ts", "api", "route", "method", "status", "duration_ms", "tenant", "credential"}`` -- the route is the URL
rule (``/_application/analytics/<collection>/event/<event_type>``), never the raw path or query string
(Buildless sends whole events as query parameters), and client addresses are never logged (Buildless
promises to keep only salted hashes of them). ``[server] access_log = false`` turns it off.

Lines go straight to standard error, one ``write`` each (atomic for a line on a pipe, so workers and threads
never interleave), without the `logging` machinery: a log record per request measured ~10% of the ingest
benchmark's time. The metrics hook (`gateway.metrics`), which already holds the request's facts, calls it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from typing import Any


def _stderr_fd() -> int:
    try:
        return sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):  # replaced by an object without a descriptor (test capture)
        return 2


class AccessLog:
    """Writes access-log lines to a file descriptor (default: standard error).

    The parts of a line that repeat are JSON-encoded once and reused: the API and route (`prefix`, made once
    per URL rule), the method and the credential; a request costs one string formatting and one ``write``.
    """

    def __init__(self, fd: int | None = None) -> None:
        self.fd = _stderr_fd() if fd is None else fd
        self._methods: dict[str, str] = {}
        self._callers: dict[str, str] = {}

    @staticmethod
    def prefix(api: str | None, route: str | None) -> str:
        """The ``"api":…,"route":…`` part of a rule's lines."""
        return f'"api":{json.dumps(api)},"route":{json.dumps(route)}'

    def write(self, prefix: str, method: str, status: int, seconds: float, credential: Any) -> None:
        """One line for one answered request; `credential` is the authenticated caller or None."""
        verb = self._methods.get(method)
        if verb is None:
            verb = json.dumps(method)
            if len(self._methods) < 64:  # methods are client-chosen: keep the cache bounded
                self._methods[method] = verb
        if credential is None:
            who = '"tenant":null,"credential":null'
        else:
            who = self._callers.get(credential.id)
            if who is None:  # configured credentials only: a bounded set
                who = self._callers[credential.id] = (f'"tenant":{json.dumps(credential.tenant)},'
                                                      f'"credential":{json.dumps(credential.id)}')
        line = (f'{{"ts":{time.time():.3f},{prefix},"method":{verb},"status":{status},'
                f'"duration_ms":{seconds * 1000:.3f},{who}}}\n')
        try:  # noqa: SIM105 - contextlib.suppress costs a context manager per request
            os.write(self.fd, line.encode())
        except OSError:  # a closed or full stderr must not fail the request
            pass
