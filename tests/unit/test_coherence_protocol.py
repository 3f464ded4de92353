"""The acknowledgement protocol's pieces (resolver.store.coherence), without a database."""

from __future__ import annotations

import asyncio
import time

import pytest

from resolver.cache import Trust
from resolver.store.coherence import (
    Coherence,
    ack_channel,
    ack_payloads,
    parse_ack,
    parse_origin,
)
from resolver.store.notifications import (
    MAX_PAYLOAD_BYTES,
    notification_payloads,
    parse_payload,
    payload_origin,
)


def test_payloads_carry_the_origin_and_old_listeners_still_read_them():
    payloads = notification_payloads(
        [f"88.123/{'k' * 100}-{i}" for i in range(200)], 12.5, "resolver_ack_42 7"
    )
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    for payload in payloads:
        assert parse_payload(payload)[0] == 12.5
        assert parse_origin(payload_origin(payload)) == ("resolver_ack_42", 7)
    assert payload_origin(notification_payloads(["88.123/a"], 1.0)[0]) == ""


@pytest.mark.parametrize(
    "token",
    ["", "resolver_ack_1", "resolver_ack_1 x", "other_1 5", "resolver_ack_1 -5", "resolver_ack_1 5 6"],
)
def test_malformed_origins_are_not_acknowledged(token):
    assert parse_origin(token) is None


def test_acknowledgements_round_trip_and_stay_under_the_payload_limit():
    sequences = list(range(10**12, 10**12 + 1500))
    payloads = ack_payloads(2**31 - 1, sequences)
    assert len(payloads) == 3  # 14 octets a number: about 560 a payload
    assert all(len(p) < 8000 for p in payloads)
    parsed = [parse_ack(p) for p in payloads]
    assert all(p is not None and p[0] == 2**31 - 1 for p in parsed)
    assert [s for p in parsed if p is not None for s in p[1]] == sequences
    assert parse_ack("x 1,2") is None
    assert parse_ack("12 1,,x,3") == (12, [1, 3])


async def test_a_write_waits_for_every_member_and_counts_acks_that_came_early():
    coherence = Coherence(2.0)
    coherence.channel = ack_channel(1)
    origin = coherence.origin()
    assert origin is not None
    token, sequence = origin
    assert parse_origin(token) == ("resolver_ack_1", sequence)
    coherence.acknowledged(10, [sequence])  # before the writer knew who listens
    waiting = asyncio.create_task(coherence.confirm(sequence, {10, 11}, time.monotonic()))
    await asyncio.sleep(0.01)
    assert not waiting.done()
    coherence.acknowledged(11, [sequence + 1000])  # someone else's number: ignored
    await asyncio.sleep(0.01)
    assert not waiting.done()
    coherence.acknowledged(11, [sequence])
    await asyncio.wait_for(waiting, 1.0)
    assert (coherence.waits, coherence.timeouts) == (1, 0)


async def test_a_silent_member_holds_the_write_for_the_bound_only():
    coherence = Coherence(0.2)
    coherence.channel = ack_channel(1)
    origin = coherence.origin()
    assert origin is not None
    started = time.monotonic()
    await coherence.confirm(origin[1], {10}, started)
    assert 0.15 < time.monotonic() - started < 1.0
    assert coherence.timeouts == 1
    assert coherence.lease < coherence.wait


async def test_without_its_own_listener_a_writer_waits_the_bound_and_with_no_member_not_at_all():
    coherence = Coherence(0.2)
    origin = coherence.origin()
    assert origin is not None and origin[0] == ""  # nowhere to answer to
    started = time.monotonic()
    await coherence.confirm(origin[1], {10}, started)
    assert time.monotonic() - started > 0.15
    assert coherence.timeouts == 0  # nobody could have answered: not a failure of a listener
    lonely = Coherence(0.2)
    origin = lonely.origin()
    assert origin is not None
    started = time.monotonic()
    await lonely.confirm(origin[1], set(), started)
    assert time.monotonic() - started < 0.1


def test_off_means_no_origin_and_no_lease():
    coherence = Coherence(0)
    assert coherence.origin() is None
    assert coherence.lease == float("inf")


def test_trust_needs_the_feed_up_and_a_running_lease():
    trust = Trust()
    assert not trust
    trust.up = True
    assert trust
    trust.until = time.monotonic() - 1
    assert not trust
    trust.until = time.monotonic() + 10
    assert trust
