"""What a write costs through native administration (challenge-response, two round trips and a
Postgres row for the pending challenge) against the same write through the Handle HTTP API with
Basic, on one node of 2 workers over an embedded Postgres.

Each round creates --per-round distinct handles one at a time through each face, alternating the
faces round by round (A/B interleaved: this VM's speed swings between runs). Reported per face:
median and p99 latency of one whole create as the client sees it (native: request, challenge,
answer on a new TCP connection, outcome; the client's PBKDF2 MAC of 10,000 iterations included),
and the node's CPU per create (utime + stime of the node's process tree, from /proc; Postgres
not counted). The native client is the RFC-written one of the test suite (tests/handle_client.py).
Only 127.0.0.1 is targeted; every loop is bounded by --per-round and --rounds.

Usage: python benchmarks/native_admin.py [--rounds 4] [--per-round 150]
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from benchmarks.cpu_per_request import cpu_seconds, descendants
from benchmarks.harness import SECRET, embedded_database, free_port, start_node, stop
from tests.handle_client import (
    OC_CREATE_HANDLE,
    OC_RESPONSE_TO_CHALLENGE,
    challenge_answer_body,
    over_tcp,
    request_message,
    seckey_answer_octets,
    value_octets,
    values_body,
)

IDENTITY = ("0.NA/88.123", 300)


def native_create(port: int, handle: str, n: int) -> None:
    body = values_body(handle, [value_octets(1, "URL", f"https://example.com/n/{n}".encode())])
    (challenge,) = over_tcp(port, request_message(OC_CREATE_HANDLE, body, flags=0, request_id=2 * n + 1)[0])
    assert challenge.rc == 402, challenge.message_text()
    hashed = hashlib.sha1(SECRET.encode()).hexdigest().encode()
    signed = seckey_answer_octets(hashed, challenge.body[4:], challenge.digest or b"", os.urandom(16))
    answer = challenge_answer_body("HS_SECKEY", IDENTITY[0], IDENTITY[1], signed)
    (done,) = over_tcp(
        port,
        request_message(
            OC_RESPONSE_TO_CHALLENGE, answer, flags=0, request_id=2 * n + 2, session_id=challenge.session_id
        )[0],
    )
    assert done.rc == 1, done.message_text()


def http_create(session: requests.Session, url: str, handle: str, n: int) -> None:
    resp = session.put(
        f"{url}/api/handles/{handle}",
        json=[{"index": 1, "type": "URL", "data": f"https://example.com/h/{n}"}],
        timeout=10,
    )
    assert resp.status_code in (200, 201), resp.text


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--per-round", type=int, default=150)
    args = parser.parse_args()
    with embedded_database("native-admin-") as (workdir, dsn):
        native = free_port()
        process, url = start_node(
            workdir,
            "--dsn",
            dsn,
            "--native-port",
            str(native),
            "--rate-per-address",
            "0",
            "--rate-per-credential",
            "0",
        )
        try:
            session = requests.Session()
            user = quote(f"{IDENTITY[1]}:{IDENTITY[0]}", safe="")
            token = base64.b64encode(f"{user}:{SECRET}".encode()).decode()
            session.headers["Authorization"] = f"Basic {token}"
            pids = [str(process.pid), *descendants(process.pid)]
            latency: dict[str, list[float]] = {"native": [], "http": []}
            cpu: dict[str, float] = {"native": 0.0, "http": 0.0}
            n = 0
            for round_number in range(args.rounds):
                faces = ("native", "http") if round_number % 2 == 0 else ("http", "native")
                for face in faces:
                    before = cpu_seconds(pids)
                    for _ in range(args.per_round):
                        n += 1
                        handle = f"88.123/BENCH-{face}-{n}"
                        started = time.perf_counter()
                        if face == "native":
                            native_create(native, handle, n)
                        else:
                            http_create(session, url, handle, n)
                        latency[face].append(time.perf_counter() - started)
                    cpu[face] += cpu_seconds(pids) - before
            for face in ("native", "http"):
                samples = sorted(latency[face])
                p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))]
                print(
                    f"{face:6}  {len(samples)} creates  median {statistics.median(samples) * 1000:.2f} ms  "
                    f"p99 {p99 * 1000:.2f} ms  node CPU {cpu[face] / len(samples) * 1e6:,.0f} µs per create"
                )
        finally:
            stop(process)


if __name__ == "__main__":
    main()
