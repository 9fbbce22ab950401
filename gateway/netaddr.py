"""The client address of a request, the way Elasticsearch and most vendors derive it.

The first ``X-Forwarded-For`` value is used when it parses as an IP literal (a malformed value is ignored
silently, as Elasticsearch does); otherwise the TCP peer address.
"""

from __future__ import annotations

import ipaddress

from flask import Request


def first_forwarded_ip(header: str | None) -> str | None:
    """The first value of an X-Forwarded-For header when it is a valid IP literal."""
    if not header:
        return None
    first = header.split(",", 1)[0].strip()
    try:
        return str(ipaddress.ip_address(first))
    except ValueError:
        return None


def client_ip(request: Request, *, trust_forwarded_for: bool = True) -> str | None:
    """The caller's IP: the first valid X-Forwarded-For value (when trusted), else the peer."""
    if trust_forwarded_for:
        forwarded = first_forwarded_ip(request.headers.get("X-Forwarded-For"))
        if forwarded:
            return forwarded
    return request.remote_addr
