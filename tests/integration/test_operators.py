"""The operator API: enterprises, prefix life cycle, prefix administrators, users, who may call it."""

from __future__ import annotations

from tests.enterprise_helpers import admit, credit_code
from tests.helpers import basic, url_value


def as_user(user, secret):
    return {**basic(user, secret), "Content-Type": "application/json"}


async def test_register_enterprise_checks_the_credit_code(client):
    resp = await client.post(
        "/admin/enterprises", json={"name": "甲", "creditCode": credit_code(1)[:17] + "X"}, headers=basic()
    )
    body = await resp.json()
    assert resp.status == 200 and body["status"] == -2 and "校验位" in body["message"]
    ok = await (
        await client.post(
            "/admin/enterprises", json={"name": "甲", "creditCode": credit_code(1)}, headers=basic()
        )
    ).json()
    assert ok["status"] == 1 and ok["data"]["creditCode"] == credit_code(1)
    again = await (
        await client.post(
            "/admin/enterprises", json={"name": "乙", "creditCode": credit_code(1)}, headers=basic()
        )
    ).json()
    assert again["status"] == -2 and "已登记" in again["message"]


async def test_operator_api_is_for_the_node_administrator_only(client):
    resp = await client.get("/admin/enterprises")
    assert resp.status == 401 and (await resp.json())["status"] == -1
    _, secret = await admit(client, "88.123.45", 2)
    resp = await client.get("/admin/enterprises", headers=basic("300:0.NA/88.123.45", secret))
    assert resp.status == 403 and (await resp.json())["status"] == -3


async def test_prefix_life_cycle_and_writes_only_when_enabled(client):
    body = await (
        await client.post(
            "/admin/enterprises", json={"name": "丙", "creditCode": credit_code(3)}, headers=basic()
        )
    ).json()
    eid = body["data"]["id"]
    bad = await (
        await client.post(f"/admin/enterprises/{eid}/prefixes", json={"prefix": "88.999"}, headers=basic())
    ).json()
    assert bad["status"] == -2 and "88.123" in bad["message"]
    body = await (
        await client.post(f"/admin/enterprises/{eid}/prefixes", json={"prefix": "88.123.50"}, headers=basic())
    ).json()
    assert body["data"]["state"] == 4
    overlap = await (
        await client.post(
            f"/admin/enterprises/{eid}/prefixes", json={"prefix": "88.123.50.1"}, headers=basic()
        )
    ).json()
    assert overlap["status"] == -2 and "重叠" in overlap["message"]
    jump = await (
        await client.put("/admin/prefixes/88.123.50/state", json={"state": 1}, headers=basic())
    ).json()
    assert jump["status"] == -2 and "可变为" in jump["message"]
    # not enabled yet: even the node administrator cannot write under it
    resp = await client.put(
        "/api/handles/88.123.50/x",
        json=[url_value(1, "https://a")],
        headers={**basic(), "Content-Type": "application/json"},
    )
    assert resp.status == 403 and "not enabled" in (await resp.json())["message"]
    await client.put("/admin/prefixes/88.123.50/state", json={"state": 5}, headers=basic())
    enabled = await (
        await client.put("/admin/prefixes/88.123.50/state", json={"state": 1}, headers=basic())
    ).json()
    secret = enabled["data"]["admin"]["secret"]
    assert enabled["data"]["admin"]["identity"] == "300:0.NA/88.123.50"
    prefix_handle = await (await client.get("/api/handles/0.NA/88.123.50")).json()
    assert [v["type"] for v in prefix_handle["values"]] == ["HS_ADMIN", "HS_VLIST"]  # the secret stays hidden
    admin = as_user("300:0.NA/88.123.50", secret)
    assert (
        await client.put("/api/handles/88.123.50/P-1", json=[url_value(1, "https://a")], headers=admin)
    ).status == 200

    disabled = await (
        await client.put("/admin/prefixes/88.123.50/state", json={"state": 0}, headers=basic())
    ).json()
    assert disabled["status"] == 1 and "admin" not in disabled["data"]
    resp = await client.put("/api/handles/88.123.50/P-2", json=[url_value(1, "https://b")], headers=admin)
    assert resp.status == 403 and "未启用" in (await resp.json())["message"]
    assert (await client.delete("/api/handles/88.123.50/P-1", headers=admin)).status == 403
    # resolution goes on for a disabled prefix: products in the field keep resolving
    assert (await client.get("/api/handles/88.123.50/P-1")).status == 200
    await client.put("/admin/prefixes/88.123.50/state", json={"state": 1}, headers=basic())
    assert (
        await client.put("/api/handles/88.123.50/P-2", json=[url_value(1, "https://b")], headers=admin)
    ).status == 200

    details = await (await client.get(f"/admin/enterprises/{eid}", headers=basic())).json()
    assert (
        details["data"]["prefixes"] == [details["data"]["prefixes"][0]]
        and details["data"]["prefixes"][0]["state"] == 1
    )


async def test_prefix_administrator_is_confined_to_its_prefix(client):
    _, secret = await admit(client, "88.123.45", 4)
    admin = as_user("300:0.NA/88.123.45", secret)
    assert (
        await client.put("/api/handles/88.123/NODE-1", json=[url_value(1, "https://a")], headers=admin)
    ).status == 403
    # no sub-prefixes either: that needs add-prefix
    resp = await client.put("/api/handles/0.NA/88.123.45.1", json=[url_value(1, "https://a")], headers=admin)
    assert resp.status == 403


async def test_rotating_prefix_credentials(client):
    _, old = await admit(client, "88.123.45", 5)
    body = await (await client.post("/admin/prefixes/88.123.45/credentials", json={}, headers=basic())).json()
    new = body["data"]["secret"]
    assert body["status"] == 1 and new != old
    path = "/api/handles/88.123.45/ROT-1"
    assert (
        await client.put(path, json=[url_value(1, "https://a")], headers=as_user("300:0.NA/88.123.45", old))
    ).status == 401
    assert (
        await client.put(path, json=[url_value(1, "https://a")], headers=as_user("300:0.NA/88.123.45", new))
    ).status == 200
    chosen = await (
        await client.post(
            "/admin/prefixes/88.123.45/credentials", json={"secret": "chosen-by-operator"}, headers=basic()
        )
    ).json()
    assert chosen["status"] == 1 and "secret" not in chosen["data"]
    assert (
        await client.put(
            path,
            json=[url_value(1, "https://b")],
            headers=as_user("300:0.NA/88.123.45", "chosen-by-operator"),
        )
    ).status == 200


async def test_users_can_be_disabled(client):
    eid, _ = await admit(client, "88.123.45", 6)
    user = await (
        await client.post(
            f"/admin/enterprises/{eid}/users",
            json={"username": "alice", "password": "password-123"},
            headers=basic(),
        )
    ).json()
    login = await (
        await client.post("/identity/token", json={"username": "alice", "password": "password-123"})
    ).json()
    assert login["status"] == 1
    await client.put(
        f"/admin/enterprises/{eid}/users/{user['data']['id']}", json={"disabled": True}, headers=basic()
    )
    refused = await client.post("/identity/token", json={"username": "alice", "password": "password-123"})
    assert refused.status == 401 and (await refused.json())["status"] == -1
    short = await (
        await client.post(
            f"/admin/enterprises/{eid}/users", json={"username": "bob", "password": "short"}, headers=basic()
        )
    ).json()
    assert short["status"] == -2 and "8" in short["message"]
