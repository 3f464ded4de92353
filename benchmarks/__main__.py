"""`python -m benchmarks run`: seed, start the node, run the Locust scenarios, write reports.

Everything runs on 127.0.0.1 and every scenario is bounded by --duration. Reports go to
`benchmarks/results/<date>-<scenario>.md` with PNG plots beside them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
sys.path.insert(0, str(ROOT))

from benchmarks.batch_create import setup
from benchmarks.harness import SECRET, embedded_database, run_import, start_node, stop
from benchmarks.profile import RESOLUTIONS_PER_SECOND, day_profile_users


def seed_file(path: Path, count: int) -> None:
    with open(path, "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(["handle", "productName", "manufacturer", "URL"])
        for i in range(count):
            writer.writerow([f"88.123/S{i}", f"产品{i}", "基准企业", f"https://example.com/p/{i}"])


async def prepare_enterprise(url: str) -> None:
    async with aiohttp.ClientSession() as session:
        await setup(session, url)


def run_locust(
    url: str,
    scenario: str,
    duration: int,
    users: int,
    identifiers: int,
    multiple: float,
    out: Path,
    admin_secret: str = SECRET,
) -> tuple[Path, int]:
    """Locust headless against `url`, bounded by `duration`: the prefix of its CSV files and its exit
    code (non-zero when any request failed)."""
    prefix = out / scenario
    env = {
        **os.environ,
        "SCENARIO": scenario,
        "BENCH_IDENTIFIERS": str(identifiers),
        "BENCH_MULTIPLE": str(multiple),
        "BENCH_ADMIN_SECRET": admin_secret,
    }
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "benchmarks" / "locustfile.py"),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(max(1, users // 2)),
            "-t",
            f"{duration}s",
            "--host",
            url,
            "--csv",
            str(prefix),
            "--csv-full-history",
            "--only-summary",
            "--stop-timeout",
            "5",
        ],
        cwd=ROOT,
        env=env,
        check=False,
        timeout=duration + 120,
    )
    return prefix, done.returncode


def totals(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats.csv", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def history(prefix: Path) -> list[dict[str, str]]:
    with open(f"{prefix}_stats_history.csv", encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["Name"] == "Aggregated"]


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:  # Locust writes N/A before the first answers
        return float("nan")


def plot(rows: list[dict[str, str]], target: Path, scenario: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not rows:
        return []
    start = int(rows[0]["Timestamp"])
    t = [int(r["Timestamp"]) - start for r in rows]

    def chart(
        kind: str, series: dict[str, list[float]], lines: list[tuple[float, str, str]], unit: str, corner: str
    ) -> str:
        fig, ax = plt.subplots(figsize=(8, 3.5))
        for label, values in series.items():
            ax.plot(t, values, label=label)
        for level, color, label in lines:
            ax.axhline(level, color=color, linestyle="--", label=label)
        ax.set_xlabel("seconds")
        ax.set_ylabel(unit)
        ax.legend(loc=corner)
        ax.set_title(f"{scenario}: {kind}")
        name = f"{target.stem}-{kind.split()[0]}.png"
        fig.tight_layout()
        fig.savefig(target.parent / name, dpi=90)
        plt.close(fig)
        return name

    thresholds = (
        [
            (RESOLUTIONS_PER_SECOND, "green", "116/s (10M a day)"),
            (RESOLUTIONS_PER_SECOND * 10, "orange", "1,160/s (10x peak)"),
        ]
        if scenario in ("resolution", "day")
        else []
    )
    return [
        chart(
            "throughput",
            {"requests/s": [_number(r["Requests/s"]) for r in rows]},
            thresholds,
            "requests/s",
            "lower right",
        ),
        chart(
            "latency (Locust rounds to whole ms)",
            {f"p{c.rstrip('%')}": [_number(r[c]) for r in rows] for c in ("50%", "95%", "99%")},
            [(10, "red", "10 ms")],
            "ms",
            "upper right",
        ),
    ]


def server_side_latency(url: str) -> dict[str, tuple[float, float, int]]:
    """From the node's own histograms: (p50, p99) upper bucket bounds in ms and count, per route."""
    import urllib.request

    text = urllib.request.urlopen(f"{url}/metrics", timeout=30).read().decode()
    buckets: dict[str, list[tuple[float, float]]] = {}
    for line in text.splitlines():
        if line.startswith("resolver_http_request_duration_seconds_bucket{"):
            labels, _, value = line.rpartition(" ")
            le = labels.split('le="')[1].split('"')[0]
            route = labels.split('route="')[1].split('"')[0]
            buckets.setdefault(route, []).append((float("inf") if le == "+Inf" else float(le), float(value)))
    result = {}
    for route, points in buckets.items():
        points.sort()
        total = points[-1][1]
        if not total:
            continue

        def quantile(q: float, points: list[tuple[float, float]] = points, total: float = total) -> float:
            return next(bound for bound, count in points if count >= q * total) * 1000

        result[route] = (quantile(0.5), quantile(0.99), int(total))
    return result


