"""Cached resolutions answered below aiohttp (resolver/http/fastpath.py, hooked in
resolver/http/connections.py) send what aiohttp sends, count what aiohttp counts, and leave every
other request to aiohttp.

Two apps on one database, each behind the node's `GuardedRunner` on a real socket: `fast` with the
fast path, `plain` without it. The resolution answered is the JSON API's (reference:
HandleJsonRestApiServlet.doGet in
src/main/java/net/handle/server/servletcontainer/servlets/HandleJsonRestApiServlet.java); what is
pinned here is that the fast path's bytes are aiohttp's for the same request, Date aside.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

import aiohttp
import orjson
import pytest
from aiohttp import web

from resolver.config import Config
from resolver.http.app import create_app
from resolver.http.connections import ConnectionGuard, GuardedRunner
from resolver.http.fastpath import FastPath
from resolver.http.handles import RESOLVE_ROUTE
from resolver.http.keys import DAILY, LOOKUP, METRICS
from tests.helpers import admin_json, basic, url_value

HANDLES = [
    "88.123/Plain-1",
    "88.123/MiXeD-Case",
    "88.123/café-日本-😀",
    "88.123/a/b/c",
    "88.123/x;y=z@:!$&'()*+,~",
    "88.123/" + "L" * 248,  # the longest handle (255 characters)
    "88.123/" + "é" * 124,  # 744 characters of path
]
_DATE = re.compile(rb"Date: [^\r\n]*\r\n")
# an X-Request-Id the node made (resolver/http/requestid.new_id): its process prefix and counter
_MADE_ID = re.compile(rb"X-Request-Id: [0-9a-f]{10}-[0-9a-f]+\r\n")


@dataclass
class Node:
    app: web.Application
    runner: GuardedRunner
    port: int

    @property
    def fast(self) -> FastPath | None:
        return self.runner.fast

    @property
    def answered(self) -> int:
        return self.fast.answered if self.fast is not None else 0


@pytest.fixture
async def nodes(config: Config) -> AsyncIterator[tuple[Node, Node]]:
    started = []
    try:
        for fast_path in (True, False):
            app = create_app(config)
            runner = GuardedRunner(
                app,
                ConnectionGuard(config.header_timeout, 0),
                fast_path=fast_path,
                access_log=None,
                keepalive_timeout=config.keepalive_timeout,
                auto_decompress=False,
            )
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.base_events.Server)
            node = Node(app, runner, server.sockets[0].getsockname()[1])
            started.append(node)
            for _ in range(500):
                if app[LOOKUP].cache.trusted:
                    break
                await asyncio.sleep(0.01)
        yield started[0], started[1]
    finally:
        for node in started:
            await node.runner.cleanup()


async def _create(port: int, handles: list[str]) -> None:
    async with aiohttp.ClientSession() as session:
        for handle in handles:
            url = f"http://127.0.0.1:{port}/api/handles/{quote(handle, safe='/')}"
            body = {"values": [url_value(1, "https://example.com/" + quote(handle))]}
            async with session.put(url, json=body, headers=admin_json()) as resp:
                assert resp.status in (200, 201), await resp.text()


def blank(data: bytes) -> bytes:
    """`data` with its Date values and the request ids the node made blanked."""
    return _MADE_ID.sub(b"X-Request-Id: -\r\n", _DATE.sub(b"Date: -\r\n", data))


async def _read_all(reader: asyncio.StreamReader, idle: float) -> bytes:
    """Everything the node sends until it closes or is quiet for `idle` seconds."""
    data = b""
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), idle)
        except TimeoutError:
            return data
        if not chunk:
            return data
        data += chunk


async def _read_response(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = re.search(rb"\r\nContent-Length: (\d+)\r\n", head)
    assert length is not None, head
    return head + await reader.readexactly(int(length.group(1)))


async def exchange(port: int, *packets: bytes, idle: float = 0.3, one: bool = False) -> bytes:
    """The node's bytes for `packets`, sent on one new connection a moment apart (so that each
    arrives as a read of its own), Date values and made request ids blanked: one response with a Content-Length when
    `one`, else all until the node closes or is quiet for `idle` seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for i, packet in enumerate(packets):
            if i:
                await asyncio.sleep(0.05)
            writer.write(packet)
            await writer.drain()
        data = await _read_response(reader) if one else await _read_all(reader, idle)
        return blank(data)
    finally:
        writer.close()


