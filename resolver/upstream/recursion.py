"""Recursive resolution: answering handles of other nodes (off unless `--recursive`).

Two hops:
1. the top-level node: the prefix record `0.NA/<prefix>` (the handle's prefix, then its parents;
   at most `--recursive-max-depth` components of it) and the HTTP query interface its HS_SITE
   value names;
2. that interface: `GET /api/handles/<handle>`, the path built from the parsed handle
   (resolver/core/remote.py), nothing of the client's query passed on.

Recursion is a client of HTTP JSON answers from addresses the operator allows, so that a public
node cannot be turned against the networks behind it or its own memory:
- only IP literals in the public unicast ranges, plus `--recursive-allow` networks; no redirects;
  no content codings; at most `--recursive-max-bytes` read (stopping there), within
  `--recursive-timeout` per hop (the wait for a slot included), at most `--recursive-concurrency`
  requests at once per worker and QUEUED_PER_SLOT times as many waiting (past that, 503 at once);
- an answer must have the Handle JSON shape and values valid as this node validates its own; it
  is rendered again from what was checked (type and index filters are applied here);
- every outcome is cached, failures and unknown prefixes for `--recursive-negative-ttl`, the rest
  by TTL with a floor of `--recursive-ttl-floor`, in caches bounded in bytes
  (`--recursive-cache-bytes`); concurrent requests share one lookup per prefix and per handle,
  and a target that could not be reached is not knocked at again while that is remembered;
- a failure says which hop failed, never the internal address or what a non-HTTP service said:
  refused, silent and non-HTTP ports look alike.

Requests carry a hop header; a node never recurses for a request that arrived through
recursion, so two misconfigured nodes cannot bounce a request forever.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiohttp
import orjson
from yarl import URL

from resolver.config import Config
from resolver.core.errors import RC, HandleError
from resolver.core.handles import HandleName
from resolver.core.remote import (
    AddressPolicy,
    Interface,
    InvalidAnswer,
    Site,
    handle_path,
    parse_answer,
    record_ttl,
    site_of,
    values_ttl,
)
from resolver.core.values import StoredValue, select
from resolver.upstream.bounded import BoundedCache, SingleFlight
from resolver.upstream.toplevel import TooLarge, Upstream, UpstreamError, read_limited

HOP_HEADER = "X-Resolver-Hop"
MAX_PREFIX_TTL = 3600.0
# Of --recursive-cache-bytes, the prefix sites get a sixteenth, the unreachable targets another,
# and the answers the rest.
SITE_SHARE = 16
MAX_HEADERS = 64
# Lookups that may wait for a slot, per slot of --recursive-concurrency, in each worker; past that a
# request is refused at once rather than queued behind targets that are slow to answer.
QUEUED_PER_SLOT = 4
UNREACHABLE = "could not be reached or gave no HTTP answer in time"


class HopFailed(HandleError):
    """A hop of a recursive resolution did not answer: 502 (or 504 when the top-level node timed out)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(RC.ERROR, message)
        self.status = 504 if timeout else 502


class Busy(HandleError):
    """Too many recursive lookups wait for a slot in this worker, or one waited past its deadline:
    503, not remembered (the next request may find a slot)."""

    status = 503

    def __init__(self, message: str) -> None:
        super().__init__(RC.SERVER_TOO_BUSY, f"recursive resolution: {message}", retry_after=1)


@dataclass(frozen=True, slots=True)
class Refusal:
    """A remembered error, raised again as a new exception each time it is served."""

    rc: RC
    message: str
    status: int | None

    @classmethod
    def of(cls, exc: HandleError) -> Refusal:
        return cls(exc.rc, exc.message, exc.status)

    def error(self) -> HandleError:
        if self.status in (502, 504):
            return HopFailed(self.message, timeout=self.status == 504)
        return HandleError(self.rc, self.message)


@dataclass(frozen=True, slots=True)
class Found:
    """The site that answers for a prefix, found in the record of `prefix` (it or a parent)."""

    prefix: str
    site: Site


# What the top-level node said about one candidate prefix: a site, no site (None), or a failure.
SiteAnswer = Found | Refusal | None
# What a node said about a handle: its values as JSON, or a failure (not found included).
HandleAnswer = bytes | Refusal


def render(sent: str, values_json: bytes, indexes: frozenset[int], types: Sequence[str]) -> bytes:
    """The Handle API answer for a resolved handle, echoing it as the client sent it; with type or
    index filters, the matching values (responseCode 200 when there are none), as for local ones."""
    if not indexes and not types:
        return b'{"responseCode":1,"handle":' + orjson.dumps(sent) + b',"values":' + values_json + b"}"
    values = select(orjson.loads(values_json), indexes, types)
    rc = RC.SUCCESS if values else RC.VALUES_NOT_FOUND
    return orjson.dumps({"responseCode": int(rc), "handle": sent, "values": values})


