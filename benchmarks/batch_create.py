"""batchCreate through HTTP: 2000 identifiers per call, N concurrent clients, bounded in time.

Starts `resolver serve --workers 2` on an embedded Postgres (127.0.0.1 only), admits an enterprise
with the operator API, logs a user in, then runs the clients for --duration seconds and reports
identifiers per second and the latency of a call.

Usage: python benchmarks/batch_create.py [--clients 4] [--batch 2000] [--duration 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import SECRET, start_node, stop
from resolver.core.enterprises import credit_code_check_character


def admin_headers() -> dict[str, str]:
    token = base64.b64encode(f"300%3A0.NA/88.123:{SECRET}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def wait_ready(session: aiohttp.ClientSession, url: str) -> None:
    for _ in range(300):
        try:
            async with session.get(f"{url}/readyz") as resp:
                if resp.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise RuntimeError("node did not become ready")


async def setup(session: aiohttp.ClientSession, url: str) -> str:
    code17 = "91350100000000001"
    code = code17 + credit_code_check_character(code17)
    async with session.post(
        f"{url}/admin/enterprises", json={"name": "压测企业", "creditCode": code}, headers=admin_headers()
    ) as r:
        eid = (await r.json())["data"]["id"]
    await session.post(
        f"{url}/admin/enterprises/{eid}/prefixes", json={"prefix": "88.123.45"}, headers=admin_headers()
    )
    for state in (5, 1):
        await session.put(
            f"{url}/admin/prefixes/88.123.45/state", json={"state": state}, headers=admin_headers()
        )
    await session.post(
        f"{url}/admin/enterprises/{eid}/users",
        json={"username": "bench", "password": "bench-password"},
        headers=admin_headers(),
    )
    async with session.post(
        f"{url}/identity/token", json={"username": "bench", "password": "bench-password"}
    ) as r:
        return str((await r.json())["data"]["token"])


def batch(client: int, number: int, size: int) -> list[dict[str, object]]:
    return [
        {
            "handle": f"88.123.45/C{client}-{number}-{i}",
            "templateVersion": "general-product-1.0",
            "value": [
                {"index": 2000, "type": "productName", "data": {"format": "string", "value": f"产品{i}"}},
                {"index": 2002, "type": "batchNumber", "data": {"format": "string", "value": f"B{number}"}},
                {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": "压测企业"}},
                {
                    "index": 2009,
                    "type": "URL",
                    "data": {"format": "string", "value": f"https://example.com/{client}/{number}/{i}"},
                },
            ],
        }
        for i in range(size)
    ]


async def client_loop(session, url, token, client, size, deadline, latencies, counts) -> None:
    number = 0
    headers = {"Authorization": f"Bearer {token}"}
    headers["Content-Type"] = "application/json"
    while time.monotonic() < deadline:
        body = orjson.dumps(batch(client, number, size))
        started = time.perf_counter()
        async with session.post(f"{url}/identityv2/data/batchCreate", data=body, headers=headers) as resp:
            answer = orjson.loads(await resp.read())
        latencies.append(time.perf_counter() - started)
        counts.append(sum(1 for r in answer["data"] if r["code"] == 1))
        number += 1


async def run(url: str, clients: int, size: int, duration: float) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        await wait_ready(session, url)
        token = await setup(session, url)
        latencies: list[float] = []
        counts: list[int] = []
        started = time.monotonic()
        deadline = started + duration
        await asyncio.gather(
            *(client_loop(session, url, token, c, size, deadline, latencies, counts) for c in range(clients))
        )
        elapsed = time.monotonic() - started
    total = sum(counts)
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"{clients} clients x {size} per call, {elapsed:.1f} s: {len(latencies)} calls, {total:,} identifiers created"
    )
    print("| identifiers/s | calls/s | call p50 ms | call p99 ms |")
    print("|---|---|---|---|")
    print(
        f"| {total / elapsed:,.0f} | {len(latencies) / elapsed:.1f} | {statistics.median(latencies) * 1000:.0f} | {p99 * 1000:.0f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--duration", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="resolver-batch-") as tmp:
        os.chmod(tmp, 0o755)
        node, url = start_node(Path(tmp), "--data-dir", str(Path(tmp) / "pgdata"), "--rate-per-address", "0")
        try:
            asyncio.run(run(url, args.clients, args.batch, args.duration))
        finally:
            stop(node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
