"""Token buckets per client address and per credential (429 with Retry-After when empty).

Each worker keeps its own buckets and enforces its share of the configured rate (the rate divided
by the number of workers), since the kernel spreads connections evenly across workers.
"""

from __future__ import annotations

import math
import time

from aiohttp import web

from resolver.config import Config
from resolver.core.errors import RateLimited

_MAX_KEYS = 100_000


class TokenBuckets:
    """`rate` tokens per second up to `burst`, one bucket per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self._buckets: dict[str, list[float]] = {}

    def take(self, key: str, now: float) -> float:
        """0 when a token was taken, else the seconds until one will be there."""
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= _MAX_KEYS:
                self._buckets.clear()
            bucket = self._buckets[key] = [self.burst, now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            bucket[0] = tokens - 1.0
            return 0.0
        bucket[0] = tokens
        return (1.0 - tokens) / self.rate


class RateLimiter:
    """The node's limits; a rate of 0 switches a limit off."""

    def __init__(self, config: Config) -> None:
        share = max(1, config.workers)
        limits = config.rate
        self._address = self._make(limits.per_address / share, limits.per_address_burst)
        self._credential = self._make(limits.per_credential / share, limits.per_credential_burst)
        self._resolve = self._make(limits.resolve_per_address / share, limits.resolve_per_address_burst)

    @staticmethod
    def _make(rate: float, burst: int) -> TokenBuckets | None:
        return TokenBuckets(rate, burst) if rate > 0 else None

    def check_resolution(self, address: str) -> None:
        """The resolution limit for a client address (the native protocol's requests)."""
        if self._resolve is not None:
            wait = self._resolve.take(address, time.monotonic())
            if wait:
                raise RateLimited(max(1, math.ceil(wait)))

    def check(self, request: web.Request, *, resolution: bool = False) -> None:
        """Raise 429 when the caller's address or credential has no token left."""
        if resolution and self._resolve is None:
            return  # the default: resolutions pay nothing
        now = time.monotonic()
        address = request.remote or ""
        if resolution:
            wait = self._resolve.take(address, now) if self._resolve else 0.0
        else:
            wait = self._address.take(address, now) if self._address else 0.0
            credential = request.headers.get("Authorization")
            if credential and self._credential and not wait:
                wait = self._credential.take(credential, now)
        if wait:
            raise RateLimited(max(1, math.ceil(wait)))
