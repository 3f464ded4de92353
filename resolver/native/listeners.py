"""The UDP endpoint and TCP server of the native Handle protocol in each worker, over
`resolver.native.server.NativeService`. Every socket is opened with SO_REUSEPORT so that all
workers share the port (the parent first made sure no other process holds it: resolver/ports.py).
Cached handles are answered inside the protocol callbacks (no task); the rest by a task each.

UDP answers go to an address nobody proved, so they are bounded (`resolver.native.reflection`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import struct
import time
from typing import Any, cast

from resolver.http.connections import ConnectionGuard
from resolver.native import protocol as p
from resolver.native import reflection
from resolver.native.accept import Acceptor
from resolver.native.server import IDLE_TIMEOUT, MAX_PENDING_UDP, ROUTES, NativeService, use_tcp

log = logging.getLogger(__name__)


def _reuse_port_socket(kind: int, host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:  # past TIME_WAIT; on UDP it would let any socket share the port
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
        memo = self.service.memo
        kept = memo.lookup(data)
        verdict: reflection.Verdict | None = None
        if kept is not None:  # asked before: the kept answer, patched, if still current
            verdict = self.limiter.verdict(str(addr[0]), time.monotonic())
            if verdict is reflection.Verdict.ANSWER and len(self.tasks) < MAX_PENDING_UDP:
                packet = memo.answer(kept, data, "udp", reflection.budget(len(data)))
                if packet is not None and self.transport is not None:
                    self.transport.sendto(packet, addr)
                    return
        try:
            envelope = p.parse_envelope(data)
        except p.ProtocolError:
            return  # not even an envelope: nothing to answer to
        if verdict is None:
            verdict = self.limiter.verdict(str(addr[0]), time.monotonic())
        if verdict is not reflection.Verdict.ANSWER or len(self.tasks) >= MAX_PENDING_UDP:
            self.service.metrics.request(ROUTES["udp"], "RESOLVE", 429, 0.0)
            if verdict is reflection.Verdict.SLIP:
                self._send(self._slip(data, envelope), envelope, len(data), addr)
            return
        if envelope.sequence == 0 and envelope.length == len(data) - p.ENVELOPE_SIZE:
            try:
                reply = self.service.answer_cached(
                    data[p.ENVELOPE_SIZE :], envelope, "udp", str(addr[0]), reflection.budget(len(data)), data
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
        self.acceptor: Acceptor | None = None
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
        service = self.service
        self.acceptor = Acceptor(tcp_socket, service, guard, lambda: _Tcp(service, guard))
        self.acceptor.start()

    async def stop(self) -> None:
        if self._udp is not None:
            self._udp.close()
        if self._protocol is not None:
            for task in list(self._protocol.tasks):
                task.cancel()
        if self.acceptor is not None:
            await self.acceptor.stop()
