"""What a plugin may say about its API for the OpenAPI description, without importing apispec.

Nothing here is required: `gateway.openapi_spec` documents every route of every API from what the core
already knows (the URL rule, its methods and path parameters, the view's docstring, the API's credential
reader and error format). A plugin adds precision in two places only:

* ``VendorApi(openapi=ApiDoc(...))``: a title, the security schemes when its credential reader is its own
  (the readers of `gateway.auth` are recognised), and the JSON Schema or marshmallow schema of its error body;
* ``@operation(body=..., query=..., responses=...)`` on a view: its request body, query parameters and
  success answers, as marshmallow schemas (or JSON Schema dicts).

Both are plain data, read once when the description is first asked for; they cost nothing per request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])
OPERATION_ATTRIBUTE = "__gateway_openapi__"

#: A schema as plugins give it: a marshmallow Schema class or instance, or a JSON Schema mapping.
SchemaLike = Any

#: The security schemes of `gateway.auth`'s readers (OpenAPI security scheme objects, by scheme name).
API_KEY = {"type": "apiKey", "in": "header", "name": "Authorization",
           "description": "`ApiKey base64(id:secret)` (the \"ApiKey header value\" `event-gateway keys new` prints); "
                          "type the whole value, `ApiKey ` included"}
BASIC = {"type": "http", "scheme": "basic", "description": "a credential's id and secret"}
BEARER = {"type": "http", "scheme": "bearer", "description": "a credential's secret"}


def header_scheme(name: str, description: str = "a credential's secret") -> dict[str, Any]:
    """The security scheme of a secret sent in header `name` (e.g. ``X-API-Key``)."""
    return {"type": "apiKey", "in": "header", "name": name, "description": description}


@dataclass(frozen=True)
class Reply:
    """One documented answer: a description, and the body's schema (None: no body) and media types."""

    description: str
    schema: SchemaLike = None
    media_types: tuple[str, ...] = ("application/json",)
    headers: Mapping[str, str] = field(default_factory=dict)  # header name -> description


@dataclass(frozen=True, kw_only=True)
class ApiDoc:
    """The optional `VendorApi.openapi` field.

    `security` lists the alternatives a caller may use, each a mapping of scheme name -> OpenAPI security
    scheme object whose members are sent together (AppDynamics: account name *and* key); None derives them
    from the API's credential reader. `error_schema` describes every error body of the API (None: the
    gateway's own format when the API renders errors the gateway's way, else any JSON object);
    `media_types` are the types its answers may carry.
    """

    title: str = ""
    description: str = ""
    security: tuple[Mapping[str, Mapping[str, Any]], ...] | None = None
    error_schema: SchemaLike = None
    media_types: tuple[str, ...] = ("application/json",)


@dataclass(frozen=True, kw_only=True)
class Operation:
    """What `operation` records on a view."""

    summary: str | None = None
    description: str | None = None
    body: SchemaLike = None
    body_required: bool = True
    body_media_types: tuple[str, ...] = ("application/json",)
    query: SchemaLike = None
    headers: Mapping[str, str] = field(default_factory=dict)
    responses: Mapping[int | str, Reply | SchemaLike] = field(default_factory=dict)
    path_params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)


def operation(*, summary: str | None = None, description: str | None = None, body: SchemaLike = None,
              body_required: bool = True, body_media_types: tuple[str, ...] = ("application/json",),
              query: SchemaLike = None, headers: Mapping[str, str] | None = None,
              responses: Mapping[int | str, Reply | SchemaLike] | None = None,
              path_params: Mapping[str, Mapping[str, Any]] | None = None,
              extra: Mapping[str, Any] | None = None) -> Callable[[F], F]:
    """Document a view: request body, query parameters (a schema whose fields are the parameters), optional
    request headers (name -> description), success answers by status, JSON Schemas of path parameters, and
    any other OpenAPI operation keys (`extra`). Summary and description default to the view's docstring.
    """
    recorded = Operation(summary=summary, description=description, body=body, body_required=body_required,
                         body_media_types=body_media_types, query=query, headers=dict(headers or {}),
                         responses=dict(responses or {}), path_params=dict(path_params or {}),
                         extra=dict(extra or {}))

    def mark(view: F) -> F:
        setattr(view, OPERATION_ATTRIBUTE, recorded)
        return view

    return mark


def operation_of(view: Callable[..., Any]) -> Operation | None:
    """The `Operation` recorded on a view (through decorators that keep ``__wrapped__``), or None."""
    while view is not None:
        found = getattr(view, OPERATION_ATTRIBUTE, None)
        if found is not None:
            return found
        view = getattr(view, "__wrapped__", None)
    return None
