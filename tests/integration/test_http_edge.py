"""What every answer gets at the node's edge (resolver/http/edge.py), on a real node and Postgres:
CORS as Handle.Net offers it, X-Request-Id, and what a trusted proxy forwards.

CORS follows the Handle.Net proxy's deployment descriptor
(src/main/java/net/handle/apps/servlet_proxy/resources/WEB-INF/web.xml: Jetty's CrossOriginFilter
on /*, every origin, allowCredentials false, chainPreflight false, and
CorsAccessControlExposeHeadersFilter.java exposing the headers it sets) for anonymous reads; writes
and authenticated requests are only for the origins of --cors-origins.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from aiohttp.test_utils import TestClient

from resolver.config import Config
from tests.helpers import admin_json, basic, no_rate_limits, serving, url_value

HANDLE = "88.123/EDGE-1"
PATH = "/api/handles/" + HANDLE
ERP = "https://erp.example.com"
EVIL = "https://evil.example"
PREFLIGHT = ("Access-Control-Request-Method",)


@pytest.fixture
async def node(config: Config) -> AsyncIterator[TestClient[object, object]]:
    config = replace(config, cors_origins=(ERP,), rate=no_rate_limits())
    async with serving(config) as client:
        body = {"values": [url_value(1, "https://example.com/edge")]}
        async with client.put(PATH, json=body, headers=admin_json()) as resp:
            assert resp.status in (200, 201), await resp.text()
        yield client


def _cors(headers: object) -> dict[str, str]:
    return {k: v for k, v in headers.items() if k.lower().startswith("access-control-")}  # type: ignore[attr-defined]


async def test_anonymous_reads_are_readable_from_any_origin(node: TestClient[object, object]) -> None:
    """HandleJsonRestApiServlet.doGet behind CrossOriginFilter (every origin, no credentials):
    Access-Control-Allow-Origin * with or without an Origin, on hits, misses, errors and pages."""
    for path in (PATH, PATH + "?index=1", "/api/handles/88.123/NOPE", "/88.123/EDGE-1?noredirect", "/"):
        for origin in ({"Origin": EVIL}, {"Origin": ERP}, {}):
            async with node.get(path, headers=origin, allow_redirects=False) as resp:
                assert resp.headers["Access-Control-Allow-Origin"] == "*", path
                assert "Access-Control-Allow-Credentials" not in resp.headers
                assert "X-Request-Id" in resp.headers["Access-Control-Expose-Headers"]
                assert "Vary" not in resp.headers


async def test_authenticated_and_write_requests_only_from_configured_origins(
    node: TestClient[object, object],
) -> None:
    """Credentials only for --cors-origins: the origin echoed with Vary: Origin; any other origin
    gets no CORS header (the browser keeps the answer from its page)."""
    async with node.get(PATH, headers={**basic(), "Origin": ERP}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == ERP
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert resp.headers["Vary"] == "Origin"
    async with node.get(PATH, headers={**basic(), "Origin": EVIL}) as resp:
        assert resp.status == 200
        assert _cors(resp.headers) == {}
        assert resp.headers["Vary"] == "Origin"
    body = {"values": [url_value(1, "https://example.com/edge2")]}
    async with node.put(PATH, json=body, headers={**admin_json(), "Origin": ERP}) as resp:
        assert resp.status == 200
        assert resp.headers["Access-Control-Allow-Origin"] == ERP
    async with node.put(PATH, json=body, headers={**admin_json(), "Origin": EVIL}) as resp:
        assert _cors(resp.headers) == {}
    async with node.post("/identity/token", json={}, headers={"Origin": EVIL}) as resp:
        assert _cors(resp.headers) == {}


async def test_preflights_are_answered_or_refused_in_the_apis_shape(node: TestClient[object, object]) -> None:
    """chainPreflight false: the preflight is answered at the edge, never by a handler."""
    read = {
        "Origin": EVIL,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "x-request-id",
    }
    async with node.options(PATH, headers=read) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == "*"
        assert "GET" in resp.headers["Access-Control-Allow-Methods"]
        assert "X-Request-Id" in resp.headers["Access-Control-Allow-Headers"]
        assert resp.headers["Access-Control-Max-Age"] == "1800"
    write = {
        "Origin": ERP,
        "Access-Control-Request-Method": "PUT",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with node.options(PATH, headers=write) as resp:
        assert resp.status == 204
        assert resp.headers["Access-Control-Allow-Origin"] == ERP
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
        assert "PUT" in resp.headers["Access-Control-Allow-Methods"]
        assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
        assert resp.headers["Vary"] == "Origin"
    for headers in (
        {**write, "Origin": EVIL},  # a write from another origin
        {**read, "Access-Control-Request-Headers": "authorization"},  # credentials from another origin
        {**write, "Access-Control-Request-Headers": "x-secret"},  # a header nobody may send
    ):
        async with node.options(PATH, headers=headers) as resp:
            assert resp.status == 403
            assert _cors(resp.headers) == {}
            body = await resp.json()
            assert body["responseCode"] and body["handle"] == HANDLE and "cross-origin" in body["message"]
            assert resp.headers["X-Request-Id"]
    async with node.options("/identityv2/data", headers={**write, "Origin": EVIL}) as resp:
        assert resp.status == 403
        assert _cors(resp.headers) == {}
        body = await resp.json()
        assert body["status"] == -3 and "跨域" in body["message"]
    async with node.options("/admin/enterprises", headers={**write, "Origin": ERP}) as resp:
        assert resp.status == 204


async def test_options_of_any_path_is_never_a_server_error(node: TestClient[object, object]) -> None:
    """Preflight or not, allowed or not, on every kind of route and on paths no route names."""
    paths = [
        PATH,
        "/api/handles",
        "/api/prefixes",
        "/api/stats",
        "/hrls/handles",
        "/identity/token",
        "/identityv2/data/batchCreate",
        "/snms/api/v5/template",
        "/admin/audit",
        "/metrics",
        "/healthz",
        "/",
        "/88.123/EDGE-1",
        "/nothing/here/%00",
        "/%ZZ",
    ]
    variants: list[dict[str, str]] = [
        {},
        {"Origin": EVIL},
        {"Origin": EVIL, "Access-Control-Request-Method": "GET"},
        {"Origin": ERP, "Access-Control-Request-Method": "DELETE"},
        {"Origin": "null", "Access-Control-Request-Method": "BREW", "Access-Control-Request-Headers": ",,,"},
        {"Origin": "", "Access-Control-Request-Method": ""},
    ]
    for path in paths:
        for headers in variants:
            async with node.options(path, headers=headers) as resp:
                assert resp.status < 500, (path, headers, resp.status)
                assert resp.headers["X-Request-Id"]


async def test_the_request_id_is_echoed_on_every_answer(node: TestClient[object, object]) -> None:
    """A sane client id comes back as sent, on successes and errors of every API; anything else
    is replaced by one the node makes, unique per request."""
    cases = [
        ("GET", PATH, {}),
        ("GET", "/api/handles/88.123/NOPE", {}),  # 404
        ("PATCH", PATH, {}),  # 405
        ("PUT", PATH, {"Content-Type": "application/json"}),  # 401
        ("GET", "/admin/enterprises", {}),  # the operator API's envelope
        ("GET", "/88.123/NOPE", {}),  # the not-found page
        ("GET", "/metrics", {}),
    ]
    for method, path, headers in cases:
        async with node.request(method, path, headers={**headers, "X-Request-Id": "trace-7f3a"}) as resp:
            assert resp.headers["X-Request-Id"] == "trace-7f3a", (method, path, resp.status)
    made = set()
    for sent in ("a b", "x" * 129, "é", ""):
        async with node.get(PATH, headers={"X-Request-Id": sent}) as resp:
            rid = resp.headers["X-Request-Id"]
            assert rid != sent and 0 < len(rid) <= 128 and rid.isascii()
            made.add(rid)
    async with node.get(PATH) as resp:
        made.add(resp.headers["X-Request-Id"])
    assert len(made) == 5


@pytest.mark.parametrize("trusted", [True, False])
async def test_forwarded_client_counts_only_from_a_trusted_proxy(config: Config, trusted: bool) -> None:
    """Rate limits see the X-Forwarded-For client only when the peer (127.0.0.1 here) is inside
    --trusted-proxies; from anyone else the header changes nothing."""
    rate = replace(no_rate_limits(), resolve_per_address=0.001, resolve_per_address_burst=1)
    proxies = ("127.0.0.0/8",) if trusted else ("10.0.0.0/8",)
    async with serving(replace(config, rate=rate, trusted_proxies=proxies)) as client:

        async def status(forwarded_for: str) -> int:
            headers = {"X-Forwarded-For": forwarded_for}
            async with client.get("/api/handles/88.123/MISSING", headers=headers) as resp:
                return resp.status

        assert await status("198.51.100.7") == 404
        assert await status("198.51.100.7") == 429
        # the rightmost untrusted hop is the client: what the client wrote to its left is ignored
        assert await status("203.0.113.9, 198.51.100.7") == 429
        assert await status("198.51.100.7, 203.0.113.9") == (404 if trusted else 429)
        assert await status("198.51.100.8, 127.0.0.5") == (404 if trusted else 429)


async def test_a_trusted_proxys_scheme_and_host_name_the_scan_pages_links(config: Config) -> None:
    """The scan page's QR code and links use X-Forwarded-Proto/-Host of a trusted proxy when
    --public-url is unset; such a page is not kept in the worker's cache, so the next client
    (without them) sees Config.public_base, and an untrusted peer's headers are ignored."""
    forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "id.example.com"}
    async with serving(replace(config, trusted_proxies=("127.0.0.0/8",))) as client:
        body = {"values": [url_value(1, "https://example.com/edge")]}
        async with client.put(PATH, json=body, headers=admin_json()) as resp:
            assert resp.status in (200, 201)
        page = "/" + HANDLE + "?noredirect"
        async with client.get(page, headers=forwarded) as resp:
            assert "https://id.example.com/88.123/EDGE-1?qr=png" in await resp.text()
        async with client.get(page, headers={**forwarded, "X-Forwarded-Host": "evil.example/x"}) as resp:
            assert "evil.example" not in await resp.text()
        async with client.get(page) as resp:
            text = await resp.text()
            assert "id.example.com" not in text and f"{config.public_base}/88.123/EDGE-1?qr=png" in text
        async with client.get(page, headers=forwarded) as resp:  # the kept page is not theirs
            assert "https://id.example.com/88.123/EDGE-1?qr=png" in await resp.text()
    async with (
        serving(replace(config, trusted_proxies=("10.0.0.0/8",))) as client,
        client.get(page, headers=forwarded) as resp,
    ):
        text = await resp.text()
        assert "id.example.com" not in text and config.public_base in text
    public = replace(config, trusted_proxies=("127.0.0.0/8",), public_url="https://node.example")
    async with serving(public) as client, client.get(page, headers=forwarded) as resp:
        assert "https://node.example/88.123/EDGE-1?qr=png" in await resp.text()