def get(target: str, *headers: str) -> bytes:
    lines = [f"GET {target} HTTP/1.1", "Host: 127.0.0.1", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def targets(handle: str) -> list[str]:
    """Ways of asking for one handle: percent-encoded (UTF-8, '/' as %2F or not), in another case,
    behind a scheme."""
    encoded = quote(handle, safe="/;=@:!$&'()*+,~")
    return [
        "/api/handles/" + encoded,
        "/api/handles/" + quote(handle, safe=""),
        "/api/handles/" + encoded.swapcase(),  # %XX hex digits too: the same bytes
        "/api/handles/hdl:" + encoded,
        "/api/handles/HDL:" + encoded.upper(),
        "/api/handles/info:hdl/" + encoded,
    ]


async def test_the_fast_path_sends_what_aiohttp_sends(nodes: tuple[Node, Node]) -> None:
    """For every way of asking: the answer before the handle is cached (aiohttp's miss path), the
    cached answer through the fast path, the cached answer through aiohttp (the request split in
    two reads) and the other app's (no fast path) are the same bytes, Date aside."""
    fast, plain = nodes
    await _create(plain.port, HANDLES)
    for handle in HANDLES:
        for i, target in enumerate(targets(handle)):
            request = get(target)
            before = fast.answered
            first = await exchange(fast.port, request, one=True)
            assert first.startswith(b"HTTP/1.1 200 OK\r\n"), (target, first[:200])
            if i == 0:
                assert fast.answered == before, "not cached yet: aiohttp's"
            before = fast.answered
            cached = await exchange(fast.port, request, one=True)
            assert fast.answered == before + 1, target
            split = await exchange(fast.port, request[:20], request[20:], one=True)
            assert fast.answered == before + 1, target
            other = await exchange(plain.port, request, one=True)
            assert cached == first == split == other, target
            assert plain.answered == 0


async def test_keep_alive_and_a_slow_request_between(nodes: tuple[Node, Node]) -> None:
    """On one connection: fast, through aiohttp (a query), fast again: each answer as aiohttp's."""
    fast, plain = nodes
    await _create(plain.port, HANDLES[:2])
    sequence = [get("/api/handles/" + HANDLES[0]), get("/api/handles/" + HANDLES[1] + "?index=1")] * 3
    answers = []
    for node in (fast, plain):
        for request in sequence[:2]:
            await exchange(node.port, request, one=True)  # cached
        before = node.answered
        reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
        try:
            got = []
            for request in sequence:
                writer.write(request)
                got.append(blank(await _read_response(reader)))
            answers.append(got)
        finally:
            writer.close()
        if node is fast:
            assert node.answered == before + 3
    assert answers[0] == answers[1]


HOSTILE = [
    get("/api/handles/88.123/Plain-1") * 2,  # pipelined
    get("/api/handles/88.123/Plain-1", "Authorization: Basic " + basic()["Authorization"][6:]),
    get("/api/handles/88.123/Plain-1", "Authorization: Bearer nope"),
    get("/api/handles/88.123/Plain-1", "X-Big: " + "a" * 9000),
    get("/api/handles/88.123/Plain-1", *[f"X-{i}: " + "b" * 2900 for i in range(3)]),
    get("/api/handles/88.123/%C3%28"),
    get("/api/handles/88.123/Plain-1%00"),
    get("/api/handles/88.123/Plain\x00-1"),
    get("http://127.0.0.1/api/handles/88.123/Plain-1"),
    get("/api/handles/88.123/Plain-1?"),
    get("/api/handles/88.123/Plain-1", "Connection: close"),
    get("/api/handles/88.123/Plain-1", "Host: again"),
    get("/api/handles/88.123/Plain-1", "Content-Length: 0"),
    get("/api/handles/88.123/Plain-1", "Transfer-Encoding: chunked") + b"0\r\n\r\n",
    get("/api/handles/88.123/Plain-1", "Expect: 100-continue"),
    get("/api/handles/88.123/Plain-1", "X: a", " folded"),
    get("/api/handles/88.123/Plain-1", "X: caf\u00e9"),
    get("/api/handles/88.123/Plain-1") + b"GET /api/han",  # a second request begun
    b"GET /api/handles/88.123/Plain-1 HTTP/1.1\r\n\r\n",  # no Host
    b"HEAD /api/handles/88.123/Plain-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/handles/88.123/Plain-1 HTTP/1.0\r\nHost: x\r\n\r\n",
    b"GET /api/handles/88.123/Plain-1 HTTP/1.1\nHost: x\n\n",
    b"get /api/handles/88.123/Plain-1 HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /api/handles/88.123/Plain-1 HTTP/1.1\r\nHost : x\r\n\r\n",
    b"GET /api/handles/88.123/Plain-1 HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
]


@pytest.mark.parametrize("request_bytes", HOSTILE, ids=range(len(HOSTILE)))
async def test_hostile_requests_are_aiohttps(nodes: tuple[Node, Node], request_bytes: bytes) -> None:
    """Each gets exactly what aiohttp alone sends (the fast path declines)."""
    fast, plain = nodes
    await _create(plain.port, HANDLES[:1])
    for node in nodes:
        await exchange(node.port, get("/api/handles/88.123/Plain-1"), one=True)  # cached on both
    before = fast.answered
    mine = await exchange(fast.port, request_bytes)
    assert fast.answered == before
    assert mine == await exchange(plain.port, request_bytes)
    assert mine  # something was answered


async def test_split_request_after_a_fast_answer_is_aiohttps(nodes: tuple[Node, Node]) -> None:
    """A request in two reads on a connection the fast path answered on: aiohttp's parser gets
    both halves (the second half alone looks like a whole request to nobody)."""
    _, plain = nodes
    await _create(plain.port, HANDLES[:2])
    request = get("/api/handles/88.123/Plain-1")
    # the third read is a whole request by itself, but to aiohttp's parser the rest of the second
    packets = (request, f"GET /api/handles/{HANDLES[1]} HTTP/1.1\r\nX-Part: ".encode(), request)
    answers = []
    for node in nodes:
        await exchange(node.port, request, one=True)
        answers.append(await exchange(node.port, *packets))
    assert answers[0] == answers[1]
    assert answers[0].count(b"HTTP/1.1 200 OK") == 2
    assert HANDLES[1].encode() in answers[0]


def _totals(app: web.Application) -> tuple[float, float]:
    """Hits and resolution requests counted so far (exported, plus not yet flushed)."""
    metrics = app[METRICS]
    hits = metrics.registry.get_sample_value("resolver_resolutions_total", {"outcome": "hit"}) or 0.0
    requests = (
        metrics.registry.get_sample_value(
            "resolver_http_requests_total", {"route": RESOLVE_ROUTE, "method": "GET", "status": "2xx"}
        )
        or 0.0
    )
    pending = metrics.routes.get(RESOLVE_ROUTE)
    if pending is not None:
        requests += pending.by_status.get(("GET", "2xx"), 0)
    return hits + metrics.outcomes["hit"], requests


async def test_metrics_and_daily_counts_move_as_through_aiohttp(
    nodes: tuple[Node, Node], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hits, requests by route/method/status and the daily resolutions by prefix: the same for
    the same requests with and without the fast path."""
    fast, plain = nodes
    await _create(plain.port, HANDLES)
    requests = [get(t) for h in HANDLES for t in targets(h)[:4]]
    for node in nodes:
        for request in requests:
            await exchange(node.port, request, one=True)  # cached on both
    moved = []
    for node in nodes:
        resolved: list[str] = []
        daily = node.app[DAILY]
        original = daily.resolved

        def counted(prefix: str, original: Any = original, resolved: list[str] = resolved) -> None:
            resolved.append(prefix)
            original(prefix)

        monkeypatch.setattr(daily, "resolved", counted)
        hits, served = _totals(node.app)
        before = node.answered
        for request in requests:
            await exchange(node.port, request, one=True)
        hits_after, served_after = _totals(node.app)
        moved.append((hits_after - hits, served_after - served, resolved))
        if node is fast:
            assert node.answered - before == len(requests)
    assert moved[0] == moved[1]
    assert moved[0][0] == moved[0][1] == len(requests)
    assert set(moved[0][2]) == {"88.123"}


@pytest.fixture
def config(config: Config) -> Config:
    return replace(config, keepalive_timeout=0.6)


async def test_a_connection_in_use_by_the_fast_path_is_kept_alive(nodes: tuple[Node, Node]) -> None:
    """aiohttp closes a connection idle for keepalive_timeout; a connection answered by the fast
    path all along is not idle, and is closed once it is."""
    fast, plain = nodes
    await _create(plain.port, HANDLES[:1])
    request = get("/api/handles/88.123/Plain-1")
    await exchange(fast.port, request, one=True)
    before = fast.answered
    reader, writer = await asyncio.open_connection("127.0.0.1", fast.port)
    try:
        for _ in range(8):  # 2 seconds, over three keep-alive timeouts
            writer.write(request)
            assert (await _read_response(reader)).startswith(b"HTTP/1.1 200 OK")
            await asyncio.sleep(0.25)
        assert fast.answered == before + 8
        assert await asyncio.wait_for(reader.read(), 2.0) == b""  # closed after 0.6 s idle
    finally:
        writer.close()


DOTTED = ["88.123/./Plain-1", "88.123/Plain-1/.", "88.123/x/../Plain-1"]
DOT_SEGMENTS = [
    *("/api/handles/" + handle for handle in DOTTED),
    "/api/handles/88.123/../88.123/Plain-1",
    "/api/handles/88.123/./Plain-1",
    "/api/handles/88.123/%2E/Plain-1",
    "/api/handles/88.123/%2e%2e/88.123/Plain-1",
    "/api/handles/x/../88.123/Plain-1",
    "/api/handles/88.123/Plain-1/.",
    "/api/handles/88.123/Plain-1/..",
    "/api/handles/88.123//Plain-1",
]


@pytest.mark.parametrize("target", DOT_SEGMENTS)
async def test_dot_segments_are_answered_as_aiohttp_answers_them(
    nodes: tuple[Node, Node], target: str
) -> None:
    """A path with dot segments ('.', '..', also percent-encoded) may be normalised by aiohttp's
    URL parsing before the handler sees it: the fast path must not answer a different handle than
    aiohttp would, so both nodes give the same bytes, whichever handles are cached."""
    fast, plain = nodes
    await _create(plain.port, ["88.123/Plain-1"])
    for handle in DOTTED:  # aiohttp's client would normalise these paths: sent as they are
        body = orjson.dumps({"values": [url_value(1, "https://example.com/dotted")]})
        head = [f"PUT /api/handles/{handle} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
        head += [f"{name}: {value}" for name, value in admin_json().items()]
        answer = await exchange(plain.port, ("\r\n".join(head) + "\r\n\r\n").encode() + body, one=True)
        assert answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 201")), answer
    for node in nodes:
        for handle in ("88.123/Plain-1", *DOTTED):
            await exchange(node.port, get("/api/handles/" + handle), one=True)
    mine = await exchange(fast.port, get(target))
    assert mine == await exchange(plain.port, get(target)), target


@pytest.mark.parametrize(
    "headers",
    [
        ("X-Request-Id: client-42",),
        ("X-Request-Id:   padded-id \t",),
        ("X-Request-Id: " + "r" * 128,),
        ("X-Request-Id: " + "r" * 129,),  # too long: replaced
        ("X-Request-Id: has space",),  # replaced
        ("X-Request-Id: tab\tinside",),  # replaced
        ("X-Request-Id:",),  # empty: replaced
        ("Origin: https://any.example",),
        ("Origin: null", "X-Request-Id: a"),
    ],
)
async def test_request_ids_and_origins_are_answered_as_aiohttp_answers_them(
    nodes: tuple[Node, Node], headers: tuple[str, ...]
) -> None:
    """The fast path's X-Request-Id (the client's when sane, else a made one) and CORS headers of
    an anonymous read (Access-Control-Allow-Origin: *, as the Handle.Net proxy's CrossOriginFilter
    in src/main/java/net/handle/apps/servlet_proxy/resources/WEB-INF/web.xml allows every origin)
    are the bytes resolver/http/edge.py makes aiohttp send."""
    fast, plain = nodes
    await _create(plain.port, HANDLES[:1])
    request = get("/api/handles/" + HANDLES[0], *headers)
    await exchange(fast.port, request, one=True)  # cached from here on
    before = fast.answered
    cached = await exchange(fast.port, request, one=True)
    assert fast.answered == before + 1
    other = await exchange(plain.port, request, one=True)
    assert cached == other
    assert b"\r\nAccess-Control-Allow-Origin: *\r\n" in cached
    sent = next((h.partition(":")[2].strip(" \t") for h in headers if h.startswith("X-Request-Id")), None)
    if sent and len(sent) <= 128 and " " not in sent and "\t" not in sent:
        assert f"\r\nX-Request-Id: {sent}\r\n".encode() in cached
    else:
        assert b"\r\nX-Request-Id: -\r\n" in cached  # one the node made (blanked by exchange)
