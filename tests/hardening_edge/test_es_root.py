"""Issue 10 item 9: Elasticsearch's root, its media-type versions and its API-key parsing, in-process.

Before: ``GET /`` and ``HEAD /`` were 404s in the gateway's own format, so ``es.info()`` failed in every
official client; ``Content-Type: application/vnd.elasticsearch+json; compatible-with=9`` with ``Accept: */*``
was refused (a missing Accept version was treated as "none" rather than "the current one"); and
``Authorization: ApiKey <no id>`` answered "missing authentication credentials". Expected bodies are written
from Elasticsearch's RestMainAction / ApiKeyService behaviour, not copied from a gateway answer.
The official clients' ``info()`` over HTTP is in tests/elastic/test_official_client.py and tests/clients/.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from support import api_key

AUTH = {"Authorization": f"ApiKey {api_key('admin')}"}
PAGE_VIEW = {"session": {"id": "s"}, "user": {"id": "u"}, "page": {"url": "https://shop.example/"}}
EVENT_PATH = "/_application/analytics/shop/event/page_view"


@pytest.fixture
def es(client: Any) -> Any:
    assert client.put("/_application/analytics/shop", headers=AUTH).status_code == 201
    return client


def _stored(client: Any) -> int:
    from gateway.query import Query
    from gateway.state import get_state

    backend = get_state(client.application).backend
    return len(backend.query(Query(tenant="acme", plugin="elastic_analytics", limit=100)).events)


# -- GET / and HEAD / ------------------------------------------------------------------------------------
def test_root_answers_like_elasticsearch(es: Any) -> None:
    response = es.get("/", headers=AUTH)
    assert response.status_code == 200
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    body = response.get_json()
    assert {"name", "cluster_name", "cluster_uuid", "version", "tagline"} <= set(body)
    assert body["tagline"] == "You Know, for Search"
    assert isinstance(body["name"], str) and body["name"]
    assert isinstance(body["cluster_name"], str) and body["cluster_name"]
    assert len(body["cluster_uuid"]) == 22  # ES's url-safe base64 UUID
    assert body["cluster_uuid"] == es.get("/", headers=AUTH).get_json()["cluster_uuid"]  # stable
    version = body["version"]
    assert version["build_flavor"] == "default"
    major, *rest = (int(part) for part in version["number"].split("."))
    assert len(rest) == 2
    assert major == 9  # a missing Accept version means 9 here, as on Elasticsearch 9
    assert {"lucene_version", "minimum_wire_compatibility_version", "minimum_index_compatibility_version",
            "build_type", "build_hash", "build_date", "build_snapshot"} <= set(version)


def test_head_root_is_200_without_body(es: Any) -> None:
    response = es.head("/", headers=AUTH)
    assert response.status_code == 200
    assert response.get_data() == b""
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"


def test_root_answers_in_the_compatible_media_type(es: Any) -> None:
    compat = "application/vnd.elasticsearch+json; compatible-with=8"
    response = es.get("/", headers={**AUTH, "Accept": compat})
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "application/vnd.elasticsearch+json;compatible-with=8"


def test_root_needs_credentials(es: Any) -> None:
    response = es.get("/")
    assert response.status_code == 401
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert "ApiKey" in response.headers["WWW-Authenticate"]
    error = response.get_json()["error"]
    assert error["type"] == "security_exception"
    assert error["reason"] == "missing authentication credentials for REST request [/]"
    assert es.head("/").status_code == 401


def test_root_needs_the_monitor_grant(es: Any) -> None:
    """ES's `GET /` is the cluster:monitor/main action: a key that may only post events is refused."""
    response = es.get("/", headers={"Authorization": f"ApiKey {api_key('tracker')}"})
    assert response.status_code == 403
    error = response.get_json()["error"]
    assert error["type"] == "security_exception"
    assert error["reason"] == "action [cluster:monitor/main] is unauthorized for API key id [tracker]"


def test_root_takes_no_unknown_parameters(es: Any) -> None:
    response = es.get("/?foo=1", headers=AUTH)
    assert response.status_code == 400
    assert response.get_json()["error"]["reason"] == "request [/] contains unrecognized parameter: [foo]"
    assert es.get("/?filter_path=tagline", headers=AUTH).get_json() == {"tagline": "You Know, for Search"}


def test_root_claims_only_itself(es: Any) -> None:
    """Paths no API claims keep the gateway's own 404, not Elasticsearch's."""
    response = es.get("/no/such/route", headers=AUTH)
    assert response.status_code == 404
    assert response.get_json()["error"]["code"] == "not_found"
    assert "X-Elastic-Product" not in response.headers


# -- compatible-with on one header only --------------------------------------------------------------------
@pytest.mark.parametrize("accept", ["*/*", None, "application/json"])
def test_content_type_compatible_with_9_and_accept_without_version(es: Any, accept: str | None) -> None:
    headers = {**AUTH, "Content-Type": "application/vnd.elasticsearch+json; compatible-with=9"}
    if accept is not None:
        headers["Accept"] = accept
    response = es.post(EVENT_PATH, data=json.dumps(PAGE_VIEW), headers=headers)
    assert response.status_code == 202, response.get_data(as_text=True)
    assert response.get_json() == {"accepted": True}
    assert _stored(es) == 1


def test_content_type_compatible_with_8_and_accept_without_version_is_a_mismatch(es: Any) -> None:
    """The missing Accept version is the current one (9), which 8 does not match: ES's 400."""
    response = es.post(EVENT_PATH, data=json.dumps(PAGE_VIEW), headers={
        **AUTH, "Accept": "*/*", "Content-Type": "application/vnd.elasticsearch+json; compatible-with=8"})
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["type"] == "media_type_header_exception"
    assert error["caused_by"]["type"] == "status_exception"
    assert _stored(es) == 0


# -- ApiKey that is not base64(id:secret) ----------------------------------------------------------------
@pytest.mark.parametrize("value, cause", [
    (base64.b64encode(b"admin-secret-1").decode(), "invalid ApiKey value"),  # the secret without "id:"
    (base64.b64encode(b":admin-secret-1").decode(), "invalid ApiKey value"),  # an empty id
    ("admin-secret-1!", None),  # not base64 at all (ES names the decoder's complaint)
], ids=["no-id", "empty-id", "not-base64"])
def test_api_key_without_id_is_invalid_not_missing(es: Any, value: str, cause: str | None) -> None:
    response = es.post(EVENT_PATH, data=json.dumps(PAGE_VIEW), content_type="application/json",
                       headers={"Authorization": f"ApiKey {value}"})
    assert response.status_code == 401
    assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    assert "ApiKey" in response.headers["WWW-Authenticate"]
    body = response.get_json()
    assert body["status"] == 401
    error = body["error"]
    assert error["type"] == "security_exception"
    assert error["reason"] == "error attempting to authenticate request"
    assert error["caused_by"]["type"] == "illegal_argument_exception"
    if cause is not None:
        assert error["caused_by"]["reason"] == cause
    # the cause is not an Elasticsearch exception, so ES names the security exception as the root cause
    assert error["root_cause"] == [{"type": "security_exception", "reason": "error attempting to authenticate request"}]
    assert "missing" not in json.dumps(body)
    assert _stored(es) == 0


def test_empty_api_key_is_still_missing_credentials(es: Any) -> None:
    """``ApiKey`` with no value at all is no credential (ES: missing authentication credentials)."""
    response = es.get("/_application/analytics", headers={"Authorization": "ApiKey"})
    assert response.status_code == 401
    assert response.get_json()["error"]["reason"].startswith("missing authentication credentials")
