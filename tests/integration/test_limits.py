"""Every input limit gives a clear error in the documented shape."""

from __future__ import annotations

import base64
from dataclasses import replace
from urllib.parse import quote

import pytest

from resolver.config import Limits
from tests.helpers import admin_json, basic, no_rate_limits, serving


@pytest.fixture
async def small(config):
    limits = Limits(
        max_handle_length=40,
        max_prefix_length=12,
        max_values_per_handle=3,
        max_value_bytes=50,
        max_type_length=10,
        max_body_bytes=2000,
    )
    async with serving(replace(config, limits=limits)) as test_client:
        yield test_client


async def put(client, path, values):
    return await client.put(path, json={"values": values}, headers=admin_json())


async def test_handle_length(small):
    resp = await small.get("/api/handles/88.123/" + "x" * 40)
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 102 and "40" in body["message"]


async def test_prefix_length(small):
    resp = await small.get("/api/handles/88.123.4567890123/x")
    assert resp.status == 400 and "prefix" in (await resp.json())["message"]


async def test_values_per_handle(small):
    resp = await put(
        small,
        "/api/handles/88.123/v",
        [{"index": i, "type": "T", "data": "x"} for i in range(1, 5)],
    )
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 202 and "3" in body["message"]


async def test_value_size(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 1, "type": "T", "data": "x" * 60}])
    assert resp.status == 400 and "bytes" in (await resp.json())["message"]


async def test_type_length(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 1, "type": "T" * 11, "data": "x"}])
    assert resp.status == 400 and "type" in (await resp.json())["message"]


async def test_body_size_is_413_in_the_error_shape(small):
    resp = await small.put("/api/handles/88.123/v", data=b"[" + b" " * 3000 + b"]", headers=admin_json())
    body = await resp.json()
    assert resp.status == 413 and body["responseCode"] == 4 and "2000" in body["message"]


async def test_index_out_of_range(small):
    resp = await put(small, "/api/handles/88.123/v", [{"index": 2**31, "type": "T", "data": "x"}])
    assert resp.status == 400 and (await resp.json())["responseCode"] == 202


async def test_control_characters_in_handle(small):
    resp = await small.get("/api/handles/88.123/a%01b")
    assert resp.status == 400 and "control" in (await resp.json())["message"]


async def test_malformed_utf8_in_path(small):
    resp = await small.get("/api/handles/88.123/a%ff%fe")
    body = await resp.json()
    assert resp.status == 400 and body["responseCode"] == 102 and "UTF-8" in body["message"]


async def test_malformed_utf8_in_body(small):
    resp = await small.put(
        "/api/handles/88.123/v",
        data=b'[{"index":1,"type":"T","data":"\xff"}]',
        headers=admin_json(),
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_bad_query_parameters(small):
    resp = await small.get("/api/handles/88.123/v", params={"index": "x"})
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4
    resp = await small.put(
        "/api/handles/88.123/v", params={"overwrite": "maybe"}, json=[], headers=admin_json()
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 4


async def test_one_credential_has_one_bucket_however_its_header_is_written(config):
    """The per-credential bucket is the credential's, not the header's: other spellings of the same
    bearer token or Basic user (which authenticate just the same) take from it."""
    from tests.enterprise_helpers import admit, user_token
    from tests.helpers import ADMIN_SECRET, ADMIN_USER

    async with serving(replace(config, rate=no_rate_limits())) as setup:  # setup has its own budget
        enterprise, _ = await admit(setup, "88.123.45", 70)
        token = await user_token(setup, enterprise, "limited-user")

    def basic_as(user: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{ADMIN_SECRET}".encode()).decode()}

    spellings = {
        "bearer": [f"Bearer  {token}", f"bearer {token}", token, f"BEARER {token}", f"Bearer {token}"],
        "basic": [
            basic()["Authorization"],
            basic_as(quote(ADMIN_USER, safe=""))["Authorization"],
            basic_as(quote(ADMIN_USER, safe="").lower())["Authorization"],
            "basic  " + basic()["Authorization"].partition(" ")[2],
            basic_as(quote(ADMIN_USER.lower()))["Authorization"],
        ],
    }
    # two requests a credential, and no token back in the test's lifetime
    rate = replace(no_rate_limits(), per_credential=0.001, per_credential_burst=2)
    async with serving(replace(config, rate=rate)) as client:
        for kind, headers in spellings.items():
            statuses = []
            for header in headers:
                resp = await client.get(
                    "/hrls/handles", params={"URL": "x"}, headers={"Authorization": header}
                )
                statuses.append(resp.status)
                if resp.status == 429:
                    body = await resp.json()
                    assert body["responseCode"] == 3 and int(resp.headers["Retry-After"]) >= 1, body
            # the first two spellings are accepted (they are this credential), the rest share their bucket
            assert statuses == [200, 200, 429, 429, 429], (kind, statuses)
