"""Admitting enterprises through the operator API, for tests."""

from __future__ import annotations

from resolver.core.enterprises import credit_code_check_character
from tests.helpers import basic


def credit_code(seed: int) -> str:
    """A valid unified social credit code (the check character computed)."""
    first17 = f"91350100{seed:09d}"
    return first17 + credit_code_check_character(first17)


async def admit(client, prefix: str, seed: int, name: str = "测试企业") -> tuple[int, str]:
    """Register an enterprise, allocate and enable `prefix`; returns (enterprise id, admin secret)."""
    resp = await client.post(
        "/admin/enterprises",
        json={
            "name": name,
            "creditCode": credit_code(seed),
            "contact": {"name": "张三", "phone": "13800000000"},
        },
        headers=basic(),
    )
    body = await resp.json()
    assert body["status"] == 1, body
    enterprise_id = body["data"]["id"]
    body = await (
        await client.post(
            f"/admin/enterprises/{enterprise_id}/prefixes", json={"prefix": prefix}, headers=basic()
        )
    ).json()
    assert body["status"] == 1, body
    for state in (5, 1):
        body = await (
            await client.put(f"/admin/prefixes/{prefix}/state", json={"state": state}, headers=basic())
        ).json()
        assert body["status"] == 1, body
    return enterprise_id, body["data"]["admin"]["secret"]


async def user_token(client, enterprise_id: int, username: str, password: str = "password-123") -> str:
    """Create an enterprise user and log it in."""
    body = await (
        await client.post(
            f"/admin/enterprises/{enterprise_id}/users",
            json={"username": username, "password": password},
            headers=basic(),
        )
    ).json()
    assert body["status"] == 1, body
    body = await (
        await client.post("/identity/token", json={"username": username, "password": password})
    ).json()
    assert body["status"] == 1, body
    return body["data"]["token"]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def product(handle: str, name: str = "螺栓", maker: str = "测试企业", **extra: object) -> dict[str, object]:
    """An enterprise API item on the general product template."""
    values = [
        {"index": 2000, "type": "productName", "data": {"format": "string", "value": name}, "auth": ""},
        {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": maker}},
    ]
    return {"handle": handle, "templateVersion": "general-product-1.0", "value": values, **extra}
