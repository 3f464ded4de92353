"""The outbox to the national top-level node: the messages queued with the changes that cause
them, their delivery state, and the deliverer's own connection that holds the delivery lock."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import NamedTuple

import asyncpg

from resolver.store.connections import Connection
from resolver.store.queries import Q


class DueMessage(NamedTuple):
    """A message whose time has come: the oldest undelivered one of its lane."""

    id: int
    message_id: str
    lane: str
    kind: str
    body: str  # JSON text
    attempts: int


class PendingMessage(NamedTuple):
    """An undelivered message, as the status shows it."""

    id: int
    message_id: str
    lane: str
    kind: str
    attempts: int
    last_error: str | None
    queued_at: datetime
    next_attempt: datetime


class Totals(NamedTuple):
    """The outbox in numbers."""

    pending: int
    oldest_seconds: float  # how long the oldest undelivered message has waited (0 without one)
    delivered: int
    last_delivery: datetime | None


def transaction(conn: Connection) -> AbstractAsyncContextManager[object]:
    """A transaction on `conn` (nested in one already open: a savepoint)."""
    return conn.transaction()


async def add(conn: Connection, message_id: str, lane: str, kind: str, ref: str | None, body: str) -> None:
    """Queue a message (`body` JSON text) in the caller's transaction; one with a `ref` that a
    message of its kind already has is not queued again."""
    await conn.execute(Q["outbox_add"], message_id, lane, kind, ref, body)


async def due(conn: Connection, limit: int) -> list[DueMessage]:
    """At most `limit` messages to send now, the oldest undelivered one of each lane, oldest first."""
    return [DueMessage(*row) for row in await conn.fetch(Q["outbox_next"], limit)]


async def mark_delivered(conn: Connection, id_: int) -> None:
    """The message was accepted: it leaves the queue."""
    await conn.execute(Q["outbox_delivered"], id_)


async def mark_failed(conn: Connection, id_: int, error: str, retry_in: float) -> None:
    """The message was not accepted: keep `error` and try again in `retry_in` seconds."""
    await conn.execute(Q["outbox_failed"], id_, error, retry_in)


async def totals(conn: Connection) -> Totals:
    """How many messages wait and since when, how many left, and when the last one did."""
    row = await conn.fetchrow(Q["outbox_status"])
    assert row is not None
    return Totals(int(row[0]), float(row[1]), int(row[2]), row[3])


async def pending(conn: Connection, limit: int) -> list[PendingMessage]:
    """The first `limit` undelivered messages, oldest first."""
    return [PendingMessage(*row) for row in await conn.fetch(Q["outbox_pending_list"], limit)]


async def days_to_report(conn: Connection, current: date) -> list[date]:
    """The closed days before `current` (within the week) with counts and no statistics queued yet."""
    return [row[0] for row in await conn.fetch(Q["days_to_report"], current)]


async def enabled_prefixes(conn: Connection) -> list[str]:
    """The enabled enterprise prefixes as they are displayed (as allocated), by prefix."""
    return [row["display"] for row in await conn.fetch(Q["enabled_prefixes"])]


class DeliveryLock:
    """The deliverer's own connection, and the advisory lock that makes one process per database
    the deliverer: the lock lives as long as the connection, so a dead deliverer's lock goes with
    it and another process takes it."""

    def __init__(self, dsn: str) -> None:
        self._dsn = dsn
        self._conn: asyncpg.Connection | None = None
        self._holding = False

    async def take(self) -> Connection | None:
        """The connection, if it holds the lock (connecting and trying for the lock as needed);
        None while another process holds it. Raises what connecting or trying raised."""
        if self._conn is None or self._conn.is_closed():
            self._conn = await asyncpg.connect(self._dsn, server_settings={"application_name": "upstream"})
            self._holding = False
        if not self._holding:
            self._holding = bool(await self._conn.fetchval(Q["upstream_try_lock"]))
        return self._conn if self._holding else None

    def drop(self) -> None:
        """Give the connection (and the lock) up after a failure; the next `take` connects anew."""
        if self._conn is not None and not self._conn.is_closed():
            self._conn.terminate()
        self._conn, self._holding = None, False

    def close(self) -> None:
        """Close the connection for good, releasing the lock."""
        if self._conn is not None:
            self._conn.terminate()
        self._conn, self._holding = None, False
