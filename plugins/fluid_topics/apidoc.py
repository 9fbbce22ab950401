"""What the OpenAPI description says about this API beyond its routes: answers, errors, security (`gateway.openapi`)."""

from __future__ import annotations

from gateway.openapi import BASIC, BEARER, ApiDoc, Reply, header_scheme

#: Spring Boot's error attributes, as every error of this API is answered.
ERROR = {
    "type": "object", "required": ["timestamp", "status", "error", "message", "path", "field", "errors"],
    "properties": {
        "timestamp": {"type": "string"}, "status": {"type": "integer"}, "error": {"type": "string"},
        "message": {"type": "string"}, "path": {"type": "string"}, "field": {"type": ["string", "null"]},
        "errors": {"type": "array", "items": {"type": "object", "required": ["field", "message"], "properties": {
            "field": {"type": ["string", "null"]}, "message": {"type": "string"}}}},
    },
}
PREFIXED = header_scheme("FT-Authorization", "`Bearer <API key>` or `Basic base64(id:secret)`, when the "
                                             "Authorization header is taken")
DOC = ApiDoc(title="Fluid Topics analytics web services", error_schema=ERROR,
             security=({"Bearer": BEARER}, {"Basic": BASIC}, {"FT-Authorization": PREFIXED}))
INGESTED = Reply("Stored, all or none", {"type": "object", "required": ["accepted", "ids"], "properties": {
    "accepted": {"type": "integer", "minimum": 0}, "ids": {"type": "array", "items": {"type": "string"}}}})
RETRIEVED = Reply("A page of events", {"type": "object", "required": ["startDate", "endDate", "paging", "results"],
                                       "properties": {"startDate": {"type": "string"}, "endDate": {"type": "string"},
                                                      "paging": {"type": "object"},
                                                      "results": {"type": "array", "items": {"type": "object"}}}})
COUNTED = Reply("Event counts per name and period", {
    "type": "object", "required": ["startDate", "endDate", "groupByPeriod", "results"],
    "properties": {"startDate": {"type": "string"}, "endDate": {"type": "string"},
                   "groupByPeriod": {"type": "string"}, "results": {"type": "array", "items": {"type": "object"}}}})
EVENTS_ARRAY = {"type": "array", "maxItems": 1000, "items": {"type": "object"}}
HEADERS = {"Ft-Calling-App": "the calling application's name (accepted, not required)"}
