"""The native Handle protocol over real UDP and TCP sockets, checked with a client written from the
RFCs (tests/handle_client.py): resolution with filters, public-only answers, request digests,
version negotiation, multi-packet UDP answers, site information, unsupported operations and
malformed messages."""

from __future__ import annotations

import asyncio
import socket
import struct
from dataclasses import replace

import asyncpg
import orjson
import pytest

from resolver.http.keys import NATIVE
from tests.handle_client import (
    OP_FLAG_DIGEST,
    OP_FLAG_KEEP_ALIVE,
    OP_FLAG_PUBLIC_ONLY,
    over_tcp,
    over_udp,
    read_site,
    request_message,
    resolution_body,
    sha,
)
from tests.helpers import basic, serving


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return int(port)


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        yield client, port


async def register(client, handle: str, values: list[dict]) -> None:
    resp = await client.put(f"/api/handles/{handle}", json={"values": values}, headers=basic())
    assert resp.status in (200, 201), await resp.text()


def call(function, *args, **kwargs):
    return asyncio.to_thread(function, *args, **kwargs)


PRODUCT = [
    {"index": 1, "type": "URL", "data": "https://example.com/p/1"},
    {"index": 2, "type": "EMAIL", "data": "qa@example.com"},
    {"index": 300, "type": "HS_SECKEY", "data": "not-for-anyone"},
    {"index": 2000, "type": "productName", "data": "螺栓 M8"},
]


async def test_resolution_over_udp_and_tcp_gives_the_public_values_of_the_http_answer(node):
    client, port = node
    await register(client, "88.123/N-1", PRODUCT)
    http = await (await client.get("/api/handles/88.123/N-1")).json()
    request, _ = request_message(1, resolution_body("88.123/N-1"))
    for answer in (await call(over_udp, port, request), (await call(over_tcp, port, request))[0]):
        assert (answer.opcode, answer.rc) == (1, 1)
        handle, values = answer.handle_and_values()
        assert handle == "88.123/N-1"
        assert [(v.index, v.type) for v in values] == [(v["index"], v["type"]) for v in http["values"]]
        assert {v.index: v.data.decode() for v in values}[2000] == "螺栓 M8"
        assert 300 not in {v.index for v in values}  # the secret is not public
        assert all(v.permissions & 0x2 for v in values) and values[0].ttl == 86400 and values[0].timestamp > 0


async def test_index_and_type_filters_and_values_not_found(node):
    client, port = node
    await register(client, "88.123/N-2", PRODUCT)
    by_index, _ = request_message(1, resolution_body("88.123/N-2", [2000]))
    by_type, _ = request_message(1, resolution_body("88.123/N-2", [], ["url", "EMAIL"]))
    nothing, _ = request_message(1, resolution_body("88.123/N-2", [], ["HS_SECKEY"]))
    a, b, c = await asyncio.gather(*(call(over_udp, port, r) for r in (by_index, by_type, nothing)))
    assert [v.index for v in a.handle_and_values()[1]] == [2000]
    assert sorted(v.type for v in b.handle_and_values()[1]) == ["EMAIL", "URL"]
    assert c.rc == 200


async def test_not_found_not_responsible_and_invalid(node):
    _, port = node
    answers = [
        await call(over_udp, port, request_message(1, resolution_body(handle))[0])
        for handle in ("88.123/NOPE", "99.9/ELSEWHERE", "no slash", "no-slash")
    ]
    # a bare prefix is its prefix handle (HandleServer.doResolution,
    # Util.convertSlashlessHandleToZeroNaHandle): 0.NA/no-slash is not this node's
    assert [a.rc for a in answers] == [100, 301, 102, 301]
    assert "88.123" in answers[1].message_text()


@pytest.mark.parametrize(("version", "algorithm"), [((2, 10), 3), ((2, 7), 3), ((2, 5), 2)])
async def test_request_digest_by_protocol_version(node, version, algorithm):
    client, port = node
    await register(client, "88.123/N-3", PRODUCT[:1])
    request, digested = request_message(
        1, resolution_body("88.123/N-3"), OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST, version=version
    )
    answer = await call(over_udp, port, request)
    assert answer.rc == 1 and answer.version == version
    assert answer.digest_algorithm == algorithm and answer.digest == sha(algorithm, digested)
    assert answer.handle_and_values()[0] == "88.123/N-3"


async def test_a_newer_client_is_answered_in_the_newest_version_this_server_speaks(node):
    _, port = node
    (answer,) = await call(over_tcp, port, request_message(2, utf8_empty(), version=(2, 13))[0])
    assert answer.rc == 1 and answer.version == (2, 11) and answer.suggested == (2, 11)


def utf8_empty() -> bytes:
    return struct.pack("!I", 0)


