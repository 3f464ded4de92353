"""Numbered, forward-only schema migrations from `schema/`, applied under an advisory lock."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# An arbitrary constant naming the node's migration lock (pg_advisory_lock takes a bigint).
MIGRATION_LOCK = 0x1D15_2E50
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$", re.ASCII)


class SchemaTooNew(RuntimeError):
    """The database was migrated by a newer version of the node than this one."""


@dataclass(frozen=True)
class Migration:
    version: int
    path: Path


def schema_dir() -> Path:
    """`RESOLVER_SCHEMA_DIR`, or the `schema/` folder beside the `resolver` package."""
    configured = os.environ.get("RESOLVER_SCHEMA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[2] / "schema"


def discover(directory: Path | None = None) -> list[Migration]:
    """The migrations in version order; refuses gaps and stray names."""
    directory = directory or schema_dir()
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise RuntimeError(f"{path.name}: migrations are named NNNN_description.sql")
        found.append(Migration(int(match.group(1)), path))
    for expected, migration in enumerate(found, start=1):
        if migration.version != expected:
            raise RuntimeError(f"migration {expected:04d} is missing before {migration.path.name}")
    if not found:
        raise RuntimeError(f"no migrations found in {directory}")
    return found


async def migrate(conn: asyncpg.Connection, directory: Path | None = None) -> int:
    """Bring the schema up to the newest migration; returns the version now applied.

    Several workers or instances may call this at once: the advisory lock makes them take turns,
    and each applies only what is still missing.
    """
    migrations = discover(directory)
    await conn.execute("select pg_advisory_lock($1)", MIGRATION_LOCK)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version integer primary key,"
            " name text not null,"
            " applied_at timestamptz not null default now())"
        )
        current = int(await conn.fetchval("select coalesce(max(version), 0) from schema_migrations"))
        newest = migrations[-1].version
        if current > newest:
            raise SchemaTooNew(
                f"the database schema is at version {current}, newer than this node's {newest}; "
                "upgrade the node instead"
            )
        for migration in migrations:
            if migration.version <= current:
                continue
            async with conn.transaction():
                await conn.execute(migration.path.read_text(encoding="utf-8"))
                await conn.execute(
                    "insert into schema_migrations (version, name) values ($1, $2)",
                    migration.version,
                    migration.path.name,
                )
        return newest
    finally:
        await conn.execute("select pg_advisory_unlock($1)", MIGRATION_LOCK)
