"""The node's OpenAPI 3.1 description at /openapi.json and a readable page of it at /docs.

The description is resolver/http/openapi.json (tests/unit/test_openapi.py holds it to the routes);
the page is Swagger UI from the npm package swagger-ui-dist 5.17.14 (Apache-2.0, its LICENSE and
NOTICE beside it), vendored in resolver/http/static/docs/: nodes run on closed networks, so no CDN.
"""

from __future__ import annotations

import copy
import json
from importlib import resources
from typing import Any

import orjson
from aiohttp import web

from resolver.http.errors import method_not_allowed

_HERE = resources.files("resolver.http")
_STATIC = {
    "swagger-ui-bundle.js": "application/javascript",
    "swagger-ui.css": "text/css",
    "LICENSE": "text/plain",
    "NOTICE": "text/plain",
}
_PAGE = b"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API documentation</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script>
window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true});
</script>
</body>
</html>
"""


def description() -> dict[str, Any]:
    """The stored description (a fresh copy)."""
    loaded: dict[str, Any] = json.loads(_HERE.joinpath("openapi.json").read_text(encoding="utf-8"))
    return loaded


def add_routes(app: web.Application) -> None:
    """Register /openapi.json, /docs and /docs/{file} (before the web proxy takes the paths)."""
    stored = description()
    files = {name: _HERE.joinpath("static", "docs", name).read_bytes() for name in _STATIC}

    async def openapi(request: web.Request) -> web.Response:
        doc = copy.copy(stored)
        doc["servers"] = [{"url": str(request.url.origin())}]
        return web.Response(body=orjson.dumps(doc), content_type="application/json")

    async def docs(_request: web.Request) -> web.Response:
        return web.Response(body=_PAGE, content_type="text/html", charset="utf-8")

    async def static(request: web.Request) -> web.Response:
        name = request.match_info["file"]
        if name not in files:
            return web.Response(text="not found", status=404)
        return web.Response(body=files[name], content_type=_STATIC[name])

    for path, handler in (("/openapi.json", openapi), ("/docs", docs), ("/docs/{file}", static)):
        resource = app.router.add_resource(path)
        resource.add_route("GET", handler)
        resource.add_route("*", method_not_allowed("GET"))
