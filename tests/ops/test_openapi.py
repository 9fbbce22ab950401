"""The OpenAPI 3.1 description (``/openapi.json``, ``event-gateway openapi``) and the ``/docs`` page."""

from __future__ import annotations

import json
import re
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask import Blueprint
from marshmallow import Schema, fields
from openapi_spec_validator import validate
from ops.ops_helpers import SECRET, every_api_config
from support import write_config

from gateway import create_app, hookimpl
from gateway.api import require_grant
from gateway.cli import main
from gateway.errors import json_response
from gateway.openapi import ApiDoc, Reply, header_scheme, operation
from gateway.state import get_state
from gateway.vendor import VendorApi


def _document(app: Any) -> dict[str, Any]:
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


@pytest.fixture
def every_api(tmp_path: Path) -> Any:
    return create_app(every_api_config(tmp_path, storage={"url": "memory://"}))


def _properties(node: Any, where: str = "") -> Iterator[tuple[str, Any]]:
    """(path, schema) of every object property anywhere in the document."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "properties" and isinstance(value, dict):
                yield from ((f"{where}/{name}", schema) for name, schema in value.items())
            yield from _properties(value, f"{where}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _properties(value, f"{where}[{index}]")


def test_every_request_field_says_what_it_accepts(every_api: Any) -> None:
    """A plugin's own marshmallow field classes describe themselves (`openapi()`), never as ``{}``."""
    doc = _document(every_api)
    blank = [where for where, schema in _properties(doc) if schema == {}]
    assert not blank, blank
    schemas = doc["components"]["schemas"]
    assert schemas["workplace_search.AnalyticsEvent"]["properties"]["score"] == {
        "type": ["integer", "null"], "enum": [1, -1]}
    paging = schemas["fluid_topics.Paging"]["properties"]["perPage"]
    assert paging["type"] == "integer" and paging["minimum"] >= 1
    version = schemas["buildless.VersionInfo"]["properties"]["major"]
    assert {"type": "integer", "minimum": 0, "maximum": 2**32 - 1} in version["oneOf"]


def test_the_description_is_valid_openapi_31_and_lists_every_route_of_every_api(every_api: Any) -> None:
    doc = _document(every_api)
    validate(doc)  # openapi-spec-validator: raises on any violation of the 3.1 schema
    assert doc["openapi"] == "3.1.0"
    state = get_state(every_api)
    assert {"elastic_analytics", "workplace_search", "fluid_topics", "buildless", "hello"} <= set(state.apis)
    documented = {(method.upper(), path) for path, item in doc["paths"].items() for method in item}
    for rule in every_api.url_map.iter_rules():
        if rule.endpoint.partition(".")[0] not in state.apis:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            operation_ = doc["paths"][path][method.lower()]
            assert (method, path) in documented
            assert operation_["tags"] == [rule.endpoint.partition(".")[0]]
            assert operation_["responses"]["default"]["$ref"] == f"#/components/responses/{operation_['tags'][0]}.Error"
    tags = {tag["name"]: tag["description"] for tag in doc["tags"]}
    assert tags["elastic_analytics"].startswith("Elasticsearch Behavioral Analytics")
    assert set(tags) >= set(state.apis) | {"gateway"}


def _security(doc: dict[str, Any], path: str, method: str = "post") -> list[dict[str, Any]]:
    schemes = doc["components"]["securitySchemes"]
    return [{name: schemes[name] for name in requirement} for requirement in doc["paths"][path][method]["security"]]


def test_each_api_documents_the_security_scheme_its_clients_use(every_api: Any) -> None:
    doc = _document(every_api)
    es = _security(doc, "/_application/analytics/{collection}/event/{event_type}")
    assert [list(alt) for alt in es] == [["ApiKey"], ["Basic"], ["Bearer"]]
    assert es[0]["ApiKey"] == {**es[0]["ApiKey"], "type": "apiKey", "in": "header", "name": "Authorization"}
    assert es[1]["Basic"]["scheme"] == "basic" and es[2]["Bearer"]["scheme"] == "bearer"
    ws = _security(doc, "/api/ws/v1/analytics/event")  # derived from the plugin's reader: Bearer only
    assert [list(alt) for alt in ws] == [["Bearer"]]
    ft = _security(doc, "/api/analytics/events")
    assert [list(alt) for alt in ft] == [["Bearer"], ["Basic"], ["FT-Authorization"]]
    bl = _security(doc, "/v1/telemetry/event:emit")
    assert [list(alt) for alt in bl] == [["Bearer"], ["buildless.Basic"], ["X-API-Key"]]
    assert bl[2]["X-API-Key"] == {**bl[2]["X-API-Key"], "type": "apiKey", "in": "header", "name": "X-API-Key"}
    hello = _security(doc, "/hello/v1/events")  # a third-party plugin's read_header("X-Hello-Key")
    assert [list(alt) for alt in hello] == [["X-Hello-Key"]]


