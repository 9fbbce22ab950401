"""Credentials and grants: digests in constant time, tenants, wildcard grants, the usual header schemes."""

from __future__ import annotations

import base64

import pytest
from flask import Flask

from gateway.auth import (
    Credential,
    CredentialStore,
    PresentedCredential,
    read_api_key,
    read_basic,
    read_bearer,
    read_header,
    sha256_hex,
    standard_scheme,
)
from gateway.config import CredentialConfig


def _store() -> CredentialStore:
    return CredentialStore([
        CredentialConfig("k1", "acme", ("elastic_analytics:post_event",), sha256_hex("s3cret-one")),
        CredentialConfig("k2", "globex", ("*:*",), sha256_hex("s3cret-two")),
    ])


def test_authenticate_by_id_and_by_bare_token() -> None:
    store = _store()
    assert store.authenticate(PresentedCredential("s3cret-one", "k1")).tenant == "acme"
    assert store.authenticate(PresentedCredential("s3cret-two", None)).id == "k2"
    assert store.authenticate(PresentedCredential("s3cret-two", "k1")) is None  # another key's secret
    assert store.authenticate(PresentedCredential("wrong", "k1")) is None
    assert store.authenticate(PresentedCredential("s3cret-one", "nobody")) is None
    assert store.authenticate(PresentedCredential("nothing", None)) is None


def test_a_credential_presented_for_a_tenant_must_belong_to_it() -> None:
    store = _store()
    assert store.authenticate(PresentedCredential("s3cret-one", None, tenant="acme")).id == "k1"
    assert store.authenticate(PresentedCredential("s3cret-one", "k1", tenant="acme")).id == "k1"
    assert store.authenticate(PresentedCredential("s3cret-one", None, tenant="globex")) is None
    assert store.authenticate(PresentedCredential("s3cret-two", "k2", tenant="acme")) is None
    assert store.authenticate(PresentedCredential("wrong", None, tenant="acme")) is None


@pytest.mark.parametrize(("grants", "plugin", "action", "stream", "allowed"), [
    (("elastic_analytics:post_event",), "elastic_analytics", "post_event", "shop", True),
    (("elastic_analytics:post_event",), "elastic_analytics", "manage", "shop", False),
    (("elastic_analytics:post_event:shop",), "elastic_analytics", "post_event", "shop", True),
    (("elastic_analytics:post_event:shop",), "elastic_analytics", "post_event", "blog", False),
    (("elastic_analytics:post_event:shop",), "elastic_analytics", "post_event", None, False),
    (("elastic_analytics:post_event:*",), "elastic_analytics", "post_event", None, True),
    (("elastic_analytics:post_event:shop-*",), "elastic_analytics", "post_event", "shop-eu", True),
    (("appdynamics:query:*",), "appdynamics", "query", "logs", True),
    (("appdynamics:*",), "appdynamics", "publish", "logs", True),
    (("*:*",), "buildless", "emit", None, True),
    (("elastic_analytics:*",), "workplace_search", "write", None, False),
    ((), "elastic_analytics", "post_event", None, False),
])
def test_grants(grants: tuple[str, ...], plugin: str, action: str, stream: str | None, allowed: bool) -> None:
    cred = Credential("k", "t", grants)
    assert cred.allows(plugin, action, stream) is allowed
    assert cred.allows(plugin, action, stream) is allowed  # cached decision is the same


def _request(headers: dict[str, str]):
    app = Flask(__name__)
    return app.test_request_context("/", headers=headers)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


@pytest.mark.parametrize(("header", "expected"), [
    (f"ApiKey {_b64('id1:sec')}", ("sec", "id1")),
    (f"Apikey {_b64('id1:sec')}", ("sec", "id1")),  # the JS tracker's spelling
    (f"APIKEY {_b64('id1:sec:with:colons')}", ("sec:with:colons", "id1")),
    (f"Basic {_b64('user:pw')}", ("pw", "user")),
    ("Bearer tok-123", ("tok-123", None)),
    ("ApiKey not-base64!", None),
    (f"ApiKey {_b64('no-colon')}", None),
    ("Bearer ", None),
    ("Digest abc", None),
])
def test_standard_scheme(header: str, expected: tuple[str, str | None] | None) -> None:
    with _request({"Authorization": header}) as ctx:
        found = standard_scheme(ctx.request)
    assert (None if found is None else (found.secret, found.id)) == expected


def test_specific_readers() -> None:
    with _request({"Authorization": f"Basic {_b64('apikey:the-token')}", "X-API-Key": " k "}) as ctx:
        assert read_basic(ctx.request, user="apikey") == PresentedCredential("the-token", None, "basic")
        assert read_basic(ctx.request, user="someone") is None
        assert read_header("X-API-Key")(ctx.request).secret == "k"
        assert read_bearer(ctx.request) is None and read_api_key(ctx.request) is None


def test_grant_cache_does_not_grow_with_stream_names() -> None:
    cred = Credential("k", "t", ("elastic_analytics:post_event:shop-*", "elastic_analytics:manage"))
    for i in range(500):
        assert cred.allows("elastic_analytics", "post_event", f"shop-{i}")
        assert not cred.allows("elastic_analytics", "post_event", f"blog-{i}")
        assert cred.allows("elastic_analytics", "manage", f"any-{i}")
    assert len(cred._decisions) <= 2
