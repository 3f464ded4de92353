"""The native Handle protocol over HTTP: the last resort of a Handle client whose UDP and TCP are
blocked (the site record's HTTP interface).

As the reference does it (hdllib `HandleResolver.sendHttpOrHttpsRequest`, the server's
`NativeServlet.Handler.handle` and `handleResponse`, `HDLProxy.doPost`): the client POSTs to
`/<the handle, percent-encoded>` with `Content-Type: application/x-hdl-message`; the body is the
message envelope and the message (one leading newline is ignored). The answer is the envelope and the
message, with the same content type. The client reads the body whatever the HTTP status, so every
refusal of a body is a native error message (RC_PROTOCOL_ERROR), sent with status 200.

Queries, and administration by challenge-response (resolver/native/admin.py) as over TCP. Unlike
`Authorization: Handle`, this needs no HTTPS: a challenge answer signs the digest of the very request
it authorizes, so a listener can neither replay it nor attach it to another request; what plain HTTP
shows is what plain TCP shows (the request's values), as with the reference's interfaces.
"""

from __future__ import annotations

import asyncio
import html

from aiohttp import web

from resolver.http.errors import timed
from resolver.http.proxy import page
from resolver.native import protocol as p
from resolver.native.server import NativeService

MIME_TYPE = "application/x-hdl-message"
# the largest body read: a newline, an envelope and the largest request message
MAX_BODY = 1 + p.ENVELOPE_SIZE + p.MAX_REQUEST_BYTES
READ_TIMEOUT = 30.0
_BLANK = p.Envelope(*p.SERVER_VERSION, 0, p.SERVER_VERSION, 0, 0, 0, 0)


def framed(envelope: p.Envelope, answer: bytes) -> web.Response:
    """An answer message with its envelope, as NativeServlet.handleResponse writes it."""
    body = p.envelopes(envelope, answer, max(1, len(answer)))[0]
    return web.Response(body=body, content_type=MIME_TYPE)


def refused(envelope: p.Envelope, message: str) -> web.Response:
    return framed(envelope, p.refusal(envelope, p.RC_PROTOCOL_ERROR, message))


async def read_body(request: web.Request) -> bytes | None:
    """The POSTed octets, or None when there are more than MAX_BODY (or they do not come in time)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(READ_TIMEOUT):
            async for chunk in request.content.iter_chunked(16384):
                size += len(chunk)
                if size > MAX_BODY:
                    return None
                chunks.append(chunk)
    except TimeoutError:
        return None
    return b"".join(chunks)


async def _not_native(request: web.Request) -> web.Response:
    body = (
        "<h1>不支持的请求 / Unsupported request</h1>"
        f"<p>POST 仅用于 Handle 原生协议消息 / POST carries native Handle messages only "
        f"(Content-Type: {MIME_TYPE}); got {html.escape(request.content_type[:60])}. "
        "请使用 GET / use GET or HEAD for pages.</p>"
    )
    return page("415", body, status=415, headers={"Accept-Post": MIME_TYPE})


def add_routes(app: web.Application) -> None:
    """Register POST on `/` and `/{handle}` (before the web proxy, whose GET and HEAD these paths
    keep: a resource that does not take the method passes the request on)."""
    services: list[NativeService] = []
    not_native = timed(_not_native)

    async def native(request: web.Request) -> web.StreamResponse:
        if request.content_type.lower() != MIME_TYPE:
            return await not_native(request)
        if not services:
            services.append(NativeService(request.app))
        data = await read_body(request)
        if data is None:
            return refused(_BLANK, f"a request is at most {p.MAX_REQUEST_BYTES} octets")
        if data[:1] in (b"\n", b"\r"):
            data = data[1:]
        if len(data) < p.ENVELOPE_SIZE:
            return refused(_BLANK, "Invalid message length")
        envelope = p.parse_envelope(data)
        if envelope.length > p.MAX_REQUEST_BYTES:
            return refused(envelope, f"a request is at most {p.MAX_REQUEST_BYTES} octets")
        message = data[p.ENVELOPE_SIZE : p.ENVELOPE_SIZE + envelope.length]
        if len(message) < envelope.length:
            return refused(envelope, f"Expecting {envelope.length} bytes, only received {len(message)}")
        answer = await services[0].answer(message, envelope, "http", request.remote or "?")
        return framed(envelope, answer)

    for path in ("/", r"/{handle:[\s\S]+}"):
        app.router.add_resource(path).add_route("POST", native)
