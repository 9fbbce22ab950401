"""Transport rules of the Events API: credentials from its two headers, media types (415/406), body reading.

Why a module of its own: every route shares them. ``X-Events-API-AccountName`` names the account (the
gateway tenant) and ``X-Events-API-Key`` carries the key (a credential's secret); the core accepts the key
only if its credential belongs to that tenant (`PresentedCredential.tenant`), so a key used with another
account name is a 401. JSON bodies come as ``application/vnd.appd.events+json`` (``v=1`` or ``v=2``) or
``application/json``; a query may also come as ``application/vnd.appd.events+text;v=2`` and its form is
told by its content. A request without Content-Type is read as the default type (JSON), as the vendor
documents.
"""

from __future__ import annotations

from typing import Any

from flask import Request, request

from gateway.auth import PresentedCredential
from gateway.jsonbody import EmptyBody, InvalidJSON, WrongShape, json_type_name, parse_json

from .errors import AppdError, accept_quality

ACCOUNT_HEADER = "X-Events-API-AccountName"
KEY_HEADER = "X-Events-API-Key"
JSON_TYPES = ("application/vnd.appd.events+json", "application/json")
TEXT_TYPE = "application/vnd.appd.events+text"
VERSIONS = ("1", "2")


def read_credential(req: Request) -> PresentedCredential | None:
    """The key and the account it is used for; None (401) unless both headers are present and non-blank."""
    account = (req.headers.get(ACCOUNT_HEADER) or "").strip()
    key = (req.headers.get(KEY_HEADER) or "").strip()
    if not account or not key:
        return None
    return PresentedCredential(key, None, "x-events-api-key", tenant=account)


def _media(header: str) -> tuple[str, str | None]:
    """``(media type, v parameter)`` of a Content-Type, lower-cased."""
    media, *params = header.split(";")
    version = None
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "v":
            version = value.strip().strip('"')
    return media.strip().lower(), version


def check_content_type(*, text_allowed: bool = False) -> None:
    """415 unless the body's Content-Type is one this route reads (absent: the default JSON type)."""
    header = request.headers.get("Content-Type")
    if not header or not header.strip():
        return
    media, version = _media(header)
    allowed = JSON_TYPES + ((TEXT_TYPE,) if text_allowed else ())
    if media in allowed and (version is None or version in VERSIONS):
        return
    wanted = "application/vnd.appd.events+json;v=2" + (" or application/vnd.appd.events+text;v=2"
                                                        if text_allowed else "")
    raise AppdError(415, "Unsupported.Media.Type", f"Content-Type {header.strip()} is not supported; send {wanted}")


def check_accept() -> None:
    """406 when ``Accept`` excludes JSON (every answer of this API is JSON)."""
    header = request.headers.get("Accept")
    if max(accept_quality(header, media) for media in JSON_TYPES) > 0:
        return
    raise AppdError(406, "Not.Acceptable", f"Accept {request.headers.get('Accept')} excludes "
                                           "application/vnd.appd.events+json;v=2, the only type this API answers in")


def raw_body() -> bytes:
    """The body (413 beyond ``server.max_body_bytes``, raised by the core while reading)."""
    return request.get_data(cache=True)


def read_json_body(expect: type, what: str) -> Any:
    """The JSON body, of type `expect` (``dict`` or ``list``); 415/400 otherwise. `what` words the 400."""
    check_content_type()
    try:
        raw = raw_body()
        if not raw.strip():
            raise EmptyBody()
        value = parse_json(raw)
    except EmptyBody:
        raise AppdError(400, "Invalid.Request", f"the request body is empty; expected {what}", field="body") from None
    except InvalidJSON as exc:
        raise AppdError(400, "Invalid.Json", f"the request body is not valid JSON: {exc.describe()}",
                        field="body") from None
    if not isinstance(value, expect):
        raise AppdError(400, "Invalid.Request", f"the request body must be {what}, not {json_type_name(value)}",
                        field="body") from WrongShape(json_type_name(value), value)
    return value
