"""The Elasticsearch backend's URL and options, parsed once and checked at construction (see the package
docstring for what each option means)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from gateway.urls import redact_url

DEFAULT_INDEX_PREFIX = "event-gateway"
DEFAULT_PORT = 9200
OPTIONS = frozenset({"api_key", "basic_auth", "ca_certs", "verify_certs", "index_prefix", "refresh",
                     "request_timeout", "retries", "retry_wait_ms"})
DEFAULT_RETRIES = 2
DEFAULT_RETRY_WAIT_MS = 200
_BAD_INDEX_CHARS = set('\\/*?"<>| ,#:')


@dataclass(frozen=True)
class Settings:
    """Everything the backend needs from its URL and options, parsed once and checked at construction."""

    hosts: tuple[str, ...]
    index_prefix: str = DEFAULT_INDEX_PREFIX
    refresh: bool | str = "wait_for"
    request_timeout: float | None = None
    retries: int = DEFAULT_RETRIES  # extra attempts after a transient failure (unreachable, 429, 5xx)
    retry_wait_ms: int = DEFAULT_RETRY_WAIT_MS  # first wait between attempts, doubled each time
    client_kwargs: dict[str, Any] = field(default_factory=dict, repr=False)  # holds secrets

    @property
    def events_index(self) -> str:
        """The shared events index."""
        return f"{self.index_prefix}-events"

    @property
    def streams_index(self) -> str:
        """The stream catalog index."""
        return f"{self.index_prefix}-streams"


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"elasticsearch option [{name}] must be true or false, not [{value}]")


def _pair(name: str, value: Any) -> tuple[str, str]:
    if isinstance(value, list | tuple) and len(value) == 2:
        return str(value[0]), str(value[1])
    if isinstance(value, str) and ":" in value:
        user, _, secret = value.partition(":")
        return user, secret
    raise ValueError(f"elasticsearch option [{name}] must be 'user:password'")


def check_index_prefix(prefix: str) -> str:
    """Validate an index prefix against Elasticsearch's index-name rules (fail at start-up, not on use)."""
    if (not prefix or prefix != prefix.lower() or prefix[0] in "-_+." or _BAD_INDEX_CHARS & set(prefix)
            or len(prefix.encode()) > 200):
        raise ValueError(f"elasticsearch index_prefix [{prefix}] is not a valid lowercase index name prefix")
    return prefix


def parse_settings(url: str, options: Mapping[str, Any] | None = None) -> Settings:
    """Turn a storage URL and its options into `Settings` (node URLs, auth, TLS, index names, refresh).

    ``elasticsearch://`` (and ``http://``) means HTTP, ``elasticsearch+https://`` (and ``https://``)
    HTTPS; the default port is 9200. Options override values given in the URL's query string.
    """
    parts = urlsplit(url)
    schemes = {"elasticsearch": "http", "elasticsearch+http": "http", "http": "http",
               "elasticsearch+https": "https", "https": "https"}
    if parts.scheme not in schemes:
        raise ValueError(f"not an elasticsearch storage URL: [{parts.scheme}://]")
    http_scheme = schemes[parts.scheme]
    merged: dict[str, Any] = dict(parse_qsl(parts.query))
    merged.update(options or {})
    unknown = sorted(set(merged) - OPTIONS)
    if unknown:
        raise ValueError(f"unknown elasticsearch option(s) {', '.join(unknown)}; "
                         f"known: {', '.join(sorted(OPTIONS))}")
    netloc = parts.netloc
    userinfo = None
    if "@" in netloc:
        userinfo, _, netloc = netloc.rpartition("@")
    path = parts.path.rstrip("/")
    hosts = []
    for node in filter(None, (n.strip() for n in netloc.split(","))):
        node_parts = urlsplit(f"//{node}")
        host = node_parts.hostname
        if not host:
            raise ValueError(f"elasticsearch URL [{redact_url(url)}] names no host")
        port = node_parts.port or DEFAULT_PORT
        host = f"[{host}]" if ":" in host else host
        hosts.append(f"{http_scheme}://{host}:{port}{path}")
    if not hosts:
        hosts.append(f"{http_scheme}://localhost:{DEFAULT_PORT}{path}")

    client: dict[str, Any] = {}
    if "basic_auth" in merged:
        client["basic_auth"] = _pair("basic_auth", merged["basic_auth"])
    elif userinfo:
        user, _, secret = userinfo.partition(":")
        client["basic_auth"] = (unquote(user), unquote(secret))
    if "api_key" in merged:
        key = merged["api_key"]
        client["api_key"] = _pair("api_key", key) if not isinstance(key, str) or ":" in key else key
    if "ca_certs" in merged:
        client["ca_certs"] = str(merged["ca_certs"])
    if "verify_certs" in merged:
        client["verify_certs"] = _as_bool("verify_certs", merged["verify_certs"])
    tls = sorted({"ca_certs", "verify_certs"} & set(client))
    if tls and http_scheme == "http":  # the client would fail on first use, not at start-up
        raise ValueError(f"elasticsearch option(s) {', '.join(tls)} need an elasticsearch+https:// URL")
    timeout = None
    if merged.get("request_timeout") is not None:
        timeout = float(merged["request_timeout"])
        if timeout <= 0:
            raise ValueError("elasticsearch option [request_timeout] must be a positive number of seconds")
        client["request_timeout"] = timeout
    refresh: bool | str = "wait_for"
    if "refresh" in merged:
        raw = merged["refresh"]
        refresh = "wait_for" if str(raw).strip().lower() == "wait_for" else _as_bool("refresh", raw)
    prefix = check_index_prefix(str(merged.get("index_prefix", DEFAULT_INDEX_PREFIX)))
    retries = _count("retries", merged.get("retries", DEFAULT_RETRIES), 10)
    retry_wait_ms = _count("retry_wait_ms", merged.get("retry_wait_ms", DEFAULT_RETRY_WAIT_MS), 10_000)
    return Settings(hosts=tuple(hosts), index_prefix=prefix, refresh=refresh, request_timeout=timeout,
                    retries=retries, retry_wait_ms=retry_wait_ms, client_kwargs=client)


def _count(name: str, value: Any, most: int) -> int:
    """A whole number from 0 to `most` (bounded: every request must have a bounded cost)."""
    try:
        number = int(str(value).strip())
    except ValueError:
        number = -1
    if isinstance(value, bool) or not 0 <= number <= most:
        raise ValueError(f"elasticsearch option [{name}] must be a whole number from 0 to {most}, not [{value}]")
    return number
