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
from typing import Any

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError, RateLimited
from resolver.core.handles import parse_handle, strip_scheme
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
        rc = p.RC_ERROR
        status: int | None = None
        found: str | None = None  # the prefix of a handle found, counted once its answer goes out
        try:
            try:
                request = p.parse_request(envelope, message)
            except p.ProtocolError as exc:
                rc = p.RC_PROTOCOL_ERROR
                reply = p.refusal(envelope, rc, str(exc))
            else:
                rc, body, found = await self._answer(request, address)
                reply = p.answer(request, rc, body)
            if budget is not None and p.udp_size(len(reply)) > budget:
                rc, status = p.RC_ERROR, _USE_TCP_STATUS
                reply = use_tcp(envelope, request)
                if p.udp_size(len(reply)) > budget:
                    return b""
            elif found is not None:
                # only an answer delivered counts: one replaced by USE_TCP counts on its TCP retry
                self.daily.resolved(found)
            return reply
        finally:
            if status is None:
                status = _HTTP_STATUS.get(rc, 400 if rc != p.RC_ERROR else 500)
            self.metrics.request(ROUTES[transport], "RESOLVE", status, time.perf_counter() - started)

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


async def _tcp_client(
    service: NativeService,
    guard: ConnectionGuard,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    address = str((writer.get_extra_info("peername") or ("?",))[0])
    if not guard.admit(address):  # the same cap per client address as the HTTP listener's
        writer.close()
        return
    try:
        while True:
            try:
                head = await asyncio.wait_for(reader.readexactly(p.ENVELOPE_SIZE), IDLE_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError):
                return
            envelope = p.parse_envelope(head)
            if envelope.length > p.MAX_REQUEST_BYTES:
                refused = p.refusal(
                    envelope, p.RC_PROTOCOL_ERROR, f"a request is at most {p.MAX_REQUEST_BYTES} octets"
                )
                writer.write(p.envelopes(envelope, refused, len(refused))[0])
                await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
                return
            try:
                message = await asyncio.wait_for(reader.readexactly(envelope.length), IDLE_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError):
                return
            answer = await service.answer(message, envelope, "tcp", address)
            writer.write(p.envelopes(envelope, answer, len(answer))[0])
            # a client that does not read its answer does not hold the connection for ever
            await asyncio.wait_for(writer.drain(), IDLE_TIMEOUT)
            flags = struct.unpack_from(">I", message, 8)[0] if len(message) >= 12 else 0
            if not flags & p.FLAG_KEEP_ALIVE:
                return
    except OSError:  # resets, and a client that does not read (TimeoutError)
        return
    except Exception:
        log.exception("native TCP connection from %s failed", address)
    finally:
        guard.release(address)
        writer.close()


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
        self._tcp = await asyncio.start_server(
            lambda r, w: _tcp_client(self.service, guard, r, w), sock=tcp_socket, backlog=1024
        )

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
