"""Liveness and readiness for orchestrators."""

from __future__ import annotations

import os

import orjson
from aiohttp import web

from resolver.core.errors import Unavailable
from resolver.http.keys import SCHEMA_VERSION, STORE


async def healthz(request: web.Request) -> web.Response:
    """The process is alive and its event loop answers; names the worker process that answered."""
    return web.Response(body=orjson.dumps({"status": "alive", "pid": os.getpid()}), content_type="application/json")


async def readyz(request: web.Request) -> web.Response:
    """The database is reachable and migrated to the schema this node expects."""
    expected = request.app[SCHEMA_VERSION]
    try:
        version = await request.app[STORE].ping()
    except Unavailable as exc:
        body = {"status": "unavailable", "reason": exc.message}
        return web.Response(body=orjson.dumps(body), status=503, content_type="application/json",
                            headers={"Retry-After": "2"})
    if version != expected:
        body = {"status": "not migrated", "schema": version, "expected": expected}
        return web.Response(body=orjson.dumps(body), status=503, content_type="application/json")
    return web.Response(body=orjson.dumps({"status": "ready", "schema": version}), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
