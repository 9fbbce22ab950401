"""What the OpenAPI description says about this API beyond its routes: answers and errors (`gateway.openapi`)."""

from __future__ import annotations

from gateway.openapi import ApiDoc, Reply

#: A gRPC-gateway status body.
ERROR = {"type": "object", "required": ["code", "message", "details"], "properties": {
    "code": {"type": "integer"}, "message": {"type": "string"}, "details": {"type": "array"}}}
DOC = ApiDoc(title="Buildless telemetry (buildless.service.v1.Telemetry)", error_schema=ERROR)
EMITTED = Reply("Stored (or already stored)", {"type": "object", "required": ["ok", "eid"], "properties": {
    "ok": {"const": True}, "eid": {"type": "string"}}})
PONG = Reply("The caller may emit", {"type": "object", "maxProperties": 0})
