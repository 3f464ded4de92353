"""A hostile outside world for recursive resolution, on 127.0.0.1: the top-level node simulator
(counting the prefix records it is asked for, with a few poisoned answers on demand) and a hostile
site (an HTTP server answering as each prefix's behaviour says, plus raw TCP ports that send an SSH
banner, that never answer, and that nobody listens on). Used by test_recursion.py and
test_fuzz_recursion.py."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import requests
from aiohttp import web

from tests.nodes import Node, free_port, start_node
from tests.simulator import module as simulator_module

HUGE = 300 * 1024 * 1024
INFLATED = 200 * 1024 * 1024
SECRET = "ESCAPED-THE-HANDLE-PATH"
LOG_MARKS = ("Traceback", "unexpected error", "Error handling request", "exception was never retrieved")

Behaviour = Callable[[web.Request], Awaitable[web.StreamResponse]]


def values_of(handle: str, ttl: int = 86400) -> list[dict[str, Any]]:
    return [
        {"index": 1, "type": "URL", "data": {"format": "string", "value": f"https://example.com/{handle}"},
         "ttl": ttl, "timestamp": "2026-01-02T03:04:05Z"},
        {"index": 2, "type": "EMAIL", "data": {"format": "string", "value": "ops@example.com"}, "ttl": ttl},
    ]  # fmt: skip


def hs_site(port: object, address: str = "127.0.0.1", protocol: str = "HTTP", ttl: int = 86400) -> dict:
    interface: dict[str, Any] = {"query": True, "admin": False, "protocol": protocol}
    if port is not None:
        interface["port"] = port
    server = {"serverId": 1, "address": address, "interfaces": [interface]}
    return {
        "index": 1,
        "type": "HS_SITE",
        "data": {"format": "site", "value": {"servers": [server]}},
        "ttl": ttl,
    }


class World:
    """The top-level node (simulator) and a hostile site, on an event loop of their own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.toplevel_asked: Counter[str] = Counter()  # folded prefix -> GETs of 0.NA/<prefix>
        self.toplevel_answers: dict[str, tuple[int, bytes]] = {}  # poisoned records, by prefix
        self.toplevel_delay: dict[str, float] = {}
        self.state_reads = 0
        self.site_seen: list[tuple[str, str]] = []  # (raw path, raw query) the hostile site was asked
        self.behaviours: dict[str, Behaviour] = {}  # by the prefix of the asked handle
        self.sent: Counter[str] = Counter()  # bytes of huge answers actually sent, by handle
        self.tcp_seen: Counter[str] = Counter()  # connections to the raw TCP ports
        self.user_agents: Counter[str] = Counter()  # of the node's requests (prefix records, site)
        self._runners: list[web.AppRunner] = []
        self._servers: list[asyncio.Server] = []

    # -- running ---------------------------------------------------------------------------------

    def start(self) -> World:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(30)
        self.loop.close()

    async def _serve(self, app: web.Application) -> int:
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        self._runners.append(runner)
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    async def _tcp(self, name: str, greet: bytes | None) -> int:
        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.tcp_seen[name] += 1
            deadline = time.monotonic() + 30  # bounded, whatever the node does
            try:
                if greet is not None:  # what sshd does: its banner first, a complaint after any line
                    writer.write(greet)
                    await writer.drain()
                    await asyncio.wait_for(reader.readline(), 30)
                    writer.write(b"Invalid SSH identification string.\r\n")
                    await writer.drain()
                else:  # silence until the node hangs up
                    while time.monotonic() < deadline and await asyncio.wait_for(reader.read(65536), 30):
                        pass
            except (TimeoutError, ConnectionError):
                pass
            finally:
                writer.close()

        server = await asyncio.start_server(answer, "127.0.0.1", 0)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def _start(self) -> None:
        simulator = simulator_module().create_app()
        simulator.middlewares.append(self._toplevel)
        self.toplevel_port = await self._serve(simulator)
        site = web.Application()
        site.router.add_route("*", "/{tail:.*}", self._site)
        self.site_port = await self._serve(site)
        self.ssh_port = await self._tcp("ssh", b"SSH-2.0-OpenSSH_9.2\r\n")
        self.silent_port = await self._tcp("silent", None)
        self.refused_port = free_port()  # nobody listens there

    async def _stop(self) -> None:
        for server in self._servers:
            server.close()
        for runner in self._runners:
            await runner.cleanup()

    @property
    def toplevel_url(self) -> str:
        return f"http://127.0.0.1:{self.toplevel_port}"

    # -- the top-level node ----------------------------------------------------------------------

    @web.middleware
    async def _toplevel(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path == "/upstream/v1/state":
            self.state_reads += 1
        elif request.method == "GET" and request.path.lower().startswith("/api/handles/0.na/"):
            prefix = request.path[len("/api/handles/0.na/") :].lower()
            self.toplevel_asked[prefix] += 1
            self.user_agents[request.headers.get("User-Agent", "")] += 1
            await asyncio.sleep(self.toplevel_delay.get(prefix, 0.0))
            if prefix in self.toplevel_answers:
                status, body = self.toplevel_answers[prefix]
                return web.Response(status=status, body=body, content_type="application/json")
        response: web.StreamResponse = await handler(request)
        return response

    def publish(self, prefix: str, *values: dict[str, Any]) -> None:
        """A prefix record at the top-level node, as any node can report one."""
        message = {
            "messageId": str(uuid.uuid4()),
            "type": "prefix",
            "node": "99",
            "prefix": prefix,
            "op": "upsert",
            "record": {"handle": f"0.NA/{prefix}", "values": list(values)},
        }
        answer = requests.post(f"{self.toplevel_url}/upstream/v1/messages", json=message, timeout=10)
        assert answer.status_code == 200, answer.text

    def hostile(self, prefix: str, behaviour: Behaviour, port: int | None = None) -> None:
        """Route `prefix` to the hostile site (or a raw port), answering with `behaviour`."""
        self.behaviours[prefix] = behaviour
        self.publish(prefix, hs_site(port or self.site_port))

    def asked(self, prefix: str) -> list[tuple[str, str]]:
        return [seen for seen in self.site_seen if seen[0].startswith(f"/api/handles/{prefix}/")]

    # -- the hostile site ------------------------------------------------------------------------

    async def _site(self, request: web.Request) -> web.StreamResponse:
        self.site_seen.append((request.raw_path, request.query_string))
        self.user_agents[request.headers.get("User-Agent", "")] += 1
        path = request.raw_path
        if not path.startswith("/api/handles/"):  # what an escape from the handle path would reach
            return web.json_response({"responseCode": 1, "handle": "x/y", "values": [SECRET]})
        prefix = path[len("/api/handles/") :].partition("/")[0]
        behaviour = self.behaviours.get(unquote(prefix))
        if behaviour is None:
            return web.json_response({"responseCode": 100, "handle": "?"}, status=404)
        return await behaviour(request)


def handle_of(request: web.Request) -> str:
    return unquote(request.raw_path[len("/api/handles/") :])


async def good(request: web.Request) -> web.StreamResponse:
    handle = handle_of(request)
    return web.json_response({"responseCode": 1, "handle": handle, "values": values_of(handle)})


def redirect(location: str) -> Behaviour:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=302, headers={"Location": location})

    return answer


