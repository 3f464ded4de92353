"""The native listeners answer cached handles at once (NativeService.answer_cached) and the rest
through the database (NativeService.answer): the two must be indistinguishable to a client, and the
TCP connection (a plain asyncio Protocol) must keep the stream's order and framing as the reference
client reads it (hdllib TcpRdr / HandleResolver.sendHdlTcpRequest: envelope, then exactly `length`
octets, one answer per request, in request order)."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace

import pytest

from tests.handle_client import (
    OP_FLAG_DIGEST,
    OP_FLAG_KEEP_ALIVE,
    OP_FLAG_PUBLIC_ONLY,
    read_answer,
    recv_exactly,
    request_message,
    resolution_body,
)
from tests.helpers import basic, serving
from tests.integration.test_native import PRODUCT, free_port, register


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        yield client, port


def udp_raw(port: int, request: bytes) -> bytes:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.sendto(request, ("127.0.0.1", port))
        return sock.recvfrom(65535)[0]


def tcp_raw(port: int, payload: bytes, answers: int, *, half_close: bool = False) -> list[bytes]:
    """Send `payload` in one go (several requests pipelined), read `answers` framed answers."""
    out = []
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(payload)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        for _ in range(answers):
            envelope = recv_exactly(sock, 20)
            out.append(envelope + recv_exactly(sock, struct.unpack("!I", envelope[16:20])[0]))
        sock.settimeout(2)
        assert sock.recv(1) == b""  # then closed: the last request did not ask to keep it
    return out


def without_expiration(answer: bytes) -> bytes:
    """An answer with its header's expiration time (message octets 16-19) zeroed."""
    return answer[:36] + b"\0\0\0\0" + answer[40:]


def call(function, *args, **kwargs):
    return asyncio.to_thread(function, *args, **kwargs)


@pytest.mark.parametrize("flags", [OP_FLAG_PUBLIC_ONLY, OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST, 0])
async def test_a_cached_answer_is_the_uncached_answer_byte_for_byte(node, flags):
    client, port = node
    await register(client, "88.123/FAST-1", PRODUCT)
    # the handle as the client wrote it is echoed: case and scheme kept
    for sent in ("88.123/FAST-1", "hdl:88.123/fast-1"):
        for transport in ("udp", "tcp"):
            request, _ = request_message(1, resolution_body(sent), flags, request_id=41)
            await client.put(
                "/api/handles/88.123/FAST-1", json={"values": PRODUCT}, headers=basic()
            )  # forgotten: the next answer is read from the database
            if transport == "udp":
                first, second = await call(udp_raw, port, request), await call(udp_raw, port, request)
            else:
                first = (await call(tcp_raw, port, request, 1))[0]
                second = (await call(tcp_raw, port, request, 1))[0]
            assert without_expiration(first) == without_expiration(second), (sent, transport)
            answer = read_answer(second[20:], second[:20])
            assert answer.request_id == 41
            if answer.rc == 2:  # more than a UDP request of this size may bring back: "use TCP", twice
                assert transport == "udp" and "TCP" in answer.message_text()
                continue
            assert answer.rc == 1
            handle, values = answer.handle_and_values()
            assert handle == sent and [v.index for v in values] == [1, 2, 2000]


async def test_filtered_and_unfiltered_requests_on_a_cached_handle(node):
    client, port = node
    await register(client, "88.123/FAST-2", PRODUCT)
    plain, _ = request_message(1, resolution_body("88.123/FAST-2"))
    await call(udp_raw, port, plain)  # cached now
    typed, _ = request_message(1, resolution_body("88.123/FAST-2", types=["URL"]))
    indexed, _ = request_message(1, resolution_body("88.123/FAST-2", indexes=[2000]))
    nothing, _ = request_message(1, resolution_body("88.123/FAST-2", types=["NOPE"]))
    answers = [
        read_answer(a[20:], a[:20]) for a in [await call(udp_raw, port, r) for r in (typed, indexed, nothing)]
    ]
    assert [[v.index for v in a.handle_and_values()[1]] for a in answers[:2]] == [[1], [2000]]
    assert answers[2].rc == 200


async def test_pipelined_requests_mixing_database_reads_and_cache_hits_keep_their_order(node):
    """A miss (read from the database by a task) ahead of hits: the hits wait their turn."""
    client, port = node
    await register(client, "88.123/FAST-3", PRODUCT[:1])
    await register(client, "88.123/FAST-4", PRODUCT[:1])
    warm, _ = request_message(1, resolution_body("88.123/FAST-4"))
    await call(udp_raw, port, warm)
    keep = OP_FLAG_PUBLIC_ONLY | OP_FLAG_KEEP_ALIVE
    requests = [
        request_message(1, resolution_body("88.123/FAST-3"), keep, request_id=1)[0],  # a miss
        request_message(1, resolution_body("88.123/FAST-4"), keep, request_id=2)[0],  # a hit
        request_message(1, resolution_body("88.123/NONE"), keep, request_id=3)[0],  # not found
        request_message(1, resolution_body("88.123/FAST-4"), OP_FLAG_PUBLIC_ONLY, request_id=4)[0],
    ]
    answers = [read_answer(a[20:], a[:20]) for a in await call(tcp_raw, port, b"".join(requests), 4)]
    assert [(a.request_id, a.rc) for a in answers] == [(1, 1), (2, 1), (3, 100), (4, 1)]


async def test_a_request_in_pieces_and_a_client_that_half_closes_are_answered(node):
    client, port = node
    await register(client, "88.123/FAST-5", PRODUCT[:1])
    request, _ = request_message(1, resolution_body("88.123/FAST-5"))
    # the client says it has sent everything: the answer still comes, then the close
    assert (
        read_answer(
            *(lambda a: (a[20:], a[:20]))((await call(tcp_raw, port, request, 1, half_close=True))[0])
        ).rc
        == 1
    )

    def in_pieces() -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            for i in range(0, len(request), 7):
                sock.sendall(request[i : i + 7])
            envelope = recv_exactly(sock, 20)
            return envelope + recv_exactly(sock, struct.unpack("!I", envelope[16:20])[0])

    answer = await call(in_pieces)
    assert read_answer(answer[20:], answer[:20]).rc == 1


async def test_a_client_that_never_reads_does_not_stop_others(node):
    """Thousands of keep-alive requests for a large answer, never read: the connection stops being
    read while its answers cannot be written, and other clients are answered meanwhile."""
    client, port = node
    big = [{"index": i, "type": "DESC", "data": "x" * 1000} for i in range(1, 60)]
    await register(client, "88.123/FAST-6", big)
    keep, _ = request_message(1, resolution_body("88.123/FAST-6"), OP_FLAG_PUBLIC_ONLY | OP_FLAG_KEEP_ALIVE)
    hog = socket.create_connection(("127.0.0.1", port), timeout=5)
    hog.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        hog.setblocking(False)
        sent = 0
        for _ in range(5000):
            try:
                sent += hog.send(keep)
            except BlockingIOError:
                break
        plain, _ = request_message(1, resolution_body("88.123/FAST-6"))
        answers = await call(tcp_raw, port, plain, 1)
        assert read_answer(answers[0][20:], answers[0][:20]).rc == 1
        assert sent > 0
    finally:
        hog.close()
