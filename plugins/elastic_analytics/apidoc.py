"""What the OpenAPI description says about this API beyond its routes: answers, errors, security (`gateway.openapi`)."""

from __future__ import annotations

from gateway.openapi import API_KEY, BASIC, BEARER, ApiDoc, Reply

_CAUSE = {"type": "object", "required": ["type", "reason"],
          "properties": {"type": {"type": "string"}, "reason": {"type": "string"}}}
#: ES exception bodies, and the short form ES uses for routing and media-type errors.
ERROR = {
    "type": "object", "required": ["error"],
    "properties": {
        "error": {"oneOf": [
            {"type": "string"},
            {"type": "object", "required": ["root_cause", "type", "reason"], "properties": {
                "root_cause": {"type": "array", "items": _CAUSE}, "type": {"type": "string"},
                "reason": {"type": "string"}, "caused_by": {"type": "object"}}},
        ]},
        "status": {"type": "integer"},
    },
}
MEDIA_TYPES = ("application/json", "application/vnd.elasticsearch+json")
DOC = ApiDoc(title="Elasticsearch Behavioral Analytics (/_application/analytics)", error_schema=ERROR,
             security=({"ApiKey": API_KEY}, {"Basic": BASIC}, {"Bearer": BEARER}), media_types=MEDIA_TYPES)

COLLECTION_NAME = {"type": "string", "minLength": 1}
EVENT_TYPE = {"type": "string", "enum": ["page_view", "search", "search_click"]}
CREATED = Reply("Created", {"type": "object", "required": ["acknowledged", "name"],
                            "properties": {"acknowledged": {"const": True}, "name": {"type": "string"}}},
                headers={"Location": "the collection's path"})
ACKNOWLEDGED = Reply("Deleted", {"type": "object", "required": ["acknowledged"],
                                 "properties": {"acknowledged": {"const": True}}})
COLLECTIONS = Reply("The collections by name", {"type": "object", "additionalProperties": {
    "type": "object", "required": ["event_data_stream"],
    "properties": {"event_data_stream": {"type": "object", "required": ["name"],
                                         "properties": {"name": {"type": "string"}}}}}})
ACCEPTED = Reply("Stored (with `debug=true`, the stored document too)", {
    "type": "object", "required": ["accepted"],
    "properties": {"accepted": {"const": True}, "event": {"type": "object"}}})
DEBUG = {"type": "object", "properties": {"debug": {"type": "boolean", "description": "answer the stored document"}},
         "additionalProperties": False}
