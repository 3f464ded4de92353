"""What an anonymous client learns, and what a zero TTL costs, on the real `resolver serve`.

Seen before the fix: 200 anonymous resolutions of a tenant's handle whose values have TTL 0 made
402 database lookups (a TTL of 0 kept the handle out of the cache altogether); anonymous `/healthz`
named the worker's pid and its cache figures; every answer's `Server` header named the Python and
aiohttp versions. Now cache entries live at least `--cache-ttl-floor` (1 s; changes still
invalidate them at once through the change feed), `/healthz` says only that the process is alive
(the details are `/status`, for the node administrator), and `Server` is a neutral `resolver`
(`--server-header`), on aiohttp's own error pages too.

Run with `-s` to see the measured lookups.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest
import requests

from tests.helpers import basic
from tests.nodes import admit_over_http, start_node

pytestmark = pytest.mark.e2e

FLOOR = 1.0  # the default --cache-ttl-floor


def resolutions(url: str) -> dict[str, float]:
    """resolver_resolutions_total by outcome, for every worker together."""
    found: dict[str, float] = {}
    for line in requests.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith("resolver_resolutions_total{"):
            outcome = line.partition('outcome="')[2].partition('"')[0]
            found[outcome] = float(line.rpartition(" ")[2])
    return found


def test_a_ttl_zero_handle_costs_a_handful_of_database_reads(fresh_database: str, tmp_path: Path):
    node = start_node(tmp_path, "--workers", "2", "--dsn", fresh_database)
    try:
        secret = admit_over_http(node.url, "88.123.45", 45, "user45", "password-45")
        value = {"index": 1, "type": "URL", "data": "https://example.com/t0", "ttl": 0}
        answer = requests.put(
            f"{node.url}/api/handles/88.123.45/T0",
            json={"values": [value]},
            headers=basic("300:0.NA/88.123.45", secret),
            timeout=30,
        )
        assert answer.status_code in (200, 201), answer.text
        assert resolutions(node.url).get("miss", 0) == 0
        started = time.monotonic()
        for _ in range(200):  # a new connection each time: both workers answer
            assert requests.get(f"{node.url}/api/handles/88.123.45/T0", timeout=30).status_code == 200
        elapsed = time.monotonic() - started
        # Workers move their tallies into /metrics once a second: wait (bounded) until all 200 are in.
        deadline = time.monotonic() + 30
        counted = resolutions(node.url)
        while counted.get("hit", 0) + counted.get("miss", 0) < 200:
            assert time.monotonic() < deadline, counted
            time.sleep(0.2)
            counted = resolutions(node.url)
        misses = counted.get("miss", 0)
        # Each worker reads the handle at most once per floor period, and once more if the
        # notification of the PUT reached it after its first read.
        bound = 2 * (int(elapsed / FLOOR) + 2)
        print(
            f"\n200 resolutions of a TTL-0 handle in {elapsed:.2f} s: {misses:.0f} database reads (bound {bound})"
        )
        assert misses <= bound
    finally:
        assert node.stop() == 0, node.log.read_text()[-4000:]


def raw_exchange(url: str, request: bytes) -> bytes:
    """Send raw bytes on a new connection; everything the server answers before closing."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        received = b""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    return received


def test_anonymous_answers_name_no_worker_and_no_versions(fresh_database: str, tmp_path: Path):
    node = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database)
    try:
        url = node.url
        put = requests.put(
            f"{url}/api/handles/88.123/S-1",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/s1"}]},
            headers=basic(),
            timeout=30,
        )
        assert put.status_code in (200, 201)
        health = requests.get(f"{url}/healthz", timeout=30)
        assert health.status_code == 200 and health.json() == {"status": "alive"}
        anonymous = requests.get(f"{url}/status", timeout=30)
        assert anonymous.status_code == 401 and anonymous.json()["responseCode"] == 402
        status = requests.get(f"{url}/status", headers=basic(), timeout=30)
        assert status.status_code == 200 and isinstance(status.json()["pid"], int)
        assert status.json()["cache"]["trusted"] is True

        answers = [
            health,
            anonymous,
            status,
            put,
            requests.get(f"{url}/api/handles/88.123/S-1", timeout=30),  # the hot path, twice
            requests.get(f"{url}/api/handles/88.123/S-1", timeout=30),
            requests.get(f"{url}/api/handles/88.123/NOPE", timeout=30),
            requests.get(f"{url}/88.123/S-1", timeout=30, allow_redirects=False),
            requests.get(f"{url}/88.123/S-1?noredirect", timeout=30),
            requests.get(f"{url}/metrics", timeout=30),
            requests.get(f"{url}/readyz", timeout=30),
        ]
        servers = {a.headers.get("Server") for a in answers}
        # aiohttp's own answers to what it cannot parse
        for bad in (
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
            b"G(T /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        ):
            raw = raw_exchange(url, bad)
            assert raw.startswith(b"HTTP/1.") and raw.split(b" ")[1] == b"400", raw[:200]
            head = raw.partition(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")[1:]
            servers.add(next((line[7:].strip() for line in head if line.lower().startswith("server:")), None))
        print(f"\nServer headers seen: {servers}")
        assert servers == {"resolver"}
    finally:
        assert node.stop() == 0, node.log.read_text()[-4000:]
