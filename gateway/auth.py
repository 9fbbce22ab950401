"""Credentials and grants: who is calling, which tenant they act for, and what they may do.

Plugins decide how a credential is *presented* (their declared `read_credential`: an ES API key, a Bearer token,
an AppDynamics account header ...) using the readers below; the core decides whether it is *valid*.
Secrets are kept only as sha256 digests and compared in constant time. Grants are
``plugin:action[:stream]`` patterns with ``*``/``?`` wildcards; a grant without a stream part covers every
stream.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from flask import Request

from .config import CredentialConfig


@dataclass(frozen=True, slots=True)
class PresentedCredential:
    """What a request carried: an id (None for bare tokens) and a secret, and the scheme they came in.

    `tenant` is set by schemes whose requests also name the account they act for (AppDynamics'
    ``X-Events-API-AccountName``): the credential is then valid only if it belongs to that tenant.
    """

    secret: str
    id: str | None = None
    scheme: str = ""
    tenant: str | None = None


@dataclass(slots=True)
class Credential:
    """An authenticated caller: its id, tenant and grants."""

    id: str
    tenant: str
    grants: tuple[str, ...]
    _decisions: dict[tuple[str, str], bool] = field(default_factory=dict, repr=False)

    def allows(self, plugin: str, action: str, stream: str | None = None) -> bool:
        """True when one grant covers ``plugin:action`` (and ``stream`` when given).

        Decisions are cached per (plugin, action) only when they cannot depend on the stream: stream names
        come from URLs, and caching per stream would let a caller grow the cache without bound.
        """
        key = (plugin, action)
        decision = self._decisions.get(key)
        if decision is None:
            matching = [g for g in self.grants if _action_matches(g, plugin, action)]
            if not any(g.count(":") == 2 for g in matching):  # no stream-scoped grant: same for every stream
                decision = self._decisions[key] = bool(matching)
            else:
                return any(_grant_covers(g, plugin, action, stream) for g in matching)
        return decision


def _action_matches(grant: str, plugin: str, action: str) -> bool:
    parts = grant.split(":", 2)
    return len(parts) >= 2 and fnmatchcase(plugin, parts[0]) and fnmatchcase(action, parts[1])


def _grant_covers(grant: str, plugin: str, action: str, stream: str | None) -> bool:
    parts = grant.split(":", 2)
    if len(parts) < 2 or not (fnmatchcase(plugin, parts[0]) and fnmatchcase(action, parts[1])):
        return False
    if len(parts) == 2:
        return True
    return fnmatchcase(stream, parts[2]) if stream is not None else parts[2] == "*"


def sha256_hex(secret: str) -> str:
    """The stored form of a secret."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


_NO_DIGEST = "0" * 64


class CredentialStore:
    """The configured credentials, looked up by id (key id, Basic user) or by bare token."""

    def __init__(self, configured: Iterable[CredentialConfig]) -> None:
        self._by_id: dict[str, tuple[str, Credential]] = {}
        self._by_digest: dict[str, Credential] = {}
        for item in configured:
            cred = Credential(item.id, item.tenant, item.grants)
            self._by_id[item.id] = (item.secret_sha256, cred)
            self._by_digest.setdefault(item.secret_sha256, cred)

    def __len__(self) -> int:
        return len(self._by_id)

    def authenticate(self, presented: PresentedCredential) -> Credential | None:
        """The credential whose secret matches (and, when the request names a tenant, that belongs to it), or
        None. Digests are compared in constant time."""
        found = self._match(presented)
        if found is None or (presented.tenant is not None and found.tenant != presented.tenant):
            return None
        return found

    def _match(self, presented: PresentedCredential) -> Credential | None:
        digest = sha256_hex(presented.secret)
        if presented.id is not None:
            entry = self._by_id.get(presented.id)
            if entry is None:
                hmac.compare_digest(_NO_DIGEST, digest)  # the same work as for a known id
                return None
            return entry[1] if hmac.compare_digest(entry[0], digest) else None
        cred = self._by_digest.get(digest)
        if cred is None:
            return None
        return cred if hmac.compare_digest(self._by_id[cred.id][0], digest) else None


# -- readers for the usual schemes; an API combines them into its `read_credential` ---------------------

def authorization(request: Request) -> tuple[str, str] | None:
    """The ``Authorization`` header split into (lower-case scheme, parameter), or None."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, param = header.strip().partition(" ")
    return scheme.lower(), param.strip()


def _b64_pair(param: str) -> tuple[str, str] | None:
    try:
        decoded = base64.b64decode(param, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, secret = decoded.partition(":")
    return (user, secret) if sep and user else None


def read_api_key(request: Request) -> PresentedCredential | None:
    """``Authorization: ApiKey base64(id:secret)`` (scheme case-insensitive: trackers send ``Apikey``)."""
    auth = authorization(request)
    if auth is None or auth[0] != "apikey":
        return None
    pair = _b64_pair(auth[1])
    return PresentedCredential(pair[1], pair[0], "apikey") if pair else None


def read_basic(request: Request, *, user: str | None = None) -> PresentedCredential | None:
    """``Authorization: Basic base64(id:secret)``; with `user`, only that username, taking the password as token."""
    auth = authorization(request)
    if auth is None or auth[0] != "basic":
        return None
    pair = _b64_pair(auth[1])
    if pair is None:
        return None
    if user is not None:
        return PresentedCredential(pair[1], None, "basic") if pair[0] == user else None
    return PresentedCredential(pair[1], pair[0], "basic")


def read_bearer(request: Request) -> PresentedCredential | None:
    """``Authorization: Bearer <secret>``."""
    auth = authorization(request)
    if auth is None or auth[0] != "bearer" or not auth[1]:
        return None
    return PresentedCredential(auth[1], None, "bearer")


def read_header(name: str) -> Callable[[Request], PresentedCredential | None]:
    """A reader for a secret in a custom header such as ``X-API-Key``."""

    def reader(request: Request) -> PresentedCredential | None:
        value = request.headers.get(name)
        return PresentedCredential(value.strip(), None, name.lower()) if value and value.strip() else None

    reader.header_name = name  # type: ignore[attr-defined]  # for the OpenAPI description (gateway.openapi_spec)
    return reader


def first_of(*readers: Callable[[Request], PresentedCredential | None]
             ) -> Callable[[Request], PresentedCredential | None]:
    """Combine readers: the first that finds a credential wins."""

    def reader(request: Request) -> PresentedCredential | None:
        for read in readers:
            found = read(request)
            if found is not None:
                return found
        return None

    reader.alternatives = readers  # type: ignore[attr-defined]  # for the OpenAPI description
    return reader


#: The default scheme for APIs that declare none: ApiKey, Basic or Bearer.
standard_scheme = first_of(read_api_key, read_basic, read_bearer)
