"""The web proxy face: redirects, the readable page, urlappend, 404 pages."""

from __future__ import annotations

import asyncio
import time
from email.utils import parsedate_to_datetime

import yarl

from tests.helpers import admin_json


async def register(client, handle, values):
    resp = await client.put(f"/api/handles/{handle}", json={"values": values}, headers=admin_json())
    assert resp.status == 200


async def test_redirects_to_first_url_with_expires(client):
    await register(
        client,
        "88.123/P-1",
        [
            {"index": 1, "type": "EMAIL", "data": "a@b.c"},
            {"index": 2, "type": "url", "data": "https://example.com/first", "ttl": 3600},
            {"index": 3, "type": "URL", "data": "https://example.com/second"},
        ],
    )
    resp = await client.get("/88.123/P-1", allow_redirects=False)
    assert resp.status == 302
    assert resp.headers["Location"] == "https://example.com/first"
    expires = parsedate_to_datetime(resp.headers["Expires"]).timestamp()
    assert 3500 < expires - time.time() <= 3601
    assert "https://example.com/first" in await resp.text()


async def test_head_answers_like_get(client):
    await register(client, "88.123/P-2", [{"index": 1, "type": "URL", "data": "https://example.com/h"}])
    resp = await client.head("/88.123/P-2", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "https://example.com/h"


async def test_urlappend(client):
    await register(client, "88.123/P-3", [{"index": 1, "type": "URL", "data": "https://example.com/x"}])
    resp = await client.get("/88.123/P-3", params={"urlappend": "?batch=7"}, allow_redirects=False)
    assert resp.headers["Location"] == "https://example.com/x?batch=7"


async def test_noredirect_shows_escaped_public_values(client):
    await register(
        client,
        "88.123/P-4",
        [
            {"index": 1, "type": "URL", "data": "https://example.com/x"},
            {"index": 2, "type": "NAME", "data": "<script>alert(1)</script>产品"},
            {"index": 3, "type": "HIDDEN", "data": "internal", "permissions": "1100"},
        ],
    )
    resp = await client.get("/88.123/P-4", params={"noredirect": ""})
    page = await resp.text()
    assert resp.status == 200 and resp.content_type == "text/html"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;产品" in page and "<script>alert" not in page
    assert "internal" not in page
    assert "88.123/P-4" in page and "Identifier" in page and "标识" in page


async def test_handle_without_url_shows_the_page(client):
    await register(client, "88.123/P-5", [{"index": 1, "type": "NAME", "data": "bolt"}])
    resp = await client.get("/88.123/P-5", allow_redirects=False)
    assert resp.status == 200 and "bolt" in await resp.text()


async def test_unsafe_url_schemes_are_not_redirected_to(client):
    await register(client, "88.123/P-6", [{"index": 1, "type": "URL", "data": "javascript:alert(1)"}])
    resp = await client.get("/88.123/P-6", allow_redirects=False)
    assert resp.status == 200 and "Location" not in resp.headers


async def test_unknown_handle_gets_a_404_page(client):
    resp = await client.get("/88.123/NOPE")
    assert resp.status == 404 and resp.content_type == "text/html"
    assert "88.123/NOPE" in await resp.text()


async def test_hdl_scheme_and_type_filter(client):
    """`type=URL.` selects URL and URL.mobile, as the reference server filters requested types
    (hdllib/Util.java isParentTypeInArray); among those the proxy redirects to the plain URL value
    first and to a subtype only when there is none, as the reference proxy does
    (apps/servlet_proxy/handlers/Url.java doRedirect)."""
    await register(
        client,
        "88.123/P-7",
        [
            {"index": 1, "type": "URL", "data": "https://example.com/main"},
            {"index": 2, "type": "URL.mobile", "data": "https://m.example.com/"},
        ],
    )
    resp = await client.get("/hdl:88.123/P-7", params={"type": "URL."}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "https://example.com/main"
    resp = await client.get("/hdl:88.123/P-7", params={"type": "URL.mobile"}, allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"] == "https://m.example.com/"


ODD_PATHS = [
    "/%00",
    "/88.123/%00",
    "/..%2F",
    "/88.123/..%2F..%2Fetc%2Fpasswd",
    "/%2e%2e/%2e%2e/",
    "/88.123/%FF",
    "/88.123/%C3%28",
    "/%E4%B8",
    "/%",
    "/%zz",
    "/88.123/x%",
    "/88.123/%u0041",
    "/" + "a" * 1000,
    "/88.123/" + "b" * 5000,
    "/88.123/" + "%41" * 2000,
    "/88.123/.png",
    "/.png",
    "//",
    "///",
    "/88.123//",
    "/hdl:",
    "/doi:88.123/ODD",
    "/88.123/ODD?qr=png&qr=svg",
    "/88.123/ODD?qr=%FF",
    "/88.123/ODD?index=abc",
    "/88.123/ODD?index=99999999999999999999",
    "/88.123/ODD?index=-1",
    "/88.123/ODD?type=" + "t" * 5000,
    "/88.123/ODD?urlappend=%FF",
    "/88.123/ODD?urlappend=%C3%28",
    "/88.123/ODD?urlappend=" + "/x" * 3000,
    "/88.123/ODD?noredirect=%FF&auth=%00",
    "/88.123/ODD.png?urlappend=%0D%0A",
]


async def test_odd_paths_get_a_clean_page_never_a_500(client):
    await register(client, "88.123/ODD", [{"index": 1, "type": "URL", "data": "https://example.com/odd"}])
    for path in ODD_PATHS:
        for method in ("GET", "HEAD"):
            resp = await client.request(method, yarl.URL(path, encoded=True), allow_redirects=False)
            assert resp.status < 500, (method, path, resp.status)
            if method == "GET" and resp.status != 302 and resp.content_type.startswith("text"):
                assert resp.content_type == "text/html", (path, resp.content_type)
                assert "<script" not in await resp.text()


async def test_a_request_line_longer_than_aiohttp_reads_is_refused_not_a_500(client):
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /88.123/" + b"c" * 9000 + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    await writer.drain()
    answer = await reader.read()
    writer.close()
    await writer.wait_closed()
    assert answer.startswith((b"HTTP/1.1 400 ", b"HTTP/1.1 414 ", b"HTTP/1.0 400 ")), answer[:100]
