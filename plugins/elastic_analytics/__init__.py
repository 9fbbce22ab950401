"""Elasticsearch Behavioral Analytics: collections and events, as ES 8.x serves them.

ES clients send ``ApiKey`` (any case; the JS tracker writes ``Apikey``), ``Basic`` or ``Bearer`` (a malformed
``ApiKey`` is an invalid credential, `auth`); ``GET /`` answers as ES's root (`cluster`); errors are
ES exception bodies with the product header; posting events is capped per credential, as ES's bulk queue
would push back. The service adds the fields ES stores (@timestamp, event.action, data_stream, session.ip).
"""

from gateway import hookimpl
from gateway.vendor import Grant, VendorApi

from . import apidoc, auth, errors, service, views

API = VendorApi(
    name=service.PLUGIN, blueprint=views.blueprint, read_credential=auth.read_credential,
    render_error=errors.render_error,
    quotas={"post_event": "1000 per second"},
    grants=(Grant("manage", per_stream=True, description="create, list and delete collections"),
            Grant("post_event", per_stream=True, description="post events to a collection"),
            Grant("monitor", description="GET / (cluster info, `es.info()`), ES's cluster:monitor/main")),
    openapi=apidoc.DOC,
)


@hookimpl
def register_apis() -> VendorApi:
    """The `/_application/analytics` API."""
    return API