async def test_the_operator_api_answers_its_own_origin_with_credentials(
    node: TestClient[object, object],
) -> None:
    """An operator console at a configured origin reads the envelope with credentials; the same
    request from another origin gets no CORS header."""
    async with node.get("/admin/enterprises", headers={**basic(), "Origin": ERP}) as resp:
        assert (await resp.json())["status"] == 1
        assert resp.headers["Access-Control-Allow-Origin"] == ERP
        assert resp.headers["Access-Control-Allow-Credentials"] == "true"
    async with node.get("/admin/enterprises", headers={**basic(), "Origin": EVIL}) as resp:
        assert (await resp.json())["status"] == 1
        assert _cors(resp.headers) == {}


async def test_the_audit_names_the_request_and_its_client(config: Config) -> None:
    """Each audit entry keeps the X-Request-Id of the request that wrote it and the client's
    address: the X-Forwarded-For client behind a trusted proxy (schema/0009_audit_request.sql)."""
    async with serving(replace(config, trusted_proxies=("127.0.0.0/8",), rate=no_rate_limits())) as client:
        body = {"values": [url_value(1, "https://example.com/audited")]}
        headers = {**admin_json(), "X-Request-Id": "audit-trace-1", "X-Forwarded-For": "198.51.100.23"}
        async with client.put(PATH, json=body, headers=headers) as resp:
            assert resp.status in (200, 201)
        async with client.put(PATH, json=body, headers=admin_json()) as resp:
            made = resp.headers["X-Request-Id"]
        async with client.get("/admin/audit", params={"handle": HANDLE}, headers=basic()) as resp:
            items = (await resp.json())["data"]["items"]
    assert [(i["requestId"], i["client"]) for i in items[:2]] == [
        (made, "127.0.0.1"),
        ("audit-trace-1", "198.51.100.23"),
    ]
