"""Shared fixtures: one real Postgres for the session, a fresh database for every test.

The server is the embedded Postgres of the `pgserver` wheel, or the one `RESOLVER_TEST_DSN` names.
Every test database is cloned from a template that was migrated once, which takes milliseconds.
Constants and helpers the tests import (the node's identity, `serving`, `scratch_database`, request
builders) are in tests/helpers.py.

Every test is marked by its folder, so a kind of test can be run on its own:

    pytest -m unit              # tests/unit: no database, no process (seconds)
    pytest -m integration       # tests/integration: an app on a real Postgres
    pytest -m e2e               # tests/e2e: the real `resolver serve` in a subprocess
    pytest -m security          # tests/security: hostile inputs, clients and sites
    pytest -m "not e2e"         # everything but the end-to-end tests

Property tests run their full example counts by default (as CI runs them). While working on a
change, `--hypothesis-profile=quick` runs a tenth of the examples of every property test (see
`tests.helpers.examples`); it does not replace the full run.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient
from hypothesis import settings

from resolver.config import CacheSettings, Config
from resolver.store.migrations import migrate
from tests.helpers import (
    ADMIN_SECRET,
    NODE_PREFIX,
    QUICK_FRACTION,
    TEMPLATE,
    scratch_database,
    serving,
    with_database,
)
from tests.portal_helpers import tenants  # noqa: F401  (the portal tests' two tenants)

settings.register_profile(
    "quick", max_examples=max(1, int(settings.get_profile("default").max_examples * QUICK_FRACTION))
)

FOLDER_MARKERS = {"unit": "unit", "integration": "integration", "e2e": "e2e", "security": "security"}
TESTS = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test by the folder it is in (tests/unit -> `unit`, and so on)."""
    for item in items:
        try:
            folder = item.path.relative_to(TESTS).parts[0]
        except ValueError:
            continue
        marker = FOLDER_MARKERS.get(folder)
        if marker is not None:
            item.add_marker(marker)


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


@pytest.fixture(scope="session")
def key_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The node key directory of every in-process node of the session (its seal of secret keys)."""
    return tmp_path_factory.mktemp("node-keys")


@pytest.fixture
def config(fresh_database: str, key_dir: Path) -> Config:
    return Config(
        node_prefix=NODE_PREFIX,
        key_dir=str(key_dir),
        admin_secret=ADMIN_SECRET,
        dsn=fresh_database,
        workers=1,
        pool_min=1,
        pool_max=4,
        reader_connections=2,
        db_timeout=3.0,
        cache=replace(CacheSettings(), negative_ttl=5.0),
        native_port=0,
    )


@pytest.fixture
async def client(config: Config) -> AsyncIterator[TestClient[object, object]]:
    """The node's app on a real socket, with an HTTP client for it."""
    async with serving(config) as test_client:
        yield test_client
