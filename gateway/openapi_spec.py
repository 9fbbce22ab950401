"""The OpenAPI 3.1 description of a running app, built with apispec and its marshmallow plugin.

Every route of every loaded API is described from what the core already holds: the URL rule (path and
its parameters), the methods, the view's docstring, the API's credential reader (the readers of
`gateway.auth` map to security schemes) and error format. What a plugin adds with `gateway.openapi`
(`ApiDoc` on its declaration, `@operation` on a view) refines that; a plugin that adds a route therefore
appears without any edit here. The description is built once per app, on first use.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from . import __version__
from .auth import read_api_key, read_basic, read_bearer
from .errors import render_gateway_error
from .openapi import API_KEY, BASIC, BEARER, ApiDoc, Operation, Reply, header_scheme, operation_of
from .state import Api, get_state

CACHE_KEY = "event_gateway.openapi"
GATEWAY_TAG = "gateway"
#: Errors every API route may answer (in the API's own format); `default` covers the rest.
ERROR_STATUSES = (400, 401, 403, 404, 405, 413, 415, 429, 503)
_RULE_PART = re.compile(r"<(?:(?P<conv>[a-zA-Z_]\w*)(?:\((?P<args>[^)]*)\))?:)?(?P<name>[a-zA-Z_]\w*)>")
_CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"},
                    "uuid": {"type": "string", "format": "uuid"}}

GATEWAY_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "object", "required": ["code", "message", "status"], "properties": {
        "code": {"type": "string"}, "message": {"type": "string"}, "status": {"type": "integer"},
        "field": {"type": "string"}}}},
}
ANY_JSON: dict[str, Any] = {}
#: The schemes of `gateway.auth`'s readers keep their plain names; a different scheme of the same name is prefixed.
STANDARD_SCHEMES = {"ApiKey": API_KEY, "Basic": BASIC, "Bearer": BEARER}


def openapi_document(app: Flask) -> dict[str, Any]:
    """The app's OpenAPI description as a dict (built on first call, then reused)."""
    cached = app.extensions.get(CACHE_KEY)
    if cached is None:
        cached = app.extensions[CACHE_KEY] = build_document(app)
    return cached


def build_document(app: Flask) -> dict[str, Any]:
    """Describe every documented route of `app`: each API's routes, the gateway's own ones."""
    state = get_state(app)
    builder = _Builder(app, state.apis)
    for api in sorted(state.apis.values(), key=lambda a: a.name):
        builder.add_api(api)
    builder.add_gateway_routes()
    return builder.spec.to_dict()


def custom_field_schema(converter: Any, field: Any, **kwargs: Any) -> dict[str, Any]:
    """What a plugin's own marshmallow field accepts: its ``openapi()`` method's JSON Schema.

    apispec knows marshmallow's field classes only and shows a field of any other class as ``{}`` (anything);
    a plugin's field class (a strict integer, a proto3 scalar, "a string or an array of strings") says what it
    accepts by defining ``openapi(self) -> dict``. A field that allows null also accepts ``null``.
    """
    describe = getattr(field, "openapi", None)
    if not callable(describe):
        return {}
    schema = dict(describe())
    if field.allow_none:
        if isinstance(schema.get("type"), str):
            schema["type"] = [schema["type"], "null"]
        elif "oneOf" in schema:
            schema["oneOf"] = [*schema["oneOf"], {"type": "null"}]
    return schema


