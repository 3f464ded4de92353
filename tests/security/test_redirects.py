"""Redirects of the web face (security issue "Web face", items 11 and 12).

11. `?urlappend=` adds a path, a query or a fragment to the stored URL, never a scheme, user, host
    or port. The reference proxy (MistraR/handle,
    `src/main/java/net/handle/apps/servlet_proxy/handlers/Url.java`, `Url.doRedirect`, and
    `handlers/Location.java`, `Location.sendRedirect`) appends it blindly (`redirectURL + urlSuffix`),
    then `HDLServletRequest.sendHTTPRedirect` sends `encodeIRIToURI(location.trim())`: there,
    `?urlappend=@evil.example/` after `https://ok.example` leads to evil.example. We follow it for
    every suffix that cannot change the site and answer 400 for the others; every Location is
    checked with urllib, yarl and a WHATWG parser (Node's `URL`, what browsers do).
12. A control character in a redirect target (from `urlappend` or from a stored URL value) would
    split the response's headers; aiohttp refuses to send such a header and drops the connection.
    URL values with control characters are refused at registration (400, rc 202, naming the value),
    those stored before are answered with a 400 page; only http(s) URLs are redirected to.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
from pathlib import Path
from urllib.parse import quote, urlsplit

import asyncpg
import orjson
import pytest
import requests
import yarl
from hypothesis import given
from hypothesis import strategies as st

from resolver.http.proxy import RedirectRefused, redirect_target
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic
from tests.nodes import start_node

# stored URL values: ending with the host, with a port, with a path, a query, user info
STORED = [
    "https://ok.example",
    "http://ok.example:8080",
    "https://user@ok.example",
    "https://ok.example/p/",
    "https://ok.example/item=",
    "https://ok.example?lot=1",
]
# urlappend as the server sees it (the query string decoded once): a client sends `%2540` for `%40`
TRICKY = [
    "@evil.example/",
    ".evil.example/",
    ":8080/",
    ":@evil.example/",
    "@evil.example:443/",
    ".evil.example@evil.example/",
    "//evil.example/",
    "\\evil.example/",
    "\\\\evil.example/",
    "\\@evil.example/",
    "/\\evil.example/",
    "/\\\\evil.example/",
    "%40evil.example/",
    "%2F%2Fevil.example/",
    "%5C%5Cevil.example/",
    "%2Eevil.example/",
    "%2eevil.example%2F",
    "\uff20evil.example/",  # full-width commercial at
    "\ufe6bevil.example/",  # small commercial at
    "\uff0fevil.example/",  # full-width solidus
    "\uff0eevil.example/",  # full-width full stop
    "\u3002evil.example/",  # ideographic full stop
    "\uff3cevil.example/",  # full-width reverse solidus
    " @evil.example/",
    "\u00a0@evil.example/",
    "/../../@evil.example/..",
    "?@evil.example/",
    "#@evil.example/",
    "/..;@evil.example/",
    "%0D%0A@evil.example/",
]
LEGIT = [
    ("https://ok.example", "/more?x=1", "https://ok.example/more?x=1"),
    ("https://ok.example", "?batch=7", "https://ok.example?batch=7"),
    ("https://ok.example:8443", "#top", "https://ok.example:8443#top"),
    ("https://ok.example/item=", "123", "https://ok.example/item=123"),
    ("https://ok.example/p", "?mail=qa@ok.example", "https://ok.example/p?mail=qa@ok.example"),
    ("https://ok.example/p?x=1", "&y=2#f", "https://ok.example/p?x=1&y=2#f"),
    ("HTTPS://ok.example/p", "/产品", "HTTPS://ok.example/p/产品"),
]
CONTROLS = ["\r", "\n", "\r\nSet-Cookie: pwned=1", "\x00", "\t", "\x0b", "\x1b", "\x7f", "\x85"]
NOT_WEB = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    " javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "file:///etc/passwd",
    "mailto:qa@ok.example",
    "tel:+86-10-1234",
    "ftp://ok.example/f",
    "intent://scan/#Intent;scheme=zxing;end",
    "ms-msdt:/id PCWDiagnostic",
    "blob:https://ok.example/1",
    "//evil.example/",
    "/relative",
    "evil.example",
    "https:evil.example",
    "https:/evil.example",
    "https:///evil.example",
    "https://",
    "http://:80/",
    "https:\\\\evil.example",
    "https://evil.example\\@ok.example/",
    "https://ok example/",
]


def urllib_site(url: str) -> tuple[object, ...]:
    parts = urlsplit(url)
    return (parts.scheme.lower(), parts.username, parts.password, parts.hostname, parts.port)


def yarl_site(url: str) -> tuple[object, ...]:
    parsed = yarl.URL(url)
    return (parsed.scheme, parsed.user, parsed.password, parsed.host, parsed.port)


_WHATWG = """
const urls = JSON.parse(require("fs").readFileSync(0, "utf8"));
process.stdout.write(JSON.stringify(urls.map((u) => {
  try { const p = new URL(u); return [p.protocol, p.username, p.password, p.hostname, p.port]; }
  catch (e) { return null; }
})));
"""


def whatwg_sites(urls: list[str]) -> list[list[str] | None]:
    """How a browser sees each URL (Node's URL is a WHATWG URL Standard parser): scheme, user,
    password, host, port; None where it refuses the URL."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node (a WHATWG URL parser) is not installed")
    done = subprocess.run(
        [node, "-e", _WHATWG], input=json.dumps(urls), capture_output=True, text=True, timeout=60, check=True
    )
    sites: list[list[str] | None] = json.loads(done.stdout)
    return sites


