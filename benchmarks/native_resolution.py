"""Resolutions per second over the native Handle protocol (UDP, TCP) next to HTTP, in one run.

Starts `resolver serve --workers 2` on an embedded Postgres seeded with N handles, with the native
listeners on a free port, then for each face runs the same kind of Python load generator (asyncio,
one process, a fixed number of requests in flight, random handles) for --duration seconds, and wrk
for HTTP as the reference. The generator shares the two cores with the node: the numbers are what
the pair reaches on this machine, a lower bound of the node's ceiling. Only 127.0.0.1 is targeted.

Usage: python benchmarks/native_resolution.py [--handles 100000] [--duration 10] [--in-flight 64]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import socket
import struct
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.harness import embedded_database, free_port, stop
from benchmarks.wrk_resolution import seed, start_resolver, wrk

PUBLIC_ONLY = 0x01000000
KEEP_ALIVE = 0x02000000


def request(handle: str, request_id: int, flags: int) -> bytes:
    """A resolution request (RFC 3652): envelope, header, body, empty credential."""
    name = handle.encode()
    body = struct.pack("!I", len(name)) + name + struct.pack("!II", 0, 0)
    header = struct.pack("!IIIHBBII", 1, 0, flags, 0, 0, 0, 0, len(body))
    message = header + body + b"\0\0\0\0"
    return struct.pack("!BBBBIIII", 2, 10, 0, 0, 0, request_id, 0, len(message)) + message


def response_code(message: bytes) -> int:
    return int(struct.unpack_from("!I", message, 4)[0])


async def udp_load(port: int, handles: int, duration: float, in_flight: int) -> tuple[int, int]:
    loop = asyncio.get_running_loop()
    done = ok = 0
    pending: dict[int, float] = {}
    ids = iter(range(1, 1 << 31))
    deadline = time.monotonic() + duration

    class Client(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def datagram_received(self, data: bytes, addr: object) -> None:
            nonlocal done, ok
            request_id = struct.unpack_from("!I", data, 8)[0]
            if pending.pop(request_id, None) is None:
                return
            done += 1
            ok += response_code(data[20:]) == 1
            send()

    def send() -> None:
        if time.monotonic() >= deadline:
            return
        request_id = next(ids)
        pending[request_id] = time.monotonic()
        transport.sendto(request(f"88.123/B{random.randrange(handles)}", request_id, PUBLIC_ONLY))

    transport, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", port))
    for _ in range(in_flight):
        send()
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        stale = [r for r, t in pending.items() if time.monotonic() - t > 1.0]
        for request_id in stale:  # lost datagrams: forget them and keep the window full
            pending.pop(request_id, None)
            send()
    transport.close()
    return done, ok


async def tcp_load(port: int, handles: int, duration: float, connections: int) -> tuple[int, int]:
    deadline = time.monotonic() + duration
    totals = [0, 0]

    async def one() -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request_id = 0
        while time.monotonic() < deadline:
            request_id += 1
            writer.write(
                request(f"88.123/B{random.randrange(handles)}", request_id, PUBLIC_ONLY | KEEP_ALIVE)
            )
            envelope = await reader.readexactly(20)
            message = await reader.readexactly(struct.unpack_from("!I", envelope, 16)[0])
            totals[0] += 1
            totals[1] += response_code(message) == 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(connections)))
    return totals[0], totals[1]


async def http_load(url: str, handles: int, duration: float, connections: int) -> tuple[int, int]:
    import aiohttp

    deadline = time.monotonic() + duration
    totals = [0, 0]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as session:

        async def one() -> None:
            while time.monotonic() < deadline:
                async with session.get(f"{url}/api/handles/88.123/B{random.randrange(handles)}") as resp:
                    await resp.read()
                    totals[0] += 1
                    totals[1] += resp.status == 200

        await asyncio.gather(*(one() for _ in range(connections)))
    return totals[0], totals[1]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--handles", type=int, default=100_000)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=64, help="requests (UDP) or connections in flight")
    args = parser.parse_args()
    import uvloop

    results: list[tuple[str, int, int, float]] = []
    with embedded_database("resolver-native-") as (workdir, dsn):
        node = None
        try:
            asyncio.run(seed(dsn, args.handles))
            native = free_port()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.bind(("127.0.0.1", native))  # the UDP side of the port is free too
            node, port = start_resolver(dsn, workdir, "--native-port", str(native))
            url = f"http://127.0.0.1:{port}"
            # warm every worker's cache once, so that all faces measure cached answers
            uvloop.run(udp_load(native, args.handles, min(5.0, args.duration), args.in_flight))
            for face, run in (
                ("native UDP", lambda: udp_load(native, args.handles, args.duration, args.in_flight)),
                ("native TCP", lambda: tcp_load(native, args.handles, args.duration, args.in_flight)),
                (
                    "HTTP (same Python generator)",
                    lambda: http_load(url, args.handles, args.duration, args.in_flight),
                ),
            ):
                started = time.monotonic()
                done, ok = uvloop.run(run())
                results.append((face, done, ok, time.monotonic() - started))
            script = workdir / "random.lua"
            script.write_text(
                "request = function()\n"
                f'  return wrk.format("GET", "/api/handles/88.123/B" .. math.random(0, {args.handles - 1}))\nend\n'
            )
            reference = wrk(f"{url}/", int(args.duration), args.in_flight, script)
        finally:
            if node is not None:
                stop(node)
    print(
        f"{args.handles:,} handles, node with 2 workers, {args.duration:g} s a face, "
        f"{args.in_flight} in flight, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC"
    )
    print("| face | resolutions/s | answered rc 1 / 200 |")
    print("|---|---|---|")
    for face, done, ok, seconds in results:
        print(f"| {face} | {done / seconds:,.0f} | {ok / max(1, done):.1%} |")
    print(
        f"| HTTP (wrk -t1 -c{args.in_flight}) | {reference['rps']:,.0f} | non-2xx {reference['errors']:.0f} |"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
