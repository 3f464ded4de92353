"""Latency at a fixed offered load (open loop): requests leave on a schedule whatever the answers do,
and each latency is measured from its scheduled time, so a slow node cannot hide it.

Used by `wrk_resolution.py`; also runnable on its own against a node on 127.0.0.1:
    python benchmarks/open_loop.py http://127.0.0.1:8000 --rate 1160 --duration 10 --handles 100000
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import math
import random
import shutil
import subprocess
import time

import aiohttp


def percentile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))] if ordered else float("nan")


async def run(
    url: str, rate: float, duration: float, handles: int, connections: int = 256
) -> dict[str, float]:
    """Send `rate` requests/s for `duration` s to random handles 88.123/B<n>; latency percentiles in ms."""
    if not url.startswith("http://127.0.0.1"):
        raise ValueError("open-loop load only targets 127.0.0.1")
    latencies: list[float] = []
    errors = 0
    late = 0
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as session:

        async def one(scheduled: float, path: str) -> None:
            nonlocal errors
            try:
                async with session.get(url + path) as resp:
                    await resp.read()
                    if resp.status != 200:
                        errors += 1
            except aiohttp.ClientError:
                errors += 1
            latencies.append((time.perf_counter() - scheduled) * 1000)

        tasks: set[asyncio.Task[None]] = set()
        start = time.perf_counter() + 0.05
        total = int(rate * duration)
        for i in range(total):
            scheduled = start + i / rate
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.01:
                late += 1  # the generator itself fell behind its schedule
            path = f"/api/handles/88.123/B{random.randrange(handles)}"
            task = asyncio.create_task(one(scheduled, path))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
    ordered = sorted(latencies)
    return {
        "rate": rate,
        "sent": float(total),
        "errors": float(errors),
        "late": float(late),
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else float("nan"),
    }


def held_by_hey(url: str, rate: float, duration: float, path: str) -> dict[str, float] | None:
    """The same offered load from `hey` (Debian package, Go): rate/100 workers at 100 requests/s each.

    Each worker waits for its answer, so an answer slower than 10 ms makes that worker skip a tick:
    the rate it reaches then falls short, and the run is marked as not having held the rate. Better
    than Python above ~2,000 requests/s on two cores; one path (a cached handle) for all requests.
    None when hey is not installed.
    """
    if not url.startswith("http://127.0.0.1"):
        raise ValueError("open-loop load only targets 127.0.0.1")
    if shutil.which("hey") is None:
        return None
    workers = max(1, math.ceil(rate / 100))
    out = subprocess.run(
        [
            "hey",
            "-z",
            f"{duration:g}s",
            "-c",
            str(workers),
            "-q",
            f"{rate / workers:g}",
            "-o",
            "csv",
            url + path,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    ordered = sorted(float(r["response-time"]) * 1000 for r in rows)
    errors = sum(1 for r in rows if r["status-code"] != "200")
    expected = rate * duration
    return {
        "rate": rate,
        "sent": float(len(rows)),
        "errors": float(errors),
        # requests the schedule asked for and that were never sent: the workers fell behind
        "late": max(0.0, expected - len(rows)),
        "p50": percentile(ordered, 0.5),
        "p99": percentile(ordered, 0.99),
        "max": ordered[-1] if ordered else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("url")
    parser.add_argument("--rate", type=float, default=1160.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--handles", type=int, default=100_000)
    args = parser.parse_args()
    import uvloop

    print(uvloop.run(run(args.url, args.rate, args.duration, args.handles)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
