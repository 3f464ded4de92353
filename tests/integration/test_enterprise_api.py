"""The enterprise API: tokens, single and batch operations, one domain with the Handle API."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic


@pytest.fixture
async def acme(client):
    eid, _secret = await admit(client, "88.123.45", 10, "甲公司")
    return eid, await user_token(client, eid, "acme")


async def test_token_errors_are_status_minus_one(client):
    resp = await client.post("/identity/token", json={"username": "nobody", "password": "x"})
    assert resp.status == 401 and (await resp.json())["status"] == -1
    resp = await client.post("/identityv2/data", json=product("88.123.45/x"), headers=bearer("forged.token"))
    body = await resp.json()
    assert resp.status == 401 and body["status"] == -1 and "令牌" in body["message"]
    resp = await client.post("/identityv2/data", json=product("88.123.45/x"))
    assert resp.status == 401 and "/identity/token" in (await resp.json())["message"]


async def test_register_one_then_detail_and_handle_api_see_it(client, acme):
    _, token = acme
    body = await (
        await client.post("/identityv2/data", json=product("88.123.45/ABC-0001"), headers=bearer(token))
    ).json()
    assert body == {"status": 1, "message": "登记成功", "data": {"handle": "88.123.45/ABC-0001"}}
    detail = await (
        await client.get(
            "/identityv2/data/detail", params={"handle": "88.123.45/abc-0001"}, headers=bearer(token)
        )
    ).json()
    assert detail["status"] == 1
    assert (
        detail["data"]["prefix"] == "88.123.45" and detail["data"]["templateVersion"] == "general-product-1.0"
    )
    assert [v["index"] for v in detail["data"]["value"]] == [2000, 2004]
    # the same record through the Handle API, and changed there
    handle_view = await (await client.get("/api/handles/88.123.45/ABC-0001")).json()
    assert {v["index"] for v in handle_view["values"]} == {1001, 2000, 2004}
    resp = await client.put(
        "/api/handles/88.123.45/ABC-0001",
        params={"index": "2001"},
        json=[{"index": 2001, "type": "productModel", "data": "M8"}],
        headers=admin_json(),
    )
    assert resp.status == 200
    detail = await (
        await client.get(
            "/identityv2/data/detail", params={"handle": "88.123.45/ABC-0001"}, headers=bearer(token)
        )
    ).json()
    assert [v["index"] for v in detail["data"]["value"]] == [2000, 2001, 2004]
    # and a template violation through the Handle API names the item (in English: its nameEn)
    resp = await client.put(
        "/api/handles/88.123.45/ABC-0001",
        params={"index": "2003"},
        json=[{"index": 2003, "type": "productionDate", "data": "yesterday"}],
        headers=admin_json(),
    )
    assert resp.status == 400 and "Production date" in (await resp.json())["message"]


async def test_update_and_delete_one(client, acme):
    _, token = acme
    await client.post("/identityv2/data", json=product("88.123.45/U-1"), headers=bearer(token))
    change = {
        "handle": "88.123.45/U-1",
        "value": [{"index": 2000, "type": "productName", "data": {"format": "string", "value": "螺母"}}],
    }
    assert (await (await client.put("/identityv2/data", json=change, headers=bearer(token))).json())[
        "status"
    ] == 1
    values = (await (await client.get("/api/handles/88.123.45/U-1")).json())["values"]
    assert {v["index"]: v["data"]["value"] for v in values}[2000] == "螺母"
    assert len(values) == 3  # other values kept
    gone = await (
        await client.request(
            "DELETE", "/identityv2/data", json={"handle": "88.123.45/U-1"}, headers=bearer(token)
        )
    ).json()
    assert gone["status"] == 1
    again = await (
        await client.request(
            "DELETE", "/identityv2/data", json={"handle": "88.123.45/U-1"}, headers=bearer(token)
        )
    ).json()
    assert again["status"] == -2 and "不存在" in again["message"]


async def test_batch_create_has_per_item_results_and_is_idempotent(client, acme):
    _, token = acme
    items = [
        product("88.123.45/B-1"),
        product("88.123.45/B-2"),
        {
            **product("88.123.45/B-3"),
            "value": [{"index": 2000, "type": "productName", "data": {"format": "string", "value": ""}}],
        },
        product("88.123.46/B-4"),
        product("99.1/B-5"),
        product("88.123.45/B-1"),
    ]
    body = await (await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))).json()
    assert body["status"] == 1 and "成功 2 条，失败 4 条" in body["message"]
    codes = [(r["handle"], r["code"]) for r in body["data"]]
    assert codes == [
        ("88.123.45/B-1", 1),
        ("88.123.45/B-2", 1),
        ("88.123.45/B-3", -2),
        ("88.123.46/B-4", -2),
        ("99.1/B-5", -2),
        ("88.123.45/B-1", -2),
    ]
    messages = [r["msg"] for r in body["data"]]
    assert "太短" in messages[2] or "必填" in messages[2]
    assert "不属于本企业" in messages[3]
    assert "不在本节点" in messages[4]
    assert "重复" in messages[5]
    # a retry after a gateway timeout: the same items succeed again
    retry = await (
        await client.post("/identityv2/data/batchCreate", json=items[:2], headers=bearer(token))
    ).json()
    assert [r["code"] for r in retry["data"]] == [1, 1] and "内容相同" in retry["data"][0]["msg"]
    # different content for an existing handle is that item's error only
    changed = [product("88.123.45/B-1", name="别的"), product("88.123.45/B-6")]
    mixed = await (
        await client.post("/identityv2/data/batchCreate", json=changed, headers=bearer(token))
    ).json()
    assert [r["code"] for r in mixed["data"]] == [-2, 1] and "内容不同" in mixed["data"][0]["msg"]


async def test_batch_size_limit(client, acme):
    _, token = acme
    items = [product(f"88.123.45/S-{i}") for i in range(2001)]
    body = await (await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))).json()
    assert body["status"] == -2 and "2000" in body["message"]


async def test_batch_of_2000_is_one_transaction_with_per_item_results(client, acme, config):
    _, token = acme
    items = [product(f"88.123.45/M-{i:04d}") for i in range(2000)]
    body = await (await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))).json()
    assert body["status"] == 1 and all(r["code"] == 1 for r in body["data"])
    conn = await asyncpg.connect(config.dsn)
    try:
        assert await conn.fetchval("select count(*) from handles where prefix = '88.123.45'") == 2000
        assert await conn.fetchval("select count(*) from audit where operation = 'handle.create'") >= 2000
    finally:
        await conn.close()


async def test_batch_update_and_delete(client, acme):
    _, token = acme
    await client.post(
        "/identityv2/data/batchCreate",
        json=[product("88.123.45/D-1"), product("88.123.45/D-2")],
        headers=bearer(token),
    )
    update = [
        {
            "handle": "88.123.45/D-1",
            "value": [{"index": 2002, "type": "batchNumber", "data": {"format": "string", "value": "B7"}}],
        },
        {"handle": "88.123.45/NOPE", "value": []},
    ]
    body = await (await client.put("/identityv2/data/batchUpdate", json=update, headers=bearer(token))).json()
    assert [r["code"] for r in body["data"]] == [1, -2] and "不存在" in body["data"][1]["msg"]
    gone = await (
        await client.request(
            "DELETE",
            "/identityv2/data/batchDelete",
            json=["88.123.45/D-1", "88.123.45/D-2", "88.123.45/NOPE"],
            headers=bearer(token),
        )
    ).json()
    assert [r["code"] for r in gone["data"]] == [1, 1, -2]
    assert (await client.get("/api/handles/88.123.45/D-1")).status == 404


async def test_audit_trail_records_every_operation_and_cannot_be_changed(client, acme, config):
    eid, token = acme
    await client.post("/identityv2/data", json=product("88.123.45/A-1"), headers=bearer(token))
    await client.put(
        "/identityv2/data",
        json={
            "handle": "88.123.45/A-1",
            "value": [{"index": 2002, "type": "batchNumber", "data": {"format": "string", "value": "X"}}],
        },
        headers=bearer(token),
    )
    await client.put(
        "/api/handles/88.123.45/A-1",
        params={"index": "2001"},
        json=[{"index": 2001, "type": "productModel", "data": "M"}],
        headers=admin_json(),
    )
    await client.delete("/api/handles/88.123.45/A-1", headers=basic())
    trail = await (
        await client.get("/admin/audit", params={"handle": "88.123.45/A-1"}, headers=basic())
    ).json()
    operations = [(e["operation"], e["actor"]) for e in reversed(trail["data"]["items"])]
    assert operations == [
        ("handle.create", "user:acme"),
        ("handle.update", "user:acme"),
        ("handle.values.put", "300:0.NA/88.123"),
        ("handle.delete", "300:0.NA/88.123"),
    ]
    last = trail["data"]["items"][0]
    assert last["after"] is None and any(v["index"] == 2001 for v in last["before"])
    by_enterprise = await (
        await client.get("/admin/audit", params={"enterprise": str(eid), "pageSize": "100"}, headers=basic())
    ).json()
    assert {"prefix.allocate", "prefix.state", "user.create", "handle.create"} <= {
        e["operation"] for e in by_enterprise["data"]["items"]
    }
    since = await (
        await client.get("/admin/audit", params={"from": "2999-01-01T00:00:00Z"}, headers=basic())
    ).json()
    assert since["data"]["total"] == 0
    conn = await asyncpg.connect(config.dsn)
    try:
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("update audit set actor = 'someone else'")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("delete from audit")
        secrets_in_audit = await conn.fetchval(
            "select count(*) from audit where after::text like '%sealed%' and after::text not like '%redacted%'"
        )
        assert secrets_in_audit == 0
    finally:
        await conn.close()


async def test_concurrent_overlapping_batches_neither_deadlock_nor_fail(client, acme):
    _, token = acme
    forward = [product(f"88.123.45/C-{i:04d}") for i in range(2000)]
    backward = list(reversed(forward))
    answers = await asyncio.gather(
        *(
            client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))
            for items in (forward, backward) * 2
        )
    )
    for resp in answers:
        body = await resp.json()
        assert resp.status == 200 and body["status"] == 1, body
        assert all(r["code"] == 1 for r in body["data"])  # created, or identical and accepted
    deletes = await asyncio.gather(
        *(
            client.request(
                "DELETE",
                "/identityv2/data/batchDelete",
                json=[i["handle"] for i in items],
                headers=bearer(token),
            )
            for items in (forward, backward)
        )
    )
    results = [r for resp in deletes for r in (await resp.json())["data"]]
    assert sum(1 for r in results if r["code"] == 1) == 2000  # each handle deleted exactly once
