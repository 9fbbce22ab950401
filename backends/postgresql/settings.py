"""The PostgreSQL backend's URL and options, validated once at start-up.

``storage.url`` is ``postgresql://user:password@host:5432/database`` (or ``postgres://``); libpq
parameters that matter to operators (``sslmode`` and the certificate paths, ``application_name``,
``connect_timeout``) may also be given in its query string. ``storage.options`` takes the keys of
`OPTIONS`; an unknown key in either place stops start-up naming it, like every other backend.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from gateway.urls import redact_url

SCHEMES = ("postgresql", "postgres")
SSL_MODES = ("disable", "allow", "prefer", "require", "verify-ca", "verify-full")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _int(low: int, high: int) -> Callable[[str, Any], int]:
    def check(name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise ValueError(f"storage.options.{name}: expected an integer from {low} to {high}, got {value!r}")
        return value
    return check


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"storage.options.{name}: expected a non-empty string, got {value!r}")
    return value


def _schema(name: str, value: Any) -> str:
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ValueError(f"storage.options.{name}: expected a lower-case SQL identifier ([a-z_][a-z0-9_]*, "
                         f"at most 63 characters), got {value!r}")
    return value


def _sslmode(name: str, value: Any) -> str:
    if value not in SSL_MODES:
        raise ValueError(f"storage.options.{name}: expected one of {', '.join(SSL_MODES)}, got {value!r}")
    return str(value)


#: Option -> validator. Defaults are the fields of `Settings`.
OPTIONS: dict[str, Callable[[str, Any], Any]] = {
    "pool_size": _int(1, 1000),
    "pool_min_size": _int(0, 1000),
    "pool_timeout_ms": _int(1, 600_000),
    "statement_timeout_ms": _int(0, 86_400_000),
    "connect_timeout_s": _int(1, 600),
    "retries": _int(0, 20),
    "retry_wait_ms": _int(0, 60_000),
    "schema": _schema,
    "sslmode": _sslmode,
    "sslrootcert": _text,
    "sslcert": _text,
    "sslkey": _text,
    "application_name": _text,
}
#: Options that may also come from the URL's query string (as libpq reads them), with their option name.
URL_PARAMETERS = {"sslmode": "sslmode", "sslrootcert": "sslrootcert", "sslcert": "sslcert", "sslkey": "sslkey",
                  "application_name": "application_name", "connect_timeout": "connect_timeout_s"}


@dataclass(frozen=True)
class Settings:
    """Everything the backend needs to connect, with the defaults of a small production deployment."""

    conninfo: str
    display: str
    pool_size: int = 10
    pool_min_size: int = 1
    pool_timeout_ms: int = 5_000
    statement_timeout_ms: int = 30_000
    connect_timeout_s: int = 5
    retries: int = 2
    retry_wait_ms: int = 200
    schema: str = "event_gateway"
    sslmode: str | None = None
    sslrootcert: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    application_name: str = "event-gateway"
    extra: dict[str, Any] = field(default_factory=dict)

    def connect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of `psycopg.connect` besides the conninfo (libpq parameters)."""
        kwargs: dict[str, Any] = {"connect_timeout": self.connect_timeout_s, "application_name": self.application_name,
                                  "options": f"-c statement_timeout={self.statement_timeout_ms} -c TimeZone=UTC"}
        for name in ("sslmode", "sslrootcert", "sslcert", "sslkey"):
            value = getattr(self, name)
            if value is not None:
                kwargs[name] = value
        return kwargs


def parse(url: str, options: Mapping[str, Any]) -> Settings:
    """Validate the URL and options; `ValueError` naming the first problem."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise ValueError(f"not a postgresql:// URL: {redact_url(url)}")
    if not parts.hostname and "host" not in dict(parse_qsl(parts.query)):
        raise ValueError(f"storage.url: name the database server, e.g. postgresql://user:pass@host:5432/db "
                         f"(got {redact_url(url)})")
    values: dict[str, Any] = {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key not in URL_PARAMETERS:
            raise ValueError(f"storage.url: unknown parameter [{key}] (known: {', '.join(sorted(URL_PARAMETERS))}; "
                             "other settings go in storage.options)")
        name = URL_PARAMETERS[key]
        if name == "connect_timeout_s":
            if not value.isdigit():
                raise ValueError(f"storage.url: connect_timeout must be a number of seconds, got {value!r}")
            values[name] = int(value)
        else:
            values[name] = value
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ValueError(f"storage.options: unknown PostgreSQL option(s) {', '.join(unknown)} "
                         f"(known: {', '.join(sorted(OPTIONS))})")
    values.update(options)
    checked = {name: OPTIONS[name](name, value) for name, value in values.items()}
    if checked.get("pool_min_size", 1) > checked.get("pool_size", 10):
        raise ValueError("storage.options.pool_min_size must not exceed pool_size")
    base = urlunsplit(("postgresql", parts.netloc, parts.path, "", ""))
    # Messages (shown by the unauthenticated health route when the store is down) name the server only.
    display = f"postgresql://{parts.netloc.rpartition('@')[2]}"
    return Settings(conninfo=base, display=display, **checked)
