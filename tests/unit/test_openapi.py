"""resolver/http/openapi.json describes every route the aiohttp app registers, and nothing else.

There is no reference file for this (Handle.Net publishes no OpenAPI description); the routes are
the ones resolver/http/app.py create_app registers.
"""

from __future__ import annotations

import re

from resolver.config import Config
from resolver.http.app import create_app
from resolver.http.openapi import description

_METHODS = {"get", "head", "post", "put", "delete", "patch", "options"}


def _as_template(path: str) -> str:
    """aiohttp's `{name:regex}` path variables as OpenAPI's `{name}`."""
    return re.sub(r"\{(\w+):[^}]*\}", r"{\1}", path)


def _routed() -> set[tuple[str, str]]:
    app = create_app(Config())
    found = set()
    for route in app.router.routes():
        if route.method == "*":
            continue  # the 405 catch-alls
        info = route.resource.get_info() if route.resource is not None else {}
        path = info.get("path") or info.get("formatter")
        assert path is not None
        found.add((_as_template(path), route.method.lower()))
    return found


def _described() -> set[tuple[str, str]]:
    paths = description()["paths"]
    return {(path, method) for path, item in paths.items() for method in item if method in _METHODS}


def test_every_route_is_described() -> None:
    """A route the app registers but the description omits is an API integrators cannot see."""
    missing = _routed() - _described()
    assert not missing, f"routes not in resolver/http/openapi.json: {sorted(missing)}"


def test_every_described_path_is_routed() -> None:
    """A described operation the app does not route would answer 404 or 405."""
    extra = _described() - _routed()
    assert not extra, f"described but not routed: {sorted(extra)}"


def test_description_is_openapi_31_with_schemes() -> None:
    """The document says which OpenAPI it is and defines every security scheme it names."""
    doc = description()
    assert doc["openapi"].startswith("3.1.")
    schemes = set(doc["components"]["securitySchemes"])
    for item in doc["paths"].values():
        for method, operation in item.items():
            if method in _METHODS:
                assert operation["responses"], method
                for requirement in operation.get("security", []):
                    assert set(requirement) <= schemes
