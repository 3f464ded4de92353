"""What the portal and console tests share: a form's CSRF token, a cookie's header, signing in."""

from __future__ import annotations

import re

import pytest

from tests.enterprise_helpers import admit, bearer, product, user_token


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, html[:500]
    return found.group(1)


def cookie_header(resp, name: str) -> str:
    headers = [h for h in resp.headers.getall("Set-Cookie", []) if h.startswith(f"{name}=")]
    assert headers, resp.headers
    return headers[0]


async def sign_in(client, username: str, password: str = "password-123"):
    page = await client.get("/portal/login")
    csrf = csrf_of(await page.text())
    return await client.post(
        "/portal/login",
        data={"csrf": csrf, "username": username, "password": password},
        allow_redirects=False,
    )


@pytest.fixture
async def tenants(client):
    first, _ = await admit(client, "88.123.45", 45, "甲公司")
    second, _ = await admit(client, "88.123.46", 46, "乙公司")
    token = await user_token(client, first, "alice")
    await user_token(client, second, "bob")
    for n in range(3):
        body = await (
            await client.post("/identityv2/data", json=product(f"88.123.45/P-{n}"), headers=bearer(token))
        ).json()
        assert body["status"] == 1, body
    return client
