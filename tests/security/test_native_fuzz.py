"""A fuzzer for the native Handle protocol, against the real `resolver serve` process.

Messages come from two sources, both drawn by hypothesis: messages built field by field (every
envelope and header field free, bodies of resolution requests whose counts and string lengths may
lie), and valid requests for stored handles mutated (bit flips, truncation, length fields set to
0, huge or "negative" values, random opCodes and protocol versions, junk appended). Each goes over
UDP or TCP to 127.0.0.1. What must hold:

- every TCP connection, after the client half-closes it, gets well-formed answers and then a clean
  close within a timeout (no hang, no reset without an answer);
- every UDP packet that comes back is a well-formed envelope of at most 512 octets, and all UDP
  answers together are at most 3x the octets sent (the amplification bound);
- the process never dies, its log holds no traceback, and afterwards `/healthz` answers and a
  valid resolution still answers over UDP and TCP.

The run is bounded (FUZZ_SECONDS of sending, about 60 s with the node's start). It prints its seed;
`RESOLVER_FUZZ_SEED=<seed> pytest tests/security/test_native_fuzz.py -s` replays it (hypothesis runs
of CHUNK examples seeded SEED, SEED + 1, ...), and a failure prints the falsifying example (the
message in hex) and a `@reproduce_failure` blob.
"""

from __future__ import annotations

import os
import random
import select
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from hypothesis import HealthCheck, given, note, seed, settings
from hypothesis import strategies as st

from tests.handle_client import (
    OP_FLAG_DIGEST,
    OP_FLAG_KEEP_ALIVE,
    OP_FLAG_PUBLIC_ONLY,
    over_tcp,
    over_udp,
    read_answer,
    read_site,
    recv_exactly,
    request_message,
    resolution_body,
)
from tests.helpers import NODE_PREFIX, admin_json
from tests.integration.test_native import free_port
from tests.nodes import start_node

pytestmark = pytest.mark.e2e

FUZZ_SECONDS = float(os.environ.get("RESOLVER_FUZZ_SECONDS", "40"))
SEED = int(os.environ.get("RESOLVER_FUZZ_SEED") or random.SystemRandom().randrange(2**32))
TCP_TIMEOUT = 5.0  # far above any answer on loopback, far below the server's 30 s idle timeout
UDP_WAIT = 0.05
CHUNK = 100
# 402: a challenge to an admin request (TCP only); 405: an answer to no pending challenge
KNOWN_RCS = {1, 2, 3, 4, 5, 100, 102, 200, 301, 402, 405}

HANDLES = {
    f"{NODE_PREFIX}/FUZZ-1": [
        {"index": 1, "type": "URL", "data": "https://example.com/fuzz"},
        {"index": 2, "type": "EMAIL", "data": "fuzz@example.com"},
        {"index": 300, "type": "HS_SECKEY", "data": "never-public"},
        {"index": 2000, "type": "productName", "data": "螺栓 M8"},
    ],
    f"{NODE_PREFIX}/FUZZ-ADMIN": [
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": "0.NA/88.123", "index": 300, "permissions": "0111"},
            },
        },
        {
            "index": 200,
            "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": "a/b", "index": 1}]},
        },
        {
            "index": 1,
            "type": "HS_SITE",
            "data": {
                "format": "site",
                "value": {
                    "servers": [
                        {
                            "address": "10.0.0.1",
                            "interfaces": [{"query": True, "protocol": "UDP", "port": 2641}],
                        }
                    ]
                },
            },
        },
    ],
    f"{NODE_PREFIX}/FUZZ-BIG": [{"index": 10 + i, "type": "DESC", "data": "x" * 300} for i in range(20)],
}


@dataclass
class Tally:
    """What the run sent and got back, for the aggregate checks and the summary line."""

    udp_in: int = 0
    udp_out: int = 0
    udp_sent: int = 0
    udp_answered: int = 0
    tcp_connections: int = 0
    tcp_answers: int = 0
    started: float = field(default_factory=time.monotonic)


def check_message(envelope: bytes, message: bytes) -> None:
    """An answer is a well-formed envelope and message with a known response code and a body
    that reads to its end."""
    major, minor = envelope[0], envelope[1]
    assert (major, 0) <= (2, minor) <= (2, 11), envelope.hex()
    (length,) = struct.unpack("!I", envelope[16:20])
    assert length == len(message), (length, len(message))
    assert len(message) >= 28
    (body_length,) = struct.unpack("!I", message[20:24])
    assert 24 + body_length + 4 == len(message), "header, body and an empty credential"
    answer = read_answer(message, envelope)
    assert answer.rc in KNOWN_RCS, answer.rc
    if answer.rc == 1 and answer.opcode == 1:
        answer.handle_and_values()
    elif answer.rc == 1 and answer.opcode == 2:
        read_site(answer.body)
    elif answer.rc == 402:  # the challenge: the request digest (read above), then a 16-octet nonce
        assert answer.digest is not None and answer.body[:4] == b"\0\0\0\x10" and len(answer.body) == 20
    else:
        answer.message_text()  # the error message is UTF-8


