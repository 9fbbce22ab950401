"""Events API logic without HTTP: schemas (create, read, PATCH, delete), publish, and running queries.

Every error is an `AppdError` in the API's terms: ``Missing.EventType`` (404) for an unknown schema,
``Invalid.Schema``/``Invalid.Event``/``Invalid.Query`` (400) naming the field, the event index or the ADQL line
and column, ``Duplicate.EventType`` (409). Queries are parsed and checked before any is run, so a request of
20 queries either answers all of them or fails as a whole; each runs through the engine
(`plugins.appdynamics.engine.run_query`) on the stream's stored schema.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.api import backend, now_ms, store_events
from gateway.events import Stream
from gateway.storage import SchemaConflict, StreamExists, StreamNotFound

from . import publishing, storage
from .adql import AdqlError, parse
from .adql.semantics import Analysis, analyze
from .engine import run_query
from .errors import AppdError
from .results import check_scrollable, output_columns
from .schema_types import EventError, SchemaError, check_schema_name, validate_create_body
from .timeparams import ParamError, QuerySpec, RequestParams, parse_query_body, request_params

PLUGIN = storage.PLUGIN
#: Most events one publish request may carry (the vendor publishes no limit; 400 beyond it).
MAX_PUBLISH_EVENTS = 1_000
#: Attempts of a PATCH against concurrent updates of the same schema (compare-and-set).
PATCH_ATTEMPTS = 20


def missing(name: str, tenant: str) -> AppdError:
    """The 404 of an unknown schema, worded as the Events Service words it."""
    return AppdError(404, "Missing.EventType", f"Unable to find metadata for event type [{name}] and account "
                                               f"[{tenant}]", field="schemaName")


def schema_name(name: str) -> str:
    """A schema name from the URL; 400 naming it when invalid."""
    try:
        return check_schema_name(name)
    except SchemaError as exc:
        raise AppdError(400, "Invalid.Schema", str(exc), field="schemaName") from None


def _schema_error(exc: SchemaError) -> AppdError:
    message = str(exc)
    if exc.field and exc.field not in message:
        message = f"field {exc.field!r}: {message}"
    return AppdError(400, "Invalid.Schema", message, field=exc.field or "schema")


def get_stream(tenant: str, name: str) -> Stream:
    """The tenant's schema stream; 404 when it has none of that name."""
    stream = backend().get_stream(tenant, PLUGIN, name)
    if stream is None or stream.schema is None:
        raise missing(name, tenant)
    return stream


# -- schemas -------------------------------------------------------------------------------------------
def create_schema(tenant: str, name: str, body: Any) -> dict[str, str]:
    """Create the schema; 400 for a bad definition, 409 when it exists. Returns the field map."""
    try:
        fields = validate_create_body(body)
    except SchemaError as exc:
        raise _schema_error(exc) from None
    try:
        backend().create_stream(Stream(tenant=tenant, plugin=PLUGIN, name=name, schema=storage.new_schema(fields)))
    except StreamExists:
        raise AppdError(409, "Duplicate.EventType", f"event type [{name}] already exists for account [{tenant}]",
                        field="schemaName") from None
    return fields


def read_schema(tenant: str, name: str) -> dict[str, str]:
    """The schema's fields (user fields, definition order)."""
    return storage.logical_schema(get_stream(tenant, name))


def update_schema(tenant: str, name: str, body: Any) -> dict[str, str]:
    """Apply ``add``/``rename`` updates; 400 for changes or removals; compare-and-set against races."""
    for _ in range(PATCH_ATTEMPTS):
        stream = get_stream(tenant, name)
        try:
            schema = storage.patched_schema(stream.schema or (), body)
        except SchemaError as exc:
            raise _schema_error(exc) from None
        try:
            updated = backend().update_stream_schema(tenant, PLUGIN, name, schema, expected=stream.schema)
        except StreamNotFound:
            raise missing(name, tenant) from None
        except SchemaConflict:
            continue
        return storage.logical_schema(updated)
    raise AppdError(503, "Service.Unavailable", f"event type [{name}] is being updated by other requests; retry")


