"""Reverse lookup is no denial of service (issue 13 item 8): it reads the index, answers a bounded
page or a clear error, stops at its deadline with its own error, and one tenant cannot take every
search the node runs. Tenants still see only their own identifiers.

Identifiers are loaded with SQL straight into the test database (thousands of them: enough for the
planner to choose as it would on a large table once the statistics are there).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import asyncpg
import pytest

from resolver.core.search import MAX_WINDOW, plan_search
from resolver.store.queries import Q
from tests.enterprise_helpers import admit, bearer, user_token
from tests.helpers import basic, no_rate_limits, serving, url_value
from tests.search_helpers import answer_order, seed

A, B = "88.123.45", "88.123.46"
A_COUNT, B_COUNT = 3000, 40


@pytest.fixture
async def world(config) -> AsyncIterator[dict[str, Any]]:
    """Tenants A (3000 identifiers) and B (40, with the same URLs) behind a node whose searches
    may wait 30 s; rate limits off (the per-tenant search limit is under test, not the buckets)."""
    config = replace(config, rate=no_rate_limits(), search_timeout=30.0)
    async with serving(config) as client:
        a_id, a_secret = await admit(client, A, 60)
        b_id, _ = await admit(client, B, 61)
        world = {
            "client": client,
            "config": config,
            "dsn": config.dsn,
            "a": bearer(await user_token(client, a_id, "a-user")),
            "a2": bearer(await user_token(client, a_id, "a-second-user")),
            "a_admin": basic(f"300:0.NA/{A}", a_secret),
            "b": bearer(await user_token(client, b_id, "b-user")),
            "a_rows": await seed(config.dsn, A, A_COUNT),
            "b_rows": await seed(config.dsn, B, B_COUNT),
        }
        yield world


async def found(client, params: dict[str, str], headers: dict[str, str]) -> list[str]:
    resp = await client.get("/hrls/handles", params=params, headers=headers)
    assert resp.status == 200, await resp.text()
    handles = await resp.json()
    assert isinstance(handles, list)
    return handles


async def test_broad_searches_answer_a_bounded_page_in_value_order(world):
    client, a, b = world["client"], world["a"], world["b"]
    mine, theirs = answer_order(world["a_rows"]), answer_order(world["b_rows"])
    assert await found(client, {"URL": "*"}, a) == mine[:1000]
    assert await found(client, {"URL": "https://example.com/p/*"}, a) == mine[:1000]
    assert await found(client, {"URL": "https://example.com/p/*", "limit": "10"}, a) == mine[:10]
    deep = {"URL": "https://example.com/p/*", "limit": "10", "page": "100"}
    assert await found(client, deep, a) == mine[1000:1010]
    assert await found(client, {"URL": "https://example.com/p/17"}, a) == [f"{A}/ITEM-17"]
    assert (
        await found(client, {"URL": "https://example.com/p/17*", "limit": "5"}, a)
        == mine[mine.index(f"{A}/ITEM-17") :][:5]
    )
    # a star inside the pattern: the start is read in order, the rest checked term by term
    assert await found(client, {"URL": "https://example.com/*/2999"}, a) == [f"{A}/ITEM-2999"]
    # the prefix administrator of A sees A's; B, with the same URLs, only its own
    assert await found(client, {"URL": "*", "limit": "50"}, world["a_admin"]) == mine[:50]
    assert await found(client, {"URL": "*"}, b) == theirs
    assert await found(client, {"URL": "https://example.com/p/17"}, b) == [f"{B}/ITEM-17"]
    assert await found(client, {"URL": "*", "prefix": A}, b) == []
    # the node administrator: every prefix, merged in value order, and one prefix when asked
    everything = answer_order(world["a_rows"] + world["b_rows"])
    page = {"URL": "*", "limit": "10", "page": "300"}
    assert await found(client, page, basic()) == everything[3000:3010]
    assert await found(client, {"URL": "*", "prefix": B}, basic()) == theirs


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"URL": "*p/1"}, "cannot begin with *"),
        ({"URL": "*example*"}, "cannot begin with *"),
        ({"URL": "*", "limit": "10", "page": str(MAX_WINDOW // 10)}, f"past the first {MAX_WINDOW} matches"),
        ({"URL": "*", "limit": "10001"}, "limit"),
    ],
)
async def test_searches_the_index_cannot_bound_are_refused_with_a_reason(world, params, message):
    resp = await world["client"].get("/hrls/handles", params=params, headers=world["a"])
    assert resp.status == 400
    body = await resp.json()
    assert body["responseCode"] == 4 and message in body["message"], body


async def test_several_keys_must_all_match_within_the_tenant(world):
    client = world["client"]
    for prefix, headers in ((A, world["a_admin"]), (B, basic())):
        for n, checksum in ((1, "abc"), (2, "abc"), (3, "xyz")):
            values = [
                url_value(1, f"https://shop.example.com/{n}"),
                {**url_value(2, checksum), "type": "CHECKSUM"},
            ]
            resp = await client.put(f"/api/handles/{prefix}/MULTI-{n}", json=values, headers=headers)
            assert resp.status in (200, 201), await resp.text()
    both = {"URL": "https://shop.example.com/*", "checksum": "abc"}
    assert await found(client, both, world["a"]) == [f"{A}/MULTI-1", f"{A}/MULTI-2"]
    assert await found(client, both, world["b"]) == [f"{B}/MULTI-1", f"{B}/MULTI-2"]
    assert await found(client, {**both, "checksum": "a*"}, world["b"]) == [f"{B}/MULTI-1", f"{B}/MULTI-2"]
    assert await found(client, {**both, "URL": "https://shop.example.com/3"}, world["a"]) == []
    assert await found(client, both, basic()) == [
        f"{A}/MULTI-1",
        f"{A}/MULTI-2",
        f"{B}/MULTI-1",
        f"{B}/MULTI-2",
    ]


def plan_nodes(plan: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = [plan]
    for child in plan.get("Plans", []):
        nodes += plan_nodes(child)
    return nodes


@pytest.mark.parametrize("generic", [False, True], ids=["custom plan", "generic plan"])
@pytest.mark.parametrize(
    ("who", "pattern", "page"),
    [
        ("tenant", "https://example.com/p/17", 0),
        ("tenant", "https://example.com/p/*", 0),
        ("tenant", "*", 100),
        ("administrator", "https://example.com/p/17", 0),
        ("administrator", "https://example.com/p/*", 100),
    ],
)
async def test_the_search_reads_the_index_in_its_order(world, who, pattern, page, generic):
    """A plan property, not a timing: every read of search_terms is a range of
    search_terms_prefix_term (never a scan of the table), handles are read by key."""
    plan = plan_search([("URL", pattern)], 10, page)
    rest = plan.rest
    args = [
        [A] if who == "tenant" else None,
        plan.first.low,
        plan.first.high,
        plan.first.like,
        [p.low for p in rest],
        [p.high for p in rest],
        [p.like for p in rest],
        plan.offset,
        plan.limit,
    ]
    conn = await asyncpg.connect(world["dsn"])
    try:
        if generic:
            await conn.execute("set plan_cache_mode = force_generic_plan")
        explained = json.loads(await conn.fetchval("explain (format json) " + Q["search"], *args))
    finally:
        await conn.close()
    nodes = plan_nodes(explained[0]["Plan"])
    reads = [n for n in nodes if n.get("Relation Name") in ("search_terms", "handles")]
    assert reads, nodes
    for node in reads:
        if node["Relation Name"] == "search_terms":
            assert node["Node Type"] in ("Index Scan", "Index Only Scan"), node
            assert node["Index Name"] == "search_terms_prefix_term", node
        else:
            assert (node["Node Type"], node["Index Name"]) == ("Index Scan", "handles_pkey"), node
    ranges = [n for n in reads if "term ~>=~" in n.get("Index Cond", "") and "term ~<~" in n["Index Cond"]]
    assert ranges, [n.get("Index Cond") for n in reads]


@pytest.fixture
async def locked_terms(world) -> AsyncIterator[asyncpg.Connection]:
    """search_terms locked by another transaction: every search waits on it (for as long as the
    lock is held), whatever the speed of the machine."""
    conn = await asyncpg.connect(world["dsn"])
    transaction = conn.transaction()
    await transaction.start()
    await conn.execute("lock table search_terms in access exclusive mode")
    try:
        yield conn
    finally:
        await transaction.rollback()
        await conn.close()


async def searches_waiting(conn: asyncpg.Connection, count: int) -> None:
    """Until `count` searches wait for the lock in Postgres (bounded by the test's timeout)."""
    while True:
        waiting = await conn.fetchval(
            "select count(*) from pg_stat_activity where wait_event_type = 'Lock' and query like '%cross join lateral%'"
        )
        if waiting >= count:
            return
        await asyncio.sleep(0.02)


async def test_a_search_past_its_deadline_answers_its_own_error(config, locked_terms):
    async with serving(replace(config, search_timeout=0.5)) as client:
        for params in ({"URL": "https://example.com/p/*"}, {"URL": "*", "prefix": A}):
            resp = await client.get("/hrls/handles", params=params, headers=basic())
            body = await resp.json()
            assert resp.status == 503 and body["responseCode"] == 3, body
            assert "stopped after 0.5 s: too broad" in body["message"], body
            assert "unavailable" not in body["message"] and "Retry-After" not in resp.headers
        await locked_terms.execute("select 1")  # the lock is still held: nothing finished by chance
        # the node's connections are back and usable
        resp = await client.get("/api/handles/0.NA/88.123", headers=basic())
        assert resp.status == 200


async def test_one_tenant_cannot_take_every_search(world, locked_terms):
    """One search at a time per tenant, in the node: the worker refuses a second without asking
    Postgres, another worker (a second app on the same database) finds the tenant's turn taken."""
    client = world["client"]
    params = {"URL": "https://example.com/p/*", "limit": "3"}
    first = asyncio.create_task(client.get("/hrls/handles", params=params, headers=world["a"]))
    monitor = await asyncpg.connect(world["dsn"])
    try:
        async with serving(world["config"]) as other_worker:
            await searches_waiting(monitor, 1)
            # the same tenant, with the same credential or another user of it, in either worker,
            # waits for its answer
            for worker, headers in ((client, world["a"]), (client, world["a2"]), (other_worker, world["a2"])):
                refused = await worker.get("/hrls/handles", params=params, headers=headers)
                body = await refused.json()
                assert refused.status == 429 and body["responseCode"] == 3, body
                assert "a tenant runs at most 1 at a time" in body["message"]
                assert refused.headers["Retry-After"] == "1"
            # another tenant still gets its turn while A's search runs, in either worker
            other = asyncio.create_task(other_worker.get("/hrls/handles", params=params, headers=world["b"]))
            await searches_waiting(monitor, 2)
            await locked_terms.execute("rollback")
            answers = [await first, await other]
            assert [r.status for r in answers] == [200, 200]
            assert await answers[0].json() == answer_order(world["a_rows"])[:3]
            assert await answers[1].json() == answer_order(world["b_rows"])[:3]
            # and A searches again, anywhere, once its search has answered
            for worker in (client, other_worker):
                assert await found(worker, params, world["a2"]) == answer_order(world["a_rows"])[:3]
    finally:
        await monitor.close()


async def test_an_enterprises_prefix_administrator_and_its_users_are_one_tenant(world, locked_terms):
    """The administrator of an enterprise's allocated prefix (300:0.NA/<prefix>) searches in the
    enterprise's turn, as its users do: neither takes a second turn node-wide."""
    client = world["client"]
    params = {"URL": "https://example.com/p/*", "limit": "3"}
    first = asyncio.create_task(client.get("/hrls/handles", params=params, headers=world["a_admin"]))
    monitor = await asyncpg.connect(world["dsn"])
    try:
        async with serving(world["config"]) as other_worker:
            await searches_waiting(monitor, 1)
            for worker, headers in (
                (client, world["a"]),
                (other_worker, world["a2"]),
                (other_worker, world["a_admin"]),
            ):
                refused = await worker.get("/hrls/handles", params=params, headers=headers)
                body = await refused.json()
                assert refused.status == 429 and body["responseCode"] == 3, body
                assert "a tenant runs at most 1 at a time" in body["message"]
            await locked_terms.execute("rollback")
            assert (await first).status == 200
            assert await (await first).json() == answer_order(world["a_rows"])[:3]
            # and the other way round: while a user of A searches, A's prefix administrator waits
            await locked_terms.execute("begin; lock table search_terms in access exclusive mode")
            second = asyncio.create_task(other_worker.get("/hrls/handles", params=params, headers=world["a"]))
            await searches_waiting(monitor, 1)
            refused = await client.get("/hrls/handles", params=params, headers=world["a_admin"])
            assert refused.status == 429, await refused.text()
            await locked_terms.execute("rollback")
            assert (await second).status == 200
    finally:
        await monitor.close()
