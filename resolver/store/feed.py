"""Keeps a worker's cache coherent with every other worker and instance via LISTEN/NOTIFY.

Every write transaction notifies the changed keys on commit. Each worker holds one listening
connection; while it is down the cache is not trusted (lookups go to the database), and once it is
back the cache is flushed before it is trusted again, so no change can be missed in between.
The same holds for the enterprise users' token states (`resolver.services.accounts.TokenStates`), whose
changes (password, disabled, deleted, tokens revoked or logged out) come as `user:<id>` lines.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import asyncpg

from resolver.cache import Lookup
from resolver.store.coherence import (
    JOINING_NAME,
    MEMBER_NAME,
    PING,
    Coherence,
    ack_channel,
    ack_payloads,
    parse_ack,
    parse_origin,
)
from resolver.store.connections import connect
from resolver.store.notifications import CHANNEL, parse_payload, payload_origin, split_users
from resolver.store.queries import Q

if TYPE_CHECKING:
    from resolver.services.accounts import TokenStates

log = logging.getLogger(__name__)

PING_INTERVAL = 0.5
PING_TIMEOUT = 1.0


async def follow_changes(
    dsn: str,
    lookup: Lookup,
    users: TokenStates | None = None,
    coherence: Coherence | None = None,
    *,
    max_backoff: float = 2.0,
) -> None:
    """Run until cancelled: listen for changes and invalidate the cache entries (and token states
    of `users`) they name; acknowledge them to their writers and hear this worker's own
    acknowledgements for `coherence` (`resolver.store.coherence`)."""
    cache = lookup.cache
    coherence = coherence or Coherence(0)
    backoff = 0.1
    acks: dict[str, list[int]] = {}  # acknowledgement channel -> sequence numbers processed
    pings: dict[str, float] = {}  # ping payload -> when it was sent
    wake = asyncio.Event()

    def trust(trusted: bool) -> None:
        cache.trust.up = trusted
        if users is not None:
            users.trust.up = trusted

    def lease(until: float) -> None:
        cache.trust.until = until
        if users is not None:
            users.trust.until = until

    def on_change(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        sent_at, lines = parse_payload(text)
        keys, user_ids = split_users(lines)
        if user_ids and users is not None:
            users.invalidate(user_ids)
        lookup.invalidate(keys)
        if sent_at is not None and len(lookup.invalidation_delays) < 100_000:
            lookup.invalidation_delays.append(max(0.0, time.time() - sent_at))
        origin = parse_origin(payload_origin(text))
        if origin is not None:
            acks.setdefault(origin[0], []).append(origin[1])
            wake.set()

    def on_ack(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        text = str(payload)
        if text.startswith(PING):
            sent = pings.pop(text, None)
            if sent is not None:  # every notification committed before `sent` is processed
                lease(sent + coherence.lease)
            return
        parsed = parse_ack(text)
        if parsed is not None:
            coherence.acknowledged(*parsed)

    while True:
        conn: asyncpg.Connection | None = None
        lost = asyncio.Event()
        acks.clear()
        pings.clear()
        try:
            joined = time.monotonic()
            conn = await connect(dsn, timeout=PING_TIMEOUT * 3, name=JOINING_NAME)
            conn.add_termination_listener(lambda _c, lost=lost: lost.set())
            own = ack_channel(conn.get_server_pid())
            await conn.add_listener(CHANNEL, on_change)
            await conn.add_listener(own, on_ack)
            # Listening from here on: whatever changed before is covered by the flush. Writers
            # count this listener from now on (and wait for its acknowledgements).
            await conn.execute(Q["set_application_name"], MEMBER_NAME, timeout=PING_TIMEOUT * 3)
            cache.clear()
            if users is not None:
                users.clear()
            lease(joined + coherence.lease)  # nothing cached here was read before `joined`
            coherence.channel = own
            trust(True)
            if backoff > 0.1:
                log.info("change feed restored; cache flushed")
            backoff = 0.1
            next_ping, serial = 0.0, 0
            # several pings in every lease: with a lease shorter than PING_INTERVAL (a small
            # --coherence-wait) the lease ran out between two pings and the cache stopped trusting
            # itself with the feed healthy
            interval = min(PING_INTERVAL, coherence.lease / 4)
            while not lost.is_set():
                now = time.monotonic()
                if acks:
                    channels, payloads = [], []
                    for channel, sequences in acks.items():
                        for payload in ack_payloads(conn.get_server_pid(), sequences):
                            channels.append(channel)
                            payloads.append(payload)
                    acks.clear()
                    await conn.execute(Q["notify_each"], channels, payloads, timeout=PING_TIMEOUT)
                if pings and now - min(pings.values()) > PING_TIMEOUT * 2:
                    raise TimeoutError("its own ping did not come back")
                if now >= next_ping:
                    serial += 1
                    token = f"{PING} {serial}"
                    pings[token] = now
                    await conn.execute(Q["notify_many"], own, [token], timeout=PING_TIMEOUT)
                    next_ping = now + interval
                wake.clear()
                if acks:
                    continue
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(_either(wake, lost), max(0.0, next_ping - time.monotonic()))
        except asyncio.CancelledError:
            coherence.channel = None
            trust(False)
            if conn is not None:
                conn.terminate()
            raise
        except Exception as exc:  # any failure of the feed means: stop trusting, reconnect
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        else:
            reason = "connection closed"
        coherence.channel = None
        if cache.trusted:
            log.warning("change feed lost (%s); cache not trusted until it is back", reason)
        trust(False)
        if conn is not None:
            conn.terminate()
        await asyncio.sleep(backoff)
        backoff = min(max_backoff, backoff * 2)


@contextlib.asynccontextmanager
async def acknowledgements(dsn: str | None, coherence: Coherence) -> AsyncIterator[None]:
    """Hear this process's acknowledgements on a connection of its own, for a writer without a
    change feed (`resolver import`). Without one (no `dsn`, or it fails), its writes wait the
    whole bound instead: still sound, only slower."""
    if not coherence.enabled or dsn is None:
        yield
        return
    try:
        conn = await connect(dsn, timeout=PING_TIMEOUT * 3, name="resolver-acknowledgements")
    except Exception as exc:  # the import goes on; its chunks wait the whole bound
        log.warning(
            "no connection to hear acknowledgements (%s); each chunk waits %.1f s", exc, coherence.wait
        )
        yield
        return

    def on_ack(_conn: Any, _pid: int, _channel: str, payload: object) -> None:
        parsed = parse_ack(str(payload))
        if parsed is not None:
            coherence.acknowledged(*parsed)

    channel = ack_channel(conn.get_server_pid())
    try:
        await conn.add_listener(channel, on_ack)
        coherence.channel = channel
        yield
    finally:
        coherence.channel = None
        conn.terminate()


async def _either(first: asyncio.Event, second: asyncio.Event) -> None:
    """Return when either event is set."""
    waits = [asyncio.ensure_future(first.wait()), asyncio.ensure_future(second.wait())]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiting in waits:
            waiting.cancel()
