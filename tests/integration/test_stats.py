"""Threshold evidence: daily counts per prefix, /api/stats, reconciliation with the identifiers."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

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
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic, serving, url_value


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
