"""Constants and helpers shared by the tests: the test node's identity, scratch databases, serving an
app, and building requests. Fixtures live in conftest.py, which imports these."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import fields
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings

from resolver.config import Config, RateLimits
from resolver.http.app import create_app

TEMPLATE = "resolver_template"
NODE_PREFIX = "88.123"
ADMIN_SECRET = "test-admin-secret"
ADMIN_USER = "300:0.NA/88.123"
QUICK_FRACTION = 0.1  # of the examples a property test runs under `--hypothesis-profile=quick`


def examples(full: int) -> int:
    """A property test's example count: `full` under the default profile (the one CI runs), scaled
    like every other property test under another profile (a tenth under `quick`)."""
    scale = settings.default.max_examples / settings.get_profile("default").max_examples
    return max(1, round(full * scale))


def with_database(dsn: str, database: str) -> str:
    """The same server, another database."""
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path="/" + database))


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


@contextlib.asynccontextmanager
async def serving(config: Config) -> AsyncIterator[TestClient[object, object]]:
    """The node's app for `config` on a real socket, its change feed up, with an HTTP client."""
    async with TestClient(TestServer(create_app(config))) as test_client:
        await wait_until_trusted(test_client)
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


def basic(user: str = ADMIN_USER, password: str = ADMIN_SECRET) -> dict[str, str]:
    """The Authorization header pyhandle sends: the user name percent-encoded, colon included."""
    token = base64.b64encode(f"{quote(user)}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def admin_json() -> dict[str, str]:
    return {**basic(), "Content-Type": "application/json"}


def url_value(index: int, url: str) -> dict[str, object]:
    return {"index": index, "type": "URL", "data": {"format": "string", "value": url}}


def no_rate_limits() -> RateLimits:
    """Every abuse limit off (tests that make many requests, or fail on purpose, from one address)."""
    return RateLimits(**{f.name: 0 for f in fields(RateLimits)})
