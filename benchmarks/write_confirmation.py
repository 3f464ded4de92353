"""What read-your-writes costs a write: PUT latency with the caches' confirmations (--coherence-wait
2, the default) and without (--coherence-wait 0), interleaved, on one embedded Postgres.

Two `resolver serve` instances of 2 workers each share the database (4 listening caches, as in a
small cluster); one client PUTs changes to distinct handles through the first, one at a time, for
--duration seconds per round, alternating the setting round by round. Reports median and p99 per
setting. Optionally --dsn targets an existing primary (e.g. deploy/local-cluster's, where
--read-dsn makes the write connections ask for synchronous_commit = remote_apply): then
--read-dsn is passed to the instances too. Only 127.0.0.1 is targeted.

Usage: python benchmarks/write_confirmation.py [--duration 8] [--rounds 3] [--dsn DSN --read-dsn DSN]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import statistics
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import requests

from benchmarks.harness import SECRET, embedded_database, start_node, stop

AUTH = {
    "Authorization": "Basic " + base64.b64encode(f"{quote('300:0.NA/88.123')}:{SECRET}".encode()).decode()
}


def writes(url: str, seconds: float, tag: str) -> list[float]:
    """Sequential PUTs of distinct handles for `seconds`; each one's latency."""
    took: list[float] = []
    deadline = time.monotonic() + seconds
    with requests.Session() as session:
        i = 0
        while time.monotonic() < deadline:
            body = {"values": [{"index": 1, "type": "URL", "data": f"https://example.com/{tag}/{i}"}]}
            started = time.monotonic()
            put = session.put(
                f"{url}/api/handles/88.123/W-{tag}-{i % 500}", json=body, headers=AUTH, timeout=10
            )
            took.append(time.monotonic() - started)
            put.raise_for_status()
            i += 1
    return took


@contextlib.contextmanager
def instances(workdir: Path, dsn: str, read_dsn: str | None, wait: str) -> Iterator[str]:
    # one client writing as fast as it can: no per-address or per-credential limit here
    extra = ["--dsn", dsn, "--coherence-wait", wait, "--native-port", "0", "--rate-per-address", "0"]
    extra += ["--rate-per-credential", "0"]
    if read_dsn:
        extra += ["--read-dsn", read_dsn]
    first, url = start_node(workdir, *extra)
    second, _ = start_node(workdir, *extra)
    try:
        yield url
    finally:
        stop(first)
        stop(second)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dsn")
    parser.add_argument("--read-dsn")
    args = parser.parse_args()
    results: dict[str, list[float]] = {"2": [], "0": []}

    def run(workdir: Path, dsn: str) -> None:
        for number in range(args.rounds):
            for wait in ("2", "0") if number % 2 == 0 else ("0", "2"):
                with instances(workdir, dsn, args.read_dsn, wait) as url:
                    writes(url, 1.0, f"warm{wait}")
                    results[wait] += writes(url, args.duration, f"r{number}w{wait}")

    if args.dsn:
        run(Path("/tmp"), args.dsn)
    else:
        with embedded_database("write-confirmation-") as (workdir, dsn):
            run(workdir, dsn)
    print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.rounds} interleaved rounds of {args.duration:.0f} s"
    )
    for wait, label in (
        ("0", "no confirmation (--coherence-wait 0)"),
        ("2", "confirmed (--coherence-wait 2)"),
    ):
        took = sorted(results[wait])
        print(
            f"{label:40s} {len(took):6d} writes  median {statistics.median(took) * 1000:6.2f} ms  "
            f"p99 {took[int(len(took) * 0.99)] * 1000:6.2f} ms"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
