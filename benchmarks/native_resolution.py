"""CPU per cached resolution over native UDP, native TCP and HTTP, with latency, in one run.

Requests per second swing by a third between runs on this shared 2-core VM; the CPU time the
node's processes spend per answered request moves much less, so that is the figure reported (with
the rate and the latency percentiles beside it). It starts `resolver serve --workers 2` on an
embedded Postgres seeded with --handles handles (COPY), with the native listeners on a free port,
warms every worker's cache, then measures each face for --duration seconds:

- `udp`: one resolution per datagram, 64 in flight spread over 16 client sockets (the kernel picks
  a worker per socket), a Python (uvloop) generator;
- `tcp`: one connection per request, as hdllib does (connect, resolve, close), 64 at once;
- `tcp-certified` (when asked for): the same with the certify flag, every answer signed with the
  node's RSA-2048 key (a key directory made for the run);
- `http`: `GET /api/handles/...` on keep-alive connections, wrk -t1 -c64.

Each face runs over all handles in random order, and again with one hot handle (the second row: a
single handle hides per-handle costs). CPU is utime+stime of the node's process tree from /proc
(Postgres is not counted: a warm cache does not read it, and the hit ratio is printed to show it).
The generators share the cores with the node, so rates are what the pair reaches here; latency is
from send to answer as the generator sees it. `--ref DIR` runs the same against another checkout
(a `git worktree` of an older commit), interleaved round by round. Only 127.0.0.1 is targeted and
every load run ends after --duration.

Usage: python benchmarks/native_resolution.py [--handles 100000] [--duration 8] [--rounds 2]
       [--faces udp tcp http] [--ref /tmp/ref]
Linux only (reads /proc). HTTP needs wrk (Debian package `wrk`).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import resource
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.cpu_per_request import cpu_seconds, descendants
from benchmarks.harness import embedded_database, free_port, start_node, stop
from benchmarks.wrk_resolution import HOT, seed, wrk

PUBLIC_ONLY = 0x01000000
CERTIFY = 0x40000000  # the answer signed with the node's key (RFC 3652), made by `resolver keys init`
IN_FLIGHT = 64
UDP_SOCKETS = 16


def request(handle: str, request_id: int, flags: int) -> bytes:
    """A resolution request (RFC 3652): envelope, header, body, empty credential."""
    name = handle.encode()
    body = struct.pack("!I", len(name)) + name + struct.pack("!II", 0, 0)
    header = struct.pack("!IIIHBBII", 1, 0, flags, 0, 0, 0, 0, len(body))
    message = header + body + b"\0\0\0\0"
    return struct.pack("!BBBBIIII", 2, 10, 0, 0, 0, request_id, 0, len(message)) + message


def response_code(message: bytes) -> int:
    return int(struct.unpack_from("!I", message, 4)[0])


@dataclass
class Load:
    """What a generator saw: answers, answers with rc 1 / 200, latencies (ms)."""

    done: int = 0
    ok: int = 0
    latencies: list[float] = field(default_factory=list)
    p50: float = 0.0
    p99: float = 0.0

    def percentiles(self) -> None:
        if self.latencies:
            ordered = sorted(self.latencies)
            self.p50 = ordered[len(ordered) // 2]
            self.p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


Pick = Callable[[], str]


async def udp_load(port: int, pick: Pick, duration: float) -> Load:
    loop = asyncio.get_running_loop()
    load = Load()
    deadline = time.monotonic() + duration
    ids = iter(range(1, 1 << 31))
    pending: dict[int, tuple[float, Any]] = {}

    class Client(asyncio.DatagramProtocol):
        transport: asyncio.DatagramTransport

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport  # type: ignore[assignment]

        def datagram_received(self, data: bytes, addr: object) -> None:
            sent = pending.pop(struct.unpack_from("!I", data, 8)[0], None)
            if sent is None:
                return
            load.done += 1
            load.ok += response_code(data[20:]) == 1
            load.latencies.append((time.monotonic() - sent[0]) * 1000)
            send(self)

    def send(client: Client) -> None:
        if time.monotonic() < deadline:
            request_id = next(ids)
            pending[request_id] = (time.monotonic(), client)
            client.transport.sendto(request(pick(), request_id, PUBLIC_ONLY))

    clients = []
    for _ in range(UDP_SOCKETS):
        _, client = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
        clients.append(client)
    for i in range(IN_FLIGHT):
        send(clients[i % UDP_SOCKETS])
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        now = time.monotonic()
        for request_id, (sent, client) in list(pending.items()):
            if now - sent > 1.0:  # a lost datagram: forget it, keep the window full
                pending.pop(request_id, None)
                send(client)
    for client in clients:
        client.transport.close()
    return load


async def tcp_load(port: int, pick: Pick, duration: float, flags: int = PUBLIC_ONLY) -> Load:
    load = Load()
    deadline = time.monotonic() + duration

    async def one() -> None:
        request_id = 0
        while time.monotonic() < deadline:
            request_id += 1
            started = time.monotonic()
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(pick(), request_id, flags))
            envelope = await reader.readexactly(20)
            message = await reader.readexactly(struct.unpack_from("!I", envelope, 16)[0])
            writer.close()
            load.done += 1
            load.ok += response_code(message) == 1
            load.latencies.append((time.monotonic() - started) * 1000)
            await writer.wait_closed()

    await asyncio.gather(*(one() for _ in range(IN_FLIGHT)))
    return load


def resolutions(url: str) -> dict[str, float]:
    """resolver_resolutions_total by outcome, summed over workers."""
    counts: dict[str, float] = {}
    for line in urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode().splitlines():
        if line.startswith("resolver_resolutions_total{"):
            outcome = line.split('outcome="', 1)[1].split('"', 1)[0]
            counts[outcome] = counts.get(outcome, 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def lua(workdir: Path, handles: int, hot: bool) -> Path:
    script = workdir / ("hot.lua" if hot else "random.lua")
    target = f'"/api/handles/{HOT}"' if hot else f'"/api/handles/88.123/B" .. math.random(0, {handles - 1})'
    script.write_text(
        f'math.randomseed(os.time())\nrequest = function()\n  return wrk.format("GET", {target})\nend\n'
    )
    return script


@dataclass
class Node:
    url: str
    native: int
    pids: list[str]


def measure(node: Node, face: str, hot: bool, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """One face for --duration seconds: rate, node CPU per answer, generator CPU, hit ratio, p50/p99."""
    handles = args.handles

    def pick() -> str:
        return HOT if hot else f"88.123/B{random.randrange(handles)}"

    spies = [] if args.profile is None else profile(node, f"{face}-{'hot' if hot else 'random'}", args)
    before = resolutions(node.url)
    node0 = cpu_seconds(node.pids)
    own0, children0 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    if face == "http":
        result = wrk(f"{node.url}/", int(args.duration), IN_FLIGHT, lua(workdir, handles, hot))
        seconds = time.monotonic() - started
        load = Load(done=int(result["rps"] * args.duration), p50=result["p50"], p99=result["p99"])
        load.ok = load.done - int(result["errors"])
    else:
        import uvloop

        run: Callable[[], Coroutine[Any, Any, Load]] = (
            (lambda: udp_load(node.native, pick, args.duration))
            if face == "udp"
            else (lambda: tcp_load(node.native, pick, args.duration))
            if face == "tcp"
            else (lambda: tcp_load(node.native, pick, args.duration, PUBLIC_ONLY | CERTIFY))
        )
        load = uvloop.run(run())
        seconds = time.monotonic() - started
        load.percentiles()
    node1 = cpu_seconds(node.pids)
    own1, children1 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    after = resolutions(node.url)
    for spy in spies:
        spy.wait(args.duration + 30)
    generator = (
        (children1.ru_utime + children1.ru_stime - children0.ru_utime - children0.ru_stime)
        if face == "http"
        else (own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime)
    )
    hits = after.get("hit", 0) - before.get("hit", 0)
    total = sum(after.values()) - sum(before.values())
    answered = max(1, load.done)
    return {
        "rate": load.done / seconds,
        "node_us": 1e6 * (node1 - node0) / answered,
        "generator_us": 1e6 * generator / answered,
        "ok": load.ok / answered,
        "hit": hits / total if total else 0.0,
        "p50": load.p50,
        "p99": load.p99,
    }


def profile(node: Node, name: str, args: argparse.Namespace) -> list[subprocess.Popen[bytes]]:
    """py-spy sampling each worker (not the parent) for the run, collapsed stacks in --profile DIR."""
    args.profile.mkdir(parents=True, exist_ok=True)
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    return [
        subprocess.Popen(
            [
                spy,
                "record",
                "--pid",
                pid,
                "--duration",
                str(int(args.duration)),
                "--rate",
                "250",
                "--nonblocking",
                "--format",
                "raw",
                "--output",
                str(args.profile / f"{name}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in node.pids[1:]
    ]


def warm(node: Node, args: argparse.Namespace, workdir: Path) -> None:
    """Random HTTP load until a round adds almost no misses (each worker has the handles)."""
    script = lua(workdir, args.handles, hot=False)
    deadline = time.monotonic() + args.warm_limit
    while time.monotonic() < deadline:
        before = resolutions(node.url)
        wrk(f"{node.url}/", 4, IN_FLIGHT, script)
        after = resolutions(node.url)
        misses = after.get("miss", 0) - before.get("miss", 0)
        if misses <= 0.002 * max(1.0, sum(after.values()) - sum(before.values())):
            break
    else:
        print(
            f"  (HTTP warming stopped after {args.warm_limit:g} s with misses still coming)", file=sys.stderr
        )
    if "udp" in args.faces or "tcp" in args.faces:
        # A cached entry encodes its native form the first time a worker is asked natively: random
        # UDP requests until each worker was asked for every handle about --warm-visits / 2 times
        # (so all but e**-(visits/2) of them are encoded), at most --warm-limit seconds.
        import uvloop

        sent = 0
        deadline = time.monotonic() + args.warm_limit
        handles = args.handles
        while sent < args.warm_visits * handles and time.monotonic() < deadline:
            sent += uvloop.run(
                udp_load(node.native, lambda: f"88.123/B{random.randrange(handles)}", 5.0)
            ).done


def keys(checkout: Path, workdir: Path) -> Path:
    """A key directory with one RSA-2048 key, for the tcp-certified face (made once per run)."""
    path = workdir / "keys"
    if not (path / "keys.json").exists():
        subprocess.run(
            [sys.executable, "-m", "resolver", "keys", "init", "--key-dir", str(path)],
            cwd=checkout,
            check=True,
        )
    return path


def start(checkout: Path, dsn: str, workdir: Path, handles: int, certify: bool = False) -> tuple[Any, Node]:
    native = free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", native))  # the UDP side of the port is free too
    process, url = start_node(
        workdir,
        "--dsn",
        dsn,
        "--native-port",
        str(native),
        "--native-udp-rate",
        "0",  # the generator is one address: no reflection limit here
        "--cache-max-entries",
        str(2 * handles + 10),
        *(("--key-dir", str(keys(checkout, workdir))) if certify else ()),
        checkout=checkout,
    )
    return process, Node(url, native, [str(process.pid), *descendants(process.pid)])


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per face and row")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument(
        "--faces", nargs="+", choices=["udp", "tcp", "tcp-certified", "http"], default=["udp", "tcp", "http"]
    )
    parser.add_argument("--no-hot", action="store_true", help="skip the single-hot-handle rows")
    parser.add_argument("--warm-limit", type=float, default=90.0, help="seconds of each warming at most")
    parser.add_argument("--warm-visits", type=float, default=10.0, help="native warming: requests per handle")
    parser.add_argument("--ref", type=Path, help="another checkout to interleave with this one")
    parser.add_argument("--profile", type=Path, help="also record py-spy profiles of the workers here")
    args = parser.parse_args()
    if not Path("/proc/self/stat").exists() or ("http" in args.faces and shutil.which("wrk") is None):
        print("needs Linux /proc, and wrk for HTTP (apt-get install wrk)", file=sys.stderr)
        return 2
    checkouts = [ROOT] if args.ref is None else [args.ref.resolve(), ROOT]
    rows: dict[tuple[str, str, bool], list[dict[str, Any]]] = {}
    print(
        f"{args.handles:,} handles, node with 2 workers, {IN_FLIGHT} in flight, {args.duration:g} s a row, "
        f"{args.rounds} rounds, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        flush=True,
    )
    with embedded_database("resolver-native-") as (workdir, dsn):
        asyncio.run(seed(dsn, args.handles))
        for _ in range(args.rounds):
            for checkout in checkouts:
                process, node = start(checkout, dsn, workdir, args.handles, "tcp-certified" in args.faces)
                try:
                    warm(node, args, workdir)
                    for face in args.faces:
                        for hot in (False,) if args.no_hot else (False, True):
                            result = measure(node, face, hot, args, workdir)
                            rows.setdefault((str(checkout), face, hot), []).append(result)
                            print(f"  {checkout} {face} {'hot' if hot else 'random'}: {result}", flush=True)
                finally:
                    stop(process)
    print()
    print(
        "| checkout | face | handles | node CPU µs/req | answers/s | p50 ms | p99 ms | generator µs/req | hit | ok |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (checkout, face, hot), results in rows.items():

        def med(key: str, results: list[dict[str, Any]] = results) -> float:
            return float(statistics.median(r[key] for r in results))

        print(
            f"| {checkout} | {face} | {'1 hot' if hot else f'{args.handles:,} random'} | "
            f"{med('node_us'):.1f} | {med('rate'):,.0f} | {med('p50'):.2f} | {med('p99'):.2f} | "
            f"{med('generator_us'):.1f} | {med('hit'):.1%} | {med('ok'):.1%} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
