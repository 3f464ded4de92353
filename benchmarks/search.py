"""Reverse lookup under a hostile tenant (issue 13 item 8), bounded in time, 127.0.0.1 only.

1. A database with N identifiers under one enterprise prefix (tenant A, 88.123.45, URL values
   `https://example.com/p/<n>`) and a second tenant B (88.123.46), loaded with generate_series
   straight into the tables (a database given with --dsn keeps them: a second run reuses them).
2. `resolver migrate`, timed (at 10M identifiers, what a new index costs an upgrade).
3. `resolver serve --workers 2` (the tree given with --checkout, to compare an older commit), and
   the searches the attack used, each --repeat times in a row by tenant A: exact, `value*`, `*`,
   `limit=10`, a deep page (`limit=10&page=100`), and the node administrator's `value*`.
4. Tenant B's write latency (enterprise API creates, 20 a second, from 127.0.0.2: another client
   address) for --duration seconds alone, then while --searchers concurrent loops of tenant A
   search (each sends its next search when the last has answered), then while they send the worst
   search there is (a star inside, no match: it runs to the deadline), then, for comparison, while
   as many loops resolve a cached handle (the cheapest request: what a flood costs by itself).

Usage: python benchmarks/search.py [--identifiers 200000] [--dsn postgresql://...]
       [--checkout DIR] [--repeat 5] [--duration 8] [--searchers 24] [--no-rate-limits] [--report FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import SECRET, embedded_database, start_node, stop
from resolver.core.enterprises import credit_code_check_character

TENANT_A, TENANT_B = "88.123.45", "88.123.46"
B_ADDRESS = "127.0.0.2"
PASSWORD = "bench-password-1"
REQUEST_TIMEOUT = 60.0  # seconds: no single request of the run waits longer
LOAD_BATCH = 1_000_000
# tenant B's writes a second: a steady tenant, well under the per-credential rate limit
WRITE_RATE = 20


def admin_headers() -> dict[str, str]:
    token = base64.b64encode(f"300%3A0.NA/88.123:{SECRET}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


async def load(dsn: str, identifiers: int) -> float:
    """Tenant A's identifiers and their search terms, up to `identifiers`; seconds it took."""
    conn = await asyncpg.connect(dsn)
    try:
        have = int(await conn.fetchval("select count(*) from handles where prefix = $1", TENANT_A))
        started = time.perf_counter()
        for first in range(have + 1, identifiers + 1, LOAD_BATCH):
            last = min(identifiers, first + LOAD_BATCH - 1)
            async with conn.transaction():
                await conn.execute(
                    """
                    insert into handles (key, handle, prefix, vals)
                    select $3 || '/abc-' || lpad(i::text, 8, '0'), $3 || '/ABC-' || lpad(i::text, 8, '0'), $3,
                           json_build_array(json_build_object(
                               'index', 1, 'type', 'URL',
                               'data', json_build_object('format', 'string', 'value', 'https://example.com/p/' || i),
                               'ttl', 86400, 'timestamp', '2026-12-01T00:00:00Z', 'permissions', '1110'))
                    from generate_series($1::int, $2::int) as i
                    """,
                    first,
                    last,
                    TENANT_A,
                )
                await conn.execute(
                    """
                    insert into search_terms (term, key, prefix)
                    select 'url=https://example.com/p/' || i, $3 || '/abc-' || lpad(i::text, 8, '0'), $3
                    from generate_series($1::int, $2::int) as i
                    """,
                    first,
                    last,
                    TENANT_A,
                )
            print(f"loaded {last:,} identifiers", flush=True)
        if have < identifiers:
            await conn.execute("vacuum analyze handles")
            await conn.execute("vacuum analyze search_terms")
        return time.perf_counter() - started
    finally:
        await conn.close()


def credit_code(seed: int) -> str:
    first17 = f"91350100{seed:09d}"
    return first17 + credit_code_check_character(first17)


