"""UDP and TCP listeners of the native Handle protocol, inside each worker.

They answer from the worker's cache and coalesced lookups, exactly as `GET /api/handles/...` does,
count in the same metrics and daily statistics and obey the same resolution rate limit. Only
public values are ever answered (the server does not authenticate native clients); requests for
signed or encrypted answers get unsigned, clear ones. Every socket is opened with SO_REUSEPORT so
that all workers share the port.

UDP answers go to an address nobody proved, so they are bounded (`resolver.native.reflection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any, cast

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError, RateLimited
from resolver.core.handles import fold, parse_handle, strip_scheme
from resolver.core.values import is_public, select
from resolver.http.connections import ConnectionGuard
from resolver.native import protocol as p
from resolver.native import reflection
from resolver.upstream.site import site_record

log = logging.getLogger(__name__)

ROUTES = {"udp": "native:udp", "tcp": "native:tcp", "http": "native:http"}
IDLE_TIMEOUT = 30.0
# UDP requests being answered at once by one worker; more are dropped (a client asks again)
MAX_PENDING_UDP = 1024
_USE_TCP_STATUS = 413  # how an answer replaced by USE_TCP counts in the metrics
_HTTP_STATUS = {p.RC_SUCCESS: 200, p.RC_HANDLE_NOT_FOUND: 404, p.RC_VALUES_NOT_FOUND: 200}
_RC_FROM_HANDLE = {
    RC.HANDLE_NOT_FOUND: p.RC_HANDLE_NOT_FOUND,
    RC.INVALID_HANDLE: p.RC_INVALID_HANDLE,
    RC.SERVER_NOT_RESPONSIBLE: p.RC_SERVER_NOT_RESPONSIBLE,
    RC.SERVER_TOO_BUSY: p.RC_SERVER_TOO_BUSY,
}


class NativeService:
    """Turns one request message into one answer message, using the worker's application."""

    def __init__(self, app: Any) -> None:
        from resolver.http.keys import CONFIG, DAILY, LOOKUP, METRICS, RATE_LIMITER, REGISTRY

        self.config = app[CONFIG]
        self.registry = app[REGISTRY]
        self.lookup = app[LOOKUP]
        self.metrics = app[METRICS]
        self.daily = app[DAILY]
        self.limiter = app[RATE_LIMITER]
        self.cache = self.lookup.cache
        self.site = p.encode_site(site_record(self.config), resolve=True)

    async def answer(
        self, message: bytes, envelope: p.Envelope, transport: str, address: str, budget: int | None = None
    ) -> bytes:
        """The answer to one request (`message`: what follows its envelope).

        `budget` (UDP): the most octets the answer's packets may take; a larger answer becomes the
        short USE_TCP error, and when even that does not fit the result is empty: send nothing.
        """
        started = time.perf_counter()
        request: p.Request | None = None
        try:
            request = p.parse_request(envelope, message)
        except p.ProtocolError as exc:
            reply = p.refusal(envelope, p.RC_PROTOCOL_ERROR, str(exc))
            return self._deliver(envelope, None, p.RC_PROTOCOL_ERROR, reply, None, budget, transport, started)
        rc = p.RC_ERROR
        try:
            rc, body, found = await self._answer(request, address)
        except BaseException:
            self.metrics.request(ROUTES[transport], "RESOLVE", 500, time.perf_counter() - started)
            raise
        return self._deliver(
            envelope, request, rc, p.answer(request, rc, body), found, budget, transport, started
        )

    def answer_cached(
        self, message: bytes, envelope: p.Envelope, transport: str, address: str, budget: int | None = None
    ) -> bytes | None:
        """The answer to a resolution of a handle this worker holds in its trusted cache, at once
        (no task, no coroutine: the hot path of the native protocol); None for any other request,
        which `answer` takes. Same answers, counts and limits as `answer`."""
        cache = self.cache
        if not cache.trusted:
            return None
        started = time.perf_counter()
        try:
            request = p.parse_request(envelope, message)
            if request.opcode != p.OC_RESOLUTION or request.response_code != 0:
                return None
            text, indexes, types = p.parse_resolution(request.body)
        except p.ProtocolError:
            return None
        key = fold(strip_scheme(text))
        entry = cache.get(key)
        if entry is None or entry.record is None:
            return None
        try:
            self.limiter.check_resolution(address)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            rc, body, found = p.RC_SERVER_TOO_BUSY, p.error_body(exc.message), None
        else:
            self.metrics.outcomes["hit"] += 1
            rc, body = self._encode(entry, text, indexes, types)
            found = key.partition("/")[0]
        return self._deliver(
            envelope, request, rc, p.answer(request, rc, body), found, budget, transport, started
        )

    def _deliver(
        self,
        envelope: p.Envelope,
        request: p.Request | None,
        rc: int,
        reply: bytes,
        found: str | None,
        budget: int | None,
        transport: str,
        started: float,
    ) -> bytes:
        """`reply` as it goes out (USE_TCP when it exceeds a UDP `budget`, empty when even that does
        not fit), counted in the metrics and, when delivered, in the daily statistics (`found`: the
        prefix of the handle found)."""
        status: int | None = None
        if budget is not None and p.udp_size(len(reply)) > budget:
            rc, status = p.RC_ERROR, _USE_TCP_STATUS
            reply = use_tcp(envelope, request)
            if p.udp_size(len(reply)) > budget:
                reply = b""
        elif found is not None:
            # only an answer delivered counts: one replaced by USE_TCP counts on its TCP retry
            self.daily.resolved(found)
        if status is None:
            status = _HTTP_STATUS.get(rc, 400 if rc != p.RC_ERROR else 500)
        self.metrics.request(ROUTES[transport], "RESOLVE", status, time.perf_counter() - started)
        return reply

    async def _answer(self, request: p.Request, address: str) -> tuple[int, bytes, str | None]:
        """(response code, body, the prefix of the handle found: counted once the answer is sent)"""
        if request.response_code != 0:
            return p.RC_PROTOCOL_ERROR, p.error_body("a request must have response code 0"), None
        if request.opcode == p.OC_GET_SITE_INFO:
            return p.RC_SUCCESS, self.site, None
        if request.opcode != p.OC_RESOLUTION:
            message = f"operation {request.opcode} is not supported; this server resolves"
            return p.RC_OPERATION_NOT_SUPPORTED, p.error_body(message), None
        return await self._resolve(request, address)

    async def _resolve(self, request: p.Request, address: str) -> tuple[int, bytes, str | None]:
        try:
            text, indexes, types = p.parse_resolution(request.body)
        except p.ProtocolError as exc:
            return p.RC_PROTOCOL_ERROR, p.error_body(str(exc)), None
        try:
            self.limiter.check_resolution(address)
            name = parse_handle(strip_scheme(text), self.config.limits)
            entry: Entry = await self.registry.entry(name)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            return p.RC_SERVER_TOO_BUSY, p.error_body(exc.message), None
        except HandleError as exc:
            if exc.rc == RC.HANDLE_NOT_FOUND:
                self.metrics.outcomes["not_found"] += 1
                self.daily.not_found(name.prefix)  # only the lookup says not found: name is parsed
            else:
                self.metrics.outcomes["refused"] += 1
            return _RC_FROM_HANDLE.get(exc.rc, p.RC_ERROR), p.error_body(exc.message), None
        assert entry.record is not None
        self.metrics.outcomes["hit"] += 1
        rc, body = self._encode(entry, text, indexes, types)
        return rc, body, name.prefix

    @staticmethod
    def _encode(entry: Entry, text: str, indexes: list[int], types: list[str]) -> tuple[int, bytes]:
        """The answer to a resolution of a handle found: its public values, or those asked for."""
        assert entry.record is not None
        head = p.utf8(text)
        try:
            if not indexes and not types:
                encoded = entry.native
                if encoded is None:
                    encoded = entry.native = p.encode_values([v for v in entry.record.values if is_public(v)])
                return p.RC_SUCCESS, head + encoded
            public = [v for v in entry.record.values if is_public(v)]
            chosen = select(public, frozenset(indexes), types)
            if not chosen:
                return p.RC_VALUES_NOT_FOUND, p.error_body("no value matches the requested indexes and types")
            return p.RC_SUCCESS, head + p.encode_values(chosen)
        except p.EncodingError as exc:
            # stored before structured data was checked on write: say which value, send nothing else
            return p.RC_ERROR, p.error_body(f"{exc}; the handle's values cannot be sent natively")


