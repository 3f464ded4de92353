"""Token buckets per client address and per credential (429 with Retry-After when empty), and the
limits of failed authentications per identity and address, per address and per identity.

Each worker keeps its own buckets and enforces its share of the configured rate (the rate divided
by the number of workers), since the kernel spreads connections evenly across workers.
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import time

from aiohttp import web

from resolver.config import Config, RateLimits
from resolver.core.errors import HandleError, RateLimited
from resolver.core.handles import fold
from resolver.core.permissions import Identity
from resolver.services.authentication import Attempt, parse_basic

_MAX_KEYS = 100_000
# How long an address where an identity authenticated stays exempt from that identity's own
# failure limit (the owner's usual addresses keep working while others fail against it).
KNOWN_ADDRESS_SECONDS = 86_400.0


class TokenBuckets:
    """`rate` tokens per second up to `burst`, one bucket per key."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self._buckets: dict[str, list[float]] = {}

    def wait(self, key: str, now: float) -> float:
        """The seconds until `key` has a token (0: it has one now); nothing is taken."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

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


class TooManyFailures(RateLimited):
    """Too many failed authentications from this address or against this identity."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(retry_after)
        self.message = f"too many failed authentications; retry in {retry_after} s"
        self.zh = f"认证失败次数过多，请 {retry_after} 秒后重试"
        self.args = (self.message,)


