"""Recursive resolution: answering handles of other nodes (off unless `--recursive`).

Two hops, each cached by TTL, each with a timeout, all under one bound on concurrent upstream
requests per worker:
1. the top-level node: the prefix record `0.NA/<prefix>` (the handle's prefix, then its parents)
   and the HTTP interface its HS_SITE value names;
2. that node: `GET /api/handles/<handle>` with the client's query, answered to the client as is.
A failure says which hop failed. Requests carry a hop header; a node never recurses for a request
that arrived through recursion, so two misconfigured nodes cannot bounce a request forever.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

from resolver.config import Config
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.upstream import Upstream, UpstreamError

HOP_HEADER = "X-Resolver-Hop"
NEGATIVE_TTL = 30.0
MAX_PREFIX_TTL = 3600.0


class HopFailed(HandleError):
    """A hop of a recursive resolution did not answer: 502 (or 504 on a timeout)."""

    def __init__(self, message: str, *, timeout: bool = False) -> None:
        super().__init__(RC.ERROR, message)
        self.status = 504 if timeout else 502


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    expires: float


def http_servers(record: dict[str, Any]) -> list[str]:
    """Base URLs of the HTTP query interfaces in a prefix record's HS_SITE values."""
    urls = []
    for value in record.get("values", []):
        if fold(str(value.get("type", ""))) != "hs_site":
            continue
        data = value.get("data", {})
        site = data.get("value") if isinstance(data, dict) else None
        if not isinstance(site, dict):
            continue
        for server in site.get("servers", []):
            address = server.get("address")
            for interface in server.get("interfaces", []):
                protocol = str(interface.get("protocol", "")).lower()
                if address and interface.get("query") and protocol in ("http", "https"):
                    host = f"[{address}]" if ":" in address else address
                    urls.append(f"{protocol}://{host}:{int(interface['port'])}")
    return urls


def _ttl_of(record: dict[str, Any], default: float, cap: float) -> float:
    ttls = [v.get("ttl") for v in record.get("values", []) if isinstance(v.get("ttl"), int | float)]
    return float(min([cap, *ttls])) if ttls else default


class RecursiveResolver:
    def __init__(self, config: Config, upstream: Upstream) -> None:
        self.config = config
        self.upstream = upstream
        self._limit = asyncio.Semaphore(config.recursive_concurrency)
        self._sites: dict[str, tuple[list[str], float]] = {}
        self._answers: OrderedDict[str, Answer] = OrderedDict()  # least recently used first
        self._inflight: dict[str, asyncio.Future[Answer]] = {}
        self._timeout = aiohttp.ClientTimeout(total=config.recursive_timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout, headers={HOP_HEADER: "1"})
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def _site(self, prefix: str) -> tuple[str, list[str]]:
        """The prefix (or nearest parent) the top-level node knows, and its HTTP servers."""
        now = time.monotonic()
        parts = prefix.split(".")
        for cut in range(len(parts), 0, -1):
            candidate = ".".join(parts[:cut])
            cached = self._sites.get(candidate)
            if cached is not None and cached[1] > now:
                if cached[0]:
                    return candidate, cached[0]
                continue
            try:
                async with self._limit:
                    record = await asyncio.wait_for(
                        self.upstream.prefix_record(candidate), self.config.recursive_timeout
                    )
            except TimeoutError:
                raise HopFailed(
                    f"recursive resolution: the top-level node did not answer for 0.NA/{candidate} "
                    f"within {self.config.recursive_timeout:g} s",
                    timeout=True,
                ) from None
            except (UpstreamError, aiohttp.ClientError, OSError, ValueError) as exc:
                raise HopFailed(
                    f"recursive resolution: the top-level node failed for 0.NA/{candidate}: {exc}"
                ) from None
            servers = http_servers(record) if record else []
            ttl = _ttl_of(record, NEGATIVE_TTL, MAX_PREFIX_TTL) if servers and record else NEGATIVE_TTL
            self._sites[candidate] = (servers, now + ttl)
            if servers:
                return candidate, servers
        raise HandleError(
            RC.HANDLE_NOT_FOUND,
            f"recursive resolution: the top-level node has no site for prefix {prefix} or its parents",
        )

    async def resolve(self, handle: str, prefix: str, query: str) -> Answer:
        """The answer of the node responsible for `handle`, from the cache while it is fresh."""
        key = f"{fold(handle)}?{query}"
        cached = self._answers.get(key)
        if cached is not None and cached.expires > time.monotonic():
            self._answers.move_to_end(key)
            return cached
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            answer = await self._fetch(handle, prefix, query)
            self._answers[key] = answer
            self._answers.move_to_end(key)
            while len(self._answers) > self.config.cache.max_entries:
                self._answers.popitem(last=False)
            future.set_result(answer)
            return answer
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                future.cancel()
            else:
                future.set_exception(exc)
                future.exception()  # retrieved: waiters get it, nobody is warned about it
            raise
        finally:
            del self._inflight[key]

    async def _fetch(self, handle: str, prefix: str, query: str) -> Answer:
        known, servers = await self._site(prefix)
        url = f"{servers[0]}/api/handles/{handle}" + (f"?{query}" if query else "")
        try:
            async with self._limit, self._client().get(url) as resp:
                body = await resp.read()
                status = resp.status
        except TimeoutError:
            raise HopFailed(
                f"recursive resolution: the node for prefix {known} ({servers[0]}) did not answer "
                f"within {self.config.recursive_timeout:g} s",
                timeout=True,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise HopFailed(
                f"recursive resolution: the node for prefix {known} ({servers[0]}) failed: {exc}"
            ) from None
        now = time.monotonic()
        if status == 200:
            try:
                ttl = _ttl_of(orjson.loads(body), self.config.cache.negative_ttl, self.config.cache.max_ttl)
            except orjson.JSONDecodeError:
                raise HopFailed(
                    f"recursive resolution: the node for prefix {known} answered with something not JSON"
                ) from None
            return Answer(200, body, now + ttl)
        if status in (400, 404):
            return Answer(status, body, now + self.config.cache.negative_ttl)
        raise HopFailed(f"recursive resolution: the node for prefix {known} answered HTTP {status}")