def report(
    scenario: str,
    prefix: Path,
    args: argparse.Namespace,
    users: int,
    seconds: float,
    server: dict[str, tuple[float, float, int]] | None = None,
) -> Path:
    from importlib.metadata import version

    stamp = datetime.now(UTC).strftime("%Y-%m-%d-%H%M")
    target = RESULTS / f"{stamp}-{scenario}.md"
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows = totals(prefix)
    plots = plot(history(prefix), target, scenario)
    lines = [
        f"# {scenario} scenario, {stamp} UTC",
        "",
        f"Machine: {os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}; "
        f"aiohttp {version('aiohttp')}, asyncpg {version('asyncpg')}, locust {version('locust')}.",
        f"Parameters: {args.identifiers:,} seeded identifiers (bulk import), {users} Locust users, "
        f"{args.duration} s, multiple of the threshold rates {args.multiple}, node with 2 workers, "
        "Locust on the same machine (closed loop: a slow node lowers the offered load).",
        f"Seeding by `resolver import`: {seconds:.1f} s.",
        "",
        "| request | count | failures | req/s | p50 ms | p95 ms | p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['Name']} | {r['Request Count']} | {r['Failure Count']} | {float(r['Requests/s']):,.1f} | "
            f"{r['50%']} | {r['95%']} | {r['99%']} |"
        )
    if server:
        lines += [
            "",
            "The node's own view (its latency histograms, handler start to response, cumulative since start;",
            "a percentile is the upper bound of its bucket):",
            "",
            "| route | requests | p50 ≤ ms | p99 ≤ ms |",
            "|---|---|---|---|",
            *[
                f"| {route} | {count:,} | {p50:g} | {p99:g} |"
                for route, (p50, p99, count) in sorted(server.items())
            ],
        ]
    lines += ["", *[f"![{p}]({p})" for p in plots], ""]
    target.write_text("\n".join(lines), encoding="utf-8")
    return target


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="seed, start the node, run the scenarios, write the reports")
    run.add_argument("--identifiers", type=int, default=1_000_000, help="identifiers to seed [1,000,000]")
    run.add_argument("--duration", type=int, default=60, help="seconds per scenario (bounded) [60]")
    run.add_argument(
        "--multiple", type=float, default=10.0, help="day profile: multiple of the threshold rates [10]"
    )
    run.add_argument(
        "--users", type=int, default=32, help="users for the resolution and registration scenarios [32]"
    )
    run.add_argument("--scenarios", default="resolution,registration,day")
    args = parser.parse_args()
    with embedded_database("resolver-bench-") as (work, dsn):
        node = None
        try:
            source = work / "seed.csv"
            seed_file(source, args.identifiers)
            started = time.perf_counter()
            run_import(source, dsn, "--template", "general-product-1.0")
            seeded = time.perf_counter() - started
            node, url = start_node(
                work, "--dsn", dsn, "--rate-per-address", "0", "--rate-per-credential", "0"
            )
            asyncio.run(prepare_enterprise(url))
            for scenario in args.scenarios.split(","):
                users = sum(day_profile_users(args.multiple)) if scenario == "day" else args.users
                prefix, _ = run_locust(
                    url, scenario, args.duration, users, args.identifiers, args.multiple, work
                )
                time.sleep(1.5)  # workers flush their tallies once a second
                server = server_side_latency(url)
                print(f"{scenario}: {report(scenario, prefix, args, users, seeded, server)}")
        finally:
            if node is not None:
                stop(node)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
