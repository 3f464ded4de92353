"""Body limits hold whatever the transfer encoding: a chunked body has no Content-Length to check
up front, and aiohttp's own limit is the largest of ours (the batch body).

Seen before the fix: a 4.1 MB chunked PUT to the Handle API answered 200 where the same body with
Content-Length got 413.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import orjson
import pytest

from tests.helpers import admin_json, basic, no_rate_limits, serving

pytestmark = pytest.mark.integration

SMALL, BATCH = 4_000, 16_000


@pytest.fixture
def limited(config):
    limits = replace(config.limits, max_body_bytes=SMALL, max_batch_body_bytes=BATCH)
    return replace(config, limits=limits, rate=no_rate_limits())


def padded(route: str, size: int) -> bytes:
    """A valid-looking JSON body of the route's shape, `size` bytes long."""
    pad = "x" * size
    if route.startswith("/api/handles"):
        body: object = [{"index": 1, "type": "URL", "data": "https://example.com/" + pad}]
    elif "batch" in route:
        body = [{"handle": "88.123/B", "value": [{"index": 1, "type": "URL", "data": pad}]}]
    else:
        body = {"name": pad, "username": pad, "password": pad}
    raw = orjson.dumps(body)
    assert len(raw) >= size
    return raw


async def chunked(raw: bytes) -> AsyncIterator[bytes]:
    for start in range(0, len(raw), 1000):
        yield raw[start : start + 1000]


# (method, route, limit, the API's error shape)
ROUTES = [
    ("PUT", "/api/handles/88.123/BIG", SMALL, "handle"),
    ("POST", "/identity/token", SMALL, "envelope"),
    ("POST", "/identityv2/data", SMALL, "envelope"),
    ("PUT", "/identityv2/data", SMALL, "envelope"),
    ("POST", "/identityv2/data/batchCreate", BATCH, "envelope"),
    ("PUT", "/identityv2/data/batchUpdate", BATCH, "envelope"),
    ("POST", "/snms/api/v5/template", SMALL, "envelope"),
    ("POST", "/admin/enterprises", SMALL, "envelope"),
]


@pytest.mark.parametrize("encoding", ["content-length", "chunked"])
async def test_every_body_route_refuses_more_than_its_limit(limited, encoding):
    async with serving(limited) as client:
        for method, route, limit, shape in ROUTES:
            raw = padded(route, limit + 1)
            headers = {**admin_json()}
            data: object = raw if encoding == "content-length" else chunked(raw)
            resp = await client.request(method, route, data=data, headers=headers)
            if encoding == "chunked":
                assert resp.request_info.headers.get("Transfer-Encoding") == "chunked"
            assert resp.status == 413, (route, encoding, await resp.text())
            body = await resp.json()
            if shape == "handle":
                assert body["responseCode"] == 4 and str(limit) in body["message"], body
            else:
                assert body["status"] == -2 and str(limit) in body["message"], body


async def test_a_chunked_body_within_the_limit_is_accepted(limited):
    async with serving(limited) as client:
        raw = orjson.dumps([{"index": 1, "type": "URL", "data": "https://example.com/ok"}])
        resp = await client.put("/api/handles/88.123/CHUNKED", data=chunked(raw), headers=admin_json())
        assert resp.status in (200, 201), await resp.text()
        resp = await client.get("/api/handles/88.123/CHUNKED", headers=basic())
        assert (await resp.json())["values"][0]["data"]["value"] == "https://example.com/ok"
