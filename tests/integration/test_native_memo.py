"""Repeated native requests answered from kept bytes (resolver/native/memo.py) must be the answers
the full path gives: same octets apart from the ids the client chose and the expiration time,
never stale after a write, and never for requests whose answer depends on more than the kept
fields.

The answer format is the reference's (hdllib Encoder.encodeMessage / AbstractResponse: the
envelope echoes the request's session and request ids, MessageEnvelope; the header's expiration
is the server's clock plus the answer's lifetime; a request digest, Encoder's requestDigest,
hashes the whole request and so changes with the client's expiration time).
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import replace

import pytest

from resolver.http.keys import NATIVE
from resolver.native.memo import shape
from tests.handle_client import (
    OP_FLAG_DIGEST,
    OP_FLAG_PUBLIC_ONLY,
    read_answer,
    request_message,
    resolution_body,
)
from tests.helpers import basic, serving
from tests.integration.test_native import PRODUCT, call, free_port, register
from tests.integration.test_native_fast_path import tcp_raw, udp_raw, without_expiration


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        yield client, port, client.server.app[NATIVE].service.memo


def with_ids(request: bytes, session: int, request_id: int, expiration: int) -> bytes:
    """The same request with other ids in its envelope and another expiration in its header."""
    return (
        request[:4]
        + struct.pack("!II", session, request_id)
        + request[12:36]
        + struct.pack("!I", expiration)
        + request[40:]
    )


def test_the_shape_leaves_out_exactly_the_ids_and_the_expiration() -> None:
    request, _ = request_message(1, resolution_body("88.123/X"))
    assert shape(with_ids(request, 9, 99, 12345)) == shape(request)
    other_flags, _ = request_message(1, resolution_body("88.123/X"), flags=0)
    other_version, _ = request_message(1, resolution_body("88.123/X"), version=(2, 11))
    other_handle, _ = request_message(1, resolution_body("88.123/x"))
    assert len({shape(r) for r in (request, other_flags, other_version, other_handle)}) == 4


@pytest.mark.parametrize("version", [(2, 1), (2, 7), (2, 10), (2, 11)])
async def test_a_repeated_request_gets_the_full_paths_answer_with_its_own_ids(node, version):
    client, port, memo = node
    await register(client, "88.123/MEMO-1", PRODUCT)
    request, _ = request_message(1, resolution_body("88.123/memo-1"), version=version, request_id=5)
    first = await call(udp_raw, port, request)  # read from the database
    second = await call(udp_raw, port, request)  # from the cache, the full way: kept now
    kept = len(memo)
    third = await call(udp_raw, port, with_ids(request, 77, 123456, 999))
    assert len(memo) == kept
    assert without_expiration(first) == without_expiration(second)
    assert third[4:12] == struct.pack("!II", 77, 123456)
    assert without_expiration(third[:4] + second[4:12] + third[12:]) == without_expiration(second)
    answer = read_answer(third[20:], third[:20])
    assert answer.rc == 1 and answer.request_id == 123456
    handle, values = answer.handle_and_values()
    assert handle == "88.123/memo-1" and [v.index for v in values] == [1, 2, 2000]
    expires = struct.unpack_from("!I", third, 36)[0]
    assert abs(expires - struct.unpack_from("!I", second, 36)[0]) <= 2  # the server's clock + 3600


async def test_a_write_is_seen_by_the_next_repetition(node):
    client, port, memo = node
    await register(client, "88.123/MEMO-2", PRODUCT[:1])
    request, _ = request_message(1, resolution_body("88.123/MEMO-2"))
    for _ in range(3):
        await call(udp_raw, port, request)
    assert memo.lookup(request) is not None
    changed = [{"index": 1, "type": "URL", "data": "https://example.com/changed"}]
    resp = await client.put("/api/handles/88.123/MEMO-2", json={"values": changed}, headers=basic())
    assert resp.status in (200, 201)
    for transport in (udp_raw, lambda port, r: tcp_raw(port, r, 1)[0]):
        answer = await call(transport, port, request)
        (value,) = read_answer(answer[20:], answer[:20]).handle_and_values()[1]
        assert value.data == b"https://example.com/changed"
    resp = await client.delete("/api/handles/88.123/MEMO-2", headers=basic())
    assert resp.status == 200
    answer = await call(udp_raw, port, request)
    assert read_answer(answer[20:], answer[:20]).rc == 100


async def test_digest_requests_are_never_kept_and_stay_right(node):
    client, port, memo = node
    await register(client, "88.123/MEMO-3", PRODUCT[:1])  # small: the answer fits a UDP budget
    request, _ = request_message(1, resolution_body("88.123/MEMO-3"), OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST)
    await call(udp_raw, port, request)
    before = len(memo)
    for expiration in (1, 2, 3):
        asked = with_ids(request, 0, 8, expiration)
        answer = await call(udp_raw, port, asked)
        parsed = read_answer(answer[20:], answer[:20])
        assert parsed.rc == 1
        assert parsed.digest == hashlib.sha256(asked[20:-4]).digest()  # of this very request (2.7+)
    assert len(memo) == before and memo.lookup(request) is None


async def test_tcp_one_shot_repetitions_use_the_kept_answer(node):
    client, port, memo = node
    await register(client, "88.123/MEMO-4", PRODUCT)
    request, _ = request_message(1, resolution_body("88.123/MEMO-4"), request_id=3)
    answers = [(await call(tcp_raw, port, with_ids(request, 0, n, n), 1))[0] for n in range(1, 5)]
    assert memo.lookup(request) is not None
    assert [read_answer(a[20:], a[:20]).request_id for a in answers] == [1, 2, 3, 4]
    assert len({without_expiration(a[:8] + a[12:]) for a in answers[1:]}) == 1


async def test_a_continuation_packet_of_a_kept_request_is_not_answered_as_it(node):
    """An envelope whose sequence number is not 0 (a later packet of a message) or whose length
    does not match must go the full way (refused there), even when its octets match a kept request."""
    client, port, memo = node
    await register(client, "88.123/MEMO-5", PRODUCT[:1])
    request, _ = request_message(1, resolution_body("88.123/MEMO-5"))
    for _ in range(2):
        await call(udp_raw, port, request)
    assert memo.lookup(request) is not None
    later = request[:12] + struct.pack("!I", 1) + request[16:]
    answer = await call(udp_raw, port, later)
    assert read_answer(answer[20:], answer[:20]).rc != 1
    cut = request[:16] + struct.pack("!I", len(request)) + request[20:]
    answer = await call(udp_raw, port, cut)
    assert read_answer(answer[20:], answer[:20]).rc != 1


async def test_nothing_is_kept_when_resolutions_are_rate_limited(config):
    from resolver.config import RateLimits

    port = free_port()
    limited = replace(
        config, native_port=port, rate=RateLimits(resolve_per_address=1000.0, resolve_per_address_burst=1000)
    )
    async with serving(limited) as client:
        memo = client.server.app[NATIVE].service.memo
        await register(client, "88.123/MEMO-6", PRODUCT[:1])
        request, _ = request_message(1, resolution_body("88.123/MEMO-6"))
        for _ in range(3):
            answer = await call(udp_raw, port, request)
            assert read_answer(answer[20:], answer[:20]).rc == 1
        assert not memo.enabled and len(memo) == 0


async def test_the_memory_is_bounded_and_forgets_the_oldest(config):
    port = free_port()
    small = replace(config, native_port=port, cache=replace(config.cache, max_entries=8))
    async with serving(small) as client:
        memo = client.server.app[NATIVE].service.memo
        requests = []
        for n in range(12):
            await register(client, f"88.123/BOUND-{n}", PRODUCT[:1])
            request, _ = request_message(1, resolution_body(f"88.123/BOUND-{n}"))
            requests.append(request)
            for _ in range(2):
                answer = await call(udp_raw, port, request)
                assert read_answer(answer[20:], answer[:20]).rc == 1
        assert len(memo) <= 8
        assert memo.lookup(requests[-1]) is not None and memo.lookup(requests[0]) is None
