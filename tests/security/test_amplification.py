"""UDP reflection: an unauthenticated native answer is never much larger than its request.

Anyone can send a UDP request with somebody else's source address, so an answer larger than the
request makes the node an amplifier against that address. The node answers over UDP at most
`UDP_MAX_AMPLIFICATION` (3) times the request's octets and at most `UDP_MAX_ANSWER_PACKETS`
packets; a larger answer becomes a short RC_ERROR "retry over TCP", and every client network
(/24, /56) gets a bounded number of UDP answers per second (response rate limiting, as BIND does),
beyond which only every `slip`-th request gets that short error and the rest get nothing.

Why RC_ERROR: in the reference client (CNRI Handle.Net, `MistraR/handle`),
`src/main/java/net/handle/hdllib/HandleResolver.java`, `sendRequestToInterface` turns an answer
with RC_ERROR into a `HandleException(SERVER_ERROR)`, and its callers (`sendRequestToServer`, and
`HappyEyeballsResolver.sendRequestToSites` in `HappyEyeballsResolver.java`) catch it and try the
next of `preferredProtocols` = UDP, TCP, HTTP: the client asks again over TCP at once. Any other
response code is handed to the application as the final answer (rc 3 "server too busy" would be an
error for the user, not a retry), and no answer at all makes `sendHdlUdpRequest` wait out its retry
scheme (500, 1000, 1500 ms) before the same fallback. The reference server itself
(`src/main/java/net/handle/server/HdlUdpRequestHandler.java`, `handleResponse`) splits any answer
into as many 492-octet packets as it takes: that is the behaviour this node deliberately does not
follow.

Run with `-s` to see the measured factors.
"""

from __future__ import annotations

import asyncio
import io
import socket
import struct
from dataclasses import replace

import orjson
import pytest

from tests.handle_client import (
    OP_FLAG_DIGEST,
    OP_FLAG_PUBLIC_ONLY,
    over_tcp,
    request_message,
    resolution_body,
)
from tests.helpers import basic, serving
from tests.integration.test_native import free_port

pytestmark = pytest.mark.integration

BIG = "88.123/AMPLIFY1"  # 15 characters: its resolution request is 75 octets
VALUE_BYTES = 16_000
BIG_VALUES = [{"index": 10 + i, "type": "DESC", "data": "x" * VALUE_BYTES} for i in range(200)]
SMALL = "88.123/SMALL"


async def register(client, handle: str, values: list[dict]) -> None:
    body = io.BytesIO(orjson.dumps({"values": values}))  # a stream: aiohttp warns about big bytes
    headers = {**basic(), "Content-Type": "application/json"}
    resp = await client.put(f"/api/handles/{handle}", data=body, headers=headers)
    assert resp.status in (200, 201), await resp.text()


