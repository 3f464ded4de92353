"""Every error of every API has that API's documented shape, whatever produced it.

One table: each documented status (400/401/403/404/405/409/413/429/500/503) provoked on a real node
(real Postgres; 500 by renaming a table under the node, 503 by cutting the node's connection to
Postgres), for each API with an error shape:

- the Handle API: `{"responseCode", "handle", "message"}`, `application/json`, the HTTP status of
  Handle.Net's table (resolver/http/errors.py);
- the enterprise API and the operator API: the `{"status", "message", "data"}` envelope
  (resolver/http/envelope.py). Their business failures (a malformed body, something not found or
  already there) answer HTTP 200 with status -2, as deployed secondary nodes do: those rows say so.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace

import asyncpg
import pytest
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient

from resolver.config import Config, RateLimits
from tests.enterprise_helpers import admit, bearer, credit_code, product, user_token
from tests.faults import CuttableProxy
from tests.helpers import admin_json, basic, no_rate_limits, serving, url_value

HANDLE = "88.123/E-1"
HANDLE_PATH = "/api/handles/" + HANDLE
TENANT = "88.123.45"
MAX_BODY = 2000
TOO_BIG = b"[" + b" " * (MAX_BODY + 1000) + b"]"
# two requests a credential, and no token back in the test's lifetime
TWO_A_CREDENTIAL = replace(no_rate_limits(), per_credential=0.001, per_credential_burst=2)


@dataclass
class Node:
    """A node on a real Postgres, reached through a proxy that can cut it off."""

    client: TestClient[object, object]
    proxy: CuttableProxy
    dsn: str  # the database itself, not through the proxy

    def request(self, method: str, path: str, **keywords: object) -> Awaitable[ClientResponse]:
        return self.client.request(method, path, **keywords)

    @contextlib.asynccontextmanager
    async def without_table(self, table: str) -> AsyncIterator[None]:
        """The table renamed away under the running node: its statements fail unexpectedly."""
        conn = await asyncpg.connect(self.dsn)
        try:
            await conn.execute(f"alter table {table} rename to {table}_gone")
            yield
        finally:
            await conn.execute(f"alter table {table}_gone rename to {table}")
            await conn.close()


@contextlib.asynccontextmanager
async def node(config: Config, rate: RateLimits) -> AsyncIterator[Node]:
    proxy = CuttableProxy(config.dsn)
    await proxy.start()
    limits = replace(config.limits, max_body_bytes=MAX_BODY)
    try:
        async with serving(
            replace(config, dsn=proxy.dsn, db_timeout=1.0, limits=limits, rate=rate)
        ) as client:
            yield Node(client, proxy, config.dsn)
    finally:
        await proxy.cut()


async def tenant_token(config: Config) -> str:
    """A bearer token of a user of an enterprise holding TENANT (set up on a node of its own, so
    that the setup takes nothing from the tested node's rate limits)."""
    async with serving(replace(config, rate=no_rate_limits())) as setup:
        enterprise, _ = await admit(setup, TENANT, 14)
        return await user_token(setup, enterprise, "shape-user")


async def tenant_admin(config: Config) -> dict[str, str]:
    """Basic credentials of the administrator of TENANT (300:0.NA/88.123.45)."""
    async with serving(replace(config, rate=no_rate_limits())) as setup:
        _, secret = await admit(setup, TENANT, 15)
    return basic(f"300:0.NA/{TENANT}", secret)


Provoke = Callable[[Node, Config], Awaitable[ClientResponse]]


async def past_the_rate(node: Node, method: str, path: str, **keywords: object) -> ClientResponse:
    """The third request of one credential (of the two TWO_A_CREDENTIAL allows)."""
    for _ in range(2):
        resp = await node.request(method, path, **keywords)
        assert resp.status != 429, await resp.text()
    return await node.request(method, path, **keywords)


async def database_cut(node: Node, method: str, path: str, **keywords: object) -> ClientResponse:
    await node.proxy.cut()
    return await node.request(method, path, **keywords)


# -- the Handle API ------------------------------------------------------------------------------


async def handle_400(node: Node, config: Config) -> ClientResponse:
    return await node.request("PUT", HANDLE_PATH, data=b"{", headers=admin_json())


async def handle_401(node: Node, config: Config) -> ClientResponse:
    return await node.request("PUT", HANDLE_PATH, json=[url_value(1, "https://a")])


async def handle_403(node: Node, config: Config) -> ClientResponse:
    credentials = await tenant_admin(config)  # administers 88.123.45, not 88.123
    return await node.request("PUT", HANDLE_PATH, json=[url_value(1, "https://a")], headers=credentials)


async def handle_404(node: Node, config: Config) -> ClientResponse:
    return await node.request("GET", HANDLE_PATH)


async def handle_405(node: Node, config: Config) -> ClientResponse:
    return await node.request("PATCH", HANDLE_PATH)


async def handle_409(node: Node, config: Config) -> ClientResponse:
    values = [url_value(1, "https://a")]
    resp = await node.request("PUT", HANDLE_PATH, json=values, headers=admin_json())
    assert resp.status in (200, 201), await resp.text()
    return await node.request(
        "PUT", HANDLE_PATH, params={"overwrite": "false"}, json=values, headers=admin_json()
    )


async def handle_413(node: Node, config: Config) -> ClientResponse:
    return await node.request("PUT", HANDLE_PATH, data=TOO_BIG, headers=admin_json())


async def handle_429(node: Node, config: Config) -> ClientResponse:
    # resolutions do not count against the credential's bucket; writes do
    return await past_the_rate(
        node, "PUT", HANDLE_PATH, json=[url_value(1, "https://a")], headers=admin_json()
    )


async def handle_500(node: Node, config: Config) -> ClientResponse:
    async with node.without_table("handles"):
        return await node.request("PUT", HANDLE_PATH, json=[url_value(1, "https://a")], headers=admin_json())


async def handle_503(node: Node, config: Config) -> ClientResponse:
    return await database_cut(node, "GET", HANDLE_PATH)


# -- the enterprise API --------------------------------------------------------------------------

ITEM = "/identityv2/data"
DETAIL = "/identityv2/data/detail"
TEMPLATES = "/snms/api/v5/template"


async def enterprise_400(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    return await node.request("POST", ITEM, data=b"{", headers=bearer(token))


async def enterprise_401(node: Node, config: Config) -> ClientResponse:
    return await node.request("POST", ITEM, json=product(f"{TENANT}/E-1"))


async def enterprise_403(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)  # a user of 88.123.45, defining a template for 88.123
    return await node.request("POST", TEMPLATES, json={"prefix": "88.123"}, headers=bearer(token))


async def enterprise_404(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    return await node.request("GET", DETAIL, params={"handle": f"{TENANT}/NOT-THERE"}, headers=bearer(token))


async def enterprise_405(node: Node, config: Config) -> ClientResponse:
    return await node.request("PATCH", ITEM)


async def enterprise_409(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    resp = await node.request("POST", ITEM, json=product(f"{TENANT}/E-1"), headers=bearer(token))
    assert (await resp.json())["status"] == 1
    # the same item again is a success (retries are safe); other content is the item's error
    return await node.request("POST", ITEM, json=product(f"{TENANT}/E-1", name="螺母"), headers=bearer(token))


async def enterprise_413(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    return await node.request("POST", ITEM, data=TOO_BIG, headers=bearer(token))


async def enterprise_429(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    return await past_the_rate(node, "GET", DETAIL, params={"handle": f"{TENANT}/E-1"}, headers=bearer(token))


async def enterprise_500(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    async with node.without_table("handles"):
        return await node.request("GET", DETAIL, params={"handle": f"{TENANT}/E-1"}, headers=bearer(token))


async def enterprise_503(node: Node, config: Config) -> ClientResponse:
    token = await tenant_token(config)
    return await database_cut(node, "GET", DETAIL, params={"handle": f"{TENANT}/E-1"}, headers=bearer(token))


# -- the operator API ----------------------------------------------------------------------------

ENTERPRISES = "/admin/enterprises"


def enterprise_form(seed: int) -> dict[str, object]:
    return {
        "name": "测试企业",
        "creditCode": credit_code(seed),
        "contact": {"name": "张三", "phone": "13800000000"},
    }


async def operator_400(node: Node, config: Config) -> ClientResponse:
    return await node.request("POST", ENTERPRISES, data=b"{", headers=basic())


async def operator_401(node: Node, config: Config) -> ClientResponse:
    return await node.request("GET", ENTERPRISES)


async def operator_403(node: Node, config: Config) -> ClientResponse:
    credentials = await tenant_admin(config)  # a prefix administrator, not the node's
    return await node.request("GET", ENTERPRISES, headers=credentials)


async def operator_404(node: Node, config: Config) -> ClientResponse:
    return await node.request("GET", ENTERPRISES + "/999999", headers=basic())


async def operator_405(node: Node, config: Config) -> ClientResponse:
    return await node.request("PATCH", ENTERPRISES, headers=basic())


async def operator_409(node: Node, config: Config) -> ClientResponse:
    resp = await node.request("POST", ENTERPRISES, json=enterprise_form(16), headers=basic())
    assert (await resp.json())["status"] == 1
    return await node.request("POST", ENTERPRISES, json=enterprise_form(16), headers=basic())


async def operator_413(node: Node, config: Config) -> ClientResponse:
    return await node.request("POST", ENTERPRISES, data=TOO_BIG, headers=basic())


async def operator_429(node: Node, config: Config) -> ClientResponse:
    return await past_the_rate(node, "GET", ENTERPRISES, headers=basic())


async def operator_500(node: Node, config: Config) -> ClientResponse:
    async with node.without_table("enterprises"):
        return await node.request("GET", ENTERPRISES, headers=basic())


async def operator_503(node: Node, config: Config) -> ClientResponse:
    return await database_cut(node, "GET", ENTERPRISES, headers=basic())


@dataclass(frozen=True)
class Row:
    provoke: Provoke
    http_status: int  # what the client gets
    code: int  # responseCode (Handle API) or envelope status
    data: object = None  # the envelope's data (an item's error names its handle)


# status -> (Handle API, enterprise API, operator API)
TABLE: dict[int, tuple[Row, Row, Row]] = {
    400: (Row(handle_400, 400, 4), Row(enterprise_400, 200, -2), Row(operator_400, 200, -2)),
    401: (Row(handle_401, 401, 402), Row(enterprise_401, 401, -1), Row(operator_401, 401, -1)),
    403: (Row(handle_403, 403, 401), Row(enterprise_403, 403, -3), Row(operator_403, 403, -3)),
    404: (Row(handle_404, 404, 100), Row(enterprise_404, 200, -2), Row(operator_404, 200, -2)),
    405: (Row(handle_405, 405, 4), Row(enterprise_405, 405, -2), Row(operator_405, 405, -2)),
    409: (
        Row(handle_409, 409, 101),
        Row(enterprise_409, 200, -2, {"handle": f"{TENANT}/E-1"}),
        Row(operator_409, 200, -2),
    ),
    413: (Row(handle_413, 413, 4), Row(enterprise_413, 413, -2), Row(operator_413, 413, -2)),
    429: (Row(handle_429, 429, 3), Row(enterprise_429, 429, -2), Row(operator_429, 429, -2)),
    500: (Row(handle_500, 500, 2), Row(enterprise_500, 500, -4), Row(operator_500, 500, -4)),
    503: (Row(handle_503, 503, 3), Row(enterprise_503, 503, -4), Row(operator_503, 503, -4)),
}
APIS = ("handle", "enterprise", "operator")
CASES = [
    pytest.param(api, row, id=f"{api}-{status}")
    for status, rows in TABLE.items()
    for api, row in zip(APIS, rows, strict=True)
]


def assert_handle_shape(body: dict[str, object], rc: int) -> None:
    assert set(body) == {"responseCode", "handle", "message"}, body
    assert body["responseCode"] == rc and body["handle"] == HANDLE, body
    assert isinstance(body["message"], str) and body["message"], body


def assert_envelope(body: dict[str, object], status: int, data: object) -> None:
    assert set(body) == {"status", "message", "data"}, body
    assert body["status"] == status and body["data"] == data, body
    assert isinstance(body["message"], str) and body["message"], body


@pytest.mark.parametrize(("api", "row"), CASES)
async def test_every_error_has_the_shape_of_its_api(config, api, row):
    rate = TWO_A_CREDENTIAL if row.http_status == 429 else no_rate_limits()
    async with node(config, rate) as tested:
        resp = await row.provoke(tested, config)
        body = await resp.json()
    assert resp.status == row.http_status, body
    assert resp.content_type == "application/json"
    if api == "handle":
        assert_handle_shape(body, row.code)
    else:
        assert resp.charset == "utf-8"
        assert_envelope(body, row.code, row.data)
    if resp.status in (429, 503):
        assert int(resp.headers["Retry-After"]) >= 1
