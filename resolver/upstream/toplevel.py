"""Docking with the national top-level node: prefix records and daily statistics through an outbox.

Every message is written to the `outbox` table in the transaction of the change that causes it, so
a change and its message commit or vanish together. One deliverer per database (whichever worker
of whichever instance holds an advisory lock) sends them: the oldest undelivered message of each
lane first (a lane is one prefix, or the statistics), retried with exponential backoff, each with
a message id that the receiving side uses to ignore repeats.

The national node's real interfaces are not public. `Upstream` is the interface the node needs;
`HttpUpstream` speaks the JSON protocol that `deploy/toplevel_simulator.py` (a simulator, clearly
named as one) implements. A real connector replaces `HttpUpstream` behind the same interface.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any, Protocol

import aiohttp
import orjson

from resolver.config import Config
from resolver.core.handles import PREFIX_NA
from resolver.services.statistics import today
from resolver.store import outbox
from resolver.store import statistics as counts
from resolver.store.connections import Connection
from resolver.upstream.site import pubkey_values, site_value

log = logging.getLogger(__name__)

PREFIX_KIND = "prefix"
STATISTICS_KIND = "statistics"
STATISTICS_LANE = "statistics"
# Statistics of a day are queued this long after it closed, when every worker has flushed its counts.
DAY_CLOSE_GRACE = timedelta(seconds=30)
MAX_BACKOFF = 300.0
# What is read of the answer to a message (a refusal's text goes to the outbox's last error).
ERROR_TEXT_BYTES = 4096


class UpstreamError(Exception):
    """A message was not accepted (it stays in the outbox and is retried), or a prefix record
    could not be read."""


class TooLarge(Exception):
    """An answer is larger than the reader allows."""


async def read_limited(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body of `resp`, at most `limit` bytes: a larger one (announced or not) raises TooLarge
    as soon as that is known, and its connection is closed rather than read to the end."""
    if resp.content_length is not None and resp.content_length > limit:
        resp.close()
        raise TooLarge
    body = bytearray()
    while chunk := await resp.content.read(min(65536, limit + 1 - len(body))):
        body += chunk
        if len(body) > limit:
            resp.close()
            raise TooLarge
    return bytes(body)


class Upstream(Protocol):
    """What the node needs from the top-level node."""

    async def deliver(self, kind: str, message: dict[str, Any]) -> None:
        """Hand one message over; raises UpstreamError when it was not accepted."""

    async def prefix_record(self, prefix: str) -> dict[str, Any] | None:
        """The Handle record `0.NA/<prefix>` the top-level node holds, or None when it has none."""

    async def close(self) -> None: ...


class HttpUpstream:
    """The top-level node over HTTP: messages as JSON, prefix records through its Handle API."""

    def __init__(
        self,
        url: str,
        user: str | None,
        secret: str | None,
        timeout: float = 5.0,
        max_record_bytes: int = 1_048_576,
        user_agent: str = "resolver",
    ) -> None:
        self.url = url.rstrip("/")
        self.max_record_bytes = max_record_bytes
        # neutral, as --server-header: not aiohttp's, which names the library and Python versions
        headers = {"Accept": "application/json", "User-Agent": user_agent or "resolver"}
        if user:
            token = base64.b64encode(f"{user}:{secret or ''}".encode()).decode()
            headers["Authorization"] = f"Basic {token}"
        self._headers = headers
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={**self._headers, "Accept-Encoding": "identity"},
                timeout=self._timeout,
                json_serialize=lambda o: orjson.dumps(o).decode(),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
        return self._session

    async def deliver(self, kind: str, message: dict[str, Any]) -> None:
        url = f"{self.url}/upstream/v1/messages"
        try:
            async with self._client().post(url, json=message, allow_redirects=False) as resp:
                text = (await resp.content.read(ERROR_TEXT_BYTES)).decode("utf-8", "replace")
                if resp.status // 100 != 2:
                    raise UpstreamError(f"HTTP {resp.status}: {text[:200]}")
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamError(f"{type(exc).__name__}: {exc}") from None

    async def prefix_record(self, prefix: str) -> dict[str, Any] | None:
        """The record, read as any outside answer is: no redirect, no content coding, at most
        `max_record_bytes`, a JSON object (what its values say is checked by the caller)."""
        url = f"{self.url}/api/handles/{PREFIX_NA.upper()}/{prefix}"
        async with self._client().get(url, allow_redirects=False) as resp:
            if resp.status == 404:
                return None
            if resp.status != 200:
                raise UpstreamError(f"HTTP {resp.status}")
            if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
                raise UpstreamError("the record came in a content coding")
            try:
                body = orjson.loads(await read_limited(resp, self.max_record_bytes))
            except TooLarge:
                raise UpstreamError(f"the record is larger than {self.max_record_bytes} bytes") from None
            except orjson.JSONDecodeError:
                raise UpstreamError("the record is not JSON") from None
            if not isinstance(body, dict):
                raise UpstreamError("the record is not a JSON object")
            return body

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def make_upstream(config: Config) -> Upstream | None:
    if not config.upstream_url:
        return None
    return HttpUpstream(
        config.upstream_url,
        config.upstream_user,
        config.upstream_secret,
        max_record_bytes=config.recursive_max_bytes,
        user_agent=config.server_header,
    )


