"""Connections that cost the node nothing unless they send a request: a deadline for the first
request's header, and a cap on connections per client address.

aiohttp closes an idle keep-alive connection (and one that never completes a header) only after
its keep-alive timeout, and has no cap per address, so a client sending headers a byte at a time
on a thousand connections held them all for as long as it liked. Every connection's protocol is
wrapped here: the first request's header must be complete within `header_timeout` seconds, later
requests on the connection within the keep-alive timeout (aiohttp's own timer), bodies within the
body timeout (`resolver.http.bodies`). A client address holds at most `per_address` connections
of a worker; one more is answered 429 and closed. A peer inside --trusted-proxies has no cap: it
is a load balancer carrying many clients' connections (their requests are limited by the
forwarded client address, resolver/http/forwarded.py).

The protocol is also where a cached resolution is answered without aiohttp
(`resolver.http.fastpath`): a packet that is one plain `GET /api/handles/...` of a cached handle,
arriving while aiohttp's handler is idle, is answered here; everything else is aiohttp's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from resolver.http import requestid
from resolver.http.fastpath import FastPath, after_answer, aiohttp_idle
from resolver.http.forwarded import TrustedProxies

_END_OF_HEADER = b"\r\n\r\n"


def _canned(status: str, message: str, retry_after: int | None = None) -> bytes:
    body = b'{"responseCode":3,"message":"' + message.encode() + b'"}'
    head = [
        f"HTTP/1.1 {status}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    if retry_after is not None:
        head.append(f"Retry-After: {retry_after}")
    return ("\r\n".join(head) + "\r\n").encode() + b"X-Request-Id: %s\r\n\r\n" + body


# answered before any request was read: each with an id of its own (resolver/http/requestid.py)
TOO_MANY = _canned("429 Too Many Requests", "too many connections from this address", retry_after=1)
TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\nX-Request-Id: %s\r\n\r\n"
)


def _with_id(canned: bytes) -> bytes:
    return canned % requestid.new_id_bytes()


@dataclass
class ConnectionGuard:
    """Per-worker connection accounting."""

    header_timeout: float
    per_address: int  # 0: no cap
    # --trusted-proxies: a load balancer carries many clients' requests, so it has no cap
    trusted_proxies: tuple[str, ...] = ()
    open: int = 0
    refused: int = 0
    timed_out: int = 0

    def __post_init__(self) -> None:
        self._by_address: dict[str, int] = {}
        self._proxies = TrustedProxies(self.trusted_proxies)

    def admit(self, address: str) -> bool:
        """Count a new connection from `address`; False when the address is over its cap (a
        trusted proxy never is)."""
        held = self._by_address.get(address, 0)
        if self.per_address and held >= self.per_address and not self._proxies.trusts(address):
            self.refused += 1
            return False
        self._by_address[address] = held + 1
        self.open += 1
        return True

    def release(self, address: str) -> None:
        """A connection counted by `admit` has closed."""
        self.open -= 1
        held = self._by_address.get(address, 0) - 1
        if held > 0:
            self._by_address[address] = held
        else:
            self._by_address.pop(address, None)

    def held_by(self, address: str) -> int:
        return self._by_address.get(address, 0)


class GuardedProtocol(asyncio.Protocol):
    """aiohttp's request handler for one connection, behind the guard's deadline and cap."""

    __slots__ = (
        "_address",
        "_at_boundary",
        "_fast",
        "_guard",
        "_inner",
        "_tail",
        "_timer",
        "_transport",
        "_writing_paused",
    )

    def __init__(self, inner: asyncio.Protocol, guard: ConnectionGuard, fast: FastPath | None = None) -> None:
        self._inner = inner
        self._guard = guard
        # the fast path only for aiohttp's own handler, and not when it logs every request
        use_fast = fast is not None and isinstance(inner, RequestHandler) and not inner._logging_enabled
        self._fast = fast if use_fast else None
        # aiohttp's parser holds no part of a request: nothing was passed to it yet, or the last
        # packet passed ended a header block (and, once aiohttp's handler is idle, its message)
        self._at_boundary = True
        self._writing_paused = False
        self._address: str | None = None  # set once admitted
        self._timer: asyncio.TimerHandle | None = None
        self._tail = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's transports are not subclasses
        self._transport = transport
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else ""
        if not self._guard.admit(address):
            transport.write(_with_id(TOO_MANY))
            transport.close()
            return
        self._address = address
        if self._guard.header_timeout > 0:
            self._timer = asyncio.get_running_loop().call_later(self._guard.header_timeout, self._expire)
        self._inner.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._address is None:
            return  # refused: whatever it sends is ignored until the close completes
        if self._timer is not None:
            seen = self._tail + data
            if _END_OF_HEADER in seen:
                self._timer.cancel()
                self._timer = None
                self._tail = b""
            else:
                self._tail = seen[-3:]
        fast = self._fast
        if fast is not None and self._at_boundary and not self._writing_paused:
            inner = cast(RequestHandler, self._inner)
            transport = self._transport
            if transport is not None and not transport.is_closing() and aiohttp_idle(inner):
                response = fast.answer(data)
                if response is not None:
                    transport.write(response)
                    after_answer(inner)
                    return
        self._at_boundary = data.endswith(_END_OF_HEADER)
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self._address is None:
            return None
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._address is None:
            return
        self._guard.release(self._address)
        self._address = None
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._writing_paused = True  # the client reads slowly: aiohttp waits for it, the fast path can't
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._inner.resume_writing()

    def _expire(self) -> None:
        self._timer = None
        self._guard.timed_out += 1
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_with_id(TIMED_OUT))
            self._transport.close()


class GuardedServer:
    """aiohttp's `web.Server` (the protocol factory), handing out guarded protocols."""

    def __init__(self, server: web.Server, guard: ConnectionGuard, fast: FastPath | None = None) -> None:
        self._server = server
        self._guard = guard
        self._fast = fast

    def __call__(self) -> GuardedProtocol:
        return GuardedProtocol(self._server(), self._guard, self._fast)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._server, name)


class GuardedRunner(web.AppRunner):
    """An AppRunner whose sites accept connections through a `ConnectionGuard`, answering cached
    resolutions on the fast path unless `fast_path` is False (or the app resolves nothing)."""

    def __init__(
        self, app: web.Application, guard: ConnectionGuard, *, fast_path: bool = True, **kwargs: Any
    ) -> None:
        super().__init__(app, **kwargs)
        self.guard = guard
        self.fast_path = fast_path
        self.fast: FastPath | None = None  # once set up

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()  # the app has started: its cache exists
        fast = self.fast = FastPath.of(self.app) if self.fast_path else None
        guarded: Callable[[], GuardedProtocol] = GuardedServer(server, self.guard, fast)
        return guarded  # type: ignore[return-value]
