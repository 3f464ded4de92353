"""A handle with no slash is its prefix handle, over the native protocol and the HTTP API.

MistraR/handle `src/main/java/net/handle/server/HandleServer.java` `doResolution`: a handle without
'/' is looked up as `Util.convertSlashlessHandleToZeroNaHandle(handle)` (`88.123` -> `0.NA/88.123`,
`src/main/java/net/handle/hdllib/Util.java`), and the answer carries the handle as the request sent
it (`new ResolutionResponse(req, req.handle, clumps)`). pyhandle refuses such a handle before sending
(its handle syntax check wants a '/'), so over HTTP the reference's server behaviour is the one to
follow: `GET /api/handles/88.123` answers what `GET /api/handles/0.NA/88.123` answers, echoing the
handle sent.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import replace

import pytest

from tests.handle_client import over_tcp, over_udp, request_message, resolution_body
from tests.helpers import serving


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        tcp.bind(("127.0.0.1", 0))
        port = tcp.getsockname()[1]
        udp.bind(("127.0.0.1", port))
        return int(port)


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        yield client, port, config.node_prefix


async def test_a_bare_prefix_over_http_is_its_prefix_handle(node):
    client, _port, prefix = node
    full = await client.get(f"/api/handles/0.NA/{prefix}")
    assert full.status == 200, await full.text()
    expected = await full.json()
    bare = await client.get(f"/api/handles/{prefix}")
    assert bare.status == 200, await bare.text()
    answer = await bare.json()
    assert answer["responseCode"] == 1 and answer["handle"] == prefix
    assert answer["values"] == expected["values"]
    # again, once cached, and with a filter (the other path through the handler)
    assert (await (await client.get(f"/api/handles/{prefix}")).json())["values"] == expected["values"]
    filtered = await (await client.get(f"/api/handles/{prefix}?type=HS_ADMIN")).json()
    assert filtered["values"] == [v for v in expected["values"] if v["type"] == "HS_ADMIN"]
    # a bare prefix the node does not hold is not found or not its own, never "invalid handle"
    other = await client.get(f"/api/handles/{prefix}.99999")
    assert other.status == 404 and (await other.json())["responseCode"] == 100
    invalid = await client.get("/api/handles/88%20123")
    assert (await invalid.json())["responseCode"] == 102


async def test_a_bare_prefix_over_udp_and_tcp_is_its_prefix_handle(node):
    client, port, prefix = node
    expected = await (await client.get(f"/api/handles/0.NA/{prefix}")).json()
    request, _ = request_message(1, resolution_body(prefix))
    udp = await asyncio.to_thread(over_udp, port, request)
    (tcp,) = await asyncio.to_thread(over_tcp, port, request)
    for answer in (udp, tcp):
        assert (answer.opcode, answer.rc) == (1, 1)
        handle, values = answer.handle_and_values()
        assert handle == prefix  # as the request sent it (ResolutionResponse(req, req.handle, ...))
        assert [(v.index, v.type) for v in values] == [(v["index"], v["type"]) for v in expected["values"]]