# -- what the messages say ---------------------------------------------------------------------


def prefix_message(config: Config, prefix: str, enabled: bool) -> dict[str, Any]:
    """The prefix record for `0.NA/<prefix>` (or its withdrawal) as the top-level node receives it."""
    message: dict[str, Any] = {
        "type": PREFIX_KIND,
        "node": config.node_prefix,
        "prefix": prefix,
        "op": "upsert" if enabled else "delete",
    }
    if enabled:
        from resolver.keys import public_octets

        current, published = public_octets(config.keys_path)
        values = [site_value(config, current), *pubkey_values(published)]
        message["record"] = {"handle": f"0.NA/{prefix}", "values": values}
    return message


def statistics_message(config: Config, day: date, rows: Sequence[counts.PrefixCounts]) -> dict[str, Any]:
    """A closed day's registrations and resolutions, per prefix and for the node."""
    prefixes = [
        {
            "prefix": row.prefix,
            "registrations": row.registrations,
            "resolutions": row.resolutions,
            "notFound": row.not_found,
        }
        for row in rows
    ]
    return {
        "type": STATISTICS_KIND,
        "node": config.node_prefix,
        "day": day.isoformat(),
        "prefixes": prefixes,
        "total": {
            "registrations": sum(p["registrations"] for p in prefixes),
            "resolutions": sum(p["resolutions"] for p in prefixes),
            "notFound": sum(p["notFound"] for p in prefixes),
        },
    }


async def enqueue(
    conn: Connection, lane: str, kind: str, body: dict[str, Any], ref: str | None = None
) -> str:
    """Queue a message in the caller's transaction; returns its id."""
    message_id = str(uuid.uuid4())
    body = {"messageId": message_id, **body}
    await outbox.add(conn, message_id, lane, kind, ref, orjson.dumps(body).decode())
    return message_id


async def enqueue_prefix(conn: Connection, config: Config, prefix: str, enabled: bool) -> str:
    return await enqueue(conn, f"prefix:{prefix}", PREFIX_KIND, prefix_message(config, prefix, enabled))


async def queue_closed_days(conn: Connection, config: Config, now: datetime | None = None) -> int:
    """Queue the statistics of every day that closed (within the last week) and is not queued yet."""
    now = now or datetime.now(UTC)
    current = (now - DAY_CLOSE_GRACE).date()
    queued = 0
    async with outbox.transaction(conn):
        for day in await outbox.days_to_report(conn, current):
            body = statistics_message(config, day, await counts.day_counts(conn, day))
            await enqueue(conn, STATISTICS_LANE, STATISTICS_KIND, body, ref=day.isoformat())
            queued += 1
    return queued


