"""Keeps a worker's cache coherent with every other worker and instance via LISTEN/NOTIFY.

Every write transaction notifies the changed keys on commit. Each worker holds one listening
connection; while it is down the cache is not trusted (lookups go to the database), and once it is
back the cache is flushed before it is trusted again, so no change can be missed in between.
The same holds for the enterprise users' token states (`resolver.services.accounts.TokenStates`), whose
changes (password, disabled, deleted, tokens revoked or logged out) come as `user:<id>` lines.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

import asyncpg

from resolver.cache import Lookup
from resolver.store.connections import connect
from resolver.store.notifications import CHANNEL, parse_payload, split_users

if TYPE_CHECKING:
    from resolver.services.accounts import TokenStates

log = logging.getLogger(__name__)

PING_INTERVAL = 0.5
PING_TIMEOUT = 1.0


async def follow_changes(
    dsn: str, lookup: Lookup, users: TokenStates | None = None, *, max_backoff: float = 2.0
) -> None:
    """Run until cancelled: listen for changes and invalidate the cache entries (and token states
    of `users`) they name."""
    cache = lookup.cache
    backoff = 0.1

    def trust(trusted: bool) -> None:
        cache.trusted = trusted
        if users is not None:
            users.trusted = trusted

    def on_change(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        sent_at, lines = parse_payload(str(payload))
        keys, user_ids = split_users(lines)
        if user_ids and users is not None:
            users.invalidate(user_ids)
        lookup.invalidate(keys)
        if sent_at is not None and len(lookup.invalidation_delays) < 100_000:
            lookup.invalidation_delays.append(max(0.0, time.time() - sent_at))

    while True:
        conn: asyncpg.Connection | None = None
        lost = asyncio.Event()
        try:
            conn = await connect(dsn, timeout=PING_TIMEOUT * 3, name="resolver-change-feed")
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            await conn.add_listener(CHANNEL, on_change)
            # Listening from here on: whatever changed before is covered by the flush.
            cache.clear()
            if users is not None:
                users.clear()
            trust(True)
            if backoff > 0.1:
                log.info("change feed restored; cache flushed")
            backoff = 0.1
            while not lost.is_set():
                try:
                    await asyncio.wait_for(lost.wait(), PING_INTERVAL)
                except TimeoutError:
                    await conn.fetchval("select 1", timeout=PING_TIMEOUT)
        except asyncio.CancelledError:
            trust(False)
            if conn is not None:
                conn.terminate()
            raise
        except Exception as exc:  # any failure of the feed means: stop trusting, reconnect
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            reason = "connection closed"
        if cache.trusted:
            log.warning("change feed lost (%s); cache not trusted until it is back", reason)
        trust(False)
        if conn is not None:
            conn.terminate()
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)
