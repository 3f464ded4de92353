"""Liveness and readiness for orchestrators, and the workers' status for the administrator."""

from __future__ import annotations

import asyncio
import os

import orjson
from aiohttp import web

from resolver.core.errors import RC, HandleError, Unavailable
from resolver.http.errors import mapped, method_not_allowed
from resolver.http.handles import identity_of
from resolver.http.keys import CONFIG, LOOKUP, METRICS, REGISTRY, SCHEMA_VERSION, STORE
from resolver.readiness import workers_listening

_ALIVE = orjson.dumps({"status": "alive"})


async def healthz(_request: web.Request) -> web.Response:
    """The process is alive and its event loop answers (for load balancers and orchestrators:
    anonymous, so it names nothing about the worker; `/status` does, for the administrator)."""
    return web.Response(body=_ALIVE, content_type="application/json")


async def status(request: web.Request) -> web.Response:
    """GET /status (node administrator): the worker that answered and its cache."""
    identity = await identity_of(request, required=True)
    if not request.app[REGISTRY].is_node_admin(identity):
        raise HandleError(RC.INSUFFICIENT_PERMISSIONS, "the status is for the node administrator")
    body: dict[str, object] = {"status": "alive", "pid": os.getpid()}
    lookup = request.app.get(LOOKUP)
    if lookup is not None:
        body["cache"] = {
            "trusted": lookup.cache.trusted,
            "entries": len(lookup.cache),
            "bytes": lookup.cache.bytes,
            "lookups": lookup.batches,
            "handles_looked_up": lookup.keys_fetched,
        }
    return web.Response(body=orjson.dumps(body), content_type="application/json")


_all_listening = False


async def readyz(request: web.Request) -> web.Response:
    """Every worker accepts connections, and the database is reachable and migrated to the schema
    this node expects.

    Ready only once every worker listens: a client that opens its keep-alive connections the moment
    the first worker answers would otherwise hold all of them on that one worker.
    """
    global _all_listening
    if not _all_listening:
        workers = request.app[CONFIG].workers
        listening = workers_listening(workers)
        if listening < workers:
            starting = {"status": "starting", "reason": f"{listening} of {workers} workers listening"}
            return web.Response(
                body=orjson.dumps(starting),
                status=503,
                content_type="application/json",
                headers={"Retry-After": "1"},
            )
        _all_listening = True
    expected = request.app[SCHEMA_VERSION]
    try:
        version = await request.app[STORE].ping()
    except Unavailable as exc:
        body: dict[str, object] = {"status": "unavailable", "reason": exc.message}
        return web.Response(
            body=orjson.dumps(body),
            status=503,
            content_type="application/json",
            headers={"Retry-After": "2"},
        )
    if version != expected:
        body = {"status": "not migrated", "schema": version, "expected": expected}
        return web.Response(body=orjson.dumps(body), status=503, content_type="application/json")
    return web.Response(
        body=orjson.dumps({"status": "ready", "schema": version}), content_type="application/json"
    )


def add_routes(app: web.Application) -> None:
    for path, handler in (
        ("/healthz", healthz),
        ("/readyz", readyz),
        ("/metrics", metrics),
        ("/status", mapped(status)),
    ):
        resource = app.router.add_resource(path)
        resource.add_route("GET", handler)
        resource.add_route("HEAD", handler)
        resource.add_route("*", method_not_allowed("GET, HEAD"))


async def metrics(request: web.Request) -> web.Response:
    """GET /metrics: Prometheus text format, every worker's metrics together."""
    body = await asyncio.to_thread(request.app[METRICS].exposition)
    return web.Response(body=body, headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