async def resync(conn: Connection, config: Config, days: int = 30) -> tuple[int, int]:
    """Queue everything again: the node's own prefix record, every enabled prefix, and the daily
    statistics of the last `days` days (the receiving side replaces what it had)."""
    async with outbox.transaction(conn):
        prefixes = [config.node_prefix, *await outbox.enabled_prefixes(conn)]
        for prefix in prefixes:
            await enqueue_prefix(conn, config, prefix, True)
        reported = 0
        for day in await counts.counted_days(conn, today() - timedelta(days=days)):
            if day >= today():
                continue
            rows = await counts.day_counts(conn, day)
            await enqueue(conn, STATISTICS_LANE, STATISTICS_KIND, statistics_message(config, day, rows))
            reported += 1
    return len(prefixes), reported


# -- delivery ----------------------------------------------------------------------------------


@dataclass
class OutboxStatus:
    pending: int
    oldest_seconds: float
    delivered: int
    last_delivery: datetime | None
    messages: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "oldestPendingSeconds": round(self.oldest_seconds, 1),
            "delivered": self.delivered,
            "lastDelivery": self.last_delivery.isoformat() if self.last_delivery else None,
            "pendingMessages": self.messages,
        }


async def status(conn: Connection, limit: int = 20) -> OutboxStatus:
    """The outbox in numbers, and its first `limit` undelivered messages."""
    totals = await outbox.totals(conn)
    messages = [
        {
            "id": m.id,
            "messageId": m.message_id,
            "lane": m.lane,
            "kind": m.kind,
            "attempts": m.attempts,
            "lastError": m.last_error,
            "queuedAt": m.queued_at.isoformat(),
            "nextAttempt": m.next_attempt.isoformat(),
        }
        for m in await outbox.pending(conn, limit)
    ]
    return OutboxStatus(
        totals.pending, totals.oldest_seconds, totals.delivered, totals.last_delivery, messages
    )


def backoff(attempts: int) -> float:
    """Seconds before the next try after `attempts` failed ones: 1, 2, 4 ... up to 5 minutes."""
    return float(min(MAX_BACKOFF, 2 ** max(0, attempts - 1)))


async def deliver_due(conn: Connection, upstream: Upstream, batch: int = 100) -> tuple[int, int]:
    """Send the messages whose time has come, oldest first within each lane; (delivered, failed).

    A failing message holds back the later messages of its lane, and only those.
    """
    delivered = failed = 0
    for message in await outbox.due(conn, batch):
        attempt = message.attempts + 1
        try:
            await upstream.deliver(message.kind, orjson.loads(message.body))
        except UpstreamError as exc:
            failed += 1
            await outbox.mark_failed(conn, message.id, str(exc)[:500], backoff(attempt))
            log.warning("upstream: message %s not delivered (attempt %d): %s", message.id, attempt, exc)
        else:
            delivered += 1
            await outbox.mark_delivered(conn, message.id)
    return delivered, failed


async def run_deliverer(
    config: Config, upstream: Upstream, on_status: Any = None, interval: float = 1.0
) -> None:
    """Deliver the outbox for as long as this process lives, if it holds the delivery lock.

    Every worker of every instance runs this; the one whose connection holds the advisory lock
    delivers, so messages leave in order. When that process dies its lock goes with its
    connection and another worker takes over within `interval` seconds.
    """
    assert config.dsn is not None
    lock = outbox.DeliveryLock(config.dsn)
    checked: date | None = None  # the last closed day whose statistics were looked for
    while True:
        try:
            conn = await lock.take()
            if conn is not None:
                closed = (datetime.now(UTC) - DAY_CLOSE_GRACE).date()
                if closed != checked:  # once a day (and once on taking the lock), not every round
                    await queue_closed_days(conn, config)
                    checked = closed
                while True:
                    delivered, failed = await deliver_due(conn, upstream)
                    if not delivered or failed:
                        break
                if on_status is not None:
                    on_status(await status(conn, limit=0))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database or the network: try again next round
            log.warning("upstream deliverer: %s", exc)
            lock.drop()
        try:
            await asyncio.sleep(interval)
        except asyncio.CancelledError:
            lock.close()
            raise
