"""How Elasticsearch reads credentials: ``ApiKey`` (any case), ``Basic`` or ``Bearer``.

One difference from the core's standard reader: an ``ApiKey`` header whose value is not
``base64(id:secret)`` is a credential that is *invalid*, not a missing one. ES's ApiKeyService fails such a
value with ``invalid ApiKey value`` and answers 401 "error attempting to authenticate request"; a client
that forgot the id learns that, instead of being told it sent nothing.
"""

from __future__ import annotations

import re

from flask import Request

from gateway.auth import PresentedCredential, authorization, standard_scheme

from .errors import WWW_AUTHENTICATE, EsError

_BASE64 = re.compile(r"[A-Za-z0-9+/=]")


def _why_invalid(value: str) -> str:
    """The reason ES's decoder gives, e.g. ``Illegal base64 character 21`` (hex, as Java prints it)."""
    for char in value:
        if not _BASE64.match(char):
            return f"Illegal base64 character {ord(char):x}"
    return "invalid ApiKey value"  # decodes, but to no "id:secret" (or to no text)


def read_credential(request: Request) -> PresentedCredential | None:
    """The declared reader of this API: the standard schemes, and a 401 for a malformed ``ApiKey``."""
    found = standard_scheme(request)
    if found is not None:
        return found
    auth = authorization(request)
    if auth is not None and auth[0] == "apikey" and auth[1]:
        cause = EsError("illegal_argument_exception", _why_invalid(auth[1]), es_exception=False)
        raise EsError("security_exception", "error attempting to authenticate request", 401, cause=cause,
                      headers={"WWW-Authenticate": WWW_AUTHENTICATE})
    return None
