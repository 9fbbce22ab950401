"""AppDynamics Analytics Events API: typed event schemas, batch publish and ADQL queries.

Routes ``/events/schema/{name}`` (POST/GET/PATCH/DELETE), ``/events/publish/{name}`` and ``/events/query``
(`views`); credentials from ``X-Events-API-AccountName`` + ``X-Events-API-Key`` (`transport`); one error body
for every status (`errors`). The framework-independent parts: the ADQL grammar, parser and semantic pass
(``adql/``), schema and event validation (`schema_types`), query parameters (`timeparams`), response shapes
(`results`), the mapping to core streams and events (`storage`) and the query engine (`engine`).
"""

from gateway import hookimpl
from gateway.vendor import Grant, VendorApi

from . import errors, service, transport, views

API = VendorApi(
    name=service.PLUGIN, blueprint=views.blueprint, read_credential=transport.read_credential,
    render_error=errors.render_error,
    quotas={"query_per_account": "450 per minute", "query_per_key": "145 per minute",
            "searches_per_event_type": "200 per minute"},
    grants=(Grant("schema", per_stream=True, description="create, read, update and delete event schemas"),
            Grant("publish", per_stream=True, description="publish events"),
            Grant("query", per_stream=True, description="query events with ADQL")),
    cors=False,
)


@hookimpl
def register_apis() -> VendorApi:
    """Schemas ``/events/schema/{name}``, publish ``/events/publish/{name}``, ADQL ``/events/query``."""
    return API
