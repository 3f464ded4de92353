"""Cached resolutions answered below aiohttp: one complete, plain `GET /api/handles/<handle>` whose
handle is in the worker's trusted cache is answered from the connection's protocol, without
aiohttp's parser, request object, router or response (most of the CPU of a cached resolution).

The bytes are those `handles.resolve` sends for the same request through aiohttp (its cache-hit
branch, `EncodedResponse`), and the request is counted as that branch counts it. Anything else
goes to aiohttp unchanged: the fast path takes only requests whose every byte is in a small,
unambiguous subset of HTTP/1.1 that aiohttp's parser takes the same way, so a request it declines
is one aiohttp answers as it always did. Declined: anything but GET and HTTP/1.1, a query or
fragment, a byte outside printable ASCII, more than one request in the packet (pipelining) or
less than one (a request split across packets), a repeated header, a header that changes what the
handler or aiohttp does (Authorization, a body's Content-Length or Transfer-Encoding, Expect,
Upgrade, a Connection other than keep-alive), no Host, more than `MAX_REQUEST` bytes or
`MAX_HEADERS` headers (aiohttp's own limits are larger), a handle that is not UTF-8 once
percent-decoded, an untrusted cache, and every miss. The answer carries the request's
X-Request-Id (the client's when sane, else a made one) and the CORS headers of an anonymous read,
as resolver/http/edge.py adds them to aiohttp's answer.

The protocol (`resolver.http.connections.GuardedProtocol`) asks only while aiohttp's handler for
the connection is idle and its parser at a message boundary (`aiohttp_idle`), and keeps aiohttp's
keep-alive deadline moving as aiohttp would after a request (`after_answer`).
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import unquote

import aiohttp
import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from resolver.cache import Entry, Lookup
from resolver.core.handles import fold, strip_scheme
from resolver.http import encoded, requestid
from resolver.http.cors import PUBLIC_BYTES
from resolver.http.encoded import date_line
from resolver.http.handles import RESOLVE_ROUTE
from resolver.http.keys import DAILY, LOOKUP, METRICS
from resolver.metrics import NodeMetrics
from resolver.services.statistics import DailyCounter

log = logging.getLogger(__name__)

MAX_REQUEST = 8000  # bytes; below aiohttp's 8190 per line
MAX_HEADERS = 100  # below aiohttp's 128

_PREFIX = b"GET /api/handles/"
_END = b"\r\n\r\n"
# The request line and header lines. Each class excludes CR and LF, and a header name excludes
# ':', so there is one way to match and no backtracking to speak of on hostile input.
_REQUEST = re.compile(
    rb"GET /api/handles/([A-Za-z0-9\-._~!$&'()*+,;=:@/%]+) HTTP/1\.1\r\n"
    rb"((?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[\t\x20-\x7e]*\r\n){1," + str(MAX_HEADERS).encode() + rb"})\r\n"
)
# Headers that change what aiohttp or the handler does with a request: any of them declines.
_DECLINED = frozenset(
    (b"authorization", b"content-length", b"transfer-encoding", b"expect", b"upgrade", b"te")
)
_HIT_HEAD = b'{"responseCode":1,"handle":'  # as resolver.http.handles._answer


def plain_request(data: bytes) -> tuple[str, bytes | None] | None:
    """The handle part of the path (still percent-encoded) and the X-Request-Id to answer with
    (None: make one) when `data` is exactly one plain request the fast path may answer, else
    None."""
    if len(data) > MAX_REQUEST or not data.startswith(_PREFIX) or not data.endswith(_END):
        return None
    match = _REQUEST.fullmatch(data)
    if match is None:
        return None
    seen: set[bytes] = set()
    rid = None
    for line in match.group(2).split(b"\r\n")[:-1]:
        name, _, value = line.partition(b":")
        name = name.lower()
        if name in seen or name in _DECLINED:
            return None
        if name == b"connection" and value.strip().lower() != b"keep-alive":
            return None
        if name == b"host" and not value.strip():
            return None
        if name == b"x-request-id":
            rid = _sane_id(value.strip(b" \t"))
        seen.add(name)
    if b"host" not in seen:
        return None
    return match.group(1).decode("ascii"), rid


def _sane_id(value: bytes) -> bytes | None:
    """requestid.sane on the header's bytes (already printable ASCII or tabs, by _REQUEST)."""
    if not value or len(value) > requestid.MAX_LENGTH or b" " in value or b"\t" in value:
        return None
    return value


def simple_request(data: bytes) -> str | None:
    """The handle part of the path (still percent-encoded) when `data` is exactly one plain
    request the fast path may answer, else None."""
    plain = plain_request(data)
    return plain[0] if plain is not None else None