class Progress:
    """How far one request got: whether a connection to the target was made (or reused)."""

    __slots__ = ("connected",)

    def __init__(self) -> None:
        self.connected = False


async def _connected(session: aiohttp.ClientSession, context: object, params: object) -> None:
    progress = getattr(context, "trace_request_ctx", None)
    if isinstance(progress, Progress):
        progress.connected = True


def _tracing() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()
    trace.on_connection_create_end.append(_connected)
    trace.on_connection_reuseconn.append(_connected)
    return trace


class RecursiveResolver:
    def __init__(self, config: Config, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream
        self.policy = AddressPolicy(config.recursive_allow)
        self._limit = asyncio.Semaphore(config.recursive_concurrency)
        self._queued = 0
        self._max_queued = QUEUED_PER_SLOT * config.recursive_concurrency
        share = config.recursive_cache_bytes // SITE_SHARE
        self._answers: BoundedCache[HandleAnswer] = BoundedCache(config.recursive_cache_bytes - 2 * share)
        self._sites: BoundedCache[SiteAnswer] = BoundedCache(share)
        self._unreachable: BoundedCache[bool] = BoundedCache(share)
        self._handle_flights: SingleFlight[HandleAnswer] = SingleFlight()
        self._site_flights: SingleFlight[SiteAnswer] = SingleFlight()
        self._timeout = aiohttp.ClientTimeout(total=config.recursive_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self._timeout,
                headers={
                    HOP_HEADER: "1",
                    "Accept": "application/json",
                    "Accept-Encoding": "identity",
                    # the --server-header value, not aiohttp's (it names the library and Python versions)
                    "User-Agent": self.config.server_header or "resolver",
                },
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                max_headers=MAX_HEADERS,
                connector=aiohttp.TCPConnector(limit=self.config.recursive_concurrency),
                trace_configs=[_tracing()],
            )
        return self._session

    async def close(self) -> None:
        await self._handle_flights.close()
        await self._site_flights.close()
        if self._session is not None:
            await self._session.close()

    def _ttl(self, ttl: float | None, cap: float) -> float:
        """How long to keep an answer: its TTL (the negative TTL when it has none), at most `cap`,
        at least the floor."""
        return max(self.config.recursive_ttl_floor, self._negative_ttl() if ttl is None else min(cap, ttl))

    def _negative_ttl(self) -> float:
        return max(self.config.recursive_ttl_floor, self.config.recursive_negative_ttl)

    async def _slot(self, deadline: float) -> None:
        """Take a slot of --recursive-concurrency by `deadline` (loop time); raises Busy when too
        many lookups wait already or none came free in time. The caller releases it."""
        if self._limit.locked() and self._queued >= self._max_queued:
            raise Busy(f"more than {self._max_queued} lookups are waiting in this worker")
        self._queued += 1
        try:
            async with asyncio.timeout_at(deadline):
                await self._limit.acquire()
        except TimeoutError:
            raise Busy(
                f"no lookup could start within {self.config.recursive_timeout:g} s: too many are running"
            ) from None
        finally:
            self._queued -= 1

    def _deadline(self) -> float:
        return asyncio.get_running_loop().time() + self.config.recursive_timeout

    # -- the handle ------------------------------------------------------------------------------

    async def resolve(
        self, name: HandleName, sent: str, indexes: frozenset[int] = frozenset(), types: Sequence[str] = ()
    ) -> bytes:
        """The Handle API answer for `name`, a handle of another node; raises HandleError (404 when
        that node has no such handle, 502/504 when a hop failed)."""
        path = handle_path(name)
        cached = self._answers.get(name.key, time.monotonic())
        if cached is not None:
            answer = cached[0]
        else:
            answer = await self._handle_flights.run(name.key, functools.partial(self._load, name, path))
        if isinstance(answer, Refusal):
            raise answer.error()
        return render(sent, answer, indexes, types)

    async def _load(self, name: HandleName, path: str) -> HandleAnswer:
        try:
            found = await self._site(name.prefix)
        except Busy:
            raise  # not remembered: the next request may find a slot
        except HandleError as exc:
            return Refusal.of(exc)  # remembered with the prefix, not with each handle under it
        try:
            values = await self._ask(found, name, path)
        except Busy:
            raise
        except HandleError as exc:
            refusal = Refusal.of(exc)
            self._answers.put(name.key, refusal, self._negative_ttl(), len(exc.message), time.monotonic())
            return refusal
        encoded = orjson.dumps(values)
        ttl = self._ttl(values_ttl(values, time.time()), self.config.cache.max_ttl)
        self._answers.put(name.key, encoded, ttl, len(encoded), time.monotonic())
        return encoded

    async def _ask(self, found: Found, name: HandleName, path: str) -> list[StoredValue]:
        hop = f"recursive resolution: the node for prefix {found.prefix}"
        if not found.site.interfaces:
            raise HopFailed(f"{hop} is at an address this node is not allowed to contact")
        interface = found.site.interfaces[0]
        if self._unreachable.get(interface.base, time.monotonic()) is not None:
            raise HopFailed(f"{hop} {UNREACHABLE}")
        deadline = self._deadline()  # the wait for a slot counts: one deadline for the hop
        await self._slot(deadline)
        progress = Progress()
        try:
            # asked again: it may have been found unreachable while this lookup waited
            if self._unreachable.get(interface.base, time.monotonic()) is not None:
                raise HopFailed(f"{hop} {UNREACHABLE}")
            async with asyncio.timeout_at(deadline):
                status, body = await self._get(interface, path, progress)
        except InvalidAnswer as exc:
            raise HopFailed(f"{hop} {exc.reason}") from None
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError):
            # one message whatever happened (refused, silent, reset, not HTTP), and no address;
            # only a target that could not be connected to is remembered: a slow or broken answer
            # fails this handle, not every handle of the site
            if not progress.connected:
                self._unreachable.put(interface.base, True, self._negative_ttl(), 0, time.monotonic())
            raise HopFailed(f"{hop} {UNREACHABLE}") from None
        finally:
            self._limit.release()
        try:
            values = parse_answer(status, body, name, self.config.limits)
        except InvalidAnswer as exc:
            raise HopFailed(f"{hop} {exc.reason}") from None
        if values is None:
            raise HandleError(RC.HANDLE_NOT_FOUND, f"{hop} has no handle {name.text}")
        return values

    async def _get(self, interface: Interface, path: str, progress: Progress) -> tuple[int, bytes]:
        """Status and body of GET `path` at `interface`: no redirect, no coding, bounded in bytes
        (the caller holds a slot and bounds the time)."""
        url = URL(interface.base + path, encoded=True)
        limit = self.config.recursive_max_bytes
        async with self._client().get(url, allow_redirects=False, trace_request_ctx=progress) as resp:
            if 300 <= resp.status < 400:
                resp.close()
                raise InvalidAnswer("answered with a redirect, which recursion does not follow")
            if resp.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
                resp.close()
                raise InvalidAnswer("answered in a content coding, which recursion does not accept")
            try:
                body = await read_limited(resp, limit)
            except TooLarge:
                raise InvalidAnswer(f"answered more than {limit} bytes") from None
            return resp.status, body

    # -- the prefix ------------------------------------------------------------------------------

    async def _site(self, prefix: str) -> Found:
        """The site of the prefix, or of its nearest parent the top-level node has a site for."""
        parts = prefix.split(".")[: self.config.recursive_max_depth]
        for cut in range(len(parts), 0, -1):
            candidate = ".".join(parts[:cut])
            cached = self._sites.get(candidate, time.monotonic())
            if cached is not None:
                answer = cached[0]
            else:
                answer = await self._site_flights.run(candidate, functools.partial(self._lookup, candidate))
            if isinstance(answer, Refusal):
                raise answer.error()
            if isinstance(answer, Found):
                return answer
        raise HandleError(
            RC.HANDLE_NOT_FOUND,
            f"recursive resolution: the top-level node has no site for prefix {prefix} or its parents",
        )

    async def _lookup(self, candidate: str) -> SiteAnswer:
        """Ask the top-level node about one prefix, and remember what it said."""
        answer: SiteAnswer = None  # no site here: the parent's may answer
        ttl, size = self._negative_ttl(), 0
        deadline = self._deadline()
        await self._slot(deadline)  # Busy is not remembered
        try:
            async with asyncio.timeout_at(deadline):
                record = await self.upstream.prefix_record(candidate)
        except TimeoutError:
            answer = Refusal.of(
                HopFailed(
                    f"recursive resolution: the top-level node did not answer for 0.NA/{candidate} "
                    f"within {self.config.recursive_timeout:g} s",
                    timeout=True,
                )
            )
        except (UpstreamError, aiohttp.ClientError, OSError, ValueError):
            # what went wrong is the operator's to see at the top-level node, not the client's
            answer = Refusal.of(
                HopFailed(f"recursive resolution: the top-level node failed for 0.NA/{candidate}")
            )
        else:
            site = site_of(record, self.policy) if record is not None else None
            if site is not None and (site.interfaces or site.unusable):
                answer = Found(candidate, site)
                ttl = self._ttl(record_ttl(record), MAX_PREFIX_TTL)
                size = 64 * (1 + len(site.interfaces))
        finally:
            self._limit.release()
        self._sites.put(candidate, answer, ttl, size, time.monotonic())
        return answer
