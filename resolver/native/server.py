"""UDP and TCP listeners of the native Handle protocol, inside each worker.

They answer from the worker's cache and coalesced lookups, exactly as `GET /api/handles/...` does,
count in the same metrics and daily statistics and obey the same resolution rate limit. Only
public values are ever answered (the server does not authenticate native clients); requests for
signed or encrypted answers get unsigned, clear ones. Every socket is opened with SO_REUSEPORT so
that all workers share the port.
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
from resolver.native import protocol as p
from resolver.site import site_record

log = logging.getLogger(__name__)

ROUTES = {"udp": "native:udp", "tcp": "native:tcp"}
IDLE_TIMEOUT = 30.0
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
        self.site = p.encode_site(site_record(self.config))

    async def answer(self, message: bytes, envelope: p.Envelope, transport: str, address: str) -> bytes:
        started = time.perf_counter()
        rc = p.RC_ERROR
        try:
            try:
                request = p.parse_request(envelope, message)
            except p.ProtocolError as exc:
                rc = p.RC_PROTOCOL_ERROR
                return p.refusal(envelope, rc, str(exc))
            if request.response_code != 0:
                rc = p.RC_PROTOCOL_ERROR
                return p.answer(request, rc, p.error_body("a request must have response code 0"))
            if request.opcode == p.OC_GET_SITE_INFO:
                rc = p.RC_SUCCESS
                return p.answer(request, rc, self.site)
            if request.opcode != p.OC_RESOLUTION:
                rc = p.RC_OPERATION_NOT_SUPPORTED
                return p.answer(
                    request,
                    rc,
                    p.error_body(f"operation {request.opcode} is not supported; this server resolves"),
                )
            rc, body = await self._resolve(request, address)
            return p.answer(request, rc, body)
        finally:
            self.metrics.request(
                ROUTES[transport],
                "RESOLVE",
                _HTTP_STATUS.get(rc, 400 if rc != p.RC_ERROR else 500),
                time.perf_counter() - started,
            )

    async def _resolve(self, request: p.Request, address: str) -> tuple[int, bytes]:
        try:
            text, indexes, types = p.parse_resolution(request.body)
        except p.ProtocolError as exc:
            return p.RC_PROTOCOL_ERROR, p.error_body(str(exc))
        try:
            self.limiter.check_resolution(address)
            name = parse_handle(strip_scheme(text), self.config.limits)
            entry: Entry = await self.registry.entry(name)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            return p.RC_SERVER_TOO_BUSY, p.error_body(exc.message)
        except HandleError as exc:
            if exc.rc == RC.HANDLE_NOT_FOUND:
                self.metrics.outcomes["not_found"] += 1
                self.daily.not_found(_prefix_of(text))
            else:
                self.metrics.outcomes["refused"] += 1
            return _RC_FROM_HANDLE.get(exc.rc, p.RC_ERROR), p.error_body(exc.message)
        assert entry.record is not None
        self.metrics.outcomes["hit"] += 1
        self.daily.resolved(name.prefix)
        head = p.utf8(text)
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


def _prefix_of(text: str) -> str:
    return text.partition("/")[0].lower()


def _reuse_port_socket(kind: int, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, service: NativeService) -> None:
        self.service = service
        self.transport: asyncio.DatagramTransport | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        task = asyncio.get_running_loop().create_task(self._handle(data, addr))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _handle(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            envelope = p.parse_envelope(data)
        except p.ProtocolError:
            return  # not even an envelope: nothing to answer to
        try:
            if envelope.sequence != 0 or envelope.length != len(data) - p.ENVELOPE_SIZE:
                message = p.refusal(envelope, p.RC_PROTOCOL_ERROR, "a UDP request must fit in one packet")
            else:
                message = await self.service.answer(data[p.ENVELOPE_SIZE :], envelope, "udp", str(addr[0]))
            if self.transport is not None:
                for packet in p.envelopes(envelope, message, p.UDP_DATA_SIZE):
                    self.transport.sendto(packet, addr)
        except Exception:  # one bad request never stops the listener
            log.exception("native UDP request from %s failed", addr[0])


async def _tcp_client(
    service: NativeService, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    address = str((writer.get_extra_info("peername") or ("?",))[0])
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
                await writer.drain()
                return
            try:
                message = await asyncio.wait_for(reader.readexactly(envelope.length), IDLE_TIMEOUT)
            except (asyncio.IncompleteReadError, TimeoutError):
                return
            answer = await service.answer(message, envelope, "tcp", address)
            writer.write(p.envelopes(envelope, answer, len(answer))[0])
            await writer.drain()
            flags = struct.unpack_from(">I", message, 8)[0] if len(message) >= 12 else 0
            if not flags & p.FLAG_KEEP_ALIVE:
                return
    except (ConnectionError, OSError):
        return
    except Exception:
        log.exception("native TCP connection from %s failed", address)
    finally:
        writer.close()


class NativeListeners:
    """The UDP endpoint and TCP server of one worker."""

    def __init__(self, app: Any, host: str, port: int) -> None:
        self.service = NativeService(app)
        self.host, self.port = host, port
        self._udp: asyncio.DatagramTransport | None = None
        self._protocol: _Udp | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        udp_socket = _reuse_port_socket(socket.SOCK_DGRAM, self.host, self.port)
        protocol = self._protocol = _Udp(self.service)
        transport, _ = await loop.create_datagram_endpoint(lambda: protocol, sock=udp_socket)
        self._udp = transport
        tcp_socket = _reuse_port_socket(socket.SOCK_STREAM, self.host, self.port)
        self._tcp = await asyncio.start_server(
            lambda r, w: _tcp_client(self.service, r, w), sock=tcp_socket, backlog=1024
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