def send_udp(sock: socket.socket, port: int, datagram: bytes, tally: Tally) -> None:
    sock.sendto(datagram, ("127.0.0.1", port))
    tally.udp_in += len(datagram)
    tally.udp_sent += 1
    drain_udp(sock, tally, UDP_WAIT)


def drain_udp(sock: socket.socket, tally: Tally, wait: float) -> None:
    """Read what has come back (up to `wait` for the first packet); check each packet."""
    parts: dict[tuple[int, int], dict[int, bytes]] = {}
    while select.select([sock], [], [], wait)[0]:
        packet = sock.recv(65535)
        wait = 0.005  # the rest of a multi-packet answer follows at once
        tally.udp_out += len(packet)
        assert 20 <= len(packet) <= 512, len(packet)
        request_id, sequence, length = struct.unpack("!III", packet[8:20])
        answer = parts.setdefault((request_id, length), {})
        answer[sequence] = packet
        if sum(len(p) - 20 for p in answer.values()) == length:
            tally.udp_answered += 1
            check_message(packet[:20], b"".join(answer[n][20:] for n in sorted(answer)))


def send_tcp(port: int, data: bytes, tally: Tally) -> None:
    """Send, half-close, and read answers until the server closes: each must be well-formed."""
    tally.tcp_connections += 1
    with socket.create_connection(("127.0.0.1", port), timeout=TCP_TIMEOUT) as sock:
        try:
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            return  # the server refused and closed before all was sent: a clean refusal
        while True:
            try:
                envelope = sock.recv(20, socket.MSG_WAITALL)
            except TimeoutError:
                raise AssertionError(f"no answer and no close within {TCP_TIMEOUT} s") from None
            if not envelope:
                return  # the clean close
            assert len(envelope) == 20, f"the connection closed inside an envelope: {envelope.hex()}"
            (length,) = struct.unpack("!I", envelope[16:20])
            check_message(envelope, recv_exactly(sock, length))
            tally.tcp_answers += 1


# -- messages ----------------------------------------------------------------------------------

u32 = st.one_of(
    st.integers(0, 2**32 - 1),
    st.sampled_from([0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFFFE, 65536, 1 << 30]),
)
handles = st.one_of(
    st.sampled_from([*HANDLES, "0.NA/88.123", "88.123/NOPE", "99.9/ELSEWHERE", "", "/", "no-slash"]),
    st.text(max_size=40),
    st.binary(max_size=40),
)


@st.composite
def resolution_bodies(draw: st.DrawFn) -> bytes:
    """A resolution body whose counts and string lengths may lie."""
    handle = draw(handles)
    raw = handle.encode() if isinstance(handle, str) else handle
    indexes = draw(st.lists(u32, max_size=4))
    types = draw(st.lists(st.text(max_size=10).map(str.encode) | st.binary(max_size=10), max_size=4))
    parts = [
        struct.pack("!I", draw(st.just(len(raw)) | u32)),
        raw,
        struct.pack("!I", draw(st.just(len(indexes)) | u32)),
        *(struct.pack("!I", i) for i in indexes),
        struct.pack("!I", draw(st.just(len(types)) | u32)),
        *(struct.pack("!I", draw(st.just(len(t)) | u32)) + t for t in types),
    ]
    return b"".join(parts)


@st.composite
def built_messages(draw: st.DrawFn) -> bytes:
    """An envelope, header, body and credential with every field drawn."""
    body = draw(resolution_bodies() | st.binary(max_size=64))
    flags = draw(
        st.sampled_from([OP_FLAG_PUBLIC_ONLY, OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST, OP_FLAG_KEEP_ALIVE, 0])
        | u32
    )
    header = struct.pack(
        "!IIIHBBII",
        draw(st.sampled_from([1, 1, 2, 0, 3, 100, 200]) | u32),
        draw(st.just(0) | u32),
        flags,
        draw(st.integers(0, 0xFFFF)),
        draw(st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(u32),
        draw(st.just(len(body)) | u32),
    )
    credential = draw(st.just(b"\0\0\0\0") | st.binary(max_size=12))
    message = header + body + credential
    envelope = struct.pack(
        "!BBBBIIII",
        draw(st.sampled_from([2, 2, 1, 3, 0, 255])),
        draw(st.sampled_from([10, 11, 5, 7, 0, 13, 255])),
        draw(st.sampled_from([0, 0, 0x80, 0x40, 0x20, 0x02, 0xFF]) | st.integers(0, 255)),
        draw(st.integers(0, 255)),
        draw(u32),
        draw(u32),
        draw(st.just(0) | u32),
        draw(st.just(len(message)) | u32),
    )
    return envelope + message


valid_requests = st.builds(
    lambda handle, indexes, types, flags, version: request_message(
        1, resolution_body(handle, indexes, types), flags, version
    )[0],
    st.sampled_from(list(HANDLES)),
    st.lists(st.sampled_from([1, 2, 100, 200, 300, 2000, 10]), max_size=2),
    st.lists(st.sampled_from(["URL", "HS_ADMIN", "DESC", "desc."]), max_size=2),
    st.sampled_from([OP_FLAG_PUBLIC_ONLY, OP_FLAG_PUBLIC_ONLY | OP_FLAG_DIGEST, OP_FLAG_KEEP_ALIVE]),
    st.sampled_from([(2, 10), (2, 11), (2, 5), (2, 1)]),
) | st.builds(lambda version: request_message(2, b"\0\0\0\0", version=version)[0], st.sampled_from([(2, 10)]))

# offsets of the length fields of a resolution request: envelope length, header body length, the
# handle's length; and of the opCode and the version octets
LENGTH_FIELDS = (16, 40, 44)
HUGE = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFFFF00]


