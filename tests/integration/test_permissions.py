"""Authentication and authorization: who may create, change, delete and read what."""

from __future__ import annotations

from tests.helpers import admin_json, basic, url_value

ENTERPRISE = "0.NA/88.123.45"
ENTERPRISE_USER = "300:0.NA/88.123.45"
OTHER_USER = "300:0.NA/88.123.99"


async def make_prefix(client, prefix_handle, secret, perms="111111111111"):
    """A prefix handle with its own administrator, created by the node administrator."""
    values = [
        {
            "index": 100,
            "type": "HS_ADMIN",
            "data": {
                "format": "admin",
                "value": {"handle": prefix_handle, "index": 300, "permissions": perms},
            },
        },
        {"index": 300, "type": "HS_SECKEY", "data": secret},
    ]
    resp = await client.put(f"/api/handles/{prefix_handle}", json={"values": values}, headers=admin_json())
    assert resp.status == 200, await resp.text()


def as_user(user, secret):
    return {**basic(user, secret), "Content-Type": "application/json"}


async def test_missing_credentials_is_401_rc_402(client):
    resp = await client.put("/api/handles/88.123/x", json=[url_value(1, "https://a")])
    assert resp.status == 401
    assert (await resp.json())["responseCode"] == 402
    assert resp.headers["WWW-Authenticate"].startswith("Basic")
    assert (await client.delete("/api/handles/88.123/x")).status == 401


async def test_wrong_secret_is_401_rc_402(client):
    resp = await client.put(
        "/api/handles/88.123/x",
        json=[url_value(1, "https://a")],
        headers=as_user("300:0.NA/88.123", "nope"),
    )
    assert resp.status == 401 and (await resp.json())["responseCode"] == 402


async def test_unknown_identity_and_garbage_credentials_are_401(client):
    for headers in (
        as_user("300:0.NA/88.123.77", "x"),
        {"Authorization": "Basic !!!", "Content-Type": "application/json"},
        {"Authorization": "Bearer abc", "Content-Type": "application/json"},
    ):
        resp = await client.put("/api/handles/88.123/x", json=[url_value(1, "https://a")], headers=headers)
        assert resp.status == 401 and (await resp.json())["responseCode"] == 402


async def test_identity_without_index_means_any_index(client):
    resp = await client.put(
        "/api/handles/88.123/x",
        json=[url_value(1, "https://a")],
        headers=as_user("0.NA/88.123", "test-admin-secret"),
    )
    assert resp.status == 200


async def test_prefix_admin_creates_under_own_prefix_only(client):
    await make_prefix(client, ENTERPRISE, "ent-secret")
    await make_prefix(client, "0.NA/88.123.99", "other-secret")
    mine = as_user(ENTERPRISE_USER, "ent-secret")
    resp = await client.put(
        "/api/handles/88.123.45/P-1",
        params={"overwrite": "false"},
        json=[url_value(1, "https://a")],
        headers=mine,
    )
    assert resp.status == 201
    resp = await client.put("/api/handles/88.123.99/P-1", json=[url_value(1, "https://a")], headers=mine)
    assert resp.status == 403 and (await resp.json())["responseCode"] == 401
    resp = await client.put("/api/handles/88.123/P-1", json=[url_value(1, "https://a")], headers=mine)
    assert resp.status == 403


async def test_other_prefix_admin_cannot_change_or_delete(client):
    await make_prefix(client, ENTERPRISE, "ent-secret")
    await make_prefix(client, "0.NA/88.123.99", "other-secret")
    mine = as_user(ENTERPRISE_USER, "ent-secret")
    theirs = as_user(OTHER_USER, "other-secret")
    await client.put("/api/handles/88.123.45/P-2", json=[url_value(1, "https://a")], headers=mine)
    path = "/api/handles/88.123.45/P-2"
    attempts = [
        client.put(path, json=[url_value(1, "https://evil")], headers=theirs),
        client.put(path, params={"index": "2"}, json=[url_value(2, "https://evil")], headers=theirs),
        client.delete(path, params={"index": "1"}, headers=theirs),
        client.delete(path, headers=theirs),
        client.get("/api/handles", params={"prefix": "88.123.45"}, headers=theirs),
    ]
    for attempt in attempts:
        resp = await attempt
        assert resp.status == 403, await resp.text()
        assert (await resp.json())["responseCode"] == 401
    values = (await (await client.get(path)).json())["values"]
    assert values[0]["data"]["value"] == "https://a"