async def test_a_value_set_larger_than_a_packet_comes_in_several_udp_packets(node):
    """Within the UDP budget (3x the request, 4 packets: tests/security/test_amplification.py) an
    answer still comes in several packets; here the request is made large by type filters that
    match nothing, as a client asking for many types would."""
    client, port = node
    many = [{"index": 10 + i, "type": "DESC", "data": f"说明 {i} " + "x" * 80} for i in range(12)]
    await register(client, "88.123/BIG", many)
    body = resolution_body("88.123/BIG", [], ["DESC", *(f"PADDING-{n:03}" for n in range(60))])
    request = request_message(1, body)[0]
    answer = await call(over_udp, port, request)
    assert answer.rc == 1 and answer.packets >= 3
    assert [v.index for v in answer.handle_and_values()[1]] == [10 + i for i in range(12)]
    tcp = (await call(over_tcp, port, request))[0]
    assert tcp.handle_and_values() == answer.handle_and_values()
    # the same values for a small request are more than 3x its size: the client is sent to TCP
    small = await call(over_udp, port, request_message(1, resolution_body("88.123/BIG"))[0])
    assert small.rc == 2 and "TCP" in small.message_text()


async def test_get_site_info_names_this_node_and_its_interfaces(node):
    _, port = node
    (answer,) = await call(over_tcp, port, request_message(2, utf8_empty())[0])
    assert (answer.opcode, answer.rc) == (2, 1)
    site = read_site(answer.body)
    assert site["serial"] == 1 and site["primary"] and site["attributes"]["node"] == "88.123"
    interfaces = site["servers"][0]["interfaces"]
    assert (3, 1, port) in interfaces and (2, 0, port) in interfaces  # TCP admin and query, UDP query
    assert site["servers"][0]["address"][-4:] == bytes([127, 0, 0, 1])
    # over UDP the site record is more than 3x a bare request: the client is told to use TCP
    udp = await call(over_udp, port, request_message(2, utf8_empty())[0])
    assert (udp.opcode, udp.rc) == (2, 2) and "TCP" in udp.message_text()


async def test_other_operations_are_not_supported(node):
    _, port = node
    for opcode in (3, 300, 403, 1000, 2001):
        answer = await call(over_udp, port, request_message(opcode, resolution_body("88.123/X"))[0])
        assert (answer.opcode, answer.rc) == (opcode, 5)
    # administration (tests/integration/test_native_admin.py) and sessions (test_native_sessions.py)
    # are over TCP: UDP is told to move on
    for opcode in (100, 101, 105, 200, 400):
        answer = await call(over_udp, port, request_message(opcode, resolution_body("88.123/X"))[0])
        assert (answer.opcode, answer.rc) == (opcode, 2) and "TCP" in answer.message_text()


async def test_tcp_keeps_the_connection_for_several_requests_when_asked(node):
    client, port = node
    await register(client, "88.123/N-4", PRODUCT[:1])
    keep, _ = request_message(1, resolution_body("88.123/N-4"), OP_FLAG_PUBLIC_ONLY | OP_FLAG_KEEP_ALIVE)
    last, _ = request_message(1, resolution_body("88.123/NOPE"))
    answers = await call(over_tcp, port, keep, keep, last)
    assert [a.rc for a in answers] == [1, 1, 100]


async def test_garbage_and_truncated_messages_get_a_protocol_error_and_never_stop_the_server(node):
    client, port = node
    await register(client, "88.123/N-5", PRODUCT[:1])

    def blast() -> list[int]:
        codes = []
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(1.0)
            for junk in (b"", b"\x00" * 5, b"\xff" * 600, bytes(range(256))):
                sock.sendto(junk, ("127.0.0.1", port))
            # a whole envelope whose header announces more body than arrived
            request, _ = request_message(1, resolution_body("88.123/N-5"), body_length=5000)
            sock.sendto(request, ("127.0.0.1", port))
            while True:
                try:
                    packet, _ = sock.recvfrom(65535)
                except TimeoutError:
                    break
                codes.append(struct.unpack("!I", packet[24:28])[0])
        return codes

    codes = await call(blast)
    assert codes and set(codes) == {4}

    # a TCP envelope that promises a huge message is refused, not awaited
    def huge() -> int:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(bytes([2, 10, 0, 0]) + struct.pack("!IIII", 0, 1, 0, 1 << 30))
            data = sock.recv(65535)
            return int(struct.unpack("!I", data[24:28])[0])

    assert await call(huge) == 4
    # and the server still answers
    answer = await call(over_udp, port, request_message(1, resolution_body("88.123/N-5"))[0])
    assert answer.rc == 1


