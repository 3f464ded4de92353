"""What an anonymous client can make the node spend before anything is proven: the PBKDF2 work of
a challenge answer, and the network a client address is limited as (no database, no sockets)."""

from __future__ import annotations

import struct

from resolver.http.ratelimit import client_network
from resolver.services.authentication import MAX_PBKDF2_ITERATIONS, pbkdf2_work


def pbkdf2_answer(iterations: int, bits: int) -> bytes:
    def octets(data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + data

    return b"\x22" + octets(b"salt") + struct.pack(">II", iterations, bits) + octets(b"\0" * 20)


def test_pbkdf2_work_counts_every_160_bit_block_of_the_key() -> None:
    # RFC 8018 section 5.2: T_i = F(P, S, c, i) for each hLen-sized block of the derived key
    assert pbkdf2_work(pbkdf2_answer(10_000, 160)) == 10_000  # hdllib's answer: one block
    assert pbkdf2_work(pbkdf2_answer(10_000, 168)) == 20_000  # a partial block is a whole one
    assert pbkdf2_work(pbkdf2_answer(10_000, 4096)) == 260_000
    assert pbkdf2_work(pbkdf2_answer(10_000, 4096)) > MAX_PBKDF2_ITERATIONS >= 10_000


def test_other_answers_cost_no_pbkdf2() -> None:
    assert pbkdf2_work(b"") == 0
    assert pbkdf2_work(b"\x02" + b"\0" * 20) == 0  # SHA-1 of secret and challenge
    assert pbkdf2_work(b"\x22\0\0") == 0  # cut short: refused by the check itself, for nothing


def test_limits_count_an_ipv6_client_by_its_64() -> None:
    assert client_network("192.0.2.7") == "192.0.2.7"
    assert (
        client_network("2001:db8:1:2:aaaa::1")
        == client_network("2001:db8:1:2:ffff::9")
        == "2001:db8:1:2::/64"
    )
    assert client_network("::ffff:192.0.2.7") == "192.0.2.7"
    assert client_network("fe80::1%eth0") == "fe80::/64"
    assert client_network("not an address") == "not an address"
