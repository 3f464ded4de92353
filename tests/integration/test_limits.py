"""Every input limit gives a clear error in the documented shape."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolver.config import Limits
from tests.conftest import serving
from tests.helpers import admin_json


@pytest.fixture
async def small(config):
    limits = Limits(
        max_handle_length=40,
        max_prefix_length=12,
        max_values_per_handle=3,
        max_value_bytes=50,
        max_type_length=10,
        max_body_bytes=2000,
    )
    async with serving(replace(config, limits=limits)) as test_client:
        yield test_client


async def put(client, path, values):
    return await client.put(path, json={"values": values}, headers=admin_json())


async def test_handle_length(small):
    resp = await small.get("/api/handles/88.123/" + "x" * 40)
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 102 and "40" in body["message"]


async def test_prefix_length(small):
    resp = await small.get("/api/handles/88.123.4567890123/x")
    assert resp.status == 400 and "prefix" in (await resp.json())["message"]


async def test_values_per_handle(small):
    resp = await put(
        small,
        "/api/handles/88.123/v",
        [{"index": i, "type": "T", "data": "x"} for i in range(1, 5)],
    )
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 202 and "3" in body["message"]


async def test_value_size(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 1, "type": "T", "data": "x" * 60}])
    assert resp.status == 400 and "bytes" in (await resp.json())["message"]


async def test_type_length(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 1, "type": "T" * 11, "data": "x"}])
    assert resp.status == 400 and "type" in (await resp.json())["message"]


async def test_body_size_is_413_in_the_error_shape(small):
    resp = await small.put("/api/handles/88.123/v", data=b"[" + b" " * 3000 + b"]", headers=admin_json())
    body = await resp.json()
    assert resp.status == 413 and body["responseCode"] == 4 and "2000" in body["message"]


async def test_index_out_of_range(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 2**31, "type": "T", "data": "x"}])
    assert resp.status == 400 and (await resp.json())["responseCode"] == 202


async def test_control_characters_in_handle(small):
    resp = await small.get("/api/handles/88.123/a%01b")
    assert resp.status == 400 and "control" in (await resp.json())["message"]


async def test_malformed_utf8_in_path(small):
    resp = await small.get("/api/handles/88.123/a%ff%fe")
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 102 and "UTF-8" in body["message"]


async def test_malformed_utf8_in_body(small):
    resp = await small.put(
        "/api/handles/88.123/v",
        data=b'[{"index":1,"type":"T","data":"\xff"}]',
        headers=admin_json(),
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_bad_query_parameters(small):
    resp = await small.get("/api/handles/88.123/v", params={"index": "x"})
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4
    resp = await small.put(
        "/api/handles/88.123/v", params={"overwrite": "maybe"}, json=[], headers=admin_json()
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4