class FailureBuckets:
    """`burst` failures per key, refilled at `rate` per second; the least recently failed key is
    forgotten first when there are too many (a forgotten key starts full, as a refilled one is)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = max(1.0, float(burst))
        self._buckets: dict[object, tuple[float, float]] = {}

    def _tokens(self, key: object, now: float) -> float:
        bucket = self._buckets.get(key)
        if bucket is None:
            return self.burst
        return min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)

    def is_full(self, key: object, now: float) -> bool:
        """True when `key` has no failures left to refill."""
        return self._tokens(key, now) >= self.burst

    def wait(self, key: object, now: float) -> float:
        """0 when a failure may be spent, else the seconds until one may."""
        tokens = self._tokens(key, now)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def add(self, key: object, now: float, tokens: float) -> float:
        """Spend (negative) or give back (positive) tokens of `key`; the tokens it had before less
        those it has now (an empty bucket has nothing more to spend)."""
        before = self._tokens(key, now)
        left = max(0.0, min(self.burst, before + tokens))
        self._buckets.pop(key, None)
        if left < self.burst:
            self._buckets[key] = (left, now)  # most recently failed last
            if len(self._buckets) > _MAX_KEYS:
                del self._buckets[next(iter(self._buckets))]
        return before - left


class _Attempt:
    """One admitted attempt: the tokens it took, given back if it succeeds."""

    def __init__(
        self,
        throttle: AddressThrottle,
        identity: str | None,
        taken: list[tuple[FailureBuckets, object, float]],
    ) -> None:
        self._throttle = throttle
        self._identity = identity
        self._taken = taken

    def succeeded(self) -> None:
        now = time.monotonic()
        for buckets, key, tokens in self._taken:
            buckets.add(key, now, tokens)
        self._taken = []
        if self._identity is not None:
            self._throttle.remember(self._identity)


class FailedAuthentications:
    """The failed-authentication limits of one worker; a rate of 0 switches a limit off.

    An attempt to prove an identity takes a token from three buckets before its hash is computed,
    and gets it back when it succeeds: (identity, address), strict, so that one client guesses
    slowly; the address, so that one client cannot spray many identities; the identity, looser,
    so that many addresses together guess slowly too. The identity's own bucket, once empty, holds
    back only the addresses that have failed against that identity recently (its owner, who has
    not, still gets its attempt), and none where the identity authenticated in the last day: failures
    from elsewhere cannot lock its owner out, and a spread attack gets one guess per address.
    """

    def __init__(self, limits: RateLimits, workers: int) -> None:
        share = max(1, workers)

        def make(rate: float, burst: int) -> FailureBuckets | None:
            return FailureBuckets(rate / share, burst) if rate > 0 else None

        self.pair = make(
            limits.failed_auth_per_identity_address, limits.failed_auth_per_identity_address_burst
        )
        self.address = make(limits.failed_auth_per_address, limits.failed_auth_per_address_burst)
        self.identity = make(limits.failed_auth_per_identity, limits.failed_auth_per_identity_burst)
        self._known: dict[tuple[str, str], float] = {}

    def at(self, address: str) -> AddressThrottle:
        """The throttle of a client address."""
        return AddressThrottle(self, address)

    def remember(self, identity: str, address: str) -> None:
        """`identity` authenticated from `address`."""
        self._known.pop((identity, address), None)
        self._known[(identity, address)] = time.monotonic()
        if len(self._known) > _MAX_KEYS:
            del self._known[next(iter(self._known))]

    def is_known(self, identity: str, address: str, now: float) -> bool:
        """True when `identity` authenticated from `address` recently."""
        seen = self._known.get((identity, address))
        return seen is not None and now - seen < KNOWN_ADDRESS_SECONDS

    def buckets(
        self, identity: str | None, address: str, now: float
    ) -> list[tuple[FailureBuckets, object, bool]]:
        """The buckets a failure to prove `identity` (None: no identity named) from `address` counts
        in, each with whether it must have a token left for the attempt to be made."""
        chosen: list[tuple[FailureBuckets, object, bool]] = []
        if self.address is not None:
            chosen.append((self.address, address, True))
        if identity is not None:
            pair_key = (identity, address)
            failed_here = False
            if self.pair is not None:
                chosen.append((self.pair, pair_key, True))
                failed_here = not self.pair.is_full(pair_key, now)
            if self.identity is not None and not self.is_known(identity, address, now):
                chosen.append((self.identity, identity, failed_here))
        return chosen


def client_network(address: str) -> str:
    """What the failure limits count a client address as: an IPv4 address as it is, an IPv6
    address by its /64 (one subscriber holds a whole /64, and could vary the rest at will)."""
    if ":" not in address:
        return address
    try:
        ip = ipaddress.IPv6Address(address.partition("%")[0])
    except ValueError:
        return address
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((ip, 64), strict=False))


class AddressThrottle:
    """The failed-authentication limits as one client address meets them (an `auth.Throttle`)."""

    def __init__(self, limiter: FailedAuthentications, remote: str) -> None:
        self.limiter = limiter
        self._remote = remote
        self._address: str | None = None

    @property
    def address(self) -> str:
        """The client's network, worked out when first needed (most requests never need it)."""
        if self._address is None:
            self._address = client_network(self._remote)
        return self._address

    def _buckets(self, identity: str | None, now: float) -> list[tuple[FailureBuckets, object]]:
        chosen = self.limiter.buckets(identity, self.address, now)
        wait = max((buckets.wait(key, now) for buckets, key, enforced in chosen if enforced), default=0.0)
        if wait:
            raise TooManyFailures(max(1, math.ceil(wait)))
        return [(buckets, key) for buckets, key, _ in chosen]

    def check(self, identity: str | None) -> None:
        self._buckets(identity, time.monotonic())

    def admit(self, identity: str | None) -> Attempt:
        now = time.monotonic()
        taken = [(buckets, key, buckets.add(key, now, -1.0)) for buckets, key in self._buckets(identity, now)]
        return _Attempt(self, identity, taken)

    def failed(self, identity: str | None) -> None:
        self.admit(identity)

    def remember(self, identity: str) -> None:
        self.limiter.remember(identity, self.address)


