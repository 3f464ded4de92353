"""Two node instances on one database: a change through one reaches the other's cache."""

from __future__ import annotations

import asyncio

import pytest

from tests.helpers import admin_json, basic, serving, url_value

PATH = "/api/handles/88.123/CO-1"


@pytest.fixture
async def pair(config):
    async with serving(config) as one, serving(config) as two:
        yield one, two


async def visible_within(client, expected_status, expected_url=None, within=1.0):
    """Poll until the other instance answers as expected; fail if it takes longer than `within`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        resp = await client.get(PATH)
        if resp.status == expected_status and (
            expected_url is None or (await resp.json())["values"][0]["data"]["value"] == expected_url
        ):
            return
        assert loop.time() < deadline, f"change not visible within {within}s"
        await asyncio.sleep(0.02)


async def test_create_change_delete_reach_the_other_instance(pair):
    one, two = pair
    assert (await two.get(PATH)).status == 404  # a negative entry now
    assert (await one.put(PATH, json=[url_value(1, "https://v1")], headers=admin_json())).status == 200
    await visible_within(two, 200, "https://v1")
    assert (await two.get(PATH)).status == 200  # cached in two
    assert (
        await one.put(PATH, params={"index": "1"}, json=[url_value(1, "https://v2")], headers=admin_json())
    ).status == 200
    await visible_within(two, 200, "https://v2")
    assert (await two.delete(PATH, headers=basic())).status == 200
    await visible_within(one, 404)
