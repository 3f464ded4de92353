"""The one place where errors become HTTP responses of the documented shape.

Handle API errors are `{"responseCode": N, "handle": "<as sent>", "message": "..."}` with the HTTP
status the Handle.Net table gives for N.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web

from resolver.core.errors import RC, HandleError, MethodNotAllowed
from resolver.http.bodies import has_nul
from resolver.http.keys import CONFIG, METRICS

log = logging.getLogger(__name__)

HTTP_STATUS = {
    RC.SUCCESS: 200,
    RC.ERROR: 500,
    RC.SERVER_TOO_BUSY: 503,
    RC.SERVER_BACKUP: 503,
    RC.PROTOCOL_ERROR: 400,
    RC.OPERATION_NOT_SUPPORTED: 501,
    RC.HANDLE_NOT_FOUND: 404,
    RC.HANDLE_ALREADY_EXISTS: 409,
    RC.INVALID_HANDLE: 400,
    RC.VALUES_NOT_FOUND: 400,
    RC.VALUE_ALREADY_EXISTS: 409,
    RC.INVALID_VALUE: 400,
    RC.SERVER_NOT_RESPONSIBLE: 400,
    RC.AUTHENTICATION_NEEDED: 401,
    RC.INVALID_ADMIN: 403,
    RC.INSUFFICIENT_PERMISSIONS: 403,
    RC.AUTHENTICATION_FAILED: 403,
    RC.INVALID_CREDENTIAL: 403,
}
JSON_TYPE = "application/json"
HANDLES_PATH = "/api/handles/"


def sent_handle(request: web.Request) -> str | None:
    """The handle named by the request path, as the client sent it (best effort, for errors)."""
    raw = request.rel_url.raw_path
    if not raw.startswith(HANDLES_PATH):
        return None
    return unquote(raw[len(HANDLES_PATH) :], errors="replace")


def error_response(request: web.Request, rc: int, message: str, status: int | None = None) -> web.Response:
    """A Handle API error body."""
    body: dict[str, object] = {"responseCode": int(rc)}
    handle = sent_handle(request)
    if handle is not None:
        body["handle"] = handle
    body["message"] = message
    response = web.Response(
        body=orjson.dumps(body),
        status=status or HTTP_STATUS.get(RC(rc), 500),
        content_type=JSON_TYPE,
    )
    if rc == RC.AUTHENTICATION_NEEDED:
        response.headers["WWW-Authenticate"] = 'Basic realm="handle"'
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def failure(request: web.Request, exc: Exception) -> web.StreamResponse:
    """The API error response for an exception raised while handling `request`."""
    if isinstance(exc, HandleError):
        response = error_response(request, exc.rc, exc.message, exc.status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        if exc.allow is not None:
            response.headers["Allow"] = exc.allow
        return response
    if isinstance(exc, web.HTTPException):
        if exc.status < 400:
            raise exc
        if exc.status == 413:
            limit = request.app[CONFIG].limits.max_body_bytes
            return error_response(
                request, RC.PROTOCOL_ERROR, f"the request body is larger than {limit} bytes", 413
            )
        return error_response(
            request, RC.ERROR if exc.status >= 500 else RC.PROTOCOL_ERROR, exc.reason, exc.status
        )
    log.error("unexpected error in %s %s", request.method, request.path, exc_info=exc)
    return error_response(request, RC.ERROR, "internal error; the operation may not have completed")


def mapped(handler: Handler) -> Handler:
    """Wrap a handler so that domain errors and aiohttp's HTTP errors become the API error body.

    A wrapper per handler rather than a middleware: a middleware costs every request about 10%
    of the node's throughput here (see benchmarks/), a try block costs nothing.
    """

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        try:
            if has_nul(request):
                raise HandleError(RC.PROTOCOL_ERROR, "the path or query holds a NUL character (%00)")
            response = await handler(request)
        except Exception as exc:
            response = failure(request, exc)
        observe(request, response.status, started)
        return response

    return wrapper


def timed(handler: Handler) -> Handler:
    """Count a handler's requests and latency (for handlers that render their own errors)."""

    @functools.wraps(handler)
    async def wrapper(request: web.Request) -> web.StreamResponse:
        started = time.perf_counter()
        response = await handler(request)
        observe(request, response.status, started)
        return response

    return wrapper


def observe(request: web.Request, status: int, started: float) -> None:
    """Count an answered request under its route template (never the raw path)."""
    route = request.match_info.route.resource
    template = route.canonical if route is not None else "unmatched"
    request.app[METRICS].request(template, request.method, status, time.perf_counter() - started)


def method_not_allowed(allowed: str) -> Handler:
    """A catch-all route answering 405 with rc 4 for the methods a resource does not have."""

    async def handler(request: web.Request) -> web.StreamResponse:
        raise MethodNotAllowed(request.method, allowed)

    return mapped(handler)