def exchange(port: int, requests: list[bytes], source: str = "127.0.0.1", quiet: float = 1.0) -> list[bytes]:
    """Send the datagrams from one socket bound to `source`; return every datagram that comes
    back until nothing has arrived for `quiet` seconds (a bound on waiting, not a measurement)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        sock.bind((source, 0))
        sock.settimeout(quiet)
        for request in requests:
            sock.sendto(request, ("127.0.0.1", port))
        received = []
        while True:
            try:
                packet, _ = sock.recvfrom(65535)
            except TimeoutError:
                return received
            received.append(packet)


def rc_of(packet: bytes) -> int:
    return int(struct.unpack("!I", packet[24:28])[0])


def request_id_of(packet: bytes) -> int:
    return int(struct.unpack("!I", packet[8:12])[0])


def message_of(packet: bytes) -> str:
    # header (24), then the body: an optional request digest, then the error message as UTF8-String
    flags, body_length = struct.unpack("!I", packet[28:32])[0], struct.unpack("!I", packet[40:44])[0]
    body = packet[44 : 44 + body_length]
    if flags & OP_FLAG_DIGEST:
        body = body[1 + {1: 16, 2: 20, 3: 32}[body[0]] :]
    (length,) = struct.unpack("!I", body[:4])
    return body[4 : 4 + length].decode()


@pytest.fixture
async def node(config):
    port = free_port()
    bigger = replace(config.limits, max_body_bytes=8 * 1024 * 1024)
    async with serving(replace(config, native_port=port, limits=bigger)) as client:
        await register(client, BIG, BIG_VALUES)
        await register(client, SMALL, [{"index": 1, "type": "URL", "data": "https://example.com/s"}])
        yield client, port


@pytest.mark.parametrize(
    "flags", [OP_FLAG_PUBLIC_ONLY, OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST], ids=["plain", "digest"]
)
async def test_a_large_answer_is_at_most_three_times_the_request_and_says_use_tcp(node, flags):
    _, port = node
    request, _ = request_message(1, resolution_body(BIG), flags)
    assert len(request) == 75
    answer = await asyncio.to_thread(exchange, port, [request])
    sent = sum(len(packet) for packet in answer)
    print(f"\n75-octet request for {BIG}: {len(answer)} datagrams, {sent} octets, x{sent / len(request):.2f}")
    assert answer, "a client must be told to use TCP, not left waiting"
    assert sent <= 3 * len(request)
    assert len(answer) == 1 and rc_of(answer[0]) == 2 and "TCP" in message_of(answer[0])


async def test_the_same_handle_is_answered_in_full_over_tcp(node):
    _, port = node
    request, _ = request_message(1, resolution_body(BIG))
    (answer,) = await asyncio.to_thread(over_tcp, port, request, timeout=30)
    handle, values = answer.handle_and_values()
    assert answer.rc == 1 and handle == BIG
    assert [(v.index, len(v.data)) for v in values] == [(v["index"], VALUE_BYTES) for v in BIG_VALUES]


async def test_a_small_answer_still_comes_over_udp_within_the_bound(node):
    _, port = node
    request, _ = request_message(1, resolution_body(SMALL))
    answer = await asyncio.to_thread(exchange, port, [request])
    sent = sum(len(packet) for packet in answer)
    print(f"\n{len(request)}-octet request for {SMALL}: {sent} octets, x{sent / len(request):.2f}")
    assert len(answer) == 1 and rc_of(answer[0]) == 1 and sent <= 3 * len(request)


async def test_junk_and_refusals_are_never_amplified(node):
    _, port = node
    resolution, _ = request_message(1, resolution_body(SMALL))
    junk = [
        bytes([2, 10, 0, 0]) + bytes(16) + b"\x00",  # an envelope and one octet
        bytes([2, 10, 0, 0]) + bytes(16),  # an envelope alone
        bytes([9, 9, 0, 0]) + struct.pack("!IIII", 0, 1, 0, 24) + bytes(24),  # a version nobody speaks
        resolution[:50],  # cut short
        request_message(1, resolution_body(SMALL), body_length=5000)[0],  # a lying body length
        request_message(77, b"")[0],  # an unknown operation
    ]
    for datagram in junk:
        answer = await asyncio.to_thread(exchange, port, [datagram], quiet=0.5)
        assert sum(len(packet) for packet in answer) <= 3 * len(datagram), datagram


async def test_answers_per_client_network_are_limited_and_every_second_refusal_says_use_tcp(config):
    port = free_port()
    limited = replace(config, native_port=port, native_udp_rate=0.001, native_udp_burst=5, native_udp_slip=2)
    async with serving(limited) as client:
        await register(client, SMALL, [{"index": 1, "type": "URL", "data": "https://example.com/s"}])
        requests = [request_message(1, resolution_body(SMALL), request_id=1000 + n)[0] for n in range(40)]
        flood = await asyncio.to_thread(exchange, port, requests)
        by_rc: dict[int, int] = {}
        for packet in flood:
            by_rc[rc_of(packet)] = by_rc.get(rc_of(packet), 0) + 1
        print(f"\n40 requests from one network: {by_rc.get(1, 0)} answers, {by_rc.get(2, 0)} 'use TCP'")
        # the burst (0.001 tokens a second come back: not one more in any test's lifetime)
        assert by_rc.get(1) == 5
        # of the 35 refused, every second one is told to use TCP, the others get nothing
        assert by_rc.get(2) == 35 // 2 and set(by_rc) == {1, 2}
        assert len({request_id_of(packet) for packet in flood}) == len(flood)
        assert all(len(packet) <= 3 * len(requests[0]) for packet in flood)
        # another /24 has its own budget; the limited one still gets through over TCP
        other = await asyncio.to_thread(exchange, port, requests[:1], "127.0.1.1")
        assert [rc_of(packet) for packet in other] == [1]
        (tcp,) = await asyncio.to_thread(over_tcp, port, requests[0])
        assert tcp.rc == 1


def test_networks_are_slash_24_and_slash_56_and_the_bucket_counts_answers():
    from resolver.native.reflection import ResponseRateLimiter, Verdict, budget, network_of

    assert network_of("192.0.2.7") == network_of("192.0.2.250") != network_of("192.0.3.7")
    assert network_of("::ffff:192.0.2.7") == network_of("192.0.2.1")
    assert network_of("2001:db8:0:ff::1") == network_of("2001:db8:0:12::9") != network_of("2001:db8:0:100::1")
    limiter = ResponseRateLimiter(rate=1.0, burst=3, slip=3)
    verdicts = [limiter.verdict("192.0.2.1", 100.0) for _ in range(9)]
    assert verdicts == [Verdict.ANSWER] * 3 + [Verdict.DROP, Verdict.DROP, Verdict.SLIP] * 2
    assert limiter.verdict("192.0.2.9", 101.0) is Verdict.ANSWER  # one token a second comes back
    assert limiter.verdict("198.51.100.1", 100.0) is Verdict.ANSWER
    assert ResponseRateLimiter(rate=0, burst=0, slip=2).verdict("192.0.2.1", 0.0) is Verdict.ANSWER
    assert budget(75) == 225 and budget(1400) == 4 * 512


async def test_an_answer_replaced_by_use_tcp_is_not_counted_as_a_resolution(config, monkeypatch):
    from resolver.http.keys import DAILY
    from resolver.services import statistics as stats

    # counts stay in the worker's memory for the whole test: no flush moves them meanwhile
    monkeypatch.setattr(stats, "FLUSH_SECONDS", 3600.0)
    port = free_port()
    bigger = replace(config.limits, max_body_bytes=8 * 1024 * 1024)
    async with serving(replace(config, native_port=port, limits=bigger)) as client:
        await register(client, BIG, BIG_VALUES)
        await register(client, SMALL, [{"index": 1, "type": "URL", "data": "https://example.com/s"}])
        daily = client.server.app[DAILY]

        def resolutions() -> int:
            return daily.counts.get("88.123", [0, 0, 0])[1]

        before = resolutions()
        request, _ = request_message(1, resolution_body(BIG))
        (use_tcp,) = await asyncio.to_thread(exchange, port, [request])
        assert rc_of(use_tcp) == 2 and "TCP" in message_of(use_tcp)
        assert resolutions() == before  # nothing was delivered
        (answer,) = await asyncio.to_thread(over_tcp, port, request, timeout=30)
        assert answer.rc == 1
        assert resolutions() == before + 1  # the retry over TCP is the one resolution
        small = await asyncio.to_thread(exchange, port, [request_message(1, resolution_body(SMALL))[0]])
        assert [rc_of(packet) for packet in small] == [1]
        assert resolutions() == before + 2  # an answer that fits a packet counts as before
