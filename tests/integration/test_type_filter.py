"""A requested type ending in '.' matches the parent type itself as well as its subtypes, over the
native protocol as over the HTTP API (reference: net/handle/hdllib/Util.java isParentTypeInArray,
which the server's resolution applies to the requested types)."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from tests.handle_client import read_answer, request_message, resolution_body
from tests.helpers import serving
from tests.integration.test_native import free_port, register
from tests.integration.test_native_fast_path import udp_raw

VALUES = [
    {"index": 1, "type": "URL", "data": "https://a.example/"},
    {"index": 2, "type": "url.alt", "data": "https://b.example/"},
    {"index": 3, "type": "URLX", "data": "https://c.example/"},
    {"index": 4, "type": "EMAIL", "data": "a@b.example"},
]


@pytest.fixture
async def node(config):
    port = free_port()
    async with serving(replace(config, native_port=port)) as client:
        yield client, port


@pytest.mark.parametrize(
    ("types", "expected"),
    [
        (["URL."], [1, 2]),
        (["url"], [1]),
        (["URL.ALT."], [2]),
        (["URLX."], [3]),
        (["URL.", "email"], [1, 2, 4]),
    ],
)
async def test_parent_type_filter_over_udp_and_http(node, types, expected):
    """Util.isParentTypeInArray: 'URL.' matches URL and url.alt, not URLX; case is ignored."""
    client, port = node
    await register(client, "88.123/TYPES-1", VALUES)
    for _ in range(2):  # the first answer is read from the database, the second from the cache
        request, _ = request_message(1, resolution_body("88.123/TYPES-1", types=types))
        raw = await asyncio.to_thread(udp_raw, port, request)
        answer = read_answer(raw[20:], raw[:20])
        assert answer.rc == 1
        assert [v.index for v in answer.handle_and_values()[1]] == expected
    resp = await client.get("/api/handles/88.123/TYPES-1", params=[("type", t) for t in types])
    assert [v["index"] for v in (await resp.json())["values"]] == expected