def test_bodies_parameters_answers_and_error_formats_come_from_the_declarations(every_api: Any) -> None:
    doc = _document(every_api)
    schemas = doc["components"]["schemas"]
    post_event = doc["paths"]["/_application/analytics/{collection}/event/{event_type}"]["post"]
    body = post_event["requestBody"]["content"]["application/json"]["schema"]
    assert {ref["$ref"].rsplit("/", 1)[1] for ref in body["anyOf"]} == {
        "elastic_analytics.PageViewEvent", "elastic_analytics.SearchEvent", "elastic_analytics.SearchClickEvent"}
    page_view = schemas["elastic_analytics.PageViewEvent"]
    assert set(page_view["required"]) == {"session", "user", "page"} and page_view["additionalProperties"] is False
    params = {p["name"]: p for p in post_event["parameters"]}
    assert params["event_type"]["in"] == "path" and params["event_type"]["schema"]["enum"] == [
        "page_view", "search", "search_click"]
    assert params["debug"]["in"] == "query" and not params["debug"]["required"]
    assert set(post_event["responses"]["202"]["content"]) == {"application/json", "application/vnd.elasticsearch+json"}
    ws = doc["paths"]["/api/ws/v1/analytics/event"]["post"]
    ref = ws["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("workplace_search.AnalyticsEvent")
    assert "query_id" in schemas["workplace_search.AnalyticsEvent"]["properties"]
    errors = doc["components"]["responses"]
    assert errors["workplace_search.Error"]["content"]["application/json"]["schema"]["required"] == ["errors"]
    assert "root_cause" in json.dumps(errors["elastic_analytics.Error"])
    assert errors["buildless.Error"]["content"]["application/json"]["schema"]["required"] == ["code", "message",
                                                                                                "details"]
    assert "timestamp" in errors["fluid_topics.Error"]["content"]["application/json"]["schema"]["required"]
    # hello renders its own errors and declares no schema for them: documented as some JSON object
    assert errors["hello.Error"]["content"]["application/json"]["schema"] == {"type": "object"}
    assert doc["paths"]["/api/analytics/events"]["post"]["parameters"][0]["name"] == "Ft-Calling-App"


def test_documented_answers_match_real_answers(every_api: Any) -> None:
    """A real success and a real error of an API validate against the schemas the description gives them."""
    from jsonschema import Draft202012Validator

    doc = _document(every_api)
    client = every_api.test_client()
    bearer = {"Authorization": f"Bearer {SECRET}"}
    ok = client.post("/api/analytics/events", headers=bearer, json={"offline": False, "appName": "a",
                                                                    "appVersion": "1", "name": "page.display"})
    bad = client.post("/api/analytics/events", headers=bearer, json={"offline": "no"})
    responses = doc["paths"]["/api/analytics/events"]["post"]["responses"]
    Draft202012Validator(responses["200"]["content"]["application/json"]["schema"]).validate(ok.get_json())
    error_schema = doc["components"]["responses"]["fluid_topics.Error"]["content"]["application/json"]["schema"]
    assert bad.status_code == 400
    Draft202012Validator(error_schema).validate(bad.get_json())
    es_error = doc["components"]["responses"]["elastic_analytics.Error"]["content"]["application/json"]["schema"]
    missing = client.get("/_application/analytics/nothing-here", headers=bearer)
    assert missing.status_code == 404
    Draft202012Validator(es_error).validate(missing.get_json())


# -- a plugin joins by its declaration alone ------------------------------------------------------------------

class _Reading(Schema):
    metric = fields.String(required=True)
    value = fields.Float(required=True)


def _appd_like_plugin() -> types.SimpleNamespace:
    """A plugin unknown to the core: own routes, own two-header credential, own error schema."""
    blueprint = Blueprint("appd_like", __name__)

    @blueprint.post("/events/publish/<schema_name>")
    @operation(body=_Reading, responses={200: Reply("Published", {"type": "object"})})
    def publish(schema_name: str) -> Any:
        """Publish events to a schema.

        The body is one reading.
        """
        require_grant("write")
        return json_response({})

    @blueprint.get("/events/schema/<int:version>")
    def read_schema(version: int) -> Any:
        """Read a schema (no annotation at all: documented from the rule and this docstring)."""
        return json_response({"version": version})

    def reader(request: Any) -> Any:
        return None

    api = VendorApi(name="appd_like", blueprint=blueprint, read_credential=reader, grants=("write",),
                    openapi=ApiDoc(title="An AppDynamics-like API", error_schema={
                        "type": "object", "required": ["statusCode"],
                        "properties": {"statusCode": {"type": "integer"}}},
                        security=({"AccountName": header_scheme("X-Events-API-AccountName"),
                                   "EventsKey": header_scheme("X-Events-API-Key")},)))

    class Plugin:
        @hookimpl
        def register_apis(self) -> VendorApi:
            return api

    return types.SimpleNamespace(plugin=Plugin())


def test_a_new_plugin_appears_with_no_edit_to_the_core(tmp_path: Path) -> None:
    config = every_api_config(tmp_path, storage={"url": "memory://"})
    app = create_app(config, plugins=[("appd_like", _appd_like_plugin().plugin)])
    doc = _document(app)
    validate(doc)
    publish = doc["paths"]["/events/publish/{schema_name}"]["post"]
    assert publish["summary"] == "Publish events to a schema." and publish["description"] == "The body is one reading."
    assert publish["security"] == [{"AccountName": [], "EventsKey": []}]  # both headers, together
    schemes = doc["components"]["securitySchemes"]
    assert schemes["AccountName"]["name"] == "X-Events-API-AccountName" and schemes["EventsKey"]["in"] == "header"
    assert doc["components"]["schemas"]["appd_like._Reading"]["required"] == ["metric", "value"]
    read = doc["paths"]["/events/schema/{version}"]["get"]
    assert read["parameters"] == [{"in": "path", "name": "version", "required": True, "schema": {"type": "integer"}}]
    assert set(read["responses"]) >= {"2XX", "400", "404", "default"}
    error = doc["components"]["responses"]["appd_like.Error"]["content"]["application/json"]["schema"]
    assert error["required"] == ["statusCode"]


def test_a_declaration_with_a_wrong_openapi_field_is_refused() -> None:
    from gateway.vendor import DeclarationError

    with pytest.raises(DeclarationError, match=r"openapi must be a gateway\.openapi\.ApiDoc"):
        VendorApi(name="broken", blueprint=Blueprint("broken", __name__), openapi={"title": "x"})


def test_the_cli_writes_the_same_description(tmp_path: Path) -> None:
    config = every_api_config(tmp_path, storage={"url": "memory://"})
    path = write_config(tmp_path / "g.toml", config)
    result = CliRunner().invoke(main, ["openapi", "--config", str(path)], catch_exceptions=False)
    assert result.exit_code == 0
    assert json.loads(result.stdout) == _document(create_app(config))
    assert result.stderr == ""  # no start-up warnings on this command


# -- /docs -------------------------------------------------------------------------------------------------

def test_the_docs_page_and_its_assets_are_served_from_the_installed_package(every_api: Any) -> None:
    client = every_api.test_client()
    page = client.get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    assert "http://" not in html and "https://" not in html  # nothing from a CDN
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r'url: "([^"]+)"', html)
    assert "/openapi.json" in urls and "/docs/assets/swagger-ui-bundle.js" in urls
    for url in urls:
        answer = client.get(url)
        assert answer.status_code == 200, url
        assert len(answer.data) > 100, url
    bundle = client.get("/docs/assets/swagger-ui-bundle.js")
    assert b"SwaggerUIBundle" in bundle.data and bundle.mimetype in ("text/javascript", "application/javascript")
    assert client.get("/docs/assets/swagger-ui.css").mimetype == "text/css"
    missing = client.get("/docs/assets/../../setup.py")
    assert missing.status_code == 404 and missing.is_json
    assert client.get("/docs/assets/index.html").status_code == 404  # only the listed files


@pytest.mark.slow
def test_docs_try_it_calls_reach_the_running_gateway(serve: Any, tmp_path: Path) -> None:
    """What Swagger UI's "try it" sends (same origin, the documented path and scheme) works on a real server."""
    server = serve(every_api_config(tmp_path))
    doc = requests.get(f"{server.url}/openapi.json", timeout=10).json()
    assert requests.get(f"{server.url}/docs", timeout=10).status_code == 200
    path = "/api/ws/v1/analytics/event"
    assert doc["paths"][path]["post"]["security"] == [{"Bearer": []}]
    answer = requests.post(f"{server.url}{path}", headers={"Authorization": f"Bearer {SECRET}"}, timeout=10,
                           json={"type": "click", "query_id": "q", "page": 1, "content_source_id": "c",
                                 "document_id": "d", "rank": 0, "event": "e"})
    assert answer.status_code == 200 and answer.json() == {}
