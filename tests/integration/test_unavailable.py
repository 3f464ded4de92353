"""When Postgres goes away: cached handles still resolve, the rest answers 503 rc 3 with
Retry-After, and the node recovers by itself when Postgres returns."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from resolver.core.handles import fold
from resolver.http.keys import LOOKUP
from tests.faults import CuttableProxy
from tests.helpers import ADMIN_USER, admin_json, basic, serving, url_value


@pytest.fixture
async def proxied(config):
    proxy = CuttableProxy(config.dsn)
    await proxy.start()
    async with serving(replace(config, dsn=proxy.dsn, db_timeout=1.0)) as client:
        yield client, proxy
    await proxy.cut()


async def eventually(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_cached_handles_answer_while_the_database_is_down(proxied):
    client, proxy = proxied
    await client.put("/api/handles/88.123/UP-1", json=[url_value(1, "https://a")], headers=admin_json())
    assert (await client.get("/api/handles/88.123/UP-1")).status == 200  # now cached
    await proxy.cut()

    resp = await client.get("/api/handles/88.123/UP-1")
    assert resp.status == 200
    assert (await resp.json())["values"][0]["data"]["value"] == "https://a"

    resp = await client.get("/api/handles/88.123/NOT-CACHED")
    assert resp.status == 503
    assert resp.headers["Retry-After"]
    body = await resp.json()
    assert body["responseCode"] == 3 and body["handle"] == "88.123/NOT-CACHED"

    resp = await client.put(
        "/api/handles/88.123/UP-2", json=[url_value(1, "https://b")], headers=admin_json()
    )
    assert resp.status == 503 and (await resp.json())["responseCode"] == 3

    assert (await client.get("/readyz")).status == 503
    assert (await client.get("/healthz")).status == 200


async def test_authentication_never_uses_a_stale_entry(proxied):
    """Cut off from Postgres, a stale cache entry still answers anonymous public resolution, but
    never authentication: a secret rotated meanwhile elsewhere must not keep working (503)."""
    client, proxy = proxied
    lookup = client.server.app[LOOKUP]
    resp = await client.put(
        "/api/handles/88.123/AUTH-1", json=[url_value(1, "https://a")], headers=admin_json()
    )
    assert resp.status in (200, 201), await resp.text()
    assert (await client.get("/api/handles/88.123/AUTH-1")).status == 200  # now cached
    # the administrator's identity handle is cached too
    assert (await client.get("/api/handles/88.123/AUTH-1", headers=basic())).status == 200
    assert lookup.cache.get_stale(fold(ADMIN_USER.partition(":")[2])) is not None
    await proxy.cut()

    async def untrusted():
        return not lookup.cache.trusted

    await eventually(untrusted, timeout=5)
    resp = await client.get("/api/handles/88.123/AUTH-1", headers=basic())
    body = await resp.json()
    assert resp.status == 503 and resp.headers["Retry-After"], body
    assert body["responseCode"] == 3 and body["handle"] == "88.123/AUTH-1", body
    public = await client.get("/api/handles/88.123/AUTH-1")
    assert public.status == 200
    assert (await public.json())["values"][0]["data"]["value"] == "https://a"


async def test_the_node_recovers_when_the_database_returns(proxied):
    client, proxy = proxied
    await proxy.cut()
    assert (await client.get("/api/handles/88.123/LATER")).status == 503
    await proxy.restore()

    async def ready():
        return (await client.get("/readyz")).status == 200

    await eventually(ready)
    resp = await client.put(
        "/api/handles/88.123/LATER", json=[url_value(1, "https://c")], headers=admin_json()
    )
    assert resp.status == 200
    assert (await client.get("/api/handles/88.123/LATER")).status == 200
    await eventually(lambda: _trusted(client))


async def _trusted(client):
    return client.server.app[LOOKUP].cache.trusted


async def test_losing_the_change_feed_stops_trusting_the_cache(proxied):
    client, proxy = proxied
    lookup = client.server.app[LOOKUP]
    assert lookup.cache.trusted
    await proxy.cut()

    async def untrusted():
        return not lookup.cache.trusted

    await eventually(untrusted, timeout=5)
    await proxy.restore()
    await eventually(lambda: _trusted(client), timeout=10)
    assert len(lookup.cache) == 0  # flushed before being trusted again


async def test_a_connection_lost_during_commit_answers_that_the_outcome_is_unknown(config):
    """The backend dies inside COMMIT (a deferred trigger terminates it): the node cannot know
    whether the write was stored, and says so rather than claiming it was not (503, rc 3)."""
    import asyncpg

    conn = await asyncpg.connect(config.dsn)
    try:
        await conn.execute(
            """
            create function die_at_commit() returns trigger language plpgsql as $$
            begin
              if new.key like '88.123/die-at-commit%' then
                perform pg_terminate_backend(pg_backend_pid());
              end if;
              return null;
            end $$;
            create constraint trigger die_at_commit after insert on handles
              deferrable initially deferred for each row execute function die_at_commit();
            """
        )
    finally:
        await conn.close()
    async with serving(config) as client:
        resp = await client.put(
            "/api/handles/88.123/DIE-AT-COMMIT", json=[url_value(1, "https://a")], headers=admin_json()
        )
        body = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"], body
        assert body["responseCode"] == 3 and "may or may not be stored" in body["message"], body
        # the pool replaced the dead connection: the next write is stored
        resp = await client.put(
            "/api/handles/88.123/AFTER", json=[url_value(1, "https://b")], headers=admin_json()
        )
        assert resp.status in (200, 201), await resp.text()
        assert (await client.get("/api/handles/88.123/AFTER")).status == 200
