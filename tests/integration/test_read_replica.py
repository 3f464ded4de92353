"""--read-dsn: cache misses read from a replica; writes, auth=true reads and handles that changed
a moment ago read from the primary, so a writer sees its own write at once.

The "replica" here is a second database whose rows differ from the primary's: what a lagging
replica looks like, made deterministic. deploy/local-cluster runs a real streaming replica.
"""

from __future__ import annotations

from dataclasses import replace

import asyncpg
import pytest

from resolver.store.rows import encode_values
from tests.helpers import TEMPLATE, basic, scratch_database, serving


@pytest.fixture
def replica_dsn(template_ready):
    with scratch_database(template_ready, "r_", TEMPLATE) as dsn:
        yield dsn


async def put_row(dsn: str, handle: str, url: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        values = [
            {
                "index": 1,
                "type": "URL",
                "data": {"format": "string", "value": url},
                "ttl": 86400,
                "timestamp": "2026-11-21T00:00:00Z",
            }
        ]
        await conn.execute(
            "insert into handles (key, handle, prefix, vals) values ($1, $2, '88.123', $3)",
            handle.lower(),
            handle,
            encode_values(values),
        )
    finally:
        await conn.close()


async def copy_row(source: str, target: str, key: str) -> None:
    src, dst = await asyncpg.connect(source), await asyncpg.connect(target)
    try:
        row = await src.fetchrow("select key, handle, prefix, vals::text from handles where key = $1", key)
        await dst.execute(
            "insert into handles (key, handle, prefix, vals) values ($1, $2, $3, $4) "
            "on conflict (key) do update set vals = excluded.vals",
            *row,
        )
    finally:
        await src.close()
        await dst.close()


def url_of(body) -> str:
    return next(v["data"]["value"] for v in body["values"] if v["type"] == "URL")


async def test_misses_read_the_replica_writers_read_their_writes(config, replica_dsn):
    await put_row(config.dsn, "88.123/STALE", "https://example.com/new")
    await put_row(replica_dsn, "88.123/STALE", "https://example.com/old")
    async with serving(replace(config, read_dsn=replica_dsn)) as client:
        await copy_row(config.dsn, replica_dsn, "0.na/88.123")  # what replication would have done
        # an anonymous miss reads the replica (which lags here)
        assert (
            url_of(await (await client.get("/api/handles/88.123/STALE")).json()) == "https://example.com/old"
        )
        # auth=true reads the primary
        fresh = await client.get("/api/handles/88.123/STALE?auth=true", headers=basic())
        assert url_of(await fresh.json()) == "https://example.com/new"
        # a write goes to the primary; reading it back at once does not ask the replica, which
        # does not have it at all
        put = await client.put(
            "/api/handles/88.123/MINE",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/mine"}]},
            headers=basic(),
        )
        assert put.status in (200, 201)
        mine = await client.get("/api/handles/88.123/MINE")
        assert mine.status == 200 and url_of(await mine.json()) == "https://example.com/mine"
        # a change of a handle the cache held: the next read is the primary's too
        await client.put(
            "/api/handles/88.123/STALE?index=1&overwrite=true",
            json={"values": [{"index": 1, "type": "URL", "data": "https://example.com/newest"}]},
            headers=basic(),
        )
        assert (
            url_of(await (await client.get("/api/handles/88.123/STALE")).json())
            == "https://example.com/newest"
        )
