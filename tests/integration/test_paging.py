"""One paging scheme for the node's own listings (issue 16): `page` counts from 0, `pageSize` is the
page's size, a page past the end is empty, and a value that is not an integer in its bounds is
refused in the listing's own error shape and language. The operator API's enterprises and audit
answer `{total, page, pageSize, items}`; /hrls answers the bare array pyhandle reads and takes
`pageSize` as well as the reverse-lookup servlet's `limit`. The Handle API's own listing keeps
Handle.Net's parameters (tests/integration/test_api_basics.py)."""

from __future__ import annotations

import pytest

from tests.enterprise_helpers import admit
from tests.helpers import admin_json, basic, url_value

BAD = ("-1", "x", "1.5", "", "99999999999")


async def operator_listing(client, path: str, **params: str) -> dict:
    resp = await client.get(path, params=params, headers=basic())
    assert resp.status == 200
    return await resp.json()


@pytest.mark.parametrize("path", ["/admin/enterprises", "/admin/audit"])
async def test_operator_listings_page_the_same_way(client, path):
    for n in range(3):
        await admit(client, f"88.123.{45 + n}", 50 + n)
    whole = (await operator_listing(client, path, pageSize="1000"))["data"]
    total = whole["total"]
    assert total >= 3 and len(whole["items"]) == total
    assert whole["page"] == 0 and whole["pageSize"] == 1000
    seen = []
    for page in range(total):
        body = (await operator_listing(client, path, page=str(page), pageSize="1"))["data"]
        assert (body["total"], body["page"], body["pageSize"], len(body["items"])) == (total, page, 1, 1)
        seen.append(body["items"][0]["id"])
    assert seen == [item["id"] for item in whole["items"]]  # pages in order, none twice, none left out
    past = (await operator_listing(client, path, page=str(total), pageSize="1"))["data"]
    assert past["items"] == [] and past["total"] == total
    default = (await operator_listing(client, path))["data"]
    assert default["page"] == 0 and default["pageSize"] == 50
    for key in ("page", "pageSize"):
        for value in (*BAD, *(("0", "1001") if key == "pageSize" else ())):
            body = await operator_listing(client, path, **{key: value})
            assert body["status"] != 1 and body["data"] is None, (key, value, body)
            assert body["message"].startswith("分页参数不正确") and key in body["message"], body


async def test_reverse_lookup_takes_page_size_as_well_as_limit(client):
    for i in range(5):
        put = await client.put(
            f"/api/handles/88.123/P-{i}",
            json=[url_value(1, f"https://p.example.com/{i}")],
            headers=admin_json(),
        )
        assert put.status == 200

    async def search(**params: str):
        return await client.get(
            "/hrls/handles", params={"URL": "https://p.example.com/*", **params}, headers=basic()
        )

    every = await (await search()).json()
    assert every == [f"88.123/P-{i}" for i in range(5)]
    for key in ("pageSize", "limit"):
        pages = [await (await search(page=str(p), **{key: "2"})).json() for p in range(4)]
        assert pages == [every[0:2], every[2:4], every[4:5], []]
    same = await search(pageSize="2", limit="2", page="1")
    assert await same.json() == every[2:4]
    clash = await search(pageSize="2", limit="3")
    body = await clash.json()
    assert clash.status == 400 and body["responseCode"] == 4 and "give one of them" in body["message"]
    for key in ("page", "pageSize", "limit"):
        for value in (*BAD, *(("0", "10001") if key != "page" else ())):
            resp = await search(**{key: value})
            body = await resp.json()
            assert resp.status == 400 and body["responseCode"] == 4, (key, value, body)
            assert key in body["message"] and body["message"].isascii(), body