class _Builder:
    """One apispec document being filled in, API by API."""

    def __init__(self, app: Flask, apis: Mapping[str, Api]) -> None:
        self.app = app
        self.apis = apis
        self.current = GATEWAY_TAG
        self.schemes: dict[str, Mapping[str, Any]] = {}
        self.operation_ids: set[str] = set()
        marshmallow_plugin = MarshmallowPlugin(schema_name_resolver=self._schema_name)
        self.spec = APISpec(
            title="Event Gateway", version=__version__, openapi_version="3.1.0",
            plugins=[marshmallow_plugin],
            info={"description": "One self-hosted service speaking the analytics-event APIs of several vendors. "
                                 "Each API answers in its vendor's own format; credentials are configured "
                                 "([[credentials]] or `event-gateway keys new`)."},
        )

        marshmallow_plugin.converter.add_attribute_function(custom_field_schema)

    def _schema_name(self, schema: Any) -> str:
        cls = schema if isinstance(schema, type) else type(schema)
        name = cls.__name__.removesuffix("Schema") or cls.__name__
        return f"{self.current}.{name}"

    def _rules(self, prefix: str) -> list[Any]:
        return sorted((rule for rule in self.app.url_map.iter_rules() if rule.endpoint.startswith(prefix)),
                      key=lambda rule: (rule.rule, rule.endpoint))

    def add_api(self, api: Api) -> None:
        """The API's tag, security schemes, error response and every one of its routes."""
        self.current = api.name
        doc = api.declaration.openapi or ApiDoc()
        self.spec.tag({"name": api.name, "description": doc.title or _module_summary(api.declaration.blueprint)})
        alternatives = doc.security if doc.security is not None else security_of(api.read_credential)
        requirements = [{self._scheme(name, scheme): [] for name, scheme in alt.items()}
                        for alt in alternatives or ()]
        error_schema = doc.error_schema
        if error_schema is None:
            error_schema = GATEWAY_ERROR if api.render_error is render_gateway_error else {"type": "object"}
        error_ref = f"{api.name}.Error"
        self.spec.components.response(error_ref, {
            "description": f"An error, in the format of {doc.title or api.name}",
            "content": {media: {"schema": error_schema} for media in doc.media_types}})
        for rule in self._rules(f"{api.name}."):
            self._add_rule(rule, api.name, requirements, error_ref, doc.media_types)

    def add_gateway_routes(self) -> None:
        """``/_gateway/...``, ``/openapi.json``, ``/metrics``: the gateway's own routes, in its own format."""
        self.current = GATEWAY_TAG
        self.spec.tag({"name": GATEWAY_TAG, "description": "The gateway's own routes (health, plugins, description)"})
        self.spec.components.response("gateway.Error", {
            "description": "An error, in the gateway's own format",
            "content": {"application/json": {"schema": GATEWAY_ERROR}}})
        for rule in self._rules("_"):
            view = self.app.view_functions[rule.endpoint]
            if operation_of(view) is None and not rule.endpoint.startswith("_gateway."):
                continue  # e.g. /docs and its assets: pages, not API
            self._add_rule(rule, GATEWAY_TAG, [], "gateway.Error", ("application/json",))

    def _scheme(self, name: str, scheme: Mapping[str, Any]) -> str:
        """Register a security scheme; the same name for the same scheme, prefixed by the API when they differ."""
        taken = self.schemes.get(name, STANDARD_SCHEMES.get(name))
        if taken is not None and dict(taken) != dict(scheme):
            name = f"{self.current}.{name}"
        if name not in self.schemes:
            self.schemes[name] = scheme
            self.spec.components.security_scheme(name, dict(scheme))
        return name

    def _add_rule(self, rule: Any, tag: str, security: list[dict[str, list[str]]], error_ref: str,
                  media_types: tuple[str, ...]) -> None:
        view = self.app.view_functions[rule.endpoint]
        recorded = operation_of(view) or Operation()
        path, params = _path_and_params(rule.rule, recorded)
        summary, description = _docstring(view)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op: dict[str, Any] = {
                "tags": [tag], "operationId": self._operation_id(rule.endpoint, method),
                "summary": recorded.summary or summary,
                "parameters": [*params, *_header_params(recorded.headers)],
                "responses": self._responses(recorded, error_ref, media_types, secured=bool(security)),
            }
            if recorded.description or description:
                op["description"] = recorded.description or description
            if isinstance(recorded.query, Mapping):  # a JSON Schema object: one parameter per property
                required = set(recorded.query.get("required", ()))
                op["parameters"].extend({"in": "query", "name": name, "required": name in required, "schema": prop}
                                        for name, prop in recorded.query.get("properties", {}).items())
            elif recorded.query is not None:
                op["parameters"].append({"in": "query", "schema": recorded.query})
            if recorded.body is not None and method in ("POST", "PUT", "PATCH"):
                content = {media: {"schema": self._schema(recorded.body)} for media in recorded.body_media_types}
                op["requestBody"] = {"required": recorded.body_required, "content": content}
            if security:
                op["security"] = security
            op.update(recorded.extra)
            operations[method.lower()] = op
        self.spec.path(path=path, operations=operations)

    def _schema(self, schema: Any) -> Any:
        """A schema as apispec takes it; a tuple of schemas is any one of them (``anyOf`` of references)."""
        if not isinstance(schema, tuple):
            return schema
        choices = []
        for item in schema:
            if isinstance(item, Mapping):
                choices.append(dict(item))
                continue
            name = self._schema_name(item)
            if name not in self.spec.components.schemas:
                self.spec.components.schema(name, schema=item)
            choices.append({"$ref": f"#/components/schemas/{name}"})
        return {"anyOf": choices}

    def _operation_id(self, endpoint: str, method: str) -> str:
        base = f"{endpoint.replace('.', '_')}_{method.lower()}"
        candidate, index = base, 2
        while candidate in self.operation_ids:
            candidate, index = f"{base}_{index}", index + 1
        self.operation_ids.add(candidate)
        return candidate

    def _responses(self, recorded: Operation, error_ref: str, media_types: tuple[str, ...], *,
                   secured: bool) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for status, reply in (recorded.responses or {"2XX": Reply("Success", ANY_JSON)}).items():
            if not isinstance(reply, Reply):
                reply = Reply("Success", reply)
            answer: dict[str, Any] = {"description": reply.description}
            if reply.schema is not None:
                types = reply.media_types if reply.media_types != ("application/json",) else media_types
                answer["content"] = {media: {"schema": self._schema(reply.schema)} for media in types}
            if reply.headers:
                answer["headers"] = {name: {"description": text, "schema": {"type": "string"}}
                                     for name, text in reply.headers.items()}
            out[str(status)] = answer
        for status in ERROR_STATUSES:
            if status == 401 and not secured:
                continue
            out.setdefault(str(status), error_ref)
        out["default"] = error_ref
        return out


