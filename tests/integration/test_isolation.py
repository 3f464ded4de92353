"""No enterprise can create, change or delete anything under another's prefix, through any API."""

from __future__ import annotations

import pytest

from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import basic, url_value

A_HANDLE = "88.123.45/SECRET-1"


@pytest.fixture
async def two(client):
    a_id, a_secret = await admit(client, "88.123.45", 20, "甲")
    b_id, b_secret = await admit(client, "88.123.46", 21, "乙")
    a_token = await user_token(client, a_id, "alice")
    b_token = await user_token(client, b_id, "bob")
    item = product(A_HANDLE)
    item["value"].append(
        {
            "index": 2007,
            "type": "specification",
            "data": {"format": "string", "value": "internal"},
            "permissions": "1100",
        }
    )
    body = await (await client.post("/identityv2/data", json=item, headers=bearer(a_token))).json()
    assert body["status"] == 1, body
    return {
        "a_token": a_token,
        "b_token": b_token,
        "b_admin": basic("300:0.NA/88.123.46", b_secret),
        "a_secret": a_secret,
    }


async def unchanged(client):
    values = (await (await client.get(f"/api/handles/{A_HANDLE}", headers=basic())).json())["values"]
    return {v["index"]: v["data"]["value"] for v in values}


async def test_enterprise_api_write_paths(client, two):
    before = await unchanged(client)
    b = bearer(two["b_token"])
    answers = [
        await client.post("/identityv2/data", json=product("88.123.45/NEW-1"), headers=b),
        await client.put(
            "/identityv2/data",
            json={
                "handle": A_HANDLE,
                "value": [{"index": 2000, "type": "productName", "data": {"format": "string", "value": "x"}}],
            },
            headers=b,
        ),
        await client.request("DELETE", "/identityv2/data", json={"handle": A_HANDLE}, headers=b),
    ]
    for resp in answers:
        body = await resp.json()
        assert body["status"] == -2 and "不属于本企业" in body["message"], body
    batch_answers = [
        await client.post("/identityv2/data/batchCreate", json=[product("88.123.45/NEW-2")], headers=b),
        await client.put("/identityv2/data/batchUpdate", json=[{"handle": A_HANDLE, "value": []}], headers=b),
        await client.request("DELETE", "/identityv2/data/batchDelete", json=[A_HANDLE], headers=b),
    ]
    for resp in batch_answers:
        body = await resp.json()
        assert [r["code"] for r in body["data"]] == [-2] and "不属于本企业" in body["data"][0]["msg"]
    template = {
        "prefix": "88.123.45",
        "version": "evil",
        "items": [{"name": "x", "idType": "x", "idIndex": 2000}],
    }
    resp = await client.post("/snms/api/v5/template", json=template, headers=b)
    assert resp.status == 403 and (await resp.json())["status"] == -3
    assert await unchanged(client) == before
    assert (await client.get("/api/handles/88.123.45/NEW-1")).status == 404
    assert (await client.get("/api/handles/88.123.45/NEW-2")).status == 404


async def test_handle_api_write_paths(client, two):
    before = await unchanged(client)
    b = {**two["b_admin"], "Content-Type": "application/json"}
    path = f"/api/handles/{A_HANDLE}"
    answers = [
        await client.put("/api/handles/88.123.45/NEW-3", json=[url_value(1, "https://x")], headers=b),
        await client.put(path, json=[url_value(1, "https://x")], headers=b),
        await client.put(
            path,
            params={"index": "2000"},
            json=[{"index": 2000, "type": "productName", "data": "x"}],
            headers=b,
        ),
        await client.put(
            path, params={"index": "5", "overwrite": "false"}, json=[url_value(5, "https://x")], headers=b
        ),
        await client.delete(path, params={"index": "2000"}, headers=b),
        await client.delete(path, headers=b),
        await client.put(
            "/api/handles/0.NA/88.123.45",
            params={"index": "300"},
            json=[{"index": 300, "type": "HS_SECKEY", "data": "mine-now"}],
            headers=b,
        ),
    ]
    for resp in answers:
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["responseCode"] == 401
    assert await unchanged(client) == before


async def test_reads_across_enterprises_show_public_values_only(client, two):
    mine = await (
        await client.get(
            "/identityv2/data/detail", params={"handle": A_HANDLE}, headers=bearer(two["a_token"])
        )
    ).json()
    theirs = await (
        await client.get(
            "/identityv2/data/detail", params={"handle": A_HANDLE}, headers=bearer(two["b_token"])
        )
    ).json()
    assert 2007 in [v["index"] for v in mine["data"]["value"]]
    assert 2007 not in [v["index"] for v in theirs["data"]["value"]]
    b_handle_view = await (await client.get(f"/api/handles/{A_HANDLE}", headers=two["b_admin"])).json()
    assert 2007 not in [v["index"] for v in b_handle_view["values"]]
