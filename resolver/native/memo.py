"""Answers to repeated native requests, kept as bytes with only the envelope and the time to patch.

A client asking for the same handle the same way sends the same octets every time, apart from
its session and request ids (envelope) and its message's expiration time. The answer differs from
the last one only in those ids and in its own expiration time: so the first answer (built by
`NativeService.answer_cached` the full way) is kept here under the request's octets without those
three fields, and the next such request is answered by patching them in, with no parsing,
no request object and no encoding. Only answers to requests without a request digest (which
hashes the whole request) are kept, only success answers from the trusted cache, only those that
fit in one UDP packet.

An answer kept here is used only while the cache still holds the very entry it was built from
(`ResolutionCache.get(key) is entry`): a write that changed the handle made the cache drop that
entry (change feed), so the memory of the old answer is never used again and is replaced by the
next full answer. The memory is bounded: as many request shapes as the cache holds entries
(`--cache-max-entries`; an answer kept takes about 300 octets, so some 60 MB per worker at the
default 200,000), the oldest quarter forgotten when full. It is not used at all when a resolution
rate limit is configured (each request must take its token).
"""

from __future__ import annotations

import struct
import time
from itertools import islice
from typing import Any

from resolver.cache import Entry
from resolver.native import protocol as p

_EXPIRES = struct.Struct(">I")
_ZERO = b"\0\0\0\0"
_ANSWER_EXPIRES_IN = 3600  # as protocol.answer


def shape(data: bytes) -> bytes:
    """A request (envelope and message) without its session id, request id, sequence number,
    length and expiration time: equal for every repetition of the same request."""
    return data[0:4] + data[20:36] + data[40:]


class Kept:
    """One remembered answer: the cache key and entry it was built from, and its bytes."""

    __slots__ = ("entry", "envelope_head", "found", "key", "message_head", "message_tail")

    def __init__(self, key: str, entry: Entry, envelope_head: bytes, reply: bytes, found: str) -> None:
        self.key = key
        self.entry = entry
        self.envelope_head = envelope_head  # version, flags, suggested minor of the answer's envelope
        self.message_head = reply[:16]  # opcode, rc, flags, serial, recursion (up to the expiration)
        self.message_tail = reply[20:]  # body length, body, credential
        self.found = found


class AnswerMemo:
    """The answers of one worker's native service (see the module docstring)."""

    __slots__ = ("_cache", "_daily", "_kept", "_metrics", "_routes", "enabled", "limit")

    def __init__(
        self, cache: Any, metrics: Any, daily: Any, routes: dict[str, str], enabled: bool, limit: int
    ) -> None:
        self._cache = cache
        self._metrics = metrics
        self._daily = daily
        self._routes = routes
        self._kept: dict[bytes, Kept] = {}
        self.enabled = enabled
        self.limit = max(1, limit)

    def __len__(self) -> int:
        return len(self._kept)

    def lookup(self, data: bytes) -> Kept | None:
        """What is kept for a request like `data` (a whole request: envelope and message)."""
        if not self.enabled or len(data) < p.ENVELOPE_SIZE + p.HEADER_SIZE:
            return None
        return self._kept.get(shape(data))

    def remember(
        self, data: bytes, envelope: p.Envelope, key: str, entry: Entry, reply: bytes, found: str
    ) -> None:
        """Keep `reply`, the success answer to request `data` built from cache `entry`."""
        if not self.enabled or len(reply) > p.UDP_DATA_SIZE or len(data) < p.ENVELOPE_SIZE + p.HEADER_SIZE:
            return
        kept = self._kept
        if len(kept) >= self.limit:  # forget the oldest quarter (dicts keep insertion order)
            for old in list(islice(kept, max(1, self.limit // 4))):
                del kept[old]
        head = p.envelopes(envelope, b"", 1)[0][:4]
        kept[shape(data)] = Kept(key, entry, head, reply, found)

    def answer(self, kept: Kept, data: bytes, transport: str, budget: int | None = None) -> bytes | None:
        """The answer packet (envelope and message) to `data` from `kept`, counted as a cache
        hit; None when `data` is not a whole single-packet request or `kept` is out of date."""
        started = time.perf_counter()
        if data[12:16] != _ZERO or int.from_bytes(data[16:20], "big") != len(data) - p.ENVELOPE_SIZE:
            return None  # a later packet of a message, or one cut short: the full path says why
        cache = self._cache
        if not cache.trusted:
            return None
        if cache.get(kept.key) is not kept.entry:
            self._kept.pop(shape(data), None)
            return None
        message = kept.message_head + _EXPIRES.pack(int(time.time()) + _ANSWER_EXPIRES_IN) + kept.message_tail
        if budget is not None and p.udp_size(len(message)) > budget:
            return None  # the full path answers USE_TCP
        metrics = self._metrics
        metrics.outcomes["hit"] += 1
        self._daily.resolved(kept.found)
        packet = kept.envelope_head + data[4:12] + _ZERO + _EXPIRES.pack(len(message)) + message
        metrics.request(self._routes[transport], "RESOLVE", 200, time.perf_counter() - started)
        return packet
