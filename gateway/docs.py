"""``GET /openapi.json`` and ``GET /docs``: the API description and an interactive reference page.

The page is Swagger UI, served from the files the `flask-swagger-ui` distribution installs (nothing from a
CDN: gateways often run offline). "Try it out" calls go to the same origin that served the page, so they
reach the running gateway with the credentials typed into "Authorize". Neither route needs credentials:
the description holds no secret.
"""

from __future__ import annotations

import html
from importlib.resources import files

from flask import Blueprint, Response, abort, current_app, request, send_file

from .errors import json_response
from .openapi import Reply, operation

blueprint = Blueprint("_docs", __name__)
ASSETS = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js", "index.css",
          "favicon-32x32.png", "favicon-16x16.png")
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="stylesheet" href="{root}/docs/assets/swagger-ui.css">
<link rel="stylesheet" href="{root}/docs/assets/index.css">
<link rel="icon" type="image/png" href="{root}/docs/assets/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{root}/docs/assets/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({{
  url: "{root}/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout"
}});
</script>
</body>
</html>
"""


def _asset_dir():
    return files("flask_swagger_ui") / "dist"


@blueprint.get("/openapi.json")
@operation(responses={200: Reply("The OpenAPI 3.1 description of every loaded API", {"type": "object"})})
def openapi_json() -> Response:
    """This description: every route of every loaded API, its parameters, bodies, answers and security."""
    from .openapi_spec import openapi_document

    return json_response(openapi_document(current_app))


@blueprint.get("/docs")
def docs_page() -> Response:
    """The interactive reference (Swagger UI) for the loaded APIs."""
    title = html.escape("Event Gateway API reference")
    return Response(PAGE.format(title=title, root=html.escape(request.script_root)), mimetype="text/html")


@blueprint.get("/docs/assets/<name>")
def docs_asset(name: str) -> Response:
    """One Swagger UI file, from the installed package."""
    if name not in ASSETS:
        abort(404)
    path = _asset_dir() / name
    return send_file(str(path), max_age=3600)