def _flip(message: bytearray, draw: st.DrawFn) -> None:
    for _ in range(draw(st.integers(1, 8))):
        at = draw(st.integers(0, len(message) - 1))
        message[at] ^= 1 << draw(st.integers(0, 7))


def _truncate(message: bytearray, draw: st.DrawFn) -> None:
    del message[draw(st.integers(0, len(message) - 1)) :]


def _length(message: bytearray, draw: st.DrawFn) -> None:
    at = draw(st.sampled_from(LENGTH_FIELDS))
    if at + 4 <= len(message):
        message[at : at + 4] = struct.pack("!I", draw(st.sampled_from(HUGE) | u32))


def _opcode(message: bytearray, draw: st.DrawFn) -> None:
    if len(message) >= 24:
        message[20:24] = struct.pack("!I", draw(u32))


def _version(message: bytearray, draw: st.DrawFn) -> None:
    message[0:2] = bytes([draw(st.integers(0, 255)), draw(st.integers(0, 255))])


def _append(message: bytearray, draw: st.DrawFn) -> None:
    message += draw(st.binary(min_size=1, max_size=64))


MUTATIONS: list[Callable[[bytearray, st.DrawFn], None]] = [
    _flip,
    _truncate,
    _length,
    _opcode,
    _version,
    _append,
]


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    message = bytearray(draw(valid_requests))
    for mutation in draw(st.lists(st.sampled_from(MUTATIONS), min_size=1, max_size=3)):
        if message:
            mutation(message, draw)
    return bytes(message)


messages = st.one_of(built_messages(), mutated_messages(), valid_requests)


# -- the run -----------------------------------------------------------------------------------


def test_the_native_listeners_survive_a_fuzzer(fresh_database: str, tmp_path: Path) -> None:
    port = free_port()
    node = start_node(tmp_path, "--dsn", fresh_database, "--native-port", str(port), "--native-udp-rate", "0")
    tally = Tally()
    print(f"\nnative fuzzer seed {SEED} (replay: RESOLVER_FUZZ_SEED={SEED}), {FUZZ_SECONDS:.0f} s")
    try:
        for handle, values in HANDLES.items():
            resp = requests.put(
                f"{node.url}/api/handles/{handle}", json={"values": values}, headers=admin_json(), timeout=30
            )
            assert resp.status_code in (200, 201), resp.text
        deadline = time.monotonic() + FUZZ_SECONDS
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)

            def one(batch: list[bytes], over_tcp_: bool) -> None:
                """Over TCP the messages go on one connection, over UDP one datagram each."""
                note(f"{'TCP' if over_tcp_ else 'UDP'} {[m.hex() for m in batch]}")
                if over_tcp_:
                    send_tcp(port, b"".join(batch), tally)
                else:
                    for message in batch:
                        send_udp(udp, port, message, tally)
                assert node.process.poll() is None, "the node died"

            fuzzing = time.monotonic()
            # hypothesis has no time limit: runs of CHUNK examples, seeded SEED, SEED + 1, ...
            chunk = 0
            while time.monotonic() < deadline:
                run = given(batch=st.lists(messages, min_size=1, max_size=3), over_tcp_=st.booleans())(one)
                run = settings(
                    max_examples=CHUNK,
                    deadline=None,
                    database=None,
                    print_blob=True,
                    suppress_health_check=list(HealthCheck),
                )(run)
                seed(SEED + chunk)(run)()
                chunk += 1
            drain_udp(udp, tally, 0.5)
            took = time.monotonic() - fuzzing
        sent = tally.udp_sent + tally.tcp_connections
        print(
            f"{sent} exchanges in {took:.1f} s ({sent / took:.0f}/s): {tally.udp_sent} UDP datagrams "
            f"({tally.udp_answered} answered, {tally.udp_out} octets out for {tally.udp_in} in), "
            f"{tally.tcp_connections} TCP connections ({tally.tcp_answers} answers)"
        )
        assert tally.udp_out <= 3 * tally.udp_in
        assert tally.udp_answered and tally.tcp_answers, "the fuzzer reached the server"
        # still healthy, and still answering
        assert requests.get(f"{node.url}/healthz", timeout=5).status_code == 200
        request = request_message(1, resolution_body(f"{NODE_PREFIX}/FUZZ-1"))[0]
        for answer in (over_udp(port, request), *over_tcp(port, request)):
            assert answer.rc == 1 and answer.handle_and_values()[0] == f"{NODE_PREFIX}/FUZZ-1"
    finally:
        code = node.stop()
        log = node.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log, log