async def test_native_resolutions_count_in_the_metrics_and_daily_statistics(node):
    from resolver.http.keys import CONFIG, DAILY, STORE

    client, port = node
    await register(client, "88.123/N-6", PRODUCT[:1])
    for _ in range(3):
        await call(over_udp, port, request_message(1, resolution_body("88.123/N-6"))[0])
    await call(over_tcp, port, request_message(1, resolution_body("88.123/N-6"))[0])
    await asyncio.sleep(1.2)  # metrics are flushed once a second
    text = await (await client.get("/metrics")).text()
    assert 'resolver_http_requests_total{method="RESOLVE",route="native:udp",status="2xx"} 3.0' in text
    assert 'route="native:tcp"' in text
    app = client.server.app
    await app[DAILY].flush(app[STORE])
    conn = await asyncpg.connect(app[CONFIG].dsn)
    try:
        resolved = await conn.fetchval("select sum(resolutions) from daily_counts where prefix = '88.123'")
    finally:
        await conn.close()
    assert resolved >= 4


async def test_native_resolutions_obey_the_resolution_rate_limit(config):
    from resolver.config import RateLimits

    port = free_port()
    limited = replace(
        config, native_port=port, rate=RateLimits(resolve_per_address=1.0, resolve_per_address_burst=1)
    )
    async with serving(limited) as client:
        await register(client, "88.123/N-7", PRODUCT[:1])
        request, _ = request_message(1, resolution_body("88.123/N-7"))
        first = await call(over_udp, port, request)
        second = await call(over_udp, port, request)
        assert (first.rc, second.rc) == (1, 3)


MALFORMED_SITES = [
    {"servers": ["junk"]},
    {"version": 70000},
    {"primaryMask": "x"},
    {"servers": [{"address": "127.0.0.1", "interfaces": [{"protocol": "TCP", "port": 70000}]}]},
]


@pytest.mark.parametrize("site", MALFORMED_SITES)
async def test_a_malformed_structured_value_is_refused_on_write(node, site):
    client, port = node
    value = {"index": 5, "type": "HS_SITE", "data": {"format": "site", "value": site}}
    resp = await client.put("/api/handles/88.123/SITE-1", json={"values": [value]}, headers=basic())
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 202 and "site data" in body["message"]
    answer = await call(over_udp, port, request_message(1, resolution_body("88.123/SITE-1"))[0])
    assert answer.rc == 100


async def test_the_refusal_names_the_value_index(node):
    client, _ = node
    value = {"index": 5, "type": "HS_SITE", "data": {"format": "site", "value": MALFORMED_SITES[0]}}
    resp = await client.put("/api/handles/88.123/SITE-2", json={"values": [value]}, headers=basic())
    assert "value 5" in (await resp.json())["message"]


async def test_a_stored_value_without_a_binary_form_is_answered_with_an_error_naming_it(node):
    """Values stored before structured data was checked on write: the native answer is rc 2
    naming the value, over UDP and TCP, instead of no answer at all."""
    from resolver.http.keys import CONFIG

    client, port = node
    conn = await asyncpg.connect(client.server.app[CONFIG].dsn)
    try:
        for n, site in enumerate(MALFORMED_SITES):
            values = [
                {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://x.cn"}, "ttl": 60},
                {"index": 5, "type": "HS_SITE", "data": {"format": "site", "value": site}, "ttl": 60},
            ]
            await conn.execute(
                "insert into handles (key, handle, prefix, vals) values ($1, $1, '88.123', $2::json)",
                f"88.123/old-{n}",
                orjson.dumps(values).decode(),
            )
    finally:
        await conn.close()
    for n in range(len(MALFORMED_SITES)):
        request = request_message(1, resolution_body(f"88.123/OLD-{n}"))[0]
        for answer in (await call(over_udp, port, request), (await call(over_tcp, port, request))[0]):
            assert answer.rc == 2 and "value 5" in answer.message_text()
        # the value that can be encoded is still there for a client that asks for it
        one = await call(over_udp, port, request_message(1, resolution_body(f"88.123/OLD-{n}", [1]))[0])
        assert one.rc == 1 and [v.index for v in one.handle_and_values()[1]] == [1]


async def test_tcp_connections_per_address_are_capped(config):
    """A client that opens connections and never sends holds at most its share of the cap; the
    next connection is closed at once, and a slot frees when one of them closes."""
    port = free_port()
    async with serving(replace(config, native_port=port, max_connections_per_address=5)) as client:
        await register(client, "88.123/CAP-1", [{"index": 1, "type": "URL", "data": "https://a"}])
        request = request_message(1, resolution_body("88.123/CAP-1"))[0]
        held = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
        try:

            def refused() -> bool:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as extra:
                    extra.sendall(request)
                    try:
                        return extra.recv(1) == b""
                    except ConnectionResetError:
                        return True

            # the server counts a connection once it has accepted it: wait until all five are in
            deadline = asyncio.get_running_loop().time() + 10
            guard = client.server.app[NATIVE].tcp_guard
            while guard.held_by("127.0.0.1") < 5:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            assert await call(refused)
            held.pop().close()
            while guard.held_by("127.0.0.1") >= 5:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            (answer,) = await call(over_tcp, port, request)
            assert answer.rc == 1
        finally:
            for sock in held:
                sock.close()
