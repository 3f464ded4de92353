"""Writes acknowledged only once every cache has forgotten what they changed.

A worker's cache is told of a change by a notification that reaches it shortly after the commit
(`resolver.store.feed`). Without more, a client told "done" by one instance can still read the old
value (or "not found") from another instance's cache for that short while. So a write waits, after
its commit, until every listening worker has confirmed that it processed the write's notification,
as Chubby's master waits for its clients' caches (Burrows, OSDI 2006, section 2.5):

1. The notification names its origin: this worker's acknowledgement channel and a sequence number.
2. Each listener, once it has invalidated the keys, answers on that channel with its backend pid
   and the sequence numbers it processed.
3. After the commit the writer reads which listeners exist (`pg_stat_activity`: every listener
   takes the application name `MEMBER_NAME` once it listens) and waits for an answer from each.

A listener that cannot answer (its process frozen, its connection half dead) would hold writes up
for ever, so the wait is bounded by `wait` seconds, and each listener trusts its cache only under
a lease: it pings itself through the notification queue every half second (every quarter of its
lease when that is shorter), and a ping sent at `s` that came back lets it serve cached entries until `s + lease` (lease < wait). Notifications are
delivered in commit order, so a ping that came back after the write's commit proves its
notification was processed first: a listener that did not answer within `wait` has stopped
serving its cache by the time the writer gives up waiting on it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# The application name of a change-feed connection that listens (set after LISTEN).
MEMBER_NAME = "resolver-change-feed"
JOINING_NAME = "resolver-change-feed-joining"
ACK_CHANNEL_PREFIX = "resolver_ack_"
PING = "ping"
# Postgres refuses notification payloads of 8000 bytes or more.
MAX_ACK_BYTES = 7900
# A lease is this share of the write's wait, so that it always runs out first.
LEASE_SHARE = 0.8


def ack_channel(pid: int) -> str:
    """The channel on which the worker whose listener has backend `pid` hears acknowledgements."""
    return f"{ACK_CHANNEL_PREFIX}{pid}"


def origin_token(channel: str, sequence: int) -> str:
    return f"{channel} {sequence}"


def parse_origin(token: str) -> tuple[str, int] | None:
    """(the acknowledgement channel, the sequence number) of a notification's origin token."""
    channel, _, sequence = token.partition(" ")
    if not channel.startswith(ACK_CHANNEL_PREFIX) or not sequence.isdigit():
        return None
    return channel, int(sequence)


def ack_payloads(pid: int, sequences: list[int]) -> list[str]:
    """The acknowledgement payloads of listener `pid` for these sequence numbers, each under
    Postgres' payload limit."""
    payloads: list[str] = []
    head = f"{pid} "
    current: list[str] = []
    size = len(head)
    for sequence in sequences:
        text = str(sequence)
        if current and size + len(text) + 1 > MAX_ACK_BYTES:
            payloads.append(head + ",".join(current))
            current, size = [], len(head)
        current.append(text)
        size += len(text) + 1
    if current:
        payloads.append(head + ",".join(current))
    return payloads


def parse_ack(payload: str) -> tuple[int, list[int]] | None:
    """(the listener's pid, the sequence numbers) of an acknowledgement, None when malformed."""
    pid, _, sequences = payload.partition(" ")
    if not pid.isdigit():
        return None
    return int(pid), [int(s) for s in sequences.split(",") if s.isdigit()]


@dataclass
class _Sent:
    answerable: bool  # its notifications named this worker's channel
    acked: set[int] = field(default_factory=set)
    missing: set[int] | None = None
    done: asyncio.Event | None = None


class Coherence:
    """One worker's side of the protocol: the writes it waits on, and its own listener's channel.

    `wait` 0 turns it off: writes are acknowledged at commit and caches are trusted with no lease.
    """

    def __init__(self, wait: float) -> None:
        self.wait = wait
        self.lease = wait * LEASE_SHARE if wait > 0 else float("inf")
        self.channel: str | None = None  # set while this worker's listener listens
        self._sequence = 0
        self._sent: dict[int, _Sent] = {}
        # Running totals, for the metrics.
        self.waits = 0
        self.wait_seconds = 0.0
        self.timeouts = 0

    @property
    def enabled(self) -> bool:
        return self.wait > 0

    def origin(self) -> tuple[str, int] | None:
        """The origin token for a transaction's notifications and its sequence number, or None
        when this worker cannot hear acknowledgements (its listener is down: the write then waits
        out the whole lease of every listener)."""
        if not self.enabled:
            return None
        self._sequence += 1
        sequence = self._sequence
        self._sent[sequence] = _Sent(answerable=self.channel is not None)
        if self.channel is None:
            return "", sequence
        return origin_token(self.channel, sequence), sequence

    def acknowledged(self, pid: int, sequences: list[int]) -> None:
        """Listener `pid` processed the notifications with these sequence numbers."""
        for sequence in sequences:
            sent = self._sent.get(sequence)
            if sent is None:
                continue  # given up on, or never ours (a channel reused after a restart)
            sent.acked.add(pid)
            if sent.missing is not None:
                sent.missing.discard(pid)
                if not sent.missing and sent.done is not None:
                    sent.done.set()

    def forget(self, sequence: int) -> None:
        """The transaction of `sequence` did not commit: nobody waits on it."""
        self._sent.pop(sequence, None)

    async def confirm(self, sequence: int, members: set[int] | None, committed_at: float) -> None:
        """Return once every listener of `members` (None: unknown, so wait the whole bound) has
        acknowledged `sequence`, or `wait` seconds after `committed_at` (time.monotonic)."""
        sent = self._sent.get(sequence)
        if sent is None:
            return
        try:
            if members is not None and (sent.answerable or not members):
                sent.missing = members - sent.acked
                if not sent.missing:
                    return
            sent.done = asyncio.Event()
            left = committed_at + self.wait - time.monotonic()
            if left > 0:
                try:
                    await asyncio.wait_for(sent.done.wait(), left)
                    return
                except TimeoutError:
                    pass
            if sent.missing is None:
                return  # nobody could have answered: waiting out the bound was the plan
            self.timeouts += 1
            log.warning(
                "listeners %s did not acknowledge a write within %.1f s; their leases have run out",
                sorted(sent.missing or ()),
                self.wait,
            )
        finally:
            self._sent.pop(sequence, None)
            self.waits += 1
            self.wait_seconds += max(0.0, time.monotonic() - committed_at)
