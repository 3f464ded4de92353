"""Native TCP connections answered in the accept callback (resolver/native/accept.py) and those
handed to the event loop must look the same to a client.

The client behaviour modelled is the reference's (hdllib HandleResolver.sendHdlTcpRequest: open a
connection, write one request, read the envelope and exactly `length` octets, close; with the
keep-alive flag (AbstractMessage.keepAlive, used by the reference's connection reuse) more
requests follow on the same connection). What is pinned: the bytes of an answer do not depend on
the path that produced it, every request that is not exactly one complete cached request without
keep-alive takes the protocol path, and nothing the accept path does can be seen as a lost,
reordered or truncated answer.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import replace

import pytest

from resolver.http.keys import NATIVE
from resolver.native.accept import Acceptor
from tests.handle_client import (
    OP_FLAG_KEEP_ALIVE,
    OP_FLAG_PUBLIC_ONLY,
    read_answer,
    recv_exactly,
    request_message,
    resolution_body,
)
from tests.helpers import serving
from tests.integration.test_native import PRODUCT, call, free_port, register
from tests.integration.test_native_fast_path import tcp_raw, udp_raw, without_expiration


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        acceptor = client.server.app[NATIVE].acceptor
        assert isinstance(acceptor, Acceptor)
        yield client, port, acceptor


async def _cached(client, port: int, handle: str, values=PRODUCT) -> bytes:
    await register(client, handle, values)
    request, _ = request_message(1, resolution_body(handle), OP_FLAG_PUBLIC_ONLY, request_id=7)
    await call(udp_raw, port, request)  # in the worker's cache now
    return request


def _slow_send(port: int, pieces: list[bytes], answers: int, pause: float = 0.05) -> list[bytes]:
    """Write `pieces` a moment apart on one connection, then read `answers` framed answers."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        for piece in pieces:
            sock.sendall(piece)
            time.sleep(pause)
        for _ in range(answers):
            envelope = recv_exactly(sock, 20)
            out.append(envelope + recv_exactly(sock, struct.unpack("!I", envelope[16:20])[0]))
        sock.settimeout(3)
        assert sock.recv(1) == b""
    return out


async def test_a_one_shot_request_is_answered_at_accept_with_the_protocol_paths_bytes(node):
    """hdllib's way (one request, then close) is answered in the accept callback; the same request
    split in two writes is answered by the protocol connection: the same bytes."""
    client, port, acceptor = node
    request = await _cached(client, port, "88.123/ACCEPT-1")
    before = acceptor.answered
    (fast,) = await call(tcp_raw, port, request, 1)
    assert acceptor.answered == before + 1
    (slow,) = await call(_slow_send, port, [request[:10], request[10:]], 1)
    assert acceptor.answered == before + 1  # the split request went through the connection
    assert without_expiration(fast) == without_expiration(slow)
    answer = read_answer(fast[20:], fast[:20])
    assert answer.rc == 1 and answer.request_id == 7
    assert [v.index for v in answer.handle_and_values()[1]] == [1, 2, 2000]


async def test_keep_alive_pipelined_and_missing_go_through_the_connection(node):
    client, port, acceptor = node
    await _cached(client, port, "88.123/ACCEPT-2")
    await register(client, "88.123/ACCEPT-3", PRODUCT[:1])  # not cached: read from the database
    keep = OP_FLAG_PUBLIC_ONLY | OP_FLAG_KEEP_ALIVE
    first = request_message(1, resolution_body("88.123/ACCEPT-2"), keep, request_id=1)[0]
    second = request_message(1, resolution_body("88.123/ACCEPT-2"), OP_FLAG_PUBLIC_ONLY, request_id=2)[0]
    miss = request_message(1, resolution_body("88.123/ACCEPT-3"), OP_FLAG_PUBLIC_ONLY, request_id=3)[0]
    unknown = request_message(1, resolution_body("88.123/NO-SUCH"), OP_FLAG_PUBLIC_ONLY, request_id=4)[0]
    before = acceptor.answered
    # keep-alive then a last request on the same connection: both answered, in order
    answers = await call(_slow_send, port, [first, second], 2)
    assert [read_answer(a[20:], a[:20]).request_id for a in answers] == [1, 2]
    # two requests in one write
    answers = await call(tcp_raw, port, first + second, 2)
    assert [read_answer(a[20:], a[:20]).request_id for a in answers] == [1, 2]
    # a handle not in the cache, and one that does not exist
    (found,) = await call(tcp_raw, port, miss, 1)
    (missing,) = await call(tcp_raw, port, unknown, 1)
    assert read_answer(found[20:], found[:20]).rc == 1
    assert read_answer(missing[20:], missing[:20]).rc == 100
    assert acceptor.answered == before


async def test_a_connection_that_speaks_late_is_still_served(node):
    """The listener defers accepting until data arrives (TCP_DEFER_ACCEPT); a client that waits
    before writing is accepted when it writes (or after the defer period) and answered."""
    client, port, _ = node
    request = await _cached(client, port, "88.123/ACCEPT-4")
    (answer,) = await call(_slow_send, port, [b"", request], 1, pause=1.5)
    assert read_answer(answer[20:], answer[:20]).rc == 1


async def test_a_large_answer_is_written_whole(node):
    """An answer larger than what the socket takes at once is finished by the loop, whole."""
    client, port, _ = node
    values = [{"index": i, "type": "DESC", "data": "x" * 15_000} for i in range(1, 61)]
    request = await _cached(client, port, "88.123/ACCEPT-BIG", values)

    def slow_reader() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request)
            time.sleep(0.5)  # let the server fill what it can
            envelope = recv_exactly(sock, 20)
            body = recv_exactly(sock, struct.unpack("!I", envelope[16:20])[0])
            assert sock.recv(1) == b""
            return envelope + body

    answer = await call(slow_reader)
    parsed = read_answer(answer[20:], answer[:20])
    assert parsed.rc == 1
    assert len(parsed.handle_and_values()[1]) == 60


async def test_garbage_and_resets_do_not_stop_the_listener(node):
    client, port, _ = node
    request = await _cached(client, port, "88.123/ACCEPT-5")

    def abuse() -> None:
        for payload in (b"\0" * 20, b"\xff" * 64, b"GET / HTTP/1.1\r\n\r\n", request[:30]):
            with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
                sock.sendall(payload)
                sock.shutdown(socket.SHUT_WR)
                sock.settimeout(5)
                while sock.recv(4096):
                    pass
        for _ in range(20):  # connect, write, reset before the server answers
            sock = socket.create_connection(("127.0.0.1", port), timeout=5)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.sendall(request)
            sock.close()

    await call(abuse)
    (answer,) = await call(tcp_raw, port, request, 1)
    assert read_answer(answer[20:], answer[:20]).rc == 1