async def test_changing_an_admin_value_needs_modify_admin(client):
    # everything but modify-admin
    await make_prefix(client, ENTERPRISE, "ent-secret", perms="011101110011")
    mine = as_user(ENTERPRISE_USER, "ent-secret")
    resp = await client.put(
        f"/api/handles/{ENTERPRISE}",
        params={"index": "100"},
        json=[
            {
                "index": 100,
                "type": "HS_ADMIN",
                "data": {
                    "format": "admin",
                    "value": {"handle": ENTERPRISE, "index": 300, "permissions": "111111111111"},
                },
            }
        ],
        headers=mine,
    )
    assert resp.status == 403


async def test_handle_level_admin_via_group(client):
    """pyhandle writes HS_ADMIN 200:0.NA/<prefix>: an HS_VLIST at index 200 grants its members."""
    await make_prefix(client, ENTERPRISE, "ent-secret", perms="000000000000")
    group = [
        {
            "index": 200,
            "type": "HS_VLIST",
            "data": {"format": "vlist", "value": [{"handle": ENTERPRISE, "index": 300}]},
        }
    ]
    resp = await client.put(
        f"/api/handles/{ENTERPRISE}", params={"index": "200"}, json=group, headers=admin_json()
    )
    assert resp.status == 200
    admin_value = {
        "index": 100,
        "type": "HS_ADMIN",
        "data": {
            "format": "admin",
            "value": {"handle": ENTERPRISE, "index": "200", "permissions": "000000010000"},
        },
    }
    await client.put(
        "/api/handles/88.123.45/G-1",
        json=[url_value(1, "https://a"), admin_value],
        headers=admin_json(),
    )
    mine = as_user(ENTERPRISE_USER, "ent-secret")
    resp = await client.put(
        "/api/handles/88.123.45/G-1",
        params={"index": "1"},
        json=[url_value(1, "https://b")],
        headers=mine,
    )
    assert resp.status == 200
    # the prefix handle grants nothing, so creating is still refused
    resp = await client.put("/api/handles/88.123.45/G-2", json=[url_value(1, "https://a")], headers=mine)
    assert resp.status == 403
    # the handle's admin value grants modify-value only: adding and deleting are refused
    resp = await client.put(
        "/api/handles/88.123.45/G-1",
        params={"index": "2"},
        json=[url_value(2, "https://c")],
        headers=mine,
    )
    assert resp.status == 403
    assert (await client.delete("/api/handles/88.123.45/G-1", headers=mine)).status == 403


async def test_readers_with_read_permission_see_non_public_values(client):
    await make_prefix(client, ENTERPRISE, "ent-secret")
    await make_prefix(client, "0.NA/88.123.99", "other-secret")
    path = "/api/handles/88.123.45/R-1"
    await client.put(
        path,
        json=[
            url_value(1, "https://a"),
            {"index": 2, "type": "NOTE", "data": "secret note", "permissions": "1100"},
        ],
        headers=admin_json(),
    )
    owner = (await (await client.get(path, headers=basic(ENTERPRISE_USER, "ent-secret"))).json())["values"]
    assert [v["index"] for v in owner] == [1, 2]
    stranger = (await (await client.get(path, headers=basic(OTHER_USER, "other-secret"))).json())["values"]
    assert [v["index"] for v in stranger] == [1]


async def test_rotating_a_secret_invalidates_the_old_one(client):
    await make_prefix(client, ENTERPRISE, "old-secret")
    old = as_user(ENTERPRISE_USER, "old-secret")
    assert (
        await client.put("/api/handles/88.123.45/K-1", json=[url_value(1, "https://a")], headers=old)
    ).status == 200
    rotate = [{"index": 300, "type": "HS_SECKEY", "data": "new-secret"}]
    assert (
        await client.put(
            f"/api/handles/{ENTERPRISE}", params={"index": "300"}, json=rotate, headers=admin_json()
        )
    ).status == 200
    assert (
        await client.put("/api/handles/88.123.45/K-2", json=[url_value(1, "https://a")], headers=old)
    ).status == 401
    new = as_user(ENTERPRISE_USER, "new-secret")
    assert (
        await client.put("/api/handles/88.123.45/K-2", json=[url_value(1, "https://a")], headers=new)
    ).status == 200