def credential_key(header: str) -> str:
    """The credential an Authorization header names, in one form however it is spelt (what the
    per-credential bucket is keyed by): a bearer token whatever the scheme's case and the spaces,
    or bare; the Basic user percent-decoded, a Handle identity by its case-folded handle (every
    key of one handle shares a bucket: index 0 means any of them), each with a digest of the
    password: the bucket is the credential's, not the name's, so that a stranger naming someone
    else's identity with guesses spends his own buckets and the failed-authentication limits,
    never the owner's budget. A header that does not parse keys as itself, stripped (it fails
    authentication, which has limits of its own)."""
    text = header.strip()
    scheme, _, rest = text.partition(" ")
    folded = scheme.lower()
    if folded == "basic":
        try:
            user, password = parse_basic(text)
        except HandleError:
            return text
        secret = hashlib.sha256(password.encode("utf-8", "surrogatepass")).hexdigest()[:32]
        if ":" in user or "/" in user:
            head, colon, handle = user.partition(":")
            return f"handle {fold(handle if colon and head.isascii() and head.isdigit() else user)} {secret}"
        return f"user {user} {secret}"
    if folded == "bearer" and rest.strip():
        return "bearer " + rest.strip()
    if text and " " not in text:
        return "bearer " + text  # a bare token, which the enterprise API accepts
    return text


class RateLimiter:
    """The node's limits; a rate of 0 switches a limit off."""

    def __init__(self, config: Config) -> None:
        share = max(1, config.workers)
        limits = config.rate
        self._address = self._make(limits.per_address / share, limits.per_address_burst)
        self._credential = self._make(limits.per_credential / share, limits.per_credential_burst)
        self._resolve = self._make(limits.resolve_per_address / share, limits.resolve_per_address_burst)
        self._certified = self._make(limits.certified_per_address / share, limits.certified_per_address_burst)
        self.failed_auth = FailedAuthentications(limits, config.workers)

    def throttle(self, request: web.Request) -> AddressThrottle:
        """The failed-authentication limits of the request's client address."""
        return self.failed_auth.at(request.remote or "")

    @staticmethod
    def _make(rate: float, burst: int) -> TokenBuckets | None:
        return TokenBuckets(rate, burst) if rate > 0 else None

    @property
    def limits_resolutions(self) -> bool:
        """Whether resolutions are limited per address (by default they are not)."""
        return self._resolve is not None

    def check_resolution(self, address: str) -> None:
        """The resolution limit for a client address (the native protocol's requests)."""
        if self._resolve is not None:
            wait = self._resolve.take(client_network(address), time.monotonic())
            if wait:
                raise RateLimited(max(1, math.ceil(wait)))

    def check_certified(self, address: str) -> None:
        """The limit on signed native answers for a client address (RateLimited past it)."""
        if self._certified is not None:
            wait = self._certified.take(client_network(address), time.monotonic())
            if wait:
                raise RateLimited(max(1, math.ceil(wait)))

    def check_write(self, address: str) -> None:
        """The per-address limit of the HTTP APIs, for a native admin request (RateLimited)."""
        if self._address is not None:
            wait = self._address.take(client_network(address), time.monotonic())
            if wait:
                raise RateLimited(max(1, math.ceil(wait)))

    def check_identity(self, identity: Identity) -> None:
        """The per-credential limit for a write by an identity a challenge answer proved (the
        native protocol's administration): one bucket per identity handle, as every key of one
        handle shares one for `Authorization` headers."""
        if self._credential is not None:
            wait = self._credential.take(f"proven {identity.key}", time.monotonic())
            if wait:
                raise RateLimited(max(1, math.ceil(wait)))

    def check(self, request: web.Request, *, resolution: bool = False) -> None:
        """Raise 429 when the caller's address or credential has no token left."""
        if resolution and self._resolve is None:
            return  # the default: resolutions pay nothing
        now = time.monotonic()
        address = client_network(request.remote or "")
        if resolution:
            wait = self._resolve.take(address, now) if self._resolve else 0.0
        else:
            wait = self._address.take(address, now) if self._address else 0.0
            credential = request.headers.get("Authorization")
            if credential and self._credential and not wait:
                wait = self._credential.take(credential_key(credential), now)
        if wait:
            raise RateLimited(max(1, math.ceil(wait)))
