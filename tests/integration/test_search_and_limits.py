"""Reverse lookup (/hrls/handles) and rate limits."""

from __future__ import annotations

from dataclasses import replace

import pytest

from resolver.config import RateLimits
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic, serving, url_value


async def test_search_by_url_with_wildcards_and_isolation(client):
    a_id, _ = await admit(client, "88.123.45", 40)
    b_id, _ = await admit(client, "88.123.46", 41)
    for handle, url in [
        ("88.123.45/S-1", "https://shop.example.com/p/1"),
        ("88.123.45/S-2", "https://shop.example.com/p/2"),
        ("88.123.46/S-3", "https://shop.example.com/p/3"),
        ("88.123.45/S-4", "https://other.example.org/100%_x"),
    ]:
        assert (
            await client.put(f"/api/handles/{handle}", json=[url_value(1, url)], headers=admin_json())
        ).status == 200
    admin = await client.get("/hrls/handles", params={"URL": "https://shop.example.com/*"}, headers=basic())
    assert await admin.json() == ["88.123.45/S-1", "88.123.45/S-2", "88.123.46/S-3"]
    exact = await client.get("/hrls/handles", params={"url": "https://shop.example.com/p/2"}, headers=basic())
    assert await exact.json() == ["88.123.45/S-2"]
    literal = await client.get(
        "/hrls/handles", params={"URL": "https://other.example.org/100%_x"}, headers=basic()
    )
    assert await literal.json() == ["88.123.45/S-4"]
    paged = await client.get(
        "/hrls/handles", params={"URL": "https://shop*", "limit": "2", "page": "1"}, headers=basic()
    )
    assert await paged.json() == ["88.123.46/S-3"]
    a_token = await user_token(client, a_id, "a-user")
    mine = await client.get(
        "/hrls/handles", params={"URL": "https://shop.example.com/*"}, headers=bearer(a_token)
    )
    assert await mine.json() == ["88.123.45/S-1", "88.123.45/S-2"]
    # changes and deletions leave the index right
    await client.put(
        "/api/handles/88.123.45/S-1", json=[url_value(1, "https://moved.example.com/")], headers=admin_json()
    )
    await client.delete("/api/handles/88.123.45/S-2", headers=basic())
    after = await client.get("/hrls/handles", params={"URL": "https://shop.example.com/*"}, headers=basic())
    assert await after.json() == ["88.123.46/S-3"]
    assert b_id != a_id


async def test_search_needs_authentication_and_allowed_keys(client):
    anonymous = await client.get("/hrls/handles", params={"URL": "x"})
    told = (await anonymous.json())["message"]
    # told, in the Handle API's English, how to authenticate for this API (issue 16)
    assert anonymous.status == 401 and "Bearer" in told and "Basic" in told, told
    assert not any("\u4e00" <= c <= "\u9fff" for c in told), told
    resp = await client.get("/hrls/handles", params={"EMAIL": "x"}, headers=basic())
    assert resp.status == 400 and "searchable" in (await resp.json())["message"]


async def test_template_url_items_are_searchable(client):
    eid, _ = await admit(client, "88.123.45", 42)
    token = await user_token(client, eid, "u")
    item = product("88.123.45/TPL-URL")
    item["value"].append(
        {
            "index": 2009,
            "type": "URL",
            "data": {"format": "string", "value": "https://detail.example.com/tpl"},
        }
    )
    assert (await (await client.post("/identityv2/data", json=item, headers=bearer(token))).json())[
        "status"
    ] == 1
    found = await client.get(
        "/hrls/handles", params={"URL": "https://detail.example.com/tpl"}, headers=bearer(token)
    )
    assert await found.json() == ["88.123.45/TPL-URL"]


@pytest.fixture
async def limited(config):
    rate = RateLimits(
        per_address=1.0,
        per_address_burst=2,
        per_credential=1.0,
        per_credential_burst=2,
        resolve_per_address=1.0,
        resolve_per_address_burst=2,
    )
    async with serving(replace(config, rate=rate)) as test_client:
        yield test_client


async def test_rate_limits_answer_429_with_retry_after(limited):
    answers = [
        await limited.put("/api/handles/88.123/R-1", json=[url_value(1, "https://a")], headers=admin_json())
        for _ in range(3)
    ]
    assert [a.status for a in answers] == [200, 200, 429]
    assert int(answers[2].headers["Retry-After"]) >= 1
    assert (await answers[2].json())["responseCode"] == 3
    enterprise = await limited.post("/identity/token", json={"username": "x", "password": "y"})
    assert enterprise.status == 429 and (await enterprise.json())["status"] == -2
    misses = [await limited.get(f"/api/handles/88.123/MISS-{i}") for i in range(3)]
    assert [m.status for m in misses] == [404, 404, 429]
