"""The native TCP listening socket, accepted by hand, so that the common connection costs no more
than its system calls.

hdllib opens a connection per request (HandleResolver.sendHdlTcpRequest: connect, write one
request, read the answer, close). Through asyncio's server each such connection would cost a
transport, a protocol, an idle timer and two epoll registrations. Here the accept callback looks
at what the new connection already holds (MSG_PEEK, nothing consumed): when that is exactly one
complete request that `NativeService.answer_cached` answers (a handle in the trusted cache)
without the keep-alive flag, the request is read, the answer written and the socket closed inside
the callback. Every other connection (a partial request, several, keep-alive, a miss, anything
odd) is handed unread to the event loop as an ordinary protocol connection, which reads the same
bytes from the start. The listening socket defers accepting until the first data has arrived
(TCP_DEFER_ACCEPT, Linux), so the peek finds the request; a silent connection is accepted a
second later, as a normal one.

The per-address connection cap is honoured on both paths: an address at its cap is refused here as
the protocol connection refuses it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import struct
from collections.abc import Callable, Coroutine
from typing import Any

from resolver.http.connections import ConnectionGuard
from resolver.native import protocol as p
from resolver.native.server import IDLE_TIMEOUT, NativeService

log = logging.getLogger(__name__)

ACCEPT_BATCH = 64  # connections accepted per wake-up (then the loop runs others)
PEEK_BYTES = 4096  # a resolution request is far smaller; a larger first read goes to the loop
DEFER_SECONDS = 1  # TCP_DEFER_ACCEPT: how long the kernel waits for the first data
# Out of descriptors or memory: stop accepting for a moment instead of spinning on a readable socket.
_RESOURCE_ERRORS = frozenset((errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM))
_PAUSE = 1.0


def defer_accept(sock: socket.socket) -> None:
    """Ask the kernel to wake the listener only once a connection has data (where it can)."""
    option = getattr(socket, "TCP_DEFER_ACCEPT", None)
    if option is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, option, DEFER_SECONDS)


class Acceptor:
    """Accepts the native TCP connections of one worker (see the module docstring)."""

    def __init__(
        self,
        sock: socket.socket,
        service: NativeService,
        guard: ConnectionGuard,
        factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self.sock = sock
        self.service = service
        self.guard = guard
        self.factory = factory
        self.answered = 0  # connections answered in the accept callback (for the tests)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._paused: asyncio.TimerHandle | None = None
        self._closed = False

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.sock.setblocking(False)
        self.sock.listen(1024)
        defer_accept(self.sock)
        self._loop.add_reader(self.sock.fileno(), self._accept)

    async def stop(self) -> None:
        """Stop accepting; connections already handed over finish within a second or are left to
        the worker's exit."""
        self._closed = True
        if self._paused is not None:
            self._paused.cancel()
        if self._loop is not None:
            self._loop.remove_reader(self.sock.fileno())
        self.sock.close()
        for task in list(self._tasks):
            task.cancel()
        for _ in range(50):  # a second at most for the connections answering from the database
            if self.guard.open == 0:
                break
            await asyncio.sleep(0.02)

    def _resume(self) -> None:
        self._paused = None
        if not self._closed and self._loop is not None:
            self._loop.add_reader(self.sock.fileno(), self._accept)

    def _accept(self) -> None:
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _RESOURCE_ERRORS and self._loop is not None:
                    log.warning("native TCP: cannot accept (%s); pausing for %.0f s", exc, _PAUSE)
                    self._loop.remove_reader(self.sock.fileno())
                    self._paused = self._loop.call_later(_PAUSE, self._resume)
                return  # ECONNABORTED and the like: that connection is gone, the next wake-up goes on
            conn.setblocking(False)
            address = str(peer[0]) if isinstance(peer, tuple) and peer else "?"
            try:
                done = self._answer_at_once(conn, address)
            except Exception:  # one bad connection never stops the listener
                log.exception("native TCP request from %s failed", address)
                conn.close()
                continue
            if not done:
                self._hand_over(conn)

    def _answer_at_once(self, conn: socket.socket, address: str) -> bool:
        """True when the connection was dealt with here (answered, refused or found gone)."""
        guard = self.guard
        if guard.per_address and guard.held_by(address) >= guard.per_address:
            guard.refused += 1  # as _Tcp.connection_made refuses it
            conn.close()
            return True
        try:
            data = conn.recv(PEEK_BYTES, socket.MSG_PEEK)
        except (BlockingIOError, InterruptedError):
            return False  # nothing yet: the connection's to wait for
        except OSError:
            conn.close()  # reset before we looked
            return True
        if len(data) < p.ENVELOPE_SIZE + 12:
            return False
        if struct.unpack_from(">I", data, p.ENVELOPE_SIZE + 8)[0] & p.FLAG_KEEP_ALIVE:
            return False  # the client wants to send more on it
        memo = self.service.memo
        kept = memo.lookup(data)
        packet = memo.answer(kept, data, "tcp") if kept is not None else None
        if packet is not None:
            return self._send(conn, data, packet)
        try:
            envelope = p.parse_envelope(data[: p.ENVELOPE_SIZE])
        except p.ProtocolError:
            return False
        end = p.ENVELOPE_SIZE + envelope.length
        if len(data) != end or envelope.sequence != 0:
            return False  # partial, more than one request, or odd: the protocol's rules apply
        message = data[p.ENVELOPE_SIZE :]
        reply = self.service.answer_cached(message, envelope, "tcp", address, None, data)
        if reply is None:
            return False
        return self._send(conn, data, p.envelopes(envelope, reply, len(reply))[0])

    def _send(self, conn: socket.socket, data: bytes, packet: bytes) -> bool:
        """Consume the request `data` (MSG_PEEK saw all of it), write `packet`, close."""
        conn.recv(len(data))
        try:
            sent = conn.send(packet)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            conn.close()
            return True
        self.answered += 1
        if sent == len(packet):
            conn.close()
        else:  # a large answer and a full send buffer: the rest is written by the loop
            self._spawn(self._finish(conn, packet[sent:]))
        return True

    async def _finish(self, conn: socket.socket, rest: bytes) -> None:
        assert self._loop is not None
        try:
            await asyncio.wait_for(self._loop.sock_sendall(conn, rest), IDLE_TIMEOUT)
        except (OSError, TimeoutError):
            pass
        finally:
            conn.close()

    def _hand_over(self, conn: socket.socket) -> None:
        assert self._loop is not None
        self._spawn(self._connect(conn))

    async def _connect(self, conn: socket.socket) -> None:
        assert self._loop is not None
        try:
            await self._loop.connect_accepted_socket(self.factory, conn)
        except OSError:
            conn.close()

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
