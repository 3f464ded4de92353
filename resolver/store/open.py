"""Opening the store: the asyncpg pool, the lookup readers (on the replica when one is configured)
and the HandleStore over them, built in one place for the workers, the supervisor and the CLI."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from resolver.config import Config
from resolver.store.connections import Readers
from resolver.store.handles import HandleStore


@asynccontextmanager
async def open_store(config: Config, *, single: bool = False) -> AsyncIterator[HandleStore]:
    """A HandleStore for `config`, closed (readers, then pool) on leaving.

    `single`: one pooled connection and one reader on the primary, for a one-shot job (the
    supervisor's bootstrap, a CLI command). Otherwise the node's pool sizes and readers; with
    `read_dsn`, lookups read the replica and a reader on the primary serves recently changed handles.
    """
    assert config.dsn is not None
    search_types = frozenset(config.search_types)
    if single:
        pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=1)
        readers = Readers(config.dsn, 1, config.db_timeout)
    else:
        settings = {"application_name": "resolver"}
        if config.read_dsn:
            # a commit returns once the synchronous replicas have applied it: read there at once
            settings["synchronous_commit"] = "remote_apply"
        pool = await asyncpg.create_pool(
            config.dsn,
            min_size=config.pool_min,
            max_size=config.pool_max,
            timeout=config.db_timeout,
            server_settings=settings,
        )
        readers = Readers(config.read_dsn or config.dsn, config.reader_connections, config.db_timeout)
    store = HandleStore(pool, readers, config.db_timeout, search_types)
    primary_readers = None
    if config.read_dsn and not single:
        primary_readers = Readers(config.dsn, 1, config.db_timeout)
        synchronous = synchronous_replicas(*await store.replication_state())
        store.use_replica(readers, primary_readers, config.read_your_writes_seconds, synchronous)
    try:
        yield store
    finally:
        await readers.close()
        if primary_readers is not None:
            await primary_readers.close()
        await pool.close()


def synchronous_replicas(standby_names: str, states: list[str]) -> bool:
    """Whether the primary waits for every streaming replica before acknowledging a commit (then a
    replica's answers are the truth for every write acknowledged). Otherwise say so: the node
    then asks the primary again for whatever the replica does not have."""
    if standby_names.strip() and states and all(state == "sync" for state in states):
        return True
    logging.getLogger("resolver").warning(
        "--read-dsn: the primary does not wait for every replica (synchronous_standby_names=%r, "
        "replicas %s); a write may not be on the replica yet when it is acknowledged, so handles "
        "the replica lacks are read again on the primary (see README, Replica)",
        standby_names,
        states or "none seen",
    )
    return False
