"""CPU per resolution: microseconds of the node's processes, of Postgres and of wrk per request.

Requests per second on this shared 2-core VM swing by a third from run to run; CPU per request
moves much less, so it is the number to compare when a change to the hot path is measured. For each
case it starts `resolver serve --workers 2` on an embedded Postgres seeded with N handles (127.0.0.1
only), warms it, runs wrk for --duration seconds (bounded) and divides the CPU time each group of
processes used (from /proc) by the requests answered. Postgres backends that exit during the run
would be missed, so the node's connections stay open throughout.

Cases: `miss` (cache of 1,000 entries, random handles of N: nearly every request reads Postgres,
coalesced) and `hit` (a cache large enough for all N, warmed first). `--ref DIR` runs the same case
against another checkout (e.g. a `git worktree` of the previous commit), interleaved, for an A/B.

Usage: python benchmarks/cpu_per_request.py [--case miss] [--rounds 3] [--ref /tmp/old]
Linux only (reads /proc). Needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import resource
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import embedded_database, start_node, stop
from benchmarks.wrk_resolution import seed

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[str]) -> float:
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def descendants(pid: int) -> list[str]:
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    found = list(children)
    for child in children:
        found += descendants(int(child))
    return found


def postgres_pids(data_dir: Path) -> list[str]:
    postmaster = int((data_dir / "postmaster.pid").read_text().split()[0])
    return [str(postmaster), *descendants(postmaster)]


def lookups(port: int) -> tuple[float, float]:
    """(coalesced queries, handles fetched) so far, summed over workers."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics").read().decode()
    queries = handles = 0.0
    for line in body.splitlines():
        if line.startswith("resolver_db_lookups_total "):
            queries += float(line.rsplit(" ", 1)[1])
        elif line.startswith("resolver_db_lookup_handles_total "):
            handles += float(line.rsplit(" ", 1)[1])
    return queries, handles


def wrk(port: int, script: Path, seconds: float) -> float:
    out = subprocess.run(
        ["wrk", "-t1", "-c64", f"-d{seconds:g}s", "-s", str(script), f"http://127.0.0.1:{port}/"],
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=True,
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert match, out
    return float(match.group(1))


def measure(
    checkout: Path, case: str, dsn: str, workdir: Path, script: Path, args: argparse.Namespace
) -> str:
    cache = "1000" if case == "miss" else str(args.handles * 2)
    node, url = start_node(workdir, "--dsn", dsn, "--cache-max-entries", cache, checkout=checkout)
    port = int(url.rsplit(":", 1)[1])
    try:
        wrk(port, script, args.warmup if case == "miss" else max(args.warmup, 15))
        node_pids = [str(node.pid), *descendants(node.pid)]
        pg_pids = postgres_pids(workdir / "pgdata")
        queries0, handles0 = lookups(port)
        node0, pg0 = cpu_seconds(node_pids), cpu_seconds(pg_pids)
        wrk0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rate = wrk(port, script, args.duration)
        wrk1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        node1, pg1 = cpu_seconds(node_pids), cpu_seconds(pg_pids)
        queries1, handles1 = lookups(port)
    finally:
        stop(node)
    requests = rate * args.duration
    wrk_cpu = (wrk1.ru_utime + wrk1.ru_stime) - (wrk0.ru_utime + wrk0.ru_stime)
    batch = (handles1 - handles0) / (queries1 - queries0) if queries1 > queries0 else 0.0
    return (
        f"| {checkout} | {case} | {rate:,.0f} | {1e6 * (node1 - node0) / requests:.1f} | "
        f"{1e6 * (pg1 - pg0) / requests:.1f} | {1e6 * wrk_cpu / requests:.1f} | {batch:.1f} |"
    )


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--case", choices=["miss", "hit"], default="miss")
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of wrk per measurement")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of wrk before measuring")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ref", type=Path, help="another checkout to interleave with this one")
    args = parser.parse_args()
    if shutil.which("wrk") is None or not Path("/proc/self/stat").exists():
        print("needs wrk (apt-get install wrk) and Linux /proc", file=sys.stderr)
        return 2
    checkouts = [ROOT] if args.ref is None else [args.ref.resolve(), ROOT]
    print("| checkout | case | requests/s | node µs/req | Postgres µs/req | wrk µs/req | keys per query |")
    print("|---|---|---|---|---|---|---|")
    with embedded_database("resolver-cpu-") as (workdir, dsn):
        asyncio.run(seed(dsn, args.handles))
        script = workdir / "random.lua"
        script.write_text(
            "math.randomseed(os.time())\nrequest = function()\n"
            f'  return wrk.format("GET", "/api/handles/88.123/B" .. math.random(0, {args.handles - 1}))\nend\n'
        )
        for _ in range(args.rounds):
            for checkout in checkouts:
                print(measure(checkout, args.case, dsn, workdir, script, args), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