def use_tcp(envelope: p.Envelope, request: p.Request | None) -> bytes:
    """The short RC_ERROR that makes a client ask again over TCP (the reference client moves on to
    its next protocol on RC_ERROR: HandleResolver.sendRequestToInterface)."""
    if request is None:
        return p.refusal(envelope, p.RC_ERROR, reflection.USE_TCP)
    return p.answer(request, p.RC_ERROR, p.error_body(reflection.USE_TCP))


def _reuse_port_socket(kind: int, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: NativeService, limiter: reflection.ResponseRateLimiter) -> None:
        self.service = service
        self.limiter = limiter
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            envelope = p.parse_envelope(data)
        except p.ProtocolError:
            return  # not even an envelope: nothing to answer to
        verdict = self.limiter.verdict(str(addr[0]), time.monotonic())
        if verdict is not reflection.Verdict.ANSWER or len(self.tasks) >= MAX_PENDING_UDP:
            self.service.metrics.request(ROUTES["udp"], "RESOLVE", 429, 0.0)
            if verdict is reflection.Verdict.SLIP:
                self._send(self._slip(data, envelope), envelope, len(data), addr)
            return
        if envelope.sequence == 0 and envelope.length == len(data) - p.ENVELOPE_SIZE:
            try:
                reply = self.service.answer_cached(
                    data[p.ENVELOPE_SIZE :], envelope, "udp", str(addr[0]), reflection.budget(len(data))
                )
            except Exception:  # one bad request never stops the listener
                log.exception("native UDP request from %s failed", addr[0])
                return
            if reply is not None:
                self._send(reply, envelope, len(data), addr)
                return
        task = asyncio.get_running_loop().create_task(self._handle(data, envelope, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def _slip(data: bytes, envelope: p.Envelope) -> bytes:
        try:
            request = p.parse_request(envelope, data[p.ENVELOPE_SIZE :])
        except p.ProtocolError:
            request = None
        return use_tcp(envelope, request)

    async def _handle(self, data: bytes, envelope: p.Envelope, addr: tuple[Any, ...]) -> None:
        try:
            if envelope.sequence != 0 or envelope.length != len(data) - p.ENVELOPE_SIZE:
                message = p.refusal(envelope, p.RC_PROTOCOL_ERROR, "a UDP request must fit in one packet")
            else:
                message = await self.service.answer(
                    data[p.ENVELOPE_SIZE :], envelope, "udp", str(addr[0]), reflection.budget(len(data))
                )
            self._send(message, envelope, len(data), addr)
        except Exception:  # one bad request never stops the listener
            log.exception("native UDP request from %s failed", addr[0])

    def _send(self, message: bytes, envelope: p.Envelope, request_size: int, addr: tuple[Any, ...]) -> None:
        """Send the answer's packets, unless they would take more than the request's budget."""
        if (
            not message
            or self.transport is None
            or p.udp_size(len(message)) > reflection.budget(request_size)
        ):
            return
        for packet in p.envelopes(envelope, message, p.UDP_DATA_SIZE):
            self.transport.sendto(packet, addr)


class _Tcp(asyncio.Protocol):
    """One native TCP connection: requests answered in order, cached ones at once in
    `data_received`, the others by a task; closed after an answer unless the request asked to keep
    it alive, after IDLE_TIMEOUT without a complete request, and after IDLE_TIMEOUT of a client
    that does not read its answers."""

    def __init__(self, service: NativeService, guard: ConnectionGuard) -> None:
        self.service = service
        self.guard = guard
        self.address: str | None = None  # set once admitted
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.task: asyncio.Task[None] | None = None  # the request being answered from the database
        self.paused = False
        self.closing = False
        self.eof = False
        self.timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
        if not self.guard.admit(address):  # the same cap per client address as the HTTP listener's
            transport.close()
            return
        self.address = address
        self._arm()

    def _arm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(IDLE_TIMEOUT, self._expire)

    def _expire(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.abort() if self.paused else self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self.address is None or self.closing:
            return
        self.buffer += data
        self._arm()
        self._serve()

    def _serve(self) -> None:
        """Answer the complete requests in the buffer, in order, until one needs the database."""
        buffer = self.buffer
        while self.task is None and not self.paused and not self.closing and len(buffer) >= p.ENVELOPE_SIZE:
            envelope = p.parse_envelope(bytes(buffer[: p.ENVELOPE_SIZE]))
            if envelope.length > p.MAX_REQUEST_BYTES:
                refused = p.refusal(
                    envelope, p.RC_PROTOCOL_ERROR, f"a request is at most {p.MAX_REQUEST_BYTES} octets"
                )
                self._reply(envelope, refused, keep_alive=False)
                return
            end = p.ENVELOPE_SIZE + envelope.length
            if len(buffer) < end:
                return
            message = bytes(buffer[p.ENVELOPE_SIZE : end])
            del buffer[:end]
            keep_alive = len(message) >= 12 and bool(
                struct.unpack_from(">I", message, 8)[0] & p.FLAG_KEEP_ALIVE
            )
            assert self.address is not None
            try:
                reply = self.service.answer_cached(message, envelope, "tcp", self.address)
            except Exception:
                log.exception("native TCP request from %s failed", self.address)
                self._close()
                return
            if reply is None:
                self.task = asyncio.get_running_loop().create_task(
                    self._answer(envelope, message, keep_alive)
                )
                return
            self._reply(envelope, reply, keep_alive)

    async def _answer(self, envelope: p.Envelope, message: bytes, keep_alive: bool) -> None:
        assert self.address is not None
        try:
            reply = await self.service.answer(message, envelope, "tcp", self.address)
        except Exception:
            log.exception("native TCP request from %s failed", self.address)
            self._close()
            return
        finally:
            self.task = None
        self._reply(envelope, reply, keep_alive)
        self._serve()
        if self.eof and self.task is None:
            self._close()

    def _reply(self, envelope: p.Envelope, reply: bytes, keep_alive: bool) -> None:
        if self.transport is None or self.transport.is_closing():
            return
        self.transport.write(p.envelopes(envelope, reply, len(reply))[0])
        if not keep_alive:
            self._close()

    def _close(self) -> None:
        self.closing = True
        if self.transport is not None:
            self.transport.close()  # after what is written has gone out

    def pause_writing(self) -> None:
        # a client that does not read its answers: no more requests read, and it is dropped when
        # it has not read for IDLE_TIMEOUT
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._arm()
        self._serve()

    def eof_received(self) -> bool | None:
        # the client has sent everything: answer what is complete, then close
        self.eof = True
        if self.task is None:
            self._close()
            return None
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.task is not None:
            self.task.cancel()
        if self.address is not None:
            self.guard.release(self.address)
            self.address = None
        self.transport = None


class NativeListeners:
    """The UDP endpoint and TCP server of one worker."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.service = NativeService(app)
        self.host, self.port = host, port
        self._udp: asyncio.DatagramTransport | None = None
        self._protocol: _Udp | None = None
        self._tcp: asyncio.Server | None = None
        self.tcp_guard: ConnectionGuard | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp_socket = _reuse_port_socket(socket.SOCK_DGRAM, self.host, self.port)
        config = self.service.config
        limiter = reflection.ResponseRateLimiter(
            config.native_udp_rate / max(1, config.workers), config.native_udp_burst, config.native_udp_slip
        )
        protocol = self._protocol = _Udp(self.service, limiter)
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=udp_socket)
        self._udp = transport
        tcp_socket = _reuse_port_socket(socket.SOCK_STREAM, self.host, self.port)
        share = -(-config.max_connections_per_address // max(1, config.workers))
        guard = self.tcp_guard = ConnectionGuard(header_timeout=0, per_address=share)
        self._tcp = await loop.create_server(lambda: _Tcp(self.service, guard), sock=tcp_socket, backlog=1024)

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._protocol is not None:
            for task in list(self._protocol.tasks):
                task.cancel()
        if self._tcp is not None:
            self._tcp.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._tcp.wait_closed(), 1.0)
