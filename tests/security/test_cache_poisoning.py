"""Host header poisoning of the web face (security issue "Web face", item 10).

The scan page is rendered once and kept with the worker's cache entry, and its QR codes are served
with `Cache-Control: public`: whatever address they hold is shown to every client after. So the
address of an identifier's page comes from configuration only (`--public-url`, by default
`http://HOST:PORT`), never from the request's Host, X-Forwarded-* or Forwarded headers, nor from an
absolute-form request target.
"""

from __future__ import annotations

import asyncio
import io
from dataclasses import replace

import pytest
import segno

from resolver.config import Config
from tests.helpers import basic, serving

POISON = "attacker.example"
HOSTILE_HEADERS = [
    {"Host": POISON},
    {"Host": f"{POISON}:8443"},
    {"X-Forwarded-Host": POISON, "X-Forwarded-Proto": "https", "X-Forwarded-Port": "443"},
    {"Forwarded": f'for=1.2.3.4;host={POISON};proto="https"'},
    {"X-Host": POISON, "X-Original-Host": POISON, "X-Forwarded-Server": POISON},
]
# the address the fixture's config gives: Config() listens on 127.0.0.1:8000, no --public-url
DEFAULT_BASE = "http://127.0.0.1:8000"


def qr_png_of(text: str) -> bytes:
    out = io.BytesIO()
    segno.make(text, error="m", micro=False).save(out, kind="png", scale=10, border=4)
    return out.getvalue()


async def register(client, handle: str, values: list[dict[str, object]]) -> None:
    resp = await client.put(f"/api/handles/{handle}", json={"values": values}, headers=basic())
    assert resp.status == 200, await resp.text()


async def every_answer(client, handle: str, headers: dict[str, str]) -> list[bytes]:
    """Status line, headers and body of each face of the identifier's page, asked with `headers`."""
    answers = []
    for path in (
        f"/{handle}",
        f"/{handle}?noredirect",
        f"/{handle}?type=DESC",
        f"/{handle}?qr=svg",
        f"/{handle}?qr=png",
        f"/{handle}.png",
        "/88.123/NO-SUCH-ID",
        "/",
    ):
        resp = await client.get(path, headers=headers, allow_redirects=False)
        head = f"{resp.status}\n" + "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
        answers.append(head.encode() + b"\n\n" + await resp.read())
    return answers


@pytest.mark.parametrize("hostile", HOSTILE_HEADERS, ids=lambda h: ",".join(h))
async def test_a_poisoned_host_never_reaches_any_answer_nor_later_clients(client, hostile):
    handle = "88.123/PG-1"
    await register(client, handle, [{"index": 1, "type": "DESC", "data": "六角螺栓 M8"}])
    # the poisoned request comes first, so it is the one that renders and caches the page
    poisoned = await every_answer(client, handle, hostile)
    clean = await every_answer(client, handle, {})
    for answer in poisoned + clean:
        assert POISON.encode() not in answer
    page = clean[0].decode()
    assert f'href="{DEFAULT_BASE}/{handle}?qr=png"' in page
    assert poisoned[0].split(b"\n\n", 1)[1] == clean[0].split(b"\n\n", 1)[1]
    for png in (poisoned[4], poisoned[5], clean[4], clean[5]):
        assert png.split(b"\n\n", 1)[1] == qr_png_of(f"{DEFAULT_BASE}/{handle}")
    assert f"<title>{DEFAULT_BASE}/{handle}</title>".encode() in poisoned[3]


async def test_a_poisoned_host_never_reaches_a_redirect(client):
    await register(client, "88.123/PG-2", [{"index": 1, "type": "URL", "data": "https://ok.example/p"}])
    for hostile in HOSTILE_HEADERS:
        resp = await client.get("/88.123/PG-2", headers=hostile, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "https://ok.example/p"
        assert POISON not in await resp.text()


async def test_an_absolute_form_request_target_does_not_name_the_page_either(client):
    """`GET http://attacker.example/88.123/PG-3 HTTP/1.1` over a raw socket (proxies send that)."""
    await register(client, "88.123/PG-3", [{"index": 1, "type": "DESC", "data": "x"}])
    for target in (f"http://{POISON}/88.123/PG-3", f"http://{POISON}/88.123/PG-3?qr=svg"):
        reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
        writer.write(f"GET {target} HTTP/1.1\r\nHost: {POISON}\r\nConnection: close\r\n\r\n".encode())
        await writer.drain()
        answer = await reader.read()
        writer.close()
        await writer.wait_closed()
        assert answer.startswith(b"HTTP/1.1 200 ") and POISON.encode() not in answer
    page = await (await client.get("/88.123/PG-3")).text()
    assert POISON not in page and f"{DEFAULT_BASE}/88.123/PG-3" in page


async def test_the_configured_public_url_names_the_page(config: Config):
    async with serving(replace(config, public_url="https://id.example.cn/resolve/")) as client:
        await register(client, "88.123/PG-4", [{"index": 1, "type": "DESC", "data": "x"}])
        page = await (await client.get("/88.123/PG-4", headers={"Host": POISON})).text()
        assert 'href="https://id.example.cn/resolve/88.123/PG-4?qr=png"' in page and POISON not in page
        png = await (await client.get("/88.123/PG-4.png", headers={"Host": POISON})).read()
        assert png == qr_png_of("https://id.example.cn/resolve/88.123/PG-4")


async def test_the_page_shows_the_handle_as_registered_not_as_first_asked(client):
    """The request path is request data too: a case variant asked first does not become what
    everybody's cached page shows."""
    await register(client, "88.123/PG-Case", [{"index": 1, "type": "DESC", "data": "x"}])
    first = await (await client.get("/hdl:88.123/pg-CASE")).text()
    later = await (await client.get("/88.123/PG-Case")).text()
    assert first == later and "pg-CASE" not in later and "88.123/PG-Case" in later
