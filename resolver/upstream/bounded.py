"""What recursion remembers and shares, bounded: a byte-bounded cache with lifetimes, and one
running lookup per key."""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
# Bytes counted for a cache entry on top of what it holds (the key, the entry, the dict slot).
ENTRY_OVERHEAD = 256


class BoundedCache(Generic[T]):
    """Entries with a lifetime, least recently used first, their total size bounded in bytes."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self._entries: OrderedDict[str, tuple[T, float, int]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str, now: float) -> tuple[T] | None:
        """The fresh entry for `key` (a 1-tuple, since None is a value), or None."""
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[1] <= now:
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return (entry[0],)

    def put(self, key: str, value: T, ttl: float, size: int, now: float) -> None:
        if key in self._entries:
            self._drop(key)
        size += ENTRY_OVERHEAD + len(key)
        if size > self.max_bytes:
            return
        self._entries[key] = (value, now + ttl, size)
        self.bytes += size
        while self.bytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def _drop(self, key: str) -> None:
        self.bytes -= self._entries.pop(key)[2]


class SingleFlight(Generic[T]):
    """One running lookup per key, whoever asks; it runs on when the request that started it goes."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    async def run(self, key: str, lookup: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(lookup())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: whoever waits gets it, nobody is warned about it

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
