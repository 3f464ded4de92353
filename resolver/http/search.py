"""Reverse lookup, as the Handle reverse-lookup servlet answers it: `GET /hrls/handles?URL=...`.

Keys are the value types the operator allows (`--search-types`), matched case-insensitively; values
match exactly, or with `*` as a wildcard (resolver/core/search.py says which patterns the index
answers). Several keys must all match. The answer is a JSON array of handles, in value order, then
handle order. Enterprises see only their own handles; the node administrator sees all.

A search is bounded: at most `--search-concurrency` run at once in a worker, and one tenant runs at
most `--search-per-credential` at once in the node, every worker and instance on the database
together (more: 429); each is stopped at `--search-timeout` (503, rc 3), its wait for a turn
included.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import orjson
from aiohttp import web

from resolver.config import Config
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold
from resolver.core.permissions import Identity
from resolver.core.search import MAX_LIMIT, SearchTimeout, TooManySearches, plan_search
from resolver.http.envelope import caller
from resolver.http.errors import mapped
from resolver.http.keys import CONFIG, RATE_LIMITER, REGISTRY, SEARCHES, STORE
from resolver.http.paging import page_and_size
from resolver.store import enterprises

_PAGING = ("limit", "page", "pageSize", "prefix")


class SearchesBusy(HandleError):
    """No search slot came free before the search deadline (503, rc 3, retry shortly)."""

    def __init__(self) -> None:
        super().__init__(
            RC.SERVER_TOO_BUSY, "the node is answering too many searches; retry shortly", retry_after=1
        )


class Searches:
    """One worker's admission of searches: `concurrency` at once, `per_tenant` of them for one
    tenant (counting those waiting for their turn), each within `timeout` seconds from admission.

    The per-tenant count here keeps a tenant's flood off the worker's queue without a database
    round trip; the node-wide one is a transaction lock the search takes in Postgres (store.search).
    """

    def __init__(self, concurrency: int, per_tenant: int, timeout: float) -> None:
        self.per_tenant = max(1, per_tenant)
        self.timeout = timeout
        self._slots = asyncio.Semaphore(max(1, concurrency))
        self._running: dict[str, int] = {}

    @classmethod
    def of(cls, config: Config) -> Searches:
        return cls(config.search_concurrency, config.search_per_credential, config.search_timeout)

    @asynccontextmanager
    async def admit(self, tenant: str) -> AsyncIterator[float]:
        """A turn for one search of `tenant`: the seconds it has left to run."""
        running = self._running.get(tenant, 0)
        if running >= self.per_tenant:
            raise TooManySearches(self.per_tenant)
        self._running[tenant] = running + 1
        arrived = time.monotonic()
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise SearchesBusy() from None
            try:
                yield max(0.001, self.timeout - (time.monotonic() - arrived))
            except SearchTimeout:
                raise SearchTimeout(self.timeout) from None  # the deadline, not what was left of it
            finally:
                self._slots.release()
        finally:
            left = self._running[tenant] - 1
            if left:
                self._running[tenant] = left
            else:
                del self._running[tenant]


async def tenant_of(request: web.Request, identity: Identity) -> str:
    """Whose searches count together: an enterprise's users and the administrators of its
    prefixes, else the identity."""
    enterprise = identity.enterprise_id
    if enterprise is None:
        enterprise = await request.app[REGISTRY].enterprise_of_prefix_admin(identity)
    return f"enterprise {enterprise}" if enterprise is not None else identity.key


async def visible_prefixes(request: web.Request, identity: Identity, wanted: str | None) -> list[str] | None:
    """The prefixes whose handles the caller may find (None: all of them), narrowed to `wanted`."""
    prefixes: list[str] | None
    if request.app[REGISTRY].is_node_admin(identity):
        prefixes = None
    elif identity.enterprise_id is not None:
        owned = await enterprises.prefixes_of(request.app[STORE], identity.enterprise_id)
        prefixes = [p.prefix for p in owned]
    else:
        # A prefix administrator (300:0.NA/<prefix>) sees the handles of that prefix.
        head, _, tail = identity.key.partition("/")
        prefixes = [tail] if head == "0.na" else []
    if wanted:
        prefixes = [fold(wanted)] if prefixes is None or fold(wanted) in prefixes else []
    return prefixes


async def search(request: web.Request) -> web.Response:
    """GET /hrls/handles?URL=...&page=&pageSize= (or limit=)&prefix=: the handles whose values match."""
    request.app[RATE_LIMITER].check(request)
    identity = await caller(request)
    config = request.app[CONFIG]
    allowed = set(config.search_types)
    terms: list[tuple[str, str]] = []
    for key, value in request.query.items():
        if key in _PAGING:
            continue
        if fold(key) not in allowed:
            raise HandleError(
                RC.PROTOCOL_ERROR, f"cannot search by {key}; searchable: {', '.join(sorted(allowed))}"
            )
        terms.append((key, value))
    if not terms:
        raise HandleError(RC.PROTOCOL_ERROR, f"give at least one search key: {', '.join(sorted(allowed))}")
    # `limit` as the reverse-lookup servlet names it, `pageSize` as every other listing of the node
    size_key = "pageSize" if "pageSize" in request.query else "limit"
    if (
        size_key == "pageSize"
        and request.query.get("limit", request.query["pageSize"]) != request.query["pageSize"]
    ):
        raise HandleError(RC.PROTOCOL_ERROR, "limit and pageSize name the same page size: give one of them")
    try:
        page, limit = page_and_size(
            request.query, size_key=size_key, default=1000, smallest=1, largest=MAX_LIMIT
        )
    except HandleError as exc:
        raise HandleError(RC.PROTOCOL_ERROR, exc.message) from None
    plan = plan_search(terms, limit, page)
    prefixes = await visible_prefixes(request, identity, request.query.get("prefix"))
    handles: list[str] = []
    if prefixes is None or prefixes:
        searches, tenant = request.app[SEARCHES], await tenant_of(request, identity)
        async with searches.admit(tenant) as seconds:
            handles = await request.app[STORE].search(prefixes, plan, seconds, tenant, searches.per_tenant)
    return web.Response(body=orjson.dumps(handles), content_type="application/json")


def add_routes(app: web.Application) -> None:
    app[SEARCHES] = Searches.of(app[CONFIG])
    for path in ("/hrls/handles", "/hrls/handles/"):
        app.router.add_get(path, mapped(search), allow_head=False)
