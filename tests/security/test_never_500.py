"""Inputs that were each answered 500 once: every one is now a 4xx in its API's error shape.

(Credentials that were 500s are in test_brute_force.py, HS_SITE and other structured values in
tests/unit/test_structured_values.py, redirect targets in test_redirects.py.)
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic, no_rate_limits, serving, url_value

pytestmark = pytest.mark.integration

NUL = "\x00"


def nested(depth: int) -> Any:
    value: Any = "bottom"
    for _ in range(depth):
        value = {"v": value}
    return value


def template(**changes: Any) -> dict[str, Any]:
    item = {"name": "规格", "idType": "size", "idIndex": 2000, "metadata": {"type": "string"}}
    body: dict[str, Any] = {
        "prefix": "88.123.45",
        "version": "nul-1",
        "industryCodes": ["C3482"],
        "items": [item],
    }
    for key, value in changes.items():
        if key in item:
            item[key] = value
        else:
            body[key] = value
    return body


@pytest.fixture
def unlimited(config):
    return replace(config, rate=no_rate_limits())


def handle_shape(body: Any) -> bool:
    return isinstance(body.get("responseCode"), int) and isinstance(body.get("message"), str)


def envelope_shape(body: Any) -> bool:
    return body.get("status") in (-1, -2, -3) and isinstance(body.get("message"), str) and "data" in body


async def test_inputs_that_were_500s(unlimited):
    async with serving(unlimited) as client:
        eid, _ = await admit(client, "88.123.45", 41)
        token = await user_token(client, eid, "nul-user")
        admin = admin_json()
        user = {**bearer(token), "Content-Type": "application/json"}
        cases: list[tuple[str, str, str, dict[str, str], Any, str]] = [
            # (what, method, path, headers, json body or None, shape)
            (
                "NUL in a value",
                "PUT",
                "/api/handles/88.123/N1",
                admin,
                [url_value(1, f"https://a{NUL}b")],
                "handle",
            ),
            (
                "NUL in a type",
                "PUT",
                "/api/handles/88.123/N2",
                admin,
                [{"index": 1, "type": f"U{NUL}", "data": "x"}],
                "handle",
            ),
            (
                "NUL in an enterprise API value",
                "POST",
                "/identityv2/data",
                user,
                product("88.123.45/N3", name=f"螺{NUL}栓"),
                "envelope",
            ),
            (
                "NUL in a template item name",
                "POST",
                "/snms/api/v5/template",
                user,
                template(name=f"规{NUL}格"),
                "envelope",
            ),
            (
                "NUL in an idType",
                "POST",
                "/snms/api/v5/template",
                user,
                template(idType=f"s{NUL}"),
                "envelope",
            ),
            (
                "NUL in an industry code",
                "POST",
                "/snms/api/v5/template",
                user,
                template(industryCodes=[f"C{NUL}"]),
                "envelope",
            ),
            (
                "NUL in a template version",
                "POST",
                "/snms/api/v5/template",
                user,
                template(version=f"v{NUL}"),
                "envelope",
            ),
            (
                "NUL in an enterprise name",
                "POST",
                "/admin/enterprises",
                admin,
                {"name": f"企业{NUL}", "creditCode": "91350100000000041X"},
                "envelope",
            ),
            ("NUL in a search query", "GET", "/hrls/handles?URL=a%00", basic(), None, "handle"),
            ("NUL in an audit query", "GET", "/admin/audit?handle=a%00", basic(), None, "envelope"),
            (
                "NUL in a template query",
                "GET",
                "/snms/api/v5/template?prefix=88.123.45&version=a%00",
                user,
                None,
                "envelope",
            ),
            (
                "NUL in an operator path",
                "PUT",
                "/admin/prefixes/88.123.1%00/state",
                admin,
                {"state": 1},
                "envelope",
            ),
            (
                "NUL in a detail query",
                "GET",
                "/identityv2/data/detail?handle=88.123.45/a%00",
                user,
                None,
                "envelope",
            ),
            (
                "an id beyond int64",
                "GET",
                "/admin/enterprises/99999999999999999999",
                basic(),
                None,
                "envelope",
            ),
            ("a negative id", "GET", "/admin/enterprises/-1", basic(), None, "envelope"),
            ("an id in another script", "GET", "/admin/enterprises/%D9%A3", basic(), None, "envelope"),
            (
                "an enterprise filter beyond int64",
                "GET",
                "/admin/audit?enterprise=99999999999999999999",
                basic(),
                None,
                "envelope",
            ),
            (
                "a user id beyond int64",
                "PUT",
                "/admin/enterprises/1/users/99999999999999999999",
                admin,
                {"disabled": True},
                "envelope",
            ),
            (
                "an audit time before year 1 in UTC",
                "GET",
                "/admin/audit?from=0001-01-01T00:00:00%2B01:00",
                basic(),
                None,
                "envelope",
            ),
            (
                "a TTL before year 1 in UTC",
                "PUT",
                "/api/handles/88.123/T1",
                admin,
                [{"index": 1, "type": "URL", "data": "https://a", "ttl": "0001-01-01T00:00:00+01:00"}],
                "handle",
            ),
            (
                "a TTL after year 9999 in UTC",
                "PUT",
                "/api/handles/88.123/T2",
                admin,
                [{"index": 1, "type": "URL", "data": "https://a", "ttl": "9999-12-31T23:59:59-01:00"}],
                "handle",
            ),
            (
                "data nested 300 levels deep",
                "PUT",
                "/api/handles/88.123/D1",
                admin,
                [{"index": 1, "type": "DEEP", "data": {"format": "json", "value": nested(300)}}],
                "handle",
            ),
            (
                "a body nested 300 levels deep",
                "POST",
                "/identityv2/data/batchCreate",
                user,
                [nested(300)],
                "envelope",
            ),
            (
                "an enterprise body nested 300 levels deep",
                "POST",
                "/admin/enterprises",
                admin,
                nested(300),
                "envelope",
            ),
        ]
        failures = []
        for what, method, path, headers, body, shape in cases:
            resp = (
                await client.request(method, path, json=body, headers=headers)
                if body is not None
                else await client.request(method, path, headers=headers)
            )
            answer = await resp.json()
            good_shape = handle_shape(answer) if shape == "handle" else envelope_shape(answer)
            refused = 400 <= resp.status < 500 or (
                shape == "envelope" and resp.status == 200 and answer.get("status") == -2
            )
            if not (refused and good_shape):
                failures.append((what, resp.status, answer))
        assert not failures, "\n".join(map(str, failures))
        # nothing was stored by any of them
        for handle in ("88.123/N1", "88.123/N2", "88.123/T1", "88.123/T2", "88.123/D1"):
            assert (await client.get(f"/api/handles/{handle}")).status == 404


async def test_a_value_too_large_for_the_search_index_does_not_fail_its_batch(unlimited):
    """990 four-byte characters are 3,960 bytes: more than a btree entry holds (2,704). The whole
    batch failed with 500 and none of its valid items were written."""
    async with serving(unlimited) as client:
        eid, _ = await admit(client, "88.123.45", 42)
        token = await user_token(client, eid, "btree-user")
        wide = "https://example.com/" + "\U0001f600" * 990
        items = [
            {"handle": "88.123.45/WIDE", "value": [url_value(1, wide)]},
            *(
                {"handle": f"88.123.45/OK-{i}", "value": [url_value(1, f"https://example.com/{i}")]}
                for i in range(3)
            ),
        ]
        resp = await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))
        assert resp.status == 200
        results = (await resp.json())["data"]
        assert [r["code"] for r in results] == [1, 1, 1, 1], results
        for item in items:
            assert (await client.get(f"/api/handles/{item['handle']}")).status == 200
        # the same through the Handle API, and the other items of a search still found
        resp = await client.put(
            "/api/handles/88.123.45/WIDE-2", json=[url_value(1, wide)], headers=admin_json()
        )
        assert resp.status in (200, 201), await resp.text()
        found = await client.get("/hrls/handles", params={"URL": "https://example.com/*"}, headers=basic())
        assert found.status == 200
        assert "88.123.45/OK-0" in await found.text()