async def register(client, handle: str, url: str) -> None:
    resp = await client.put(
        f"/api/handles/{handle}",
        json={"values": [{"index": 1, "type": "URL", "data": url}]},
        headers=admin_json(),
    )
    assert resp.status == 200, await resp.text()


async def insert_directly(dsn: str, handle: str, values: list[dict[str, object]]) -> None:
    """A record as one written before URL values were checked: straight into the table."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "insert into handles (key, handle, prefix, vals) values ($1, $2, $3, $4::json)",
            handle.lower(),
            handle,
            handle.partition("/")[0].lower(),
            orjson.dumps(values).decode(),
        )
    finally:
        await conn.close()


def legacy_url(index: int, url: str) -> dict[str, object]:
    return {
        "index": index,
        "type": "URL",
        "data": {"format": "string", "value": url},
        "ttl": 86400,
        "timestamp": "2026-01-01T00:00:00Z",
    }


async def ask(client, handle: str, urlappend: str):
    """GET /{handle}?urlappend=..., the value percent-encoded once (as a browser's form would)."""
    path = f"/{handle}?urlappend={quote(urlappend, safe='')}"
    return await client.get(yarl.URL(path, encoded=True), allow_redirects=False)


async def assert_refused(resp) -> None:
    assert resp.status == 400 and resp.content_type == "text/html"
    assert "Location" not in resp.headers and "Set-Cookie" not in resp.headers
    text = await resp.text()
    assert "无法跳转" in text and "Not redirected" in text


async def test_urlappend_never_changes_the_scheme_user_host_or_port(client):
    locations: list[tuple[str, str]] = []
    for number, stored in enumerate(STORED):
        handle = f"88.123/OR-{number}"
        await register(client, handle, stored)
        for suffix in TRICKY:
            resp = await ask(client, handle, suffix)
            if resp.status == 302:
                assert resp.headers["Location"] == stored + suffix
                locations.append((stored, resp.headers["Location"]))
            else:
                await assert_refused(resp)
                assert urlsplit(stored).path == "" and not urlsplit(stored).query, (stored, suffix)
    # after a URL that ends with its host or port, only a path, a query or a fragment is added
    for stored, location in locations:
        if urlsplit(stored).path == "" and not urlsplit(stored).query:
            assert location[len(stored)] in "/?#", location
    browsers = whatwg_sites([stored for stored, _ in locations] + [location for _, location in locations])
    stored_sites, location_sites = browsers[: len(locations)], browsers[len(locations) :]
    for (stored, location), before, after in zip(locations, stored_sites, location_sites, strict=True):
        assert urllib_site(location) == urllib_site(stored), location
        assert yarl_site(location) == yarl_site(stored), location
        assert after is not None and after == before, location
    assert len(locations) > len(TRICKY)  # after a path, query or user info the tricky forms are text


async def test_the_tricky_forms_after_a_bare_host_are_refused(client):
    await register(client, "88.123/OR-BARE", "https://ok.example")
    for suffix in ["@evil.example/", ".evil.example/", ":8080/", "%2Eevil.example/", "\uff0eevil.example/"]:
        await assert_refused(await ask(client, "88.123/OR-BARE", suffix))
    # after a path the same text is part of the path: the browser stays on ok.example
    await register(client, "88.123/OR-PATH", "https://ok.example/p/")
    resp = await ask(client, "88.123/OR-PATH", "@evil.example/")
    assert resp.status == 302 and resp.headers["Location"] == "https://ok.example/p/@evil.example/"


async def test_legitimate_suffixes_are_appended_as_sent(client):
    for number, (stored, suffix, expected) in enumerate(LEGIT):
        await register(client, f"88.123/OK-{number}", stored)
        resp = await ask(client, f"88.123/OK-{number}", suffix)
        assert resp.status == 302 and resp.headers["Location"] == expected
    assert (await ask(client, "88.123/OK-0", "")).headers["Location"] == "https://ok.example"


@given(
    stored=st.sampled_from(STORED),
    suffix=st.text(
        alphabet=st.sampled_from(list("@.:/\\?#%2EF5C40 evilx\uff20\uff0f\uff0e\u3002")), max_size=12
    ),
)
def test_any_suffix_keeps_the_site_or_is_refused(stored: str, suffix: str) -> None:
    try:
        location = redirect_target(stored, suffix)
    except RedirectRefused:
        return
    assert location == stored + suffix
    assert urllib_site(location) == urllib_site(stored)
    assert yarl_site(location) == yarl_site(stored)


async def test_only_http_and_https_urls_are_redirected_to(client):
    """Anything else shows the identifier's values (the value as text, not as a link)."""
    for number, stored in enumerate(NOT_WEB):
        await register(client, f"88.123/NW-{number}", stored)
        for suffix in ("", "/x"):
            resp = await ask(client, f"88.123/NW-{number}", suffix)
            assert resp.status == 200 and "Location" not in resp.headers, stored
            page = await resp.text()
            assert f'href="{stored.strip()}' not in page
    # among them, forms a browser reads as an http(s) site while urllib does not, or not the same
    browser_web = [url for url, site in zip(NOT_WEB, whatwg_sites(NOT_WEB), strict=True) if site]
    assert [url for url in browser_web if url.startswith("https")] == [
        "https:evil.example",
        "https:/evil.example",
        "https:///evil.example",
        "https:\\\\evil.example",
        "https://evil.example\\@ok.example/",
    ]
    assert urllib_site("https://evil.example\\@ok.example/")[3] == "ok.example"


async def test_url_values_with_control_characters_are_refused_at_registration(client):
    for value_type in ("URL", "url", "URL.mobile"):
        for control in CONTROLS:
            resp = await client.put(
                "/api/handles/88.123/CC-1",
                json={
                    "values": [
                        {"index": 1, "type": "DESC", "data": "line one\nline two"},
                        {"index": 2, "type": value_type, "data": f"https://ok.example/a{control}b"},
                    ]
                },
                headers=admin_json(),
            )
            assert resp.status == 400, (value_type, control)
            body = await resp.json()
            if control == "\x00":  # no string of any body may hold a NUL (Postgres text cannot)
                assert body["responseCode"] == 4 and "NUL" in body["message"], body
                continue
            assert body["responseCode"] == 202 and "value 2" in body["message"], body
            assert "control characters" in body["message"]
    # other types keep their line breaks; a URL without control characters is taken
    resp = await client.put(
        "/api/handles/88.123/CC-1",
        json={
            "values": [
                {"index": 1, "type": "DESC", "data": "line one\nline two"},
                {"index": 2, "type": "URL", "data": "https://ok.example/a b"},
            ]
        },
        headers=admin_json(),
    )
    assert resp.status == 200


async def test_the_enterprise_api_refuses_them_too(client):
    """The same rule on the enterprise API's single and batch registration (one parse_values)."""
    enterprise, _ = await admit(client, "88.123.45", 71)
    token = await user_token(client, enterprise, "crlf")
    bad = {"index": 2009, "type": "URL", "data": {"format": "string", "value": "https://ok.example/\r\nX: 1"}}
    item = product("88.123.45/CRLF-1")
    item["value"] = [*item["value"], bad]
    single = await (await client.post("/identityv2/data", json=item, headers=bearer(token))).json()
    assert single["status"] == -2 and "控制字符" in single["message"], single
    batch = await (
        await client.post("/identityv2/data/batchCreate", json=[item], headers=bearer(token))
    ).json()
    assert batch["data"][0]["code"] != 1 and "控制字符" in batch["data"][0]["msg"], batch


async def test_control_characters_in_urlappend_answer_a_400_page(client):
    await register(client, "88.123/CC-2", "https://ok.example/p")
    for control in CONTROLS:
        await assert_refused(await ask(client, "88.123/CC-2", f"?a=1{control}"))
    resp = await client.get(
        yarl.URL("/88.123/CC-2?urlappend=%0D%0ASet-Cookie:%20pwned=1", encoded=True), allow_redirects=False
    )
    await assert_refused(resp)


async def test_stored_urls_with_control_characters_answer_a_400_page(client, config):
    for number, url in enumerate(
        ["https://ok.example/a\r\nSet-Cookie: pwned=1", "https://ok.example/\x00", "java\tscript:alert(1)"]
    ):
        handle = f"88.123/LEGACY-{number}"
        await insert_directly(config.dsn, handle, [legacy_url(1, url)])
        for suffix in ("", "/x"):
            await assert_refused(await ask(client, handle, suffix))
        shown = await client.get(f"/{handle}?noredirect")
        assert shown.status == 200 and "Set-Cookie" not in shown.headers
        assert "pwned" not in "".join(shown.headers.values())


def raw_get(url: str, target: str) -> bytes:
    """One HTTP/1.1 request over a plain socket; everything the server sent until it closed."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


@pytest.mark.e2e
def test_the_real_process_answers_crlf_targets_with_a_page_not_a_dropped_connection(
    fresh_database: str, tmp_path: Path
):
    node = start_node(tmp_path, "--workers", "1", "--dsn", fresh_database)
    try:
        good = requests.put(
            f"{node.url}/api/handles/88.123/E2E-GOOD",
            json={"values": [{"index": 1, "type": "URL", "data": "https://ok.example/p"}]},
            headers=basic(),
            timeout=30,
        )
        assert good.status_code == 200
        asyncio.run(
            insert_directly(
                fresh_database, "88.123/E2E-OLD", [legacy_url(1, "https://ok.example/\r\nSet-Cookie: x=1")]
            )
        )
        for target in (
            "/88.123/E2E-OLD",
            "/88.123/E2E-GOOD?urlappend=%0D%0ASet-Cookie:%20x=1",
            "/88.123/E2E-GOOD?urlappend=%0Ax",
            "/88.123/E2E-GOOD?urlappend=%00",
        ):
            answer = raw_get(node.url, target)  # empty when the server drops the connection
            head, _, body = answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 400 "), (target, answer[:200])
            assert b"\r\nLocation:" not in head and b"Set-Cookie" not in head
            assert b"text/html" in head and "无法跳转".encode() in body
        assert raw_get(node.url, "/88.123/E2E-GOOD?urlappend=/x").startswith(b"HTTP/1.1 302 ")
        refused = requests.put(
            f"{node.url}/api/handles/88.123/E2E-BAD",
            json={"values": [{"index": 3, "type": "URL", "data": "https://ok.example/\r\nSet-Cookie: x=1"}]},
            headers=admin_json(),
            timeout=30,
        )
        assert refused.status_code == 400 and refused.json()["responseCode"] == 202
        assert "value 3" in refused.json()["message"]
    finally:
        code = node.stop()
    log = node.log.read_text()
    assert code == 0, log
    assert "Traceback" not in log and "Newline or carriage return" not in log, log