async def tenant(session: aiohttp.ClientSession, url: str, dsn: str, prefix: str, seed: int) -> str:
    """A bearer token of a new user of the enterprise holding `prefix` (admitted on first use)."""
    conn = await asyncpg.connect(dsn)
    try:
        eid = await conn.fetchval("select enterprise_id from enterprise_prefixes where prefix = $1", prefix)
    finally:
        await conn.close()
    if eid is None:
        async with session.post(
            f"{url}/admin/enterprises",
            json={"name": f"压测企业{seed}", "creditCode": credit_code(seed)},
            headers=admin_headers(),
        ) as resp:
            eid = (await resp.json())["data"]["id"]
        await session.post(
            f"{url}/admin/enterprises/{eid}/prefixes", json={"prefix": prefix}, headers=admin_headers()
        )
        for state in (5, 1):
            await session.put(
                f"{url}/admin/prefixes/{prefix}/state", json={"state": state}, headers=admin_headers()
            )
    username = f"bench-{seed}-{time.time_ns()}"
    async with session.post(
        f"{url}/admin/enterprises/{eid}/users",
        json={"username": username, "password": PASSWORD},
        headers=admin_headers(),
    ) as resp:
        assert (await resp.json())["status"] == 1
    async with session.post(
        f"{url}/identity/token", json={"username": username, "password": PASSWORD}
    ) as resp:
        return str((await resp.json())["data"]["token"])


async def search(
    session: aiohttp.ClientSession, url: str, query: str, headers: dict[str, str]
) -> tuple[int, float, str]:
    """(status, seconds, what came back) of one search."""
    started = time.perf_counter()
    async with session.get(f"{url}/hrls/handles?{query}", headers=headers) as resp:
        body = await resp.json(content_type=None)
    elapsed = time.perf_counter() - started
    if resp.status == 200:
        return resp.status, elapsed, f"{len(body)} handles"
    return resp.status, elapsed, str(body.get("message", ""))[:90]


# the worst a tenant can send: a star inside, no match, so the whole range is checked (to the deadline)
FILTERED = "URL=https://example.com/*/none"
CASES = [
    ("exact", "URL=https://example.com/p/{middle}"),
    ("prefix `https://example.com/p/*`", "URL=https://example.com/p/*"),
    ("`*`", "URL=*"),
    ("prefix, `limit=10`", "URL=https://example.com/p/*&limit=10"),
    ("deep page `limit=10&page=100`", "URL=https://example.com/p/*&limit=10&page=100"),
    ("a star inside, no match `https://example.com/*/none`", FILTERED),
]
ATTACK = ["URL=https://example.com/p/*", "URL=*", "URL=https://example.com/p/*&limit=10&page=100"]


