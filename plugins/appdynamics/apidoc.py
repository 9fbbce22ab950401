"""What the OpenAPI description says about this API beyond its routes: answers, errors, security (`gateway.openapi`).

Answers are typed ``application/vnd.appd.events+json;v=2`` (``application/json`` when the client prefers it,
`errors.response_type`); create, publish and delete answer without a body. Kept in step with `views`,
`errors.render_error`, `transport` (credentials, accepted media types) and `timeparams` (query parameters).
"""

from __future__ import annotations

from typing import Any

from gateway.openapi import ApiDoc, Reply, header_scheme

from .errors import MEDIA_TYPE
from .schema_types import FIELD_TYPES, MAX_FIELDS
from .service import MAX_PUBLISH_EVENTS
from .timeparams import MAX_QUERIES
from .transport import ACCOUNT_HEADER, KEY_HEADER

#: `errors.render_error`: the same body for every status; ``field``/``line``/``column``/``query``/``index`` when known.
ERROR = {
    "type": "object", "required": ["statusCode", "code", "message"],
    "properties": {
        "statusCode": {"type": "integer"}, "code": {"type": "string"}, "message": {"type": "string"},
        "field": {"type": "string"}, "line": {"type": "integer"}, "column": {"type": "integer"},
        "query": {"type": "integer", "minimum": 0}, "index": {"type": "integer", "minimum": 0},
    },
}
#: The account name and the key, sent together (one alternative holding both schemes).
SECURITY = ({ACCOUNT_HEADER: header_scheme(ACCOUNT_HEADER, "the account name (the gateway tenant)"),
             KEY_HEADER: header_scheme(KEY_HEADER, "a credential's secret, belonging to that account")},)
MEDIA_TYPES = (MEDIA_TYPE, "application/json")
DOC = ApiDoc(title="AppDynamics Analytics Events API (schemas, publish, ADQL queries)", error_schema=ERROR,
             security=SECURITY, media_types=MEDIA_TYPES)

#: Request bodies: ``application/vnd.appd.events+json`` (``v=2`` or ``v=1``) or ``application/json`` (`transport`).
JSON_BODY_TYPES = (MEDIA_TYPE, "application/vnd.appd.events+json;v=1", "application/json")
TEXT_BODY_TYPE = "application/vnd.appd.events+text;v=2"

SCHEMA_NAME = {"type": "string", "pattern": "^[A-Za-z][A-Za-z0-9_]{0,254}$", "maxLength": 255,
               "description": "the schema (event type): a letter, then letters, digits or underscores"}
PATH_PARAMS = {"name": SCHEMA_NAME}
FIELDS = {"type": "object", "maxProperties": MAX_FIELDS,
          "additionalProperties": {"type": "string", "enum": list(FIELD_TYPES)}}
SCHEMA_BODY = {"type": "object", "required": ["schema"], "properties": {"schema": FIELDS}}
_UPDATE = {"type": "object", "properties": {
    "add": FIELDS, "rename": {"type": "object", "additionalProperties": {"type": "string"}}}}
UPDATE_BODY = {"anyOf": [_UPDATE, {"type": "array", "items": _UPDATE}]}
EVENTS_BODY = {"type": "array", "maxItems": MAX_PUBLISH_EVENTS, "items": {"type": "object"}}

_TIME = {"anyOf": [{"type": "integer"}, {"type": "string"}],
         "description": "epoch milliseconds, ISO 8601 with `Z` or an offset, or `yyyy-MM-dd` (UTC)"}
_QUERY_OBJECT = {"type": "object", "properties": {
    "label": {"type": "string"}, "query": {"type": "string", "description": "the ADQL text"},
    "start": _TIME, "end": _TIME, "limit": {"type": "integer", "minimum": 0}, "mode": {"type": "string"}}}
ADQL_TEXT = {"type": "string", "description": "one ADQL query"}
QUERY_BODY = {"anyOf": [
    {"type": "array", "maxItems": MAX_QUERIES, "items": {"anyOf": [ADQL_TEXT, _QUERY_OBJECT]}},
    _QUERY_OBJECT, ADQL_TEXT,
]}
#: The query route reads JSON (an array of up to 20 queries, one query object or a JSON string) or ADQL text.
QUERY_REQUEST = {"requestBody": {"required": True, "content": {
    **{media: {"schema": QUERY_BODY} for media in JSON_BODY_TYPES}, TEXT_BODY_TYPE: {"schema": ADQL_TEXT}}}}
QUERY_PARAMS = {"type": "object", "properties": {
    "start": {"type": "string", "description": "lower bound of eventTimestamp (inclusive): " + _TIME["description"]},
    "end": {"type": "string", "description": "upper bound of eventTimestamp (inclusive)"},
    "limit": {"type": "integer", "minimum": 0, "description": "rows per query (default 100, at most 10,000)"},
    "mode": {"type": "string", "enum": ["scroll"], "description": "`scroll` pages raw events"},
    "scrollid": {"type": "string", "description": "the `scrollid` of the previous batch"},
}}

SCHEMA_ANSWER = Reply("The complete schema (implicit fields not included)", {
    "type": "object", "required": ["schema"], "properties": {"schema": FIELDS}})
CREATED = Reply("Created (no body)")
DONE = Reply("Done (no body)")
PUBLISHED = Reply("Stored, all or none (no body)")
_FIELD: dict[str, Any] = {"type": "object", "required": ["label", "field", "type"], "properties": {
    "label": {"type": "string"}, "field": {"type": "string"}, "type": {"type": "string"},
    "aggregation": {"type": "string"}}}
QUERY_ANSWER = Reply("One element per query, in order", {"type": "array", "items": {
    "type": "object", "required": ["label", "fields", "results", "moreData", "schema", "total"],
    "properties": {"label": {"type": "string"}, "fields": {"type": "array", "items": _FIELD},
                   "results": {"type": "array", "items": {"type": "array"}}, "moreData": {"type": "boolean"},
                   "schema": {"type": "string"}, "total": {"type": "integer", "minimum": 0},
                   "scrollid": {"type": "string"}}}})
