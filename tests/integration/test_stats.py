"""Threshold evidence: daily counts per prefix, /api/stats, reconciliation with the identifiers."""

from __future__ import annotations

from datetime import timedelta

import asyncpg

from resolver.http.keys import DAILY, STORE
from resolver.stats import RESOLUTIONS_PER_DAY, reconcile, today
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.helpers import admin_json, basic, url_value


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
