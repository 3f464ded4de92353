"""What the write path does when a failover puts a standby behind its connection (issue 19,
found by deploy/ha-cluster's drill 1: the old leader restarting after a kill -9 was in recovery,
and writes through it were 500s). A transaction on a read-only server is a 503 with Retry-After
(nothing was written), and the connection is dropped, so the next write opens a new one and
finds the leader. Postgres' own read-only mode stands in for the standby here."""

from __future__ import annotations

import asyncpg
import pytest

from resolver.core.errors import Unavailable
from resolver.store.connections import Readers
from resolver.store.handles import HandleStore


async def test_a_write_on_a_server_in_recovery_is_a_503_and_its_connection_is_dropped(config):
    pool = await asyncpg.create_pool(
        config.dsn, min_size=1, max_size=1, server_settings={"default_transaction_read_only": "on"}
    )
    readers = Readers(config.dsn, 1, 3.0)
    try:
        store = HandleStore(pool, readers, 3.0)
        with pytest.raises(Unavailable) as refused:
            async with store.write() as tx:
                await tx.insert("88.123/ro-1", "88.123/RO-1", "88.123", [])
        assert refused.value.retry_after and not refused.value.uncertain  # retry: nothing was stored
        # the one connection of the pool was terminated: the next one is new (and, the setting
        # aside for it, writes)
        pool.set_connect_args(config.dsn, server_settings={"default_transaction_read_only": "off"})
        async with store.write() as tx:
            assert await tx.insert("88.123/ro-2", "88.123/RO-2", "88.123", [])
        conn = await asyncpg.connect(config.dsn)
        try:
            keys = await conn.fetch("select key from handles where key like '88.123/ro-%' order by key")
        finally:
            await conn.close()
        assert [r[0] for r in keys] == ["88.123/ro-2"]  # the refused one left nothing
    finally:
        await readers.close()
        await pool.close()
