"""The schema runner: applies every migration to an empty database, once, safely in parallel."""

from __future__ import annotations

import asyncio
from pathlib import Path

import asyncpg
import pytest

from resolver.store.migrations import SchemaTooNew, discover, migrate


async def test_applies_all_migrations_to_an_empty_database(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        version = await migrate(conn)
        assert version == discover()[-1].version
        applied = [r[0] for r in await conn.fetch("select version from schema_migrations order by version")]
        assert applied == [m.version for m in discover()]
        columns = {
            r[0]
            for r in await conn.fetch(
                "select column_name from information_schema.columns where table_name = 'handles'"
            )
        }
        assert {"key", "handle", "prefix", "vals"} <= columns
        assert await migrate(conn) == version  # a second run changes nothing
    finally:
        await conn.close()


async def test_concurrent_runners_take_turns(empty_database):
    conns = [await asyncpg.connect(empty_database) for _ in range(4)]
    try:
        versions = await asyncio.gather(*(migrate(c) for c in conns))
        assert len(set(versions)) == 1
        count = await conns[0].fetchval("select count(*) from schema_migrations")
        assert count == len(discover())
    finally:
        for conn in conns:
            await conn.close()


async def test_refuses_a_newer_schema(empty_database):
    conn = await asyncpg.connect(empty_database)
    try:
        await migrate(conn)
        await conn.execute("insert into schema_migrations (version, name) values (9999, 'future.sql')")
        with pytest.raises(SchemaTooNew):
            await migrate(conn)
    finally:
        await conn.close()


def test_migration_names_are_checked(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("select 1")
    (tmp_path / "0003_c.sql").write_text("select 1")
    with pytest.raises(RuntimeError, match="0002"):
        discover(tmp_path)