def handle_text(raw: str) -> str | None:
    """The handle as `handles.sent_handle_text` decodes it; None where that refuses it."""
    if "%" not in raw:
        return raw
    try:
        return unquote(raw, errors="strict")
    except UnicodeDecodeError:
        return None


def response_bytes(sent: str, entry: Entry, rid: bytes) -> bytes:
    """Status line, headers and body, as `EncodedResponse` writes them for a keep-alive HTTP/1.1
    GET with the headers resolver/http/edge.py adds (the request's id, then the CORS headers of
    an anonymous read): the public answer of a cached handle, echoing the handle as sent."""
    body = _HIT_HEAD + orjson.dumps(sent) + entry.tail
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s%sX-Request-Id: %s\r\n%s\r\n%s" % (
        len(body),
        encoded._JSON_HEAD,
        date_line(),
        rid,
        PUBLIC_BYTES,
        body,
    )


# aiohttp's RequestHandler internals the fast path reads and moves (aiohttp 3.10 to 3.14 have
# them all). An aiohttp without one of them gets no fast path: slower, never wrong.
_HANDLER_INTERNALS = (
    "_buffer_paused",
    "_close",
    "_current_request",
    "_force_close",
    "_keepalive_handle",
    "_keepalive_timeout",
    "_logging_enabled",
    "_loop",
    "_manager",
    "_messages",
    "_next_keepalive_close_time",
    "_payload_parser",
    "_process_keepalive",
    "_request_count",
    "_upgraded",
    "_waiter",
)


def aiohttp_supported() -> bool:
    """The installed aiohttp's request handler has every internal the fast path relies on."""
    slots = set(getattr(RequestHandler, "__slots__", ()))
    return all(name in slots or hasattr(RequestHandler, name) for name in _HANDLER_INTERNALS)


def aiohttp_idle(handler: RequestHandler) -> bool:
    """aiohttp's handler waits for the next request with nothing queued, parsed or paused."""
    waiter = handler._waiter
    return (
        waiter is not None
        and not waiter.done()
        and not handler._messages
        and handler._current_request is None
        and handler._payload_parser is None
        and not handler._upgraded
        and not handler._buffer_paused
        and not handler._force_close
        and not handler._close
    )


def after_answer(handler: RequestHandler) -> None:
    """What aiohttp does for the connection after it answered a request: count it, and move the
    idle keep-alive deadline (else aiohttp would close a connection in use by the fast path
    `keepalive_timeout` seconds after the last request aiohttp itself answered)."""
    handler._request_count += 1
    manager = handler._manager
    if manager is not None:
        manager.requests_count += 1
    timeout = handler._keepalive_timeout
    if timeout > 0:
        loop = handler._loop
        close_time = loop.time() + timeout
        handler._next_keepalive_close_time = close_time
        if handler._keepalive_handle is None:
            handler._keepalive_handle = loop.call_at(close_time, handler._process_keepalive)


class FastPath:
    """One worker's cache, metrics and daily counts, for answering cached resolutions."""

    __slots__ = ("answered", "daily", "lookup", "metrics")

    def __init__(self, lookup: Lookup, metrics: NodeMetrics, daily: DailyCounter) -> None:
        self.lookup = lookup
        self.metrics = metrics
        self.daily = daily
        self.answered = 0  # requests answered here (for the tests; the metrics count them as hits)

    @classmethod
    def of(cls, app: web.Application) -> FastPath | None:
        """The fast path of a started app; None for an app that resolves nothing, or under an
        aiohttp whose request handler is not the one the fast path knows."""
        if not aiohttp_supported():
            log.warning(
                "aiohttp %s: its request handler changed; cached resolutions go through aiohttp",
                aiohttp.__version__,
            )
            return None
        lookup, metrics, daily = app.get(LOOKUP), app.get(METRICS), app.get(DAILY)
        if lookup is None or metrics is None or daily is None:
            return None
        return cls(lookup, metrics, daily)

    def answer(self, data: bytes) -> bytes | None:
        """The complete response to `data` when it is a plain resolution of a cached handle
        (counted as `handles.resolve` counts a cache hit), else None: aiohttp's to answer."""
        started = time.perf_counter()
        plain = plain_request(data)
        if plain is None:
            return None
        raw, rid = plain
        cache = self.lookup.cache
        if not cache.trusted:
            return None
        sent = handle_text(raw)
        if sent is None:
            return None
        key = fold(strip_scheme(sent))
        entry = cache.get(key)
        if entry is None or entry.record is None:
            return None
        metrics = self.metrics
        metrics.outcomes["hit"] += 1
        self.daily.resolved(key.partition("/")[0])
        response = response_bytes(sent, entry, rid or requestid.new_id_bytes())
        metrics.request(RESOLVE_ROUTE, "GET", 200, time.perf_counter() - started)
        self.answered += 1
        return response
