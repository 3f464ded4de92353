"""CPU per scan page: what a product page costs the node and Postgres, first render and kept.

A shopper's scan is `GET /{handle}` from a browser; a product registered on the general template
(no URL value) answers its page. This starts `resolver serve --workers 2` (127.0.0.1 only, through
benchmarks/harness.py) on an embedded Postgres seeded with N such identifiers under an enterprise
prefix, and for each case runs wrk for --duration seconds (bounded), dividing the CPU time of the
node's processes and of Postgres (from /proc, as benchmarks/cpu_per_request.py does) by the pages
answered:

- `first zh`, `first en`: every request a handle not asked before (wrk walks distinct handles in
  order; zh and en walk different halves), so each page is read from Postgres and rendered;
- `kept zh`, `kept en`: random handles of a warmed set of --hot handles, so each page is the one
  kept with the worker's cache entry (Entry.page, Entry.page_en).

Usage: python benchmarks/scan_page.py [--handles 40000] [--duration 6] [--hot 2000]
Linux only (reads /proc). Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpu_per_request import cpu_seconds, descendants, postgres_pids
from benchmarks.harness import embedded_database, start_node, stop
from benchmarks.wrk_resolution import wrk as run_wrk
from resolver.config import Limits
from resolver.core.values import parse_values
from resolver.store.migrations import migrate
from resolver.store.rows import encode_values

PREFIX = "88.123.45"


async def seed(dsn: str, count: int) -> None:
    """`count` products on general-product-1.0 under the enabled enterprise prefix PREFIX."""
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        enterprise = await conn.fetchval(
            "insert into enterprises (name, credit_code) values ('基准示例制造有限公司', '91350100M000100Y43')"
            " returning id"
        )
        await conn.execute(
            "insert into enterprise_prefixes (prefix, display, enterprise_id, state) values ($1, $1, $2, 1)",
            PREFIX,
            enterprise,
        )
        now = datetime.now(UTC)

        def row(i: int) -> tuple[str, str, str, str]:
            handle = f"{PREFIX}/S{i}"
            values = parse_values(
                [
                    {"index": 1001, "type": "TEMPLATE", "data": "general-product-1.0"},
                    {"index": 2000, "type": "productName", "data": f"示例产品 {i}"},
                    {"index": 2001, "type": "productModel", "data": f"M-{i % 97}"},
                    {"index": 2004, "type": "manufacturer", "data": "基准示例制造"},
                ],
                Limits(),
                now,
            )
            return handle.lower(), handle, PREFIX, encode_values(values)

        rows = [row(i) for i in range(count)]
        await conn.copy_records_to_table("handles", records=rows, columns=["key", "handle", "prefix", "vals"])
        await conn.execute("analyze handles")
    finally:
        await conn.close()


def script(path: Path, first: int, count: int, lang: str, walk: bool) -> Path:
    """A wrk script asking handles S<first>..S<first+count-1>: in order (walk) or at random."""
    query = "?lang=en" if lang == "en" else ""
    pick = (
        f"  n = n + 1\n  local i = {first} + (n % {count})\n"
        if walk
        else f"  local i = math.random({first}, {first + count - 1})\n"
    )
    path.write_text(
        "math.randomseed(os.time())\nn = -1\n"
        'wrk.headers["Accept"] = "text/html,application/xhtml+xml"\n'
        "request = function()\n"
        f"{pick}"
        f'  return wrk.format("GET", "/{PREFIX}/S" .. i .. "{query}")\nend\n'
    )
    return path


def wrk(port: int, lua: Path, seconds: int) -> tuple[float, int]:
    """(requests/s, non-2xx answers) of one wrk run, 32 connections."""
    result = run_wrk(f"http://127.0.0.1:{port}/", seconds, 32, lua)
    return result["rps"], int(result["errors"])


def measure(
    port: int, node_pids: list[str], pg_pids: list[str], lua: Path, seconds: int
) -> tuple[float, float, float, int]:
    node0, pg0 = cpu_seconds(node_pids), cpu_seconds(pg_pids)
    rate, bad = wrk(port, lua, seconds)
    node1, pg1 = cpu_seconds(node_pids), cpu_seconds(pg_pids)
    requests = rate * seconds
    return rate, 1e3 * (node1 - node0) / requests, 1e3 * (pg1 - pg0) / requests, bad


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handles", type=int, default=40_000)
    parser.add_argument("--duration", type=int, default=6, help="seconds of wrk per case")
    parser.add_argument("--hot", type=int, default=2_000, help="handles of the kept cases")
    args = parser.parse_args()
    if shutil.which("wrk") is None or not Path("/proc/self/stat").exists():
        print("needs wrk (apt-get install wrk) and Linux /proc", file=sys.stderr)
        return 2
    half = args.handles // 2
    print("| case | pages/s | node CPU ms/page | Postgres CPU ms/page | non-2xx |")
    print("|---|---|---|---|---|")
    with embedded_database("resolver-scan-") as (workdir, dsn):
        asyncio.run(seed(dsn, args.handles))
        node, url = start_node(workdir, "--dsn", dsn, "--cache-max-entries", str(args.handles * 2))
        port = int(url.rsplit(":", 1)[1])
        try:
            # warm the code paths (not the measured handles): the kept set, both languages
            for lang in ("zh", "en"):
                warm = script(workdir / f"warm-{lang}.lua", 0, args.hot, lang, walk=True)
                rate, _ = wrk(port, warm, 3)
                if rate * 3 < args.hot:  # each run walks from the start: one long enough for all
                    wrk(port, warm, min(60, math.ceil(1.5 * args.hot / max(rate, 1.0))))
            node_pids = [str(node.pid), *descendants(node.pid)]
            pg_pids = postgres_pids(workdir / "pgdata")
            cases = [
                ("first zh", script(workdir / "first-zh.lua", args.hot, half - args.hot, "zh", walk=True)),
                ("first en", script(workdir / "first-en.lua", half, args.handles - half, "en", walk=True)),
                ("kept zh", script(workdir / "kept-zh.lua", 0, args.hot, "zh", walk=False)),
                ("kept en", script(workdir / "kept-en.lua", 0, args.hot, "en", walk=False)),
            ]
            for name, lua in cases:
                rate, node_ms, pg_ms, bad = measure(port, node_pids, pg_pids, lua, args.duration)
                wrapped = name.startswith("first") and rate * args.duration > half - args.hot
                note = " (walked past its handles: partly kept pages)" if wrapped else ""
                print(f"| {name}{note} | {rate:,.0f} | {node_ms:.2f} | {pg_ms:.2f} | {bad} |", flush=True)
        finally:
            stop(node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
