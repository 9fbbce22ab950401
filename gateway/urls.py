"""URLs safe to print: storage and quota-store URLs may carry passwords (redis://:pw@host, es://user:pw@host)."""

from __future__ import annotations

from urllib.parse import urlsplit


def redact_url(url: str) -> str:
    """The URL without credentials, query or fragment; IPv6 hosts keep their brackets."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return f"{parts.scheme}://{host}{parts.path}"