async def write_loop(
    session: aiohttp.ClientSession, url: str, headers: dict[str, str], tag: str, deadline: float
) -> tuple[list[float], collections.Counter[int]]:
    """Tenant B creating identifiers, one every 1/WRITE_RATE s (or right after the last one when that
    is late), until `deadline`: latencies, statuses."""
    latencies: list[float] = []
    statuses: collections.Counter[int] = collections.Counter()
    number = 0
    due = time.monotonic()
    while due < deadline:
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        due += 1 / WRITE_RATE
        item = {
            "handle": f"{TENANT_B}/W-{tag}-{number}",
            "templateVersion": "general-product-1.0",
            "value": [
                {"index": 2000, "type": "productName", "data": {"format": "string", "value": "螺栓"}},
                {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": "乙公司"}},
            ],
        }
        started = time.perf_counter()
        async with session.post(f"{url}/identityv2/data", json=item, headers=headers) as resp:
            body = await resp.json(content_type=None)
        latencies.append(time.perf_counter() - started)
        statuses[resp.status if body.get("status") == 1 else -resp.status] += 1
        number += 1
    return latencies, statuses


async def search_loop(
    session: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    first: int,
    deadline: float,
    answers: collections.Counter[str],
    latencies: list[float],
    queries: list[str],
) -> None:
    turn = first
    while time.monotonic() < deadline:
        status, elapsed, what = await search(session, url, queries[turn % len(queries)], headers)
        answers[f"{status} {what if status != 200 else ''}".strip()] += 1
        latencies.append(elapsed)
        turn += 1


async def resolve_loop(
    session: aiohttp.ClientSession, url: str, deadline: float, latencies: list[float]
) -> None:
    """For comparison: the cheapest request (a cached resolution) on the same connections."""
    while time.monotonic() < deadline:
        started = time.perf_counter()
        async with session.get(f"{url}/api/handles/{TENANT_A}/ABC-00000001") as resp:
            await resp.read()
        latencies.append(time.perf_counter() - started)


def spread(latencies: list[float]) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"{len(ordered)} | {statistics.median(ordered) * 1000:.1f} | {p99 * 1000:.1f} | {ordered[-1] * 1000:.1f}"


async def measure(
    url: str, dsn: str, identifiers: int, repeat: int, duration: float, searchers: int
) -> list[str]:
    lines: list[str] = []
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    # Tenant B is another client: it connects from 127.0.0.2 (loopback still), so that the limits
    # per client address that A's flood exhausts are not B's.
    elsewhere = aiohttp.TCPConnector(limit=4, local_addr=(B_ADDRESS, 0))
    async with (
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=searchers + 4), timeout=timeout
        ) as session,
        aiohttp.ClientSession(connector=elsewhere, timeout=timeout) as b_session,
    ):
        a = {"Authorization": f"Bearer {await tenant(session, url, dsn, TENANT_A, 45)}"}
        b = {"Authorization": f"Bearer {await tenant(session, url, dsn, TENANT_B, 46)}"}
        lines += ["| search (tenant A) | statuses | median ms | max ms | answer |", "|---|---|---|---|---|"]
        cases = [(name, query.format(middle=identifiers // 2 + 1), a) for name, query in CASES]
        cases.append(("node administrator, prefix", "URL=https://example.com/p/*&limit=10", admin_headers()))
        cases.append(("tenant B, prefix (isolation)", "URL=https://example.com/p/*", b))
        for name, query, headers in cases:
            client = b_session if headers is b else session
            runs = [await search(client, url, query, headers) for _ in range(repeat)]
            statuses = ",".join(sorted({str(s) for s, _, _ in runs}))
            times = [t for _, t, _ in runs]
            lines.append(
                f"| {name} | {statuses} | {statistics.median(times) * 1000:.1f} | {max(times) * 1000:.1f} | {runs[-1][2]} |"
            )
        quiet, quiet_statuses = await write_loop(b_session, url, b, "quiet", time.monotonic() + duration)
        answers: collections.Counter[str] = collections.Counter()
        search_latencies: list[float] = []
        deadline = time.monotonic() + duration
        (busy, busy_statuses), *_ = await asyncio.gather(
            write_loop(b_session, url, b, f"busy{time.time_ns()}", deadline),
            *(
                search_loop(session, url, a, i, deadline, answers, search_latencies, ATTACK)
                for i in range(searchers)
            ),
        )
        worst: collections.Counter[str] = collections.Counter()
        worst_latencies: list[float] = []
        deadline = time.monotonic() + duration
        (slow, slow_statuses), *_ = await asyncio.gather(
            write_loop(b_session, url, b, f"worst{time.time_ns()}", deadline),
            *(
                search_loop(session, url, a, i, deadline, worst, worst_latencies, [FILTERED])
                for i in range(searchers)
            ),
        )
        resolutions: list[float] = []
        deadline = time.monotonic() + duration
        (flooded, flooded_statuses), *_ = await asyncio.gather(
            write_loop(b_session, url, b, f"flood{time.time_ns()}", deadline),
            *(resolve_loop(session, url, deadline, resolutions) for _ in range(searchers)),
        )
    lines += [
        "",
        "| tenant B writes | writes | p50 ms | p99 ms | max ms | statuses |",
        "|---|---|---|---|---|---|",
        f"| alone | {spread(quiet)} | {dict(quiet_statuses)} |",
        f"| during {searchers} concurrent searches of tenant A | {spread(busy)} | {dict(busy_statuses)} |",
        f"| during {searchers} concurrent searches of tenant A with a star inside and no match | {spread(slow)} "
        f"| {dict(slow_statuses)} |",
        f"| during {searchers} concurrent loops of a cached resolution (no search) | {spread(flooded)} "
        f"| {dict(flooded_statuses)} |",
        "",
        f"tenant A's searches during that: {len(search_latencies)} answered, median "
        f"{statistics.median(search_latencies) * 1000:.1f} ms, max {max(search_latencies) * 1000:.1f} ms; "
        + ", ".join(f"{count} x {answer}" for answer, count in answers.most_common())
        + f"; those with a star inside: {len(worst_latencies)} answered, median "
        f"{statistics.median(worst_latencies) * 1000:.1f} ms, max {max(worst_latencies) * 1000:.1f} ms; "
        + ", ".join(f"{count} x {answer}" for answer, count in worst.most_common())
        + f"; the resolution loops made {len(resolutions)} requests.",
    ]
    return lines


@contextlib.contextmanager
def database(dsn: str | None) -> Iterator[tuple[Path, str]]:
    if dsn is None:
        with embedded_database("search-bench-") as found:
            yield found
        return
    if urlsplit(dsn).hostname not in ("127.0.0.1", "localhost", None, ""):
        raise SystemExit("benchmarks only run against a database on this machine")
    with tempfile.TemporaryDirectory(prefix="search-bench-") as tmp:
        yield Path(tmp), dsn


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--identifiers", type=int, default=200_000)
    parser.add_argument(
        "--dsn", help="a database on this machine to load into (or reuse); default: a scratch one"
    )
    parser.add_argument("--checkout", type=Path, default=ROOT, help="the source tree to run")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each write-latency phase")
    parser.add_argument("--searchers", type=int, default=24)
    parser.add_argument("--report", type=Path, help="append the results (markdown) to this file")
    parser.add_argument(
        "--no-rate-limits",
        action="store_true",
        help="run the node with the request rates per address and credential off (the search limits alone)",
    )
    args = parser.parse_args()
    with database(args.dsn) as (workdir, dsn):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "resolver", "migrate", "--dsn", dsn],
            cwd=args.checkout,
            env={**os.environ, "PYTHONPATH": str(args.checkout)},
            check=True,
            timeout=3600,
        )
        migrated = time.perf_counter() - started
        loaded = asyncio.run(load(dsn, args.identifiers))
        git = subprocess.run(
            ["git", "-C", str(args.checkout), "log", "-1", "--format=%h %s"], capture_output=True, text=True
        ).stdout.strip()
        rates = ("--rate-per-address", "0", "--rate-per-credential", "0") if args.no_rate_limits else ()
        node, url = start_node(workdir, "--dsn", dsn, *rates, workers=2, checkout=args.checkout)
        assert urlsplit(url).hostname == "127.0.0.1"
        try:
            lines = asyncio.run(
                measure(url, dsn, args.identifiers, args.repeat, args.duration, args.searchers)
            )
        finally:
            stop(node)
    header = [
        f"### {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {args.identifiers:,} identifiers, code {git[:70]}",
        "",
        f"`resolver migrate` {migrated:.1f} s; loading {loaded:.1f} s (0 when reused); "
        f"request rate limits {'off' if args.no_rate_limits else 'on (defaults)'}.",
        "",
    ]
    report = "\n".join(header + lines) + "\n"
    print(report)
    if args.report:
        with args.report.open("a", encoding="utf-8") as out:
            out.write(report + "\n")


if __name__ == "__main__":
    main()
