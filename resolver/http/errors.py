"""The one place where errors become HTTP responses of the documented shape.

Handle API errors are `{"responseCode": N, "handle": "<as sent>", "message": "..."}` with the HTTP
status the Handle.Net table gives for N.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

import orjson
from aiohttp import web

from resolver.core.errors import RC, HandleError
from resolver.http.keys import CONFIG

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
    return unquote(raw[len(HANDLES_PATH):], errors="replace")


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


@web.middleware
async def handle_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Map domain errors and aiohttp's own HTTP errors to the API's error body."""
    try:
        return await handler(request)
    except HandleError as exc:
        response = error_response(request, exc.rc, exc.message, exc.status)
        if exc.retry_after is not None:
            response.headers["Retry-After"] = str(exc.retry_after)
        return response
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        rc = {405: RC.PROTOCOL_ERROR, 404: RC.HANDLE_NOT_FOUND, 413: RC.PROTOCOL_ERROR}.get(exc.status, RC.ERROR)
        message = {
            405: f"method {request.method} is not allowed here",
            404: "no such resource",
            413: f"the request body is larger than {request.app[CONFIG].limits.max_body_bytes} bytes",
        }.get(exc.status, exc.reason)
        response = error_response(request, rc, message, status=exc.status)
        if exc.status == 405 and "Allow" in exc.headers:
            response.headers["Allow"] = exc.headers["Allow"]
        return response
    except Exception:
        log.exception("unexpected error in %s %s", request.method, request.path)
        return error_response(request, RC.ERROR, "internal error; the operation may not have completed")