def security_of(reader: Callable[..., Any]) -> list[dict[str, Mapping[str, Any]]] | None:
    """The security alternatives of a credential reader built from `gateway.auth`, or None when unknown."""
    if isinstance(reader, partial):
        if reader.func is read_basic and reader.keywords.get("user"):
            user = reader.keywords["user"]
            return [{"Basic": {**BASIC, "description": f"user `{user}`, the secret as password"}}]
        reader = reader.func
    known = {read_api_key: {"ApiKey": API_KEY}, read_basic: {"Basic": BASIC}, read_bearer: {"Bearer": BEARER}}
    if reader in known:
        return [known[reader]]
    header = getattr(reader, "header_name", None)
    if header:
        return [{header: header_scheme(header)}]
    alternatives = getattr(reader, "alternatives", None)
    if alternatives:
        found = [security_of(inner) for inner in alternatives]
        return [alt for group in found if group for alt in group] or None
    return None


def _path_and_params(rule: str, recorded: Operation) -> tuple[str, list[dict[str, Any]]]:
    params = []
    for match in _RULE_PART.finditer(rule):
        name = match["name"]
        schema = dict(recorded.path_params.get(name) or _CONVERTER_TYPES.get(match["conv"] or "", {"type": "string"}))
        params.append({"in": "path", "name": name, "required": True, "schema": schema})
    return _RULE_PART.sub(lambda m: "{" + m["name"] + "}", rule), params


def _header_params(headers: Mapping[str, str]) -> list[dict[str, Any]]:
    return [{"in": "header", "name": name, "required": False, "description": text, "schema": {"type": "string"}}
            for name, text in headers.items()]


def _docstring(view: Callable[..., Any]) -> tuple[str, str]:
    text = (view.__doc__ or "").strip().replace("``", "`")
    first, _, rest = text.partition("\n\n")
    summary = " ".join(first.split()).replace("`", "")  # summaries are plain text in OpenAPI (not Markdown)
    return summary or view.__name__.replace("_", " "), _dedent(rest)


def _dedent(text: str) -> str:
    import textwrap

    return textwrap.dedent(text).strip()


def _module_summary(blueprint: Any) -> str:
    """The first paragraph of the API package's docstring (the blueprint's package, or module)."""
    name = blueprint.import_name
    module = sys.modules.get(name.rpartition(".")[0] if "." in name else name) or sys.modules.get(name)
    text = (getattr(module, "__doc__", None) or "").strip().replace("``", "`")
    return " ".join(text.partition("\n\n")[0].split())
