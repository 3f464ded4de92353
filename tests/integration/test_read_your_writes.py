"""A write acknowledged by one instance is what every other instance answers from then on, with no
delay at all (resolver.store.coherence): the writer waits until every listening cache confirmed it
forgot the old value, and a cache that cannot confirm stops trusting itself under its lease."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import asyncpg

from resolver.http.keys import LOOKUP, STORE
from resolver.store.coherence import MEMBER_NAME
from tests.helpers import admin_json, basic, serving, url_value


def cached_url(client, key: str) -> str | None:
    """What the instance's cache would answer for `key` right now (None: it would ask Postgres)."""
    cache = client.server.app[LOOKUP].cache
    if not cache.trusted:
        return None
    entry = cache.get(key)
    if entry is None:
        return None
    if entry.record is None:
        return "not found"
    return str(entry.record.values[0]["data"]["value"])


async def test_every_write_is_forgotten_by_the_other_cache_before_it_is_acknowledged(config):
    """100 rounds: the other instance caches the handle (or its absence), the first writes, and at
    the very moment the write returns the other's cache no longer holds the old answer, and its
    first read (no retry) gives the new one."""
    async with serving(config) as one, serving(config) as two:
        stale = not_found = 0
        for i in range(100):
            path = f"/api/handles/88.123/RYW-{i}"
            key = f"88.123/ryw-{i}"
            assert (await two.get(path)).status == 404  # a negative entry in two
            assert cached_url(two, key) == "not found"
            put = await one.put(path, json=[url_value(1, f"https://v1/{i}")], headers=admin_json())
            assert put.status in (200, 201), await put.text()
            assert cached_url(two, key) is None  # forgotten before the write returned
            got = await two.get(path)
            if got.status != 200:
                not_found += 1
                continue
            assert cached_url(two, key) == f"https://v1/{i}"  # cached in two now
            put = await one.put(
                path, params={"index": "1"}, json=[url_value(1, f"https://v2/{i}")], headers=admin_json()
            )
            assert put.status == 200, await put.text()
            assert cached_url(two, key) is None
            if (await two.get(path)).status != 200 or cached_url(two, key) != f"https://v2/{i}":
                stale += 1
        assert (not_found, stale) == (0, 0)
        coherence = one.server.app[STORE].coherence
        assert coherence is not None and coherence.timeouts == 0 and coherence.waits >= 200


async def test_a_listener_that_never_answers_holds_a_write_only_for_the_bound(config):
    """A connection that looks like a listening cache but never acknowledges (a frozen worker):
    the write is acknowledged after --coherence-wait, not never, and counts as timed out."""
    config = replace(config, coherence_wait=0.5)
    frozen = await asyncpg.connect(config.dsn)
    try:
        await frozen.execute("listen resolver_handles")
        await frozen.execute(f"set application_name = '{MEMBER_NAME}'")
        async with serving(config) as one:
            started = time.monotonic()
            put = await one.put(
                "/api/handles/88.123/FROZEN-1", json=[url_value(1, "https://x")], headers=admin_json()
            )
            took = time.monotonic() - started
            assert put.status in (200, 201)
            coherence = one.server.app[STORE].coherence
            assert coherence is not None and coherence.timeouts == 1
            assert 0.4 < took < 3.0, took
    finally:
        await frozen.close()
    # without it, writes return as soon as the real listeners answered
    async with serving(config) as one:
        put = await one.put(
            "/api/handles/88.123/FROZEN-2", json=[url_value(1, "https://x")], headers=admin_json()
        )
        assert put.status in (200, 201)
        assert one.server.app[STORE].coherence.timeouts == 0


async def test_a_cache_whose_pings_stop_coming_back_stops_trusting_itself(config):
    """The lease: trusted only until 0.8 x --coherence-wait after the last ping that came back, so
    a worker that cannot hear changes any more has stopped serving its cache by the time a writer
    stops waiting for it."""
    config = replace(config, coherence_wait=0.5)
    async with serving(config) as one:
        cache = one.server.app[LOOKUP].cache
        assert cache.trusted
        assert cache.trust.until - time.monotonic() <= 0.4 + 0.01
        # the pings keep renewing the lease
        await asyncio.sleep(1.0)
        assert cache.trusted
        # a lease that ran out: not trusted although the feed is up
        cache.trust.until = time.monotonic() - 0.001
        assert cache.trust.up and not cache.trusted


async def test_a_deletion_is_confirmed_too(config):
    """A handle deleted through one instance is gone from the other's cache when the delete returns."""
    async with serving(config) as one, serving(config) as two:
        path = "/api/handles/88.123/RYW-DEL"
        assert (await one.put(path, json=[url_value(1, "https://x")], headers=admin_json())).status in (
            200,
            201,
        )
        assert (await two.get(path)).status == 200
        assert (await one.delete(path, headers=basic())).status == 200
        assert cached_url(two, "88.123/ryw-del") is None
        assert (await two.get(path)).status == 404


async def test_an_import_is_done_only_once_every_cache_forgot_the_handles_it_added(config, tmp_path):
    """`resolver import` (resolver.bulk.importer) has no change feed: it hears its
    acknowledgements on a connection of its own, and each chunk waits for every listening cache.
    A node that remembered the handles as unknown answers them the moment the import returns."""
    from resolver.bulk.importer import Importer
    from tests.integration.test_import_export import good, write_csv

    async with serving(config) as node:
        for i in range(40):
            assert (await node.get(f"/api/handles/88.123/IMP-{i:05d}")).status == 404
        assert all(cached_url(node, f"88.123/imp-{i:05d}") == "not found" for i in range(40))
        source = tmp_path / "products.csv"
        write_csv(source, [good(i) for i in range(40)])
        conn = await asyncpg.connect(config.dsn)
        try:
            importer = Importer(config, conn, actor="import:test")
            started = time.monotonic()
            result = await importer.run(source, template_version="general-product-1.0", chunk_rows=10)
            took = time.monotonic() - started
        finally:
            await conn.close()
        assert result.accepted == 40
        assert [i for i in range(40) if cached_url(node, f"88.123/imp-{i:05d}") is not None] == []
        assert importer.coherence.timeouts == 0 and importer.coherence.waits == 4
        assert took < config.coherence_wait * 4  # answered, not waited out
        statuses = [(await node.get(f"/api/handles/88.123/IMP-{i:05d}")).status for i in range(40)]
        assert statuses == [200] * 40
