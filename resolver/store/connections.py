"""Connections: how the node connects, waits for a database, and reads handles on dedicated
connections."""

from __future__ import annotations

import asyncio
import collections
import logging

import asyncpg
import asyncpg.pool
import asyncpg.prepared_stmt
import orjson

from resolver.core.handles import fold
from resolver.store.errors import is_unavailable
from resolver.store.queries import Q
from resolver.store.rows import Record

Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy


async def connect(dsn: str, timeout: float = 5.0, name: str = "resolver") -> asyncpg.Connection:
    """One connection with the settings every node connection uses (`name`: its application_name)."""
    return await asyncpg.connect(dsn, timeout=timeout, server_settings={"application_name": name})


async def wait_for_database(dsn: str, attempts: int = 60) -> asyncpg.Connection:
    """Connect, retrying while the database is starting or briefly away."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return await connect(dsn)
        except Exception as exc:
            if not is_unavailable(exc) or attempt == attempts - 1:
                raise
            logging.getLogger("resolver").warning("database not reachable (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
    raise AssertionError("unreachable")


class Readers:
    """A few dedicated connections for coalesced lookups, handed out first come, first served.

    asyncpg's pool resets every connection on release and wakes waiters unfairly; for one small
    prepared statement that costs more than the query, so lookups use these connections instead.
    """

    def __init__(self, dsn: str, size: int, timeout: float) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._idle: list[asyncpg.Connection | None] = [None] * size
        self._statements: dict[asyncpg.Connection, asyncpg.prepared_stmt.PreparedStatement] = {}
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._closed = False

    async def _take(self) -> asyncpg.Connection | None:
        if self._idle:
            return self._idle.pop()
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())
            raise

    def _give(self, conn: asyncpg.Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def fetch_many(self, keys: list[str]) -> dict[str, Record]:
        """Look up many handles in one statement on one connection."""
        conn = await self._take()
        try:
            if conn is None or conn.is_closed():
                self._statements.pop(conn, None)  # type: ignore[arg-type]
                conn = await connect(self._dsn, self._timeout)
                self._statements[conn] = await conn.prepare(Q["lookup_many"])
            rows = await self._statements[conn].fetch(keys, timeout=self._timeout)
        except BaseException:
            if conn is not None:
                self._statements.pop(conn, None)
                conn.terminate()
            self._give(None)
            raise
        self._give(conn)
        return {fold(row[0]): Record(row[0], orjson.loads(row[1])) for row in rows}

    async def close(self) -> None:
        """Close every idle connection."""
        self._closed = True
        conns = [c for c in self._idle if c is not None]
        self._idle.clear()
        self._statements.clear()
        for conn in conns:
            conn.terminate()
