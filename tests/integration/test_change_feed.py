"""The change feed's listener (resolver/store/feed.py) against a real Postgres: how it reports a
feed that stops answering."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable

import asyncpg
import pytest

from resolver.cache import Lookup, ResolutionCache
from resolver.config import CacheSettings
from resolver.store import feed
from resolver.store.rows import Record


async def _no_records(_keys: list[str]) -> dict[str, Record]:
    return {}


async def wait_until(condition: Callable[[], bool], timeout: float) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def _feed_backend(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        for _ in range(100):
            pid = await conn.fetchval(
                "select pid from pg_stat_activity where application_name = 'resolver-change-feed'"
            )
            if pid is not None:
                return int(pid)
            await asyncio.sleep(0.05)
    finally:
        await conn.close()
    raise AssertionError("the change feed never connected")


async def _terminate(dsn: str, pid: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("select pg_terminate_backend($1)", pid)
    finally:
        await conn.close()


@pytest.mark.parametrize(
    ("how", "reasons"),
    [
        ("stopped", ("TimeoutError",)),
        # a termination that lands during a ping surfaces as that ping's error
        ("terminated", ("connection closed", "ConnectionDoesNotExistError", "AdminShutdown")),
    ],
)
async def test_a_lost_feed_is_reported_once(
    fresh_database: str, caplog: pytest.LogCaptureFixture, how: str, reasons: tuple[str, ...]
) -> None:
    """A feed whose ping times out (its backend stopped with SIGSTOP: the exception path) or whose
    connection is closed (pg_terminate_backend) is logged as lost exactly once, with the reason,
    and the cache is not trusted until the feed is back."""
    cache = ResolutionCache(CacheSettings())
    lookup = Lookup(cache, _no_records, max_batches=1)
    task = asyncio.create_task(feed.follow_changes(fresh_database, lookup, max_backoff=0.2))
    try:
        pid = await _feed_backend(fresh_database)
        await wait_until(lambda: cache.trusted, 10)
        with caplog.at_level(logging.WARNING, logger="resolver"):
            if how == "terminated":
                await _terminate(fresh_database, pid)
                await wait_until(lambda: not cache.trusted, 10)
            else:
                try:
                    os.kill(pid, signal.SIGSTOP)
                except PermissionError:
                    pytest.skip("cannot signal the Postgres backend (run as root or as its owner)")
                try:
                    await wait_until(lambda: not cache.trusted, 10)
                    await asyncio.sleep(feed.PING_TIMEOUT * 2)
                finally:
                    os.kill(pid, signal.SIGCONT)
        lost = [r for r in caplog.records if "change feed lost" in r.getMessage()]
        assert len(lost) == 1, [r.getMessage() for r in lost]
        assert any(reason in lost[0].getMessage() for reason in reasons), lost[0].getMessage()
        await wait_until(lambda: cache.trusted, 15)
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
