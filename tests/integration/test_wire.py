"""The bytes of a resolution answer on the wire: status line, headers, keep-alive, HEAD.

The hot path writes its answers without aiohttp's header machinery (`resolver/http/encoded.py`), so
these tests read the raw bytes over a real socket for every connection case an HTTP client can ask for.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest

from tests.helpers import admin_json, url_value

H = "/api/handles/88.123/WIRE-1"


async def exchange(
    client, request: bytes, answers: int = 1
) -> tuple[list[tuple[bytes, dict[str, str], bytes]], bool]:
    """Send raw request bytes; read `answers` answers; then whether the server closed the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    try:
        writer.write(request)
        await writer.drain()
        out = []
        for _ in range(answers):
            status = await reader.readline()
            headers: dict[str, str] = {}
            while (line := await reader.readline()) != b"\r\n":
                name, _, value = line.decode().partition(":")
                assert name.lower() not in headers, f"header {name} sent twice"
                headers[name.lower()] = value.strip()
            length = int(headers["content-length"])
            body = await reader.readexactly(length)
            out.append((status, headers, body))
        try:
            rest = await asyncio.wait_for(reader.read(1), timeout=0.5)
            closed = rest == b""
        except TimeoutError:
            closed = False
        return out, closed
    finally:
        writer.close()


@pytest.fixture
async def stored(client):
    resp = await client.put(H, json={"values": [url_value(1, "https://example.com/w")]}, headers=admin_json())
    assert resp.status == 200
    return client


def get(path: str, version: str = "1.1", *headers: str, method: str = "GET") -> bytes:
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1", *headers, "", ""]
    return "\r\n".join(lines).encode()


@pytest.mark.parametrize("cached", [False, True], ids=["miss", "hit"])
async def test_http11_keep_alive_answers_twice_on_one_connection(stored, cached):
    if cached:
        assert (await stored.get(H)).status == 200
    (first, second), closed = await exchange(stored, get(H) + get(H), answers=2)
    for status, headers, body in (first, second):
        assert status == b"HTTP/1.1 200 OK\r\n"
        assert headers["content-type"] == "application/json"
        assert int(headers["content-length"]) == len(body)
        assert headers["date"].endswith(" GMT")
        assert "connection" not in headers
        answer = orjson.loads(body)
        assert answer["responseCode"] == 1 and answer["handle"] == "88.123/WIRE-1"
        assert answer["values"][0]["data"]["value"] == "https://example.com/w"
    assert not closed


async def test_http11_connection_close_is_honoured(stored):
    ((status, headers, _),), closed = await exchange(stored, get(H, "1.1", "Connection: close"))
    assert status == b"HTTP/1.1 200 OK\r\n"
    assert headers["connection"] == "close"
    assert closed


async def test_http10_without_keep_alive_closes(stored):
    ((status, headers, body),), closed = await exchange(stored, get(H, "1.0"))
    assert status == b"HTTP/1.0 200 OK\r\n"
    assert "connection" not in headers
    assert orjson.loads(body)["responseCode"] == 1
    assert closed


async def test_http10_keep_alive_says_so_and_stays_open(stored):
    ((status, headers, _),), closed = await exchange(stored, get(H, "1.0", "Connection: keep-alive"))
    assert status == b"HTTP/1.0 200 OK\r\n"
    assert headers["connection"] == "keep-alive"
    assert not closed


async def test_head_then_get_on_one_connection(stored):
    (((_, _, body),), _) = await exchange(stored, get(H))
    reader, writer = await asyncio.open_connection("127.0.0.1", stored.server.port)
    try:
        writer.write(get(H, method="HEAD") + get(H))
        await writer.drain()
        head_status = await reader.readline()
        head_headers: dict[str, str] = {}
        while (line := await reader.readline()) != b"\r\n":
            name, _, value = line.decode().partition(":")
            head_headers[name.lower()] = value.strip()
        assert head_status == b"HTTP/1.1 200 OK\r\n"
        assert int(head_headers["content-length"]) == len(body)
        # The next bytes are the GET's status line: HEAD sent no body.
        assert await reader.readline() == b"HTTP/1.1 200 OK\r\n"
    finally:
        writer.close()
