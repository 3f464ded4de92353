"""Each worker's hot cache of resolutions, and the coalescing loader that fills it.

The cache holds, per handle, the stored record and the encoded bytes of its public answer, so a
hit costs a dict lookup and a bytes concatenation. Misses for one handle share one lookup;
misses for many handles that arrive together share one `= any($1)` query.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import orjson

from resolver.config import CacheSettings
from resolver.core.errors import Unavailable
from resolver.core.values import is_public, ttl_seconds
from resolver.store.rows import Record

log = logging.getLogger(__name__)

# A rough per-entry overhead in bytes (dict slot, key, entry object, record), for the byte bound.
_ENTRY_OVERHEAD = 400


class Entry:
    """What the cache knows of one handle; `record` is None for a handle that does not exist."""

    __slots__ = ("expires", "native", "page", "page_en", "record", "size", "tail")

    def __init__(self, record: Record | None, expires: float) -> None:
        self.record = record
        self.expires = expires
        self.native: bytes | None = None  # the public values in the native protocol's form, once asked
        self.page: bytes | None = None  # the rendered scan page, once asked
        self.page_en: bytes | None = None  # the same in English (?lang=en), once asked
        if record is None:
            self.tail = b""
            self.size = _ENTRY_OVERHEAD
        else:
            public = [v for v in record.values if is_public(v)]
            self.tail = b',"values":' + orjson.dumps(public) + b"}"
            self.size = _ENTRY_OVERHEAD + 2 * len(self.tail)


def record_expiry(record: Record, now_wall: float, max_ttl: float, floor: float = 0.0) -> float:
    """Seconds a record may stay cached: its smallest TTL, at least `floor`, capped.

    The TTL tells clients how long they may keep an answer; this cache needs no such bound to stay
    right, since every change invalidates its entries through the change feed. The floor keeps a
    TTL of 0 (or an expiry time in the past) from sending every resolution to the database.
    """
    smallest = max_ttl
    for value in record.values:
        ttl = value.get("ttl", max_ttl)  # every value written here has one; a hand-made row may not
        if type(ttl) is not int:  # an absolute expiry time
            ttl = ttl_seconds(ttl, now_wall)
        if ttl < smallest:
            smallest = ttl
    return float(min(max_ttl, max(floor, smallest)))


class Trust:
    """Whether what a worker keeps may be served without asking the database: while its change
    feed listens (`up`) and its lease runs (`until`, time.monotonic; `resolver.store.coherence`)."""

    __slots__ = ("until", "up")

    def __init__(self) -> None:
        self.up = False
        self.until = math.inf

    def __bool__(self) -> bool:
        return self.up and time.monotonic() < self.until


class ResolutionCache:
    """An LRU of entries bounded by count and bytes, with a separate bound for negative entries."""

    def __init__(self, settings: CacheSettings) -> None:
        self.settings = settings
        self.on_clear: Callable[[], None] | None = None
        self._entries: OrderedDict[str, Entry] = OrderedDict()
        self._negative: OrderedDict[str, Entry] = OrderedDict()
        self._bytes = 0
        # Coherence bookkeeping: a fill that started before an invalidation of its key is dropped.
        self._epoch = 0
        self._invalidated: dict[str, int] = {}
        self._cleared_at = 0
        # Not trusted while the change feed is down or its lease ran out: entries may be stale and
        # are served only as a last resort when the database is unreachable.
        self.trust = Trust()
        # Running totals, for the metrics.
        self.evictions = 0
        self.invalidations = 0

    def __len__(self) -> int:
        return len(self._entries) + len(self._negative)

    @property
    def trusted(self) -> bool:
        return bool(self.trust)

    @trusted.setter
    def trusted(self, value: bool) -> None:
        self.trust.up = value

    @property
    def bytes(self) -> int:
        return self._bytes

    @property
    def epoch(self) -> int:
        return self._epoch

    def get(self, key: str) -> Entry | None:
        """A fresh entry, or None."""
        entry = self._entries.get(key)
        if entry is None:
            entry = self._negative.get(key)
            if entry is None:
                return None
        elif entry.expires >= time.monotonic():
            self._entries.move_to_end(key)
            return entry
        if entry.expires < time.monotonic():
            return None
        return entry

    def get_stale(self, key: str) -> Entry | None:
        """Whatever entry is held for the key, however old (for when the database is down)."""
        return self._entries.get(key) or self._negative.get(key)

    def put(self, key: str, record: Record | None, started_epoch: int) -> Entry:
        """Store the result of a lookup that began at `started_epoch`, unless it may be stale."""
        now = time.monotonic()
        if record is None:
            entry = Entry(None, now + self.settings.negative_ttl)
        else:
            settings = self.settings
            expiry = record_expiry(record, time.time(), settings.max_ttl, settings.ttl_floor)
            entry = Entry(record, now + expiry)
        if (
            not self.trusted
            or self._cleared_at > started_epoch
            or self._invalidated.get(key, -1) > started_epoch
        ):
            return entry
        self._remove(key)
        if record is None:
            self._negative[key] = entry
            while len(self._negative) > self.settings.negative_entries:
                self._negative.popitem(last=False)
                self.evictions += 1
        else:
            self._entries[key] = entry
            self._bytes += entry.size
            while self._entries and (
                len(self._entries) > self.settings.max_entries or self._bytes > self.settings.max_bytes
            ):
                _, old = self._entries.popitem(last=False)
                self._bytes -= old.size
                self.evictions += 1
        return entry

    def _remove(self, key: str) -> None:
        old = self._entries.pop(key, None)
        if old is not None:
            self._bytes -= old.size
        self._negative.pop(key, None)

    def invalidate(self, keys: list[str]) -> None:
        """Forget these handles; lookups already running for them will not be cached."""
        self._epoch += 1
        self.invalidations += len(keys)
        for key in keys:
            self._remove(key)
            self._invalidated[key] = self._epoch

    def clear(self) -> None:
        """Forget everything; lookups already running will not be cached."""
        if self.on_clear is not None:
            self.on_clear()
        self._epoch += 1
        self._cleared_at = self._epoch
        self._entries.clear()
        self._negative.clear()
        self._bytes = 0
        self._invalidated.clear()

    def settle(self) -> None:
        """No lookups are running: the invalidation log can be dropped."""
        self._invalidated.clear()


FetchMany = Callable[[list[str]], Awaitable[dict[str, Record]]]


class Lookup:
    """Resolves handle keys through the cache, coalescing concurrent misses into few queries."""

    def __init__(self, cache: ResolutionCache, fetch_many: FetchMany, max_batches: int, max_keys: int = 1000):
        self.cache = cache
        self._fetch_many = fetch_many
        self._max_batches = max_batches
        self._max_keys = max_keys
        self._inflight: dict[str, list[asyncio.Future[Entry]]] = {}
        self._pending: list[tuple[str, list[asyncio.Future[Entry]]]] = []
        self._active = 0
        self._scheduled = False
        self._tasks: set[asyncio.Task[None]] = set()
        self.batches = 0
        self.keys_fetched = 0
        # Since the last metrics flush: seconds each coalesced query took, and how long change
        # notifications took to arrive.
        self.query_seconds: list[float] = []
        self.invalidation_delays: list[float] = []
        # Told of every change (None: possibly everything), e.g. to read changed handles from the
        # primary while a replica may lag.
        self.on_change: Callable[[list[str] | None], None] | None = None

    async def get(self, key: str, *, stale: bool = True) -> Entry:
        """The entry for a handle: from the cache when it can be trusted, else from the database.

        When the database is unreachable, a stale cached entry still answers, unless `stale` is
        False (authentication: a secret rotated meanwhile must not keep working): then Unavailable.
        """
        cache = self.cache
        if cache.trusted:
            entry = cache.get(key)
            if entry is not None:
                return entry
        try:
            return await self.fetch(key)
        except Unavailable:
            if not stale:
                raise
            kept = cache.get_stale(key)
            if kept is not None:
                return kept
            raise

    async def fetch(self, key: str) -> Entry:
        """The entry read from the database now; concurrent fetches of a key share one read.

        Every waiter has its own future, so one cancelled request never cancels the others.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Entry] = loop.create_future()
        waiters = self._inflight.get(key)
        if waiters is None:
            self._inflight[key] = waiters = [future]
            self._pending.append((key, waiters))
            if not self._scheduled and self._active < self._max_batches:
                self._scheduled = True
                loop.call_soon(self._flush)
        else:
            waiters.append(future)
        return await future

    def invalidate(self, keys: list[str]) -> None:
        """Forget these handles; later lookups of them go to the database afresh."""
        if self.on_change is not None:
            self.on_change(keys)
        self.cache.invalidate(keys)
        for key in keys:
            self._inflight.pop(key, None)

    def _flush(self) -> None:
        self._scheduled = False
        while self._pending and self._active < self._max_batches:
            batch = self._pending[: self._max_keys]
            del self._pending[: self._max_keys]
            self._active += 1
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _release(self, key: str, waiters: list[asyncio.Future[Entry]]) -> None:
        if self._inflight.get(key) is waiters:
            del self._inflight[key]

    async def _run(self, batch: list[tuple[str, list[asyncio.Future[Entry]]]]) -> None:
        started = self.cache.epoch
        keys = [key for key, _ in batch]
        clock = time.perf_counter()
        try:
            records = await self._fetch_many(keys)
        except BaseException as exc:
            for key, waiters in batch:
                self._release(key, waiters)
                for future in waiters:
                    if not future.done():
                        future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.batches += 1
            self.keys_fetched += len(keys)
            if len(self.query_seconds) < 100_000:
                self.query_seconds.append(time.perf_counter() - clock)
            for key, waiters in batch:
                self._release(key, waiters)
                try:
                    entry = self.cache.put(key, records.get(key), started)
                except Exception as exc:  # a record that cannot be encoded fails its own waiters only
                    log.exception("handle %r could not be cached", key)
                    for future in waiters:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for future in waiters:
                    if not future.done():
                        future.set_result(entry)
        finally:
            self._active -= 1
            if self._pending:
                if not self._scheduled:
                    self._scheduled = True
                    asyncio.get_running_loop().call_soon(self._flush)
            elif self._active == 0:
                self.cache.settle()

    async def close(self) -> None:
        """Cancel lookups still running."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
