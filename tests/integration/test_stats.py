"""Threshold evidence: daily counts per prefix, /api/stats, reconciliation with the identifiers."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from resolver.http.keys import DAILY, STORE
from resolver.services.statistics import (
    OTHER,
    RESOLUTIONS_PER_DAY,
    ServedPrefixes,
    fold_unserved,
    reconcile,
    today,
)
from resolver.store.queries import Q
from resolver.upstream.toplevel import HttpUpstream, deliver_due, prefix_message, queue_closed_days
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import NODE_PREFIX, TEMPLATE, admin_json, basic, scratch_database, serving, url_value
from tests.simulator import module


async def test_counts_reach_postgres_and_reconcile(client, config):
    eid, _ = await admit(client, "88.123.45", 60)
    token = await user_token(client, eid, "counter")
    await client.post(
        "/identityv2/data/batchCreate",
        json=[product(f"88.123.45/N-{i}") for i in range(5)],
        headers=bearer(token),
    )
    await client.post(
        "/identityv2/data/batchCreate",
        json=[product(f"88.123.45/N-{i}") for i in range(5)],
        headers=bearer(token),
    )  # a retry: not new
    await client.put("/api/handles/88.123/N-A", json=[url_value(1, "https://a")], headers=admin_json())
    for _ in range(3):
        assert (await client.get("/api/handles/88.123.45/N-1")).status == 200
    assert (await client.get("/88.123.45/N-2?noredirect")).status == 200
    assert (await client.get("/api/handles/88.123.45/NOPE")).status == 404
    app = client.server.app
    await app[DAILY].flush(app[STORE])
    conn = await asyncpg.connect(config.dsn)
    try:
        rows = {
            r[0]: r[1:]
            for r in await conn.fetch(
                "select prefix, registrations, resolutions, not_found from daily_counts where day = $1",
                today(),
            )
        }
    finally:
        await conn.close()
    assert rows["88.123.45"] == (5, 4, 1)
    assert rows["88.123"][0] == 1
    assert ("88.123.45", 5, 5) in await reconcile(app[STORE], today())


async def test_stats_report_against_the_thresholds(client, config):
    conn = await asyncpg.connect(config.dsn)
    try:
        day = today()
        for back in range(1, 31):
            await conn.execute(
                "insert into daily_counts (day, prefix, registrations, resolutions, not_found) values ($1, '88.123.45', 1000, $2, 10)",
                day - timedelta(days=back),
                2_000_000,
            )
    finally:
        await conn.close()
    resp = await client.get("/api/stats", headers=basic())
    body = await resp.json()
    assert resp.status == 200 and body["responseCode"] == 1
    node = body["node"]
    assert node["resolutionsYesterday"] == 2_000_000
    assert node["resolutions30dAverage"] == 2_000_000
    assert node["resolutionsRatio"] == 2_000_000 / RESOLUTIONS_PER_DAY
    this_year = sum(1000 for back in range(1, 31) if (today() - timedelta(days=back)).year == today().year)
    assert node["registrationsThisYear"] == this_year
    assert body["prefixes"]["88.123.45"]["resolutionsYesterday"] == 2_000_000
    assert (await client.get("/api/stats")).status == 401


async def today_rows(dsn: str) -> dict[str, tuple[int, int, int]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select prefix, registrations, resolutions, not_found from daily_counts where day = $1", today()
        )
    finally:
        await conn.close()
    return {r[0]: (r[1], r[2], r[3]) for r in rows}


async def test_strangers_guesses_count_in_one_row(client, config):
    await admit(client, "88.123.45", 61)
    await client.put("/api/handles/88.123.45/G-1", json=[url_value(1, "https://g")], headers=admin_json())
    for i in range(200):
        assert (await client.get(f"/api/handles/88.123.{1000 + i}/x")).status == 404
        assert (await client.get(f"/88.123.{5000 + i}/x")).status == 404
        assert (await client.get(f"/api/handles/88.123.45.{i}/x")).status == 404
    assert (await client.get("/api/handles/88.123.45/G-1")).status == 200
    app = client.server.app
    await app[DAILY].flush(app[STORE])
    assert await today_rows(config.dsn) == {"88.123.45": (1, 1, 200), OTHER: (0, 0, 400)}
    body = await (await client.get("/api/stats", headers=basic())).json()
    assert set(body["prefixes"]) == {"88.123.45", OTHER}


async def test_a_prefix_allocated_through_another_instance_is_counted_under_its_name(config):
    async with serving(config) as one, serving(config) as two:
        # two has flushed before: what it knew of the allocations is older than the allocation
        two.server.app[DAILY].not_found("88.123.47")
        await two.server.app[DAILY].flush(two.server.app[STORE])
        await admit(one, "88.123.47", 62)
        for i in range(3):
            assert (await two.get(f"/api/handles/88.123.47/NOPE-{i}")).status == 404
            assert (await two.get(f"/api/handles/88.123.47.{i}/x")).status == 404
        await two.server.app[DAILY].flush(two.server.app[STORE])
    assert await today_rows(config.dsn) == {OTHER: (0, 0, 1), "88.123.47": (0, 0, 6)}


async def test_rows_of_unserved_prefixes_written_before_are_relabelled(client, config):
    await admit(client, "88.123.45", 63)
    day = today() - timedelta(days=3)
    conn = await asyncpg.connect(config.dsn)
    try:
        await conn.executemany(
            "insert into daily_counts values ($1, $2, $3, $4, $5)",
            [
                (day, "88.123", 1, 10, 1),
                (day, "88.123.45", 2, 20, 2),
                (day, "88.123.45.6", 3, 30, 3),  # under an allocated prefix
                (day, "88.123.99", 4, 40, 4),  # the node administrator's, or guesses
                (day, "7.7.7", 0, 50, 5),  # another node's, through recursion
                (day, "0.na", 6, 60, 6),  # prefix records
                (day, OTHER, 0, 0, 7),
            ],
        )
        await fold_unserved(client.server.app[STORE], "88.123")
        await fold_unserved(client.server.app[STORE], "88.123")  # nothing left to move
        rows = {r[0]: tuple(r[1:]) for r in await conn.fetch(Q["day_counts"], day)}
    finally:
        await conn.close()
    assert rows == {
        "88.123": (1 + 4 + 6, 10 + 40 + 60, 1),
        "88.123.45": (2 + 3, 20 + 30, 2 + 3),
        OTHER: (0, 0, 4 + 5 + 6 + 7),
    }
    # the same as the labels the workers give now
    served = ServedPrefixes("88.123", ["88.123.45"])
    for prefix in ("88.123.45.6", "88.123.99", "0.na"):
        assert served.label(prefix, True) in rows and served.label(prefix, False) in rows
    assert served.label("7.7.7", True) is None


@pytest.fixture
def other_database(template_ready):
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        yield dsn


async def test_recursive_resolutions_are_not_counted_nor_reported_as_ours(config, other_database):
    """Issue 14's bug: answers resolved through recursion were counted in this node's daily counts
    under the other node's prefix, and so reported to the top-level node as this node's. Node A
    (88.123) resolves node B's (88.456) handle through the top-level node simulator; its counts,
    and the statistics its outbox delivers, hold only its own resolutions and, for B's missing
    handle, the one row of the others' not-found answers."""
    async with TestClient(TestServer(module().create_app())) as top:
        upstream_url = str(top.make_url("")).rstrip("/")
        b_config = replace(config, dsn=other_database, node_prefix="88.456")
        async with serving(b_config) as b:
            b_admin = {**basic("300:0.NA/88.456"), "Content-Type": "application/json"}
            put = await b.put("/api/handles/88.456/R-1", json=[url_value(1, "https://b")], headers=b_admin)
            assert put.status in (200, 201), await put.text()
            # B's prefix record as B's outbox would deliver it, pointing at where B listens
            b_site = replace(b_config, public_url=str(b.make_url("")).rstrip("/"))
            record = {"messageId": "b-88.456", **prefix_message(b_site, "88.456", True)}
            assert (await top.post("/upstream/v1/messages", json=record)).status == 200

            a_config = replace(
                config, upstream_url=upstream_url, recursive=True, recursive_allow=("127.0.0.1",)
            )
            async with serving(a_config) as a:
                await a.put("/api/handles/88.123/L-1", json=[url_value(1, "https://a")], headers=admin_json())
                for _ in range(2):
                    assert (await a.get("/api/handles/88.123/L-1")).status == 200
                for path in ("/api/handles/88.456/R-1", "/api/handles/88.456/R-1?type=URL"):
                    answer = await a.get(path)  # resolved by B: cached at A the second time
                    assert answer.status == 200, await answer.text()
                    assert (await answer.json())["values"][0]["data"]["value"] == "https://b"
                assert (await a.get("/api/handles/88.456/NOPE")).status == 404
                # counted as of yesterday, so that the day is closed and reported
                yesterday = today() - timedelta(days=1)
                app = a.server.app
                await app[DAILY].flush(app[STORE], day=yesterday)

        expected = {NODE_PREFIX: (1, 2, 0), OTHER: (0, 0, 1)}
        conn = await asyncpg.connect(config.dsn)
        try:
            rows = {r[0]: (r[1], r[2], r[3]) for r in await conn.fetch(Q["day_counts"], yesterday)}
            assert rows == expected
            # A's own deliverer may have queued (and sent) the closed day already; either way it
            # is queued once, and what remains goes to the top-level node now
            await queue_closed_days(conn, a_config)
            queued = await conn.fetchval("select count(*) from outbox where kind = 'statistics'")
            assert queued == 1
            upstream = HttpUpstream(upstream_url, None, None)
            try:
                await deliver_due(conn, upstream)
            finally:
                await upstream.close()
            assert await conn.fetchval("select count(*) from outbox where delivered_at is null") == 0
        finally:
            await conn.close()
        state = await (await top.get("/upstream/v1/state")).json()
    report = state["statistics"][f"{NODE_PREFIX}/{yesterday.isoformat()}"]
    assert {
        p["prefix"]: (p["registrations"], p["resolutions"], p["notFound"]) for p in report["prefixes"]
    } == expected
    assert report["total"] == {"registrations": 1, "resolutions": 2, "notFound": 1}
