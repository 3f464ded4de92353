"""A 200 JSON answer whose bytes are known in full, written to the connection in one piece.

aiohttp's `web.Response` builds a header multidict per answer, serializes it, and walks a chain of
coroutines (prepare, _start, _prepare_headers, _write_headers, write_eof) before the one write. For
the resolution hot path, where the headers are always the same two lines, that was about a quarter
of the CPU of a whole request (measured: 25 -> 19 µs per request for a bare aiohttp server with one
worker). `EncodedResponse` writes status line, headers and body with one `write_eof`, keeping what
aiohttp's own response would do for the connection: keep-alive as the request asked, no body for
HEAD, a Date header.

Only for constant headers, and those resolver/http/edge.py adds (its values are checked there:
visible ASCII, no CR or LF): nothing from a record goes into the header block.
"""

from __future__ import annotations

import time
from email.utils import formatdate

from aiohttp import web, web_response
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion10, HttpVersion11

from resolver.config import Config

_date_second = -1
_date_line = b""


def date_line() -> bytes:
    """The `Date:` header line, formatted at most once a second."""
    global _date_second, _date_line
    now = int(time.time())
    if now != _date_second:
        _date_line = b"Date: " + formatdate(now, usegmt=True).encode() + b"\r\n"
        _date_second = now
    return _date_line


def _json_head(server: str) -> bytes:
    return b"Content-Type: application/json\r\nServer: " + server.encode("ascii") + b"\r\n"


_JSON_HEAD = _json_head(Config.server_header)  # until create_app sets the node's


def use_server_header(server: str) -> None:
    """Send `server` as the Server header of every answer of this process: these, aiohttp's
    responses and aiohttp's own error pages (for what it cannot parse), whose default names the
    Python and aiohttp versions. For the whole process, which serves one node's configuration:
    aiohttp reads the value from its `web_response` module for every response it prepares."""
    global _JSON_HEAD
    if not server.strip() or not all(" " <= c <= "~" for c in server):
        raise ValueError(f"a Server header is printable ASCII text, not {server!r}")
    _JSON_HEAD = _json_head(server)
    setattr(web_response, "SERVER_SOFTWARE", server)  # noqa: B010 (not a public attribute)


_STATUS = {HttpVersion11: b"HTTP/1.1 200 OK\r\n", HttpVersion10: b"HTTP/1.0 200 OK\r\n"}


class EncodedResponse(web.StreamResponse):
    """200 with Content-Type application/json and the given body."""

    extra = b""  # header lines to add, each ending in CRLF (resolver/http/edge.py)

    def __init__(self, body: bytes) -> None:
        super().__init__()
        self._encoded = body

    @property
    def body(self) -> bytes:
        return self._encoded

    async def prepare(self, request: web.BaseRequest) -> AbstractStreamWriter | None:
        if self._eof_sent or self._payload_writer is not None:
            return self._payload_writer
        writer = self._payload_writer = request._payload_writer
        keep_alive = self._keep_alive = request.keep_alive
        version = request.version
        status = _STATUS.get(version)
        if status is None:  # HTTP/0.9 or a future minor version: answer as 1.1 would
            status = _STATUS[HttpVersion11]
        body = self._encoded
        if keep_alive:
            connection = b"Connection: keep-alive\r\n" if version == HttpVersion10 else b""
        else:
            connection = b"Connection: close\r\n" if version >= HttpVersion11 else b""
        # the header lines the edge middleware adds (the request's id, CORS), after the constant
        # ones: already encoded in `extra`, or (anyone else) set in `headers`
        extra = self.extra
        added = self._headers
        if added:
            extra += b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in added.items())
        head = b"%sContent-Length: %d\r\n%s%s%s%s\r\n" % (
            status,
            len(body),
            _JSON_HEAD,
            date_line(),
            connection,
            extra,
        )
        if request.method == "HEAD":
            self._body_length = 0
            await writer.write_eof(head)
        else:
            self._body_length = len(body)
            await writer.write_eof(head + body)
        self._eof_sent = True
        return writer

    async def write_eof(self, data: bytes = b"") -> None:
        """Everything was written by `prepare`."""
