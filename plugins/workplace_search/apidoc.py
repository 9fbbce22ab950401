"""What the OpenAPI description says about this API beyond its routes: answers and errors (`gateway.openapi`)."""

from __future__ import annotations

from gateway.openapi import ApiDoc, Reply

ERROR = {"type": "object", "required": ["errors"],
         "properties": {"errors": {"type": "array", "items": {"type": "string"}}}}
DOC = ApiDoc(title="Workplace Search analytics events (Enterprise Search)", error_schema=ERROR)
RECORDED = Reply("Recorded", {"type": "object", "maxProperties": 0})
