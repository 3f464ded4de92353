"""Shared fixtures: one real Postgres for the session, a fresh database for every test.

The server is the embedded Postgres of the `pgserver` wheel, or the one `RESOLVER_TEST_DSN` names.
Every test database is cloned from a template that was migrated once, which takes milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from resolver.config import CacheSettings, Config
from resolver.http.app import create_app
from resolver.store.migrations import migrate

TEMPLATE = "resolver_template"
NODE_PREFIX = "88.123"
ADMIN_SECRET = "test-admin-secret"
ADMIN_USER = "300:0.NA/88.123"


def with_database(dsn: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """The DSN of the session's Postgres server (its maintenance database)."""
    configured = os.environ.get("RESOLVER_TEST_DSN")
    if configured:
        yield configured
        return
    from resolver.embedded import EmbeddedPostgres

    with tempfile.TemporaryDirectory(prefix="resolver-test-pg-") as tmp:
        server = EmbeddedPostgres(Path(tmp) / "pgdata")
        dsn = server.start()
        try:
            yield dsn
        finally:
            server.stop()


async def _create_template(admin_dsn: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'drop database if exists "{TEMPLATE}" with (force)')
        await conn.execute(f'create database "{TEMPLATE}"')
    finally:
        await conn.close()
    conn = await asyncpg.connect(with_database(admin_dsn, TEMPLATE))
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def template_ready(pg_dsn: str) -> str:
    asyncio.run(_create_template(pg_dsn))
    return pg_dsn


async def _admin(dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@contextlib.contextmanager
def scratch_database(server_dsn: str, prefix: str, template: str | None) -> Iterator[str]:
    """A new database (cloned from `template` when given), dropped afterwards."""
    name = prefix + uuid.uuid4().hex[:16]
    clone = f' template "{template}"' if template else ""
    asyncio.run(_admin(server_dsn, f'create database "{name}"{clone}'))
    try:
        yield with_database(server_dsn, name)
    finally:
        asyncio.run(_admin(server_dsn, f'drop database if exists "{name}" with (force)'))


@pytest.fixture
def fresh_database(template_ready: str) -> Iterator[str]:
    """A new database cloned from the migrated template; dropped after the test."""
    with scratch_database(template_ready, "t_", TEMPLATE) as dsn:
        yield dsn


@pytest.fixture
def empty_database(template_ready: str) -> Iterator[str]:
    """A new database with no schema at all."""
    with scratch_database(template_ready, "e_", None) as dsn:
        yield dsn


@pytest.fixture
def config(fresh_database: str) -> Config:
    return Config(
        node_prefix=NODE_PREFIX,
        admin_secret=ADMIN_SECRET,
        dsn=fresh_database,
        workers=1,
        pool_min=1,
        pool_max=4,
        reader_connections=2,
        db_timeout=3.0,
        cache=replace(CacheSettings(), negative_ttl=5.0),
    )


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[TestClient[object, object]]:
    """The node's app for `config` on a real socket, its change feed up, with an HTTP client."""
    async with TestClient(TestServer(create_app(config))) as test_client:
        await wait_until_trusted(test_client)
        yield test_client


@pytest.fixture
async def client(config: Config) -> AsyncIterator[TestClient[object, object]]:
    """The node's app on a real socket, with an HTTP client for it."""
    async with serving(config) as test_client:
        yield test_client


async def wait_until_trusted(test_client: TestClient[object, object], timeout: float = 5.0) -> None:
    """Wait until the app's change feed is up (its cache is trusted)."""
    from resolver.http.keys import LOOKUP

    app = test_client.server.app
    assert app is not None
    deadline = asyncio.get_running_loop().time() + timeout
    while not app[LOOKUP].cache.trusted:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError("the change feed did not come up")
        await asyncio.sleep(0.01)
