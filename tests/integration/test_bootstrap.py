"""The node administrator is created once even when several processes start together."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg

from resolver.services.bootstrap import ensure_node_admin
from resolver.store.connections import Readers
from resolver.store.handles import HandleStore


async def test_two_processes_bootstrapping_a_new_node_at_once_both_succeed(config):
    fresh = replace(config, node_prefix="88.777")
    pools = [await asyncpg.create_pool(fresh.dsn, min_size=1, max_size=2) for _ in range(4)]
    try:
        stores = [HandleStore(pool, Readers(fresh.dsn, 1, 3.0), 3.0) for pool in pools]
        await asyncio.gather(*(ensure_node_admin(fresh, store) for store in stores))
        conn = await asyncpg.connect(fresh.dsn)
        try:
            assert await conn.fetchval("select count(*) from handles where key = '0.na/88.777'") == 1
        finally:
            await conn.close()
    finally:
        for pool in pools:
            await pool.close()
