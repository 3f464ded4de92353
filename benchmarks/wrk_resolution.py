"""Resolution throughput against the ceiling of this machine, measured with wrk in one run.

Starts, all on 127.0.0.1 and all stopped at the end:
- nginx (2 workers) serving a static file of the same bytes as a cached resolution: the ceiling;
- `resolver serve --workers 2` on an embedded Postgres seeded with N handles (COPY);
then runs wrk (bounded by --duration) for:
- cached: one hot handle through /api/handles/...;
- miss: random handles out of N, with the cache shrunk so nearly every request misses it.

Usage: python benchmarks/wrk_resolution.py [--handles 100000] [--duration 10] [--runs 3]
Needs wrk and nginx (Debian packages `wrk`, `nginx`).
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import statistics
import subprocess
import sys
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import uvloop

from benchmarks import open_loop
from benchmarks.harness import embedded_database, free_port, start_node, stop, wait_http
from resolver.core.values import parse_values
from resolver.store.migrations import migrate
from resolver.store.rows import encode_values

HOT = "88.123/HOT-0001"


async def seed(dsn: str, count: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        await conn.execute("truncate handles")
        now = datetime.now(UTC)

        def row(i: int) -> tuple[str, str, str, str]:
            handle = f"88.123/B{i}"
            values = parse_values(
                [
                    {"index": 1, "type": "URL", "data": f"https://example.com/product/B{i}"},
                    {"index": 2, "type": "EMAIL", "data": "info@example.com"},
                ],
                __import__("resolver.config", fromlist=["Limits"]).Limits(),
                now,
            )
            return handle.lower(), handle, "88.123", encode_values(values)

        rows = [row(i) for i in range(count)]
        rows.append((HOT.lower(), HOT, "88.123", rows[0][3]))
        await conn.copy_records_to_table("handles", records=rows, columns=["key", "handle", "prefix", "vals"])
        await conn.execute("analyze handles")
    finally:
        await conn.close()


def wrk(url: str, duration: int, connections: int, script: Path | None = None) -> dict[str, float]:
    command = ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--latency"]
    if script:
        command += ["-s", str(script)]
    out = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=duration + 30, check=True
    ).stdout

    def latency(label: str) -> float:
        match = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.MULTILINE)
        assert match, out
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": latency("50%"),
        "p99": latency("99%"),
        "errors": float(non2xx.group(1)) if non2xx else 0.0,
    }


def start_nginx(workdir: Path, body: bytes) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    (workdir / "www").mkdir()
    (workdir / "www" / "hot.json").write_bytes(body)
    conf = workdir / "nginx.conf"
    conf.write_text(
        f"""worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  default_type application/json;
  keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{port} reuseport; root {workdir}/www; }}
}}
"""
    )
    process = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(workdir), "-g", "daemon off;"])
    wait_http(f"http://127.0.0.1:{port}/hot.json")
    return process, port


def start_resolver(dsn: str, workdir: Path, *extra: str) -> tuple[subprocess.Popen[bytes], int]:
    process, url = start_node(workdir, "--dsn", dsn, *extra)
    return process, int(url.rsplit(":", 1)[1])


def median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {k: statistics.median(r[k] for r in runs) for k in runs[0]}


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run (bounded)")
    parser.add_argument("--runs", type=int, default=1, help="runs per case; the median is reported")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--report", type=Path, help="also write the markdown table here")
    parser.add_argument(
        "--open-loop-rates",
        type=float,
        nargs="*",
        default=[1160.0, 4000.0],
        help="offered loads for the open-loop latency runs [1160 4000]",
    )
    parser.add_argument("--open-loop-duration", type=float, default=10.0, help="seconds per open-loop run")
    parser.add_argument(
        "--hey-rates",
        type=float,
        nargs="*",
        default=[1160.0, 10000.0],
        help="offered loads held by hey (when installed), one cached handle [1160 10000]",
    )
    args = parser.parse_args()
    for tool in ("wrk", "nginx"):
        if shutil.which(tool) is None:
            print(f"{tool} is needed: apt-get install {tool}", file=sys.stderr)
            return 2

    with embedded_database("resolver-bench-") as (workdir, dsn):
        processes: list[subprocess.Popen[bytes]] = []
        try:
            asyncio.run(seed(dsn, args.handles))
            cached, cached_port = start_resolver(dsn, workdir)
            processes.append(cached)
            hot_url = f"http://127.0.0.1:{cached_port}/api/handles/{HOT}"
            body = urllib.request.urlopen(hot_url).read()
            nginx, nginx_port = start_nginx(workdir, body)
            processes.append(nginx)
            missing, miss_port = start_resolver(dsn, workdir, "--cache-max-entries", "1000")
            processes.append(missing)
            script = workdir / "random.lua"
            script.write_text(
                f"math.randomseed(os.time())\nrequest = function()\n"
                f'  return wrk.format("GET", "/api/handles/88.123/B" .. math.random(0, {args.handles - 1}))\nend\n'
            )
            redirect_url = f"http://127.0.0.1:{cached_port}/{HOT}"
            cases = [
                ("nginx static file (ceiling)", f"http://127.0.0.1:{nginx_port}/hot.json", None),
                ("resolver cached, /api/handles, 2 workers", hot_url, None),
                ("resolver cached, redirect face /{handle} (302), 2 workers", redirect_url, None),
                (
                    f"resolver cache misses, {args.handles} handles random, 2 workers",
                    f"http://127.0.0.1:{miss_port}/",
                    script,
                ),
            ]
            results: dict[str, list[dict[str, float]]] = {name: [] for name, _, _ in cases}
            for _ in range(args.runs):
                for name, url, lua in cases:
                    results[name].append(wrk(url, args.duration, args.connections, lua))
            open_loop_results = [
                uvloop.run(
                    open_loop.run(
                        f"http://127.0.0.1:{cached_port}", rate, args.open_loop_duration, args.handles
                    )
                )
                for rate in args.open_loop_rates
            ]
            held = [
                open_loop.held_by_hey(
                    f"http://127.0.0.1:{cached_port}", rate, args.open_loop_duration, "/api/handles/88.123/B1"
                )
                for rate in args.hey_rates
            ]
            hey_results = [r for r in held if r is not None]
        finally:
            for process in processes:
                stop(process)

    ceiling = median(results[cases[0][0]])["rps"]
    lines = [
        f"wrk -t1 -c{args.connections} -d{args.duration}s, median of {args.runs} run(s), "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, response {len(body)} bytes",
        "",
        "| case | requests/s | ratio to nginx | p50 ms | p99 ms | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for name, _, _ in cases:
        m = median(results[name])
        lines.append(
            f"| {name} | {m['rps']:,.0f} | {m['rps'] / ceiling:.2f} | {m['p50']:.2f} | {m['p99']:.2f} | {m['errors']:.0f} |"
        )
    lines += [
        "",
        f"Open loop (fixed offered load, latency from the scheduled send time, {args.open_loop_duration:g} s, "
        f"random handles of {args.handles:,}, cached node):",
        "",
        "| offered req/s | sent | errors | generator late | p50 ms | p99 ms | max ms | valid |",
        "|---|---|---|---|---|---|---|---|",
        *[
            f"| {r['rate']:,.0f} | {r['sent']:,.0f} | {r['errors']:.0f} | {r['late']:.0f} | "
            f"{r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | "
            f"{'yes' if r['late'] <= 0.01 * r['sent'] else 'no: the generator could not hold the rate'} |"
            for r in open_loop_results
        ],
    ]
    if hey_results:
        lines += [
            "",
            f"Held rate by `hey` (rate/100 workers at 100 requests/s each, {args.open_loop_duration:g} s, one "
            "cached handle; a worker whose answer takes over 10 ms misses a tick, counted as not sent):",
            "",
            "| offered req/s | sent | errors | not sent | p50 ms | p99 ms | max ms | valid |",
            "|---|---|---|---|---|---|---|---|",
            *[
                f"| {r['rate']:,.0f} | {r['sent']:,.0f} | {r['errors']:.0f} | {r['late']:.0f} | "
                f"{r['p50']:.2f} | {r['p99']:.2f} | {r['max']:.1f} | "
                f"{'yes' if r['late'] <= 0.02 * r['rate'] * args.open_loop_duration else 'no: the rate was not held'} |"
                for r in hey_results
            ],
        ]
    report = "\n".join(lines)
    print(report)
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(report + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