def raw(status: int, body: bytes, content_type: str = "application/json") -> Behaviour:
    async def answer(_request: web.Request) -> web.StreamResponse:
        return web.Response(status=status, body=body, headers={"Content-Type": content_type})

    return answer


def huge(world: World, *, announce_length: bool) -> Behaviour:
    """300 MB of a JSON string, streamed (generated as it goes, never held), bounded in time."""

    async def answer(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        if announce_length:
            response.content_length = HUGE
        await response.prepare(request)
        chunk = b"x" * 65536
        handle = handle_of(request)
        deadline = time.monotonic() + 30
        try:
            await response.write(b'{"responseCode":1,"values":[],"padding":"')
            while world.sent[handle] < HUGE and time.monotonic() < deadline:
                await response.write(chunk)
                world.sent[handle] += len(chunk)
        except (ConnectionError, RuntimeError):
            pass  # the node hung up: that is the point
        return response

    return answer


def gzip_bomb(world: World) -> Behaviour:
    """A gzip body of ~200 kB (below the node's limit) that inflates to 200 MB."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = b"x" * (1024 * 1024)
    body = compressor.compress(b'{"responseCode":1,"values":[],"padding":"')
    body += b"".join(compressor.compress(block) for _ in range(INFLATED // len(block)))
    body += compressor.flush()

    async def answer(request: web.Request) -> web.StreamResponse:
        world.sent[handle_of(request)] += len(body)
        return web.Response(
            body=body, headers={"Content-Type": "application/json", "Content-Encoding": "gzip"}
        )

    return answer


# -- the node in it --------------------------------------------------------------------------------


def start_recursive(tmp: Path, dsn: str, world: World, *options: str) -> Node:
    return start_node(tmp, "--dsn", dsn, "--upstream-url", world.toplevel_url, *options)


def stop_cleanly(node: Node) -> None:
    code = node.stop()
    log = node.log.read_text(errors="replace")
    assert code == 0, log[-5000:]
    marks = [line for line in log.splitlines() if any(mark in line for mark in LOG_MARKS)]
    assert not marks, "the node logged errors:\n" + "\n".join(marks[:40])


def get(node: Node, target: str) -> tuple[int, str, bytes]:
    """GET `target` exactly as written (no dot-segment removal, no re-quoting): status, type, body."""
    parts = urlsplit(node.url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=60)
    try:
        conn.request("GET", target)
        answer = conn.getresponse()
        return answer.status, answer.getheader("Content-Type", ""), answer.read()
    finally:
        conn.close()
