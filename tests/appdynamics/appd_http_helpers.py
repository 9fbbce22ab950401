"""Helpers of the AppDynamics HTTP tests: credentials, configs, headers and the reference's curl workflow."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from support import base_config

PLUGIN = "appdynamics"
#: The account name of the reference's curl examples (schema + publish); the query example names another
#: account (customer1_7xxx-467a-bccc-xxx), configured as a second tenant sharing nothing.
ACCOUNT = "customer1_1234-567a-bccc-123"
QUERY_EXAMPLE_ACCOUNT = "customer1_7xxx-467a-bccc-xxx"
KEY = "a123b456-c789-1d23-e456-nnn"  # the reference's key, used with both of its account names
OTHER_ACCOUNT = "globex"
OTHER_KEY = "globex-appd-key-0001"
NO_GRANT_KEY = "appd-no-grant-key-0001"
SCHEMA_ONLY_KEY = "appd-schema-only-0001"
PUBLISH_ONLY_KEY = "appd-publish-only-0001"
QUERY_PRODUCTS_KEY = "appd-query-myproducts-0001"

APPD_CREDENTIALS = [
    {"id": "appd-doc", "secret": KEY, "tenant": ACCOUNT, "grants": ["appdynamics:*"]},
    {"id": "appd-globex", "secret": OTHER_KEY, "tenant": OTHER_ACCOUNT, "grants": ["appdynamics:*"]},
    {"id": "appd-none", "secret": NO_GRANT_KEY, "tenant": ACCOUNT, "grants": ["elastic_analytics:*"]},
    {"id": "appd-schema", "secret": SCHEMA_ONLY_KEY, "tenant": ACCOUNT, "grants": ["appdynamics:schema"]},
    {"id": "appd-publish", "secret": PUBLISH_ONLY_KEY, "tenant": ACCOUNT,
     "grants": ["appdynamics:publish:myProducts"]},
    {"id": "appd-query", "secret": QUERY_PRODUCTS_KEY, "tenant": ACCOUNT,
     "grants": ["appdynamics:query:myProducts", "appdynamics:schema:myProducts"]},
]

JSON_V2 = "application/vnd.appd.events+json;v=2"
TEXT_V2 = "application/vnd.appd.events+text;v=2"


def headers(key: str = KEY, account: str = ACCOUNT, content_type: str | None = JSON_V2, **extra: str
            ) -> dict[str, str]:
    """The Events API headers (as the reference's curl examples send them)."""
    out = {"X-Events-API-AccountName": account, "X-Events-API-Key": key}
    if content_type is not None:
        out["Content-Type"] = content_type
    out.update(extra)
    return out


DOC = headers()


def appd_config(tmp_path: Path, storage: str = "sqlite", **sections: Any) -> dict[str, Any]:
    """A config serving only this plugin, on SQLite under tmp_path (or memory)."""
    url = "memory://" if storage == "memory" else f"sqlite:///{tmp_path}/appd.db"
    config = base_config(tmp_path, plugins={"enabled": [PLUGIN]}, storage={"url": url})
    config["credentials"] = APPD_CREDENTIALS
    for name, body in sections.items():
        config[name] = {**config.get(name, {}), **body} if isinstance(body, dict) else body
    return config


#: The reference's curl workflow, verbatim: create myProducts, publish two events, query them.
DOC_SCHEMA_BODY = ('{"schema" : { "id": "string", "productBrand": "string", "userRating": "integer", "price": '
                   '"float", "productName": "string", "description": "string" } }')
DOC_PUBLISH_BODY = ('[{"id": "5653b879ab33a","productBrand": "ACME","userRating": 3,"price": 2006.41,"productName": '
                    '"Watch","description": "new watch"},{"id": "5653b879700","productBrand": "Widget","userRating": '
                    '1,"price": 3800.13,"productName": "Watch","description": "2015 watch"}]')
DOC_QUERY = "SELECT * FROM myProducts"
DOC_FIELDS = [
    {"label": "id", "field": "id", "type": "string"},
    {"label": "productBrand", "field": "productBrand", "type": "string"},
    {"label": "userRating", "field": "userRating", "type": "integer"},
    {"label": "price", "field": "price", "type": "float"},
    {"label": "productName", "field": "productName", "type": "string"},
    {"label": "description", "field": "description", "type": "string"},
    {"label": "eventTimestamp", "field": "eventTimestamp", "type": "date"},
    {"label": "pickupTimestamp", "field": "pickupTimestamp", "type": "date"},
]
DOC_ROWS = {  # by id: the user fields of each published event, in schema order
    "5653b879ab33a": ["5653b879ab33a", "ACME", 3, 2006.41, "Watch", "new watch"],
    "5653b879700": ["5653b879700", "Widget", 1, 3800.13, "Watch", "2015 watch"],
}


def error_body(response: Any) -> dict[str, Any]:
    """The JSON error body, after checking its shape (statusCode = the HTTP status, code, message)."""
    body = response.json() if hasattr(response, "json") and callable(response.json) else response.get_json()
    if body is None:
        import json

        body = json.loads(response.get_data(as_text=True))
    status = response.status_code
    assert body["statusCode"] == status, body
    assert isinstance(body["code"], str) and body["code"], body
    assert isinstance(body["message"], str) and body["message"], body
    return body
