"""Every error of the Handle API has the same shape, whatever produced it."""

from __future__ import annotations

import asyncpg

from tests.helpers import admin_json, url_value


def assert_shape(body, rc, handle="88.123/E-1"):
    assert set(body) == {"responseCode", "handle", "message"}
    assert body["responseCode"] == rc and body["handle"] == handle and body["message"]


async def test_unexpected_failures_are_500_rc_2_in_the_error_shape(client, config):
    conn = await asyncpg.connect(config.dsn)
    try:
        await conn.execute("alter table handles rename to handles_gone")
        resp = await client.put(
            "/api/handles/88.123/E-1", json=[url_value(1, "https://a")], headers=admin_json()
        )
        assert resp.status == 500
        assert_shape(await resp.json(), 2)
    finally:
        await conn.execute("alter table handles_gone rename to handles")
        await conn.close()


async def test_error_bodies_share_one_shape(client):
    cases = [
        (client.get("/api/handles/88.123/E-1"), 404, 100),
        (client.put("/api/handles/88.123/E-1", json=[url_value(1, "https://a")]), 401, 402),
        (client.put("/api/handles/88.123/E-1", data=b"{", headers=admin_json()), 400, 4),
        (client.request("PATCH", "/api/handles/88.123/E-1"), 405, 4),
    ]
    for request, status, rc in cases:
        resp = await request
        assert resp.status == status
        assert resp.content_type == "application/json"
        assert_shape(await resp.json(), rc)