def delete_schema(tenant: str, name: str) -> None:
    """Delete the schema and its events; 404 when unknown."""
    get_stream(tenant, name)
    if not backend().delete_stream(tenant, PLUGIN, name):
        raise missing(name, tenant)


# -- publish -------------------------------------------------------------------------------------------
def publish(tenant: str, name: str, body: Any) -> int:
    """Check every event against the schema, then store the whole array atomically; returns the count."""
    stream = get_stream(tenant, name)
    if not isinstance(body, list):
        raise AppdError(400, "Invalid.Event", "the body must be a JSON array of event objects", field="body")
    if len(body) > MAX_PUBLISH_EVENTS:
        raise AppdError(400, "Invalid.Event", f"at most {MAX_PUBLISH_EVENTS} events per publish request; "
                                              f"got {len(body)}", field="body")
    if not body:
        return 0
    try:
        events = publishing.to_events(tenant, name, stream, body, now_ms())
    except EventError as exc:
        extra = {"index": exc.index}
        raise AppdError(400, "Invalid.Event", str(exc), field=exc.field, extra=extra) from None
    try:
        store_events(events)
    except StreamNotFound:  # deleted meanwhile: nothing was stored
        raise missing(name, tenant) from None
    return len(events)


# -- queries -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreparedQuery:
    """One query of a request, parsed and bound to its schema."""

    spec: QuerySpec
    analysis: Analysis
    stream: Stream


def query_specs(args: Any, body: bytes) -> tuple[RequestParams, list[QuerySpec]]:
    """URL parameters and body -> query specs; 400 naming the parameter."""
    try:
        params = request_params(args)
        return params, parse_query_body(body, params)
    except ParamError as exc:
        raise AppdError(400, "Invalid.Request", str(exc), field=exc.name) from None


def adql_error(exc: AdqlError, index: int, label: str) -> AppdError:
    """A 400 for an invalid query, with its line and column (and which query of the request)."""
    return AppdError(400, "Invalid.Query", f"query {label!r}: {exc}", field=f"queries[{index}].query",
                     extra={"line": exc.line, "column": exc.column, "query": index})


def prepare(tenant: str, specs: Sequence[QuerySpec], authorize: Callable[[str], None]) -> list[PreparedQuery]:
    """Parse every query and find its schema; `authorize(schema)` checks the grant (403) before the lookup."""
    prepared = []
    for index, spec in enumerate(specs):
        try:
            analysis = analyze(parse(spec.query))
        except AdqlError as exc:
            raise adql_error(exc, index, spec.label) from None
        name = analysis.select.from_schema
        authorize(name)
        stream = get_stream(tenant, name)
        try:
            output_columns(analysis, storage.logical_schema(stream))  # unknown fields, type errors
            if spec.mode == "scroll":
                check_scrollable(analysis)
        except AdqlError as exc:
            raise adql_error(exc, index, spec.label) from None
        prepared.append(PreparedQuery(spec, analysis, stream))
    return prepared


def run(prepared: Sequence[PreparedQuery], scrollid: str | None) -> list[dict[str, Any]]:
    """Run the prepared queries in order; one response element each."""
    now = now_ms()
    elements = []
    for index, item in enumerate(prepared):
        spec = item.spec
        scroll_mode = spec.mode == "scroll"
        try:
            answer = run_query(backend(), item.stream, item.analysis, start_ms=spec.start, end_ms=spec.end,
                               limit=spec.limit, now_ms=now, scroll=scrollid if scroll_mode else None,
                               scroll_mode=scroll_mode)
        except AdqlError as exc:
            raise adql_error(exc, index, spec.label) from None
        except ValueError as exc:  # a bad or expired scrollid, a value the query cannot be run with
            field = "scrollid" if scroll_mode and scrollid else f"queries[{index}].query"
            raise AppdError(400, "Invalid.Request", f"query {spec.label!r}: {exc}", field=field) from None
        element = {"label": spec.label, "fields": answer.fields, "results": answer.results,
                   "moreData": answer.more_data, "schema": item.stream.name, "total": answer.total}
        if scroll_mode and answer.scrollid is not None:
            element["scrollid"] = answer.scrollid
        elements.append(element)
    return elements
