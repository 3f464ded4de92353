"""Slow clients against the real `resolver serve`: header and body deadlines, keep-alive idling,
and the cap on connections per client address.

Seen before the fix: 1,000 connections sending their headers slowly all stayed open for the
attacker's 30 s (aiohttp closes them only at its 75 s keep-alive timeout, and caps nothing).
Run with `-s` to see the measured close times.
"""

from __future__ import annotations

import socket
import statistics
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import basic
from tests.nodes import start_node

pytestmark = pytest.mark.e2e

BUDGET = 30.0  # the longest any of these waits; far above the deadlines under test


def connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=BUDGET)
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by BUDGET)."""
    received = b""
    deadline = time.monotonic() + BUDGET
    while time.monotonic() < deadline:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            break
        if not chunk:
            break
        received += chunk
    return received


def get_healthz(url: str) -> bytes:
    """GET /healthz on a connection of its own; the whole answer."""
    with connect(url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        return read_until_closed(sock)


@pytest.fixture
def strict_node(fresh_database, tmp_path: Path):
    node = start_node(
        tmp_path,
        "--workers",
        "1",
        "--dsn",
        fresh_database,
        "--header-timeout",
        "1",
        "--keepalive-timeout",
        "2",
        "--body-timeout",
        "2",
    )
    try:
        yield node
    finally:
        assert node.stop() == 0, node.log.read_text()


def test_headers_sent_slowly_are_cut_off(strict_node):
    """200 connections dribbling a header a byte at a time are closed by the header deadline
    (408), while an ordinary client is answered throughout."""
    header = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    socks = [connect(strict_node.url) for _ in range(200)]
    opened = time.monotonic()
    closed_after: dict[int, float] = {}
    position = 0
    while len(closed_after) < len(socks) and time.monotonic() - opened < BUDGET:
        for number, sock in enumerate(socks):
            if number in closed_after:
                continue
            try:
                sock.sendall(header[position : position + 1])
            except OSError:
                closed_after[number] = time.monotonic() - opened
        position = min(position + 1, len(header) - 1)
        assert requests.get(f"{strict_node.url}/healthz", timeout=5).status_code == 200
        time.sleep(0.2)
    assert len(closed_after) == len(socks), f"{len(socks) - len(closed_after)} slow connections still open"
    answers = [read_until_closed(sock) for sock in socks]
    assert all(a == b"" or a.startswith(b"HTTP/1.1 408") for a in answers)
    print(
        f"\n200 slow-header connections closed after median {statistics.median(closed_after.values()):.1f} s, "
        f"max {max(closed_after.values()):.1f} s (header deadline 1 s)"
    )
    for sock in socks:
        sock.close()


def test_an_idle_keep_alive_connection_is_closed(strict_node):
    sock = connect(strict_node.url)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    started = time.monotonic()
    received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 200")
    print(f"\nidle keep-alive connection closed after {time.monotonic() - started:.1f} s (timeout 2 s)")
    sock.close()


def test_a_body_that_never_finishes_is_answered_408(strict_node):
    sock = connect(strict_node.url)
    sock.sendall(
        b"PUT /api/handles/88.123/SLOW HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"Authorization: {basic()['Authorization']}\r\n".encode()
        + b"Content-Length: 1000\r\n\r\n[{"
    )
    received = read_until_closed(sock)
    assert received.startswith(b"HTTP/1.1 408"), received[:200]
    assert b'"responseCode":4' in received
    sock.close()


def test_connections_per_address_are_capped(fresh_database, tmp_path: Path):
    node = start_node(
        tmp_path,
        "--workers",
        "1",
        "--dsn",
        fresh_database,
        "--max-connections-per-address",
        "20",
        "--header-timeout",
        "120",
    )
    try:
        held = [connect(node.url) for _ in range(20)]
        for sock in held:
            sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # a header that is never finished
        extra = [connect(node.url) for _ in range(10)]
        for sock in extra:
            answer = read_until_closed(sock)
            assert answer.startswith(b"HTTP/1.1 429"), answer
            assert b"Retry-After: 1" in answer and b'"responseCode":3' in answer
            sock.close()
        for sock in held[:5]:
            sock.close()
        # once the server has seen those closes, new connections are served again
        deadline = time.monotonic() + BUDGET
        while not get_healthz(node.url).startswith(b"HTTP/1.1 200"):
            assert time.monotonic() < deadline, "no connection admitted after others closed"
            time.sleep(0.05)
        for sock in held[5:]:
            sock.close()
    finally:
        assert node.stop() == 0, node.log.read_text()
