"""The handle store: reads through the coalescing readers (and a replica), writes one transaction
each through a pool."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from resolver.core.errors import Unavailable
from resolver.core.search import SearchPlan, SearchTimeout, TooManySearches
from resolver.store.coherence import Coherence
from resolver.store.connections import Readers
from resolver.store.errors import UNAVAILABLE, translated_errors
from resolver.store.queries import Q
from resolver.store.rows import PrefixInfo, Record, TemplateRow
from resolver.store.tx import Tx, listening_caches


class HandleStore:
    """Reads go through the coalescing readers; writes through a pool, one transaction each."""

    def __init__(
        self, pool: asyncpg.Pool, readers: Readers, timeout: float, search_types: frozenset[str] = frozenset()
    ) -> None:
        self._pool = pool
        self.readers = readers
        self._timeout = timeout
        self.search_types = search_types
        # With a replica: lookups go to `readers` (the replica) except for handles that changed
        # within `recent_window` seconds, which `primary` reads, so nobody caches what a lagging
        # replica still holds and a writer reads its own write.
        self.primary: Readers | None = None
        self.recent_window = 5.0
        self._recent: dict[str, float] = {}
        self._all_recent_until = 0.0
        self.synchronous = False
        # This worker's token states (resolver.services.accounts), told of a user change at once after its
        # commit; the change feed tells every other worker.
        self.on_users_changed: Callable[[list[int]], None] | None = None
        # This worker's acknowledgements (resolver.store.coherence): with it, a write returns once
        # every cache has forgotten what it changed.
        self.coherence: Coherence | None = None

    def use_replica(self, replica: Readers, primary: Readers, window: float, synchronous: bool) -> None:
        """Read misses from `replica`. `synchronous`: the primary acknowledges a commit only once
        every replica has applied it (synchronous_commit = remote_apply), so the replica's answer
        is the truth; otherwise a handle the replica does not have is read again on the primary."""
        self.readers, self.primary, self.recent_window = replica, primary, window
        self.synchronous = synchronous

    async def replication_state(self) -> tuple[str, list[str]]:
        """(synchronous_standby_names, the sync_state of every streaming replica) of the primary."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            row = await conn.fetchrow(Q["replication_state"], timeout=self._timeout)
            assert row is not None
            return str(row[0]), [str(state) for state in row[2]]

    def changed(self, keys: list[str] | None) -> None:
        """These handles changed (None: any may have); read them from the primary for a while."""
        if self.primary is None:
            return
        until = time.monotonic() + self.recent_window
        if keys is None:
            self._all_recent_until = until
            return
        recent = self._recent
        if len(recent) > 100_000:
            now = time.monotonic()
            self._recent = recent = {k: t for k, t in recent.items() if t > now}
        for key in keys:
            recent[key] = until

    def users_changed(self, user_ids: list[int]) -> None:
        """A committed transaction changed these enterprise users: this worker forgets them now."""
        if user_ids and self.on_users_changed is not None:
            self.on_users_changed(user_ids)

    def connection_counts(self) -> dict[str, int]:
        """Open and busy write connections, and lookups waiting for a reader connection."""
        size = self._pool.get_size()
        return {
            "open": size,
            "in_use": size - self._pool.get_idle_size(),
            "lookups_waiting": len(self.readers._waiters),
        }

    async def fetch_many(self, keys: list[str]) -> dict[str, Record]:
        """Current records of these handles (missing handles are absent from the result)."""
        async with translated_errors():
            primary = self.primary
            if primary is None:
                return await self.readers.fetch_many(keys)
            now = time.monotonic()
            if self._all_recent_until > now:
                return await primary.fetch_many(keys)
            recent = self._recent
            fresh = [k for k in keys if recent.get(k, 0.0) > now] if recent else []
            rest = [k for k in keys if recent.get(k, 0.0) <= now] if fresh else keys
            found = await primary.fetch_many(fresh) if fresh else {}
            if rest:
                found.update(await self._from_replica(primary, rest))
            return found

    async def _from_replica(self, primary: Readers, keys: list[str]) -> dict[str, Record]:
        """The replica's records of `keys`; without synchronous replication, what it does not have
        is asked of the primary too, so a lagging replica's "not found" is never cached."""
        found = await self.readers.fetch_many(keys)
        if not self.synchronous and len(found) < len(keys):
            found.update(await primary.fetch_many([k for k in keys if k not in found]))
        return found

    async def fetch_primary(self, keys: list[str]) -> dict[str, Record]:
        """Current records read from the primary, whatever the replica says."""
        async with translated_errors():
            return await (self.primary or self.readers).fetch_many(keys)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A transaction that notifies every cache of the handles it changed, on commit, and
        returns once every cache has confirmed (`resolver.store.coherence`)."""
        coherence = self.coherence
        origin = coherence.origin() if coherence is not None else None
        token, sequence = origin if origin is not None else ("", 0)
        stage = "open"
        notified = False
        members: set[int] | None = None
        committed_at = 0.0
        try:
            async with translated_errors():
                try:
                    async with self._pool.acquire(timeout=self._timeout) as conn:
                        try:
                            async with conn.transaction():
                                tx = Tx(conn, self._timeout, self.search_types, token)
                                yield tx
                                await tx.flush()
                                stage = "committing"
                        except asyncpg.ReadOnlySQLTransactionError as exc:
                            # the connection reached a server in recovery: a failover under way
                            # (the proxy's old leader restarting as a standby). Nothing was
                            # written; this connection is dropped so the next one finds the leader.
                            conn.terminate()
                            raise Unavailable() from exc
                        stage = "committed"
                        committed_at = time.monotonic()
                        notified = tx.notified
                        if notified and origin is not None:
                            members = await listening_caches(conn, self._timeout)
                except UNAVAILABLE as exc:
                    if stage == "committed":  # stored; only giving the connection back failed
                        logging.getLogger("resolver").warning("connection lost after a commit: %r", exc)
                    else:
                        raise Unavailable(uncertain=stage == "committing") from exc
        finally:
            if coherence is not None and origin is not None and not (stage == "committed" and notified):
                coherence.forget(sequence)
        if coherence is not None and origin is not None and notified:
            await coherence.confirm(sequence, members, committed_at)

    async def list_prefix(self, prefix: str, page: int, page_size: int) -> tuple[int, list[str]]:
        """The number of handles under a prefix and one page of them, in key order."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            total = await conn.fetchval(Q["count_prefix"], prefix, timeout=self._timeout)
            if page_size == 0:
                return int(total), []
            rows = await conn.fetch(
                Q["list_page"], prefix, page * page_size, page_size, timeout=self._timeout
            )
            return int(total), [row[0] for row in rows]

    async def search(
        self, prefixes: list[str] | None, plan: SearchPlan, seconds: float, tenant: str, turns: int
    ) -> list[str]:
        """One page of the handles in `prefixes` (None: every prefix) whose terms match `plan`, in
        term then key order, as one of the `turns` searches `tenant` may run at once across every
        node on this database (TooManySearches when it runs them all); SearchTimeout when Postgres
        has not finished within `seconds`."""
        first, rest = plan.first, plan.rest
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            try:
                async with conn.transaction(readonly=True):
                    deadline = f"{max(1, round(seconds * 1000))}ms"
                    begun = await conn.fetchrow(
                        Q["search_begin"], deadline, tenant, turns, timeout=self._timeout
                    )
                    if begun is None or not begun["admitted"]:
                        raise TooManySearches(turns)
                    rows = await conn.fetch(
                        Q["search"],
                        prefixes,
                        first.low,
                        first.high,
                        first.like,
                        [p.low for p in rest],
                        [p.high for p in rest],
                        [p.like for p in rest],
                        plan.offset,
                        plan.limit,
                        timeout=seconds + self._timeout,
                    )
            except asyncpg.QueryCanceledError:
                raise SearchTimeout(seconds) from None
        return [row[0] for row in rows]

    async def prefix_handles(self) -> list[str]:
        """Every prefix handle (`0.NA/...`) stored here."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            rows = await conn.fetch(Q["prefix_handles"], timeout=self._timeout)
            return [row[0] for row in rows]

    async def templates(self, prefixes: list[str], versions: list[str]) -> list[TemplateRow]:
        """The stored templates of these prefixes in these versions, read outside a transaction."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            rows = await conn.fetch(Q["templates_for"], prefixes, versions, timeout=self._timeout)
        return [TemplateRow(row[0], row[1], list(row[2]), row[3]) for row in rows]

    async def prefix_info(self, prefixes: list[str]) -> dict[str, PrefixInfo]:
        """The enterprise prefixes among these, with their states and owners, read outside a
        transaction."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            rows = await conn.fetch(Q["prefix_info_read"], prefixes, timeout=self._timeout)
        return {row[0]: PrefixInfo(row[0], row[1], row[2], row[3]) for row in rows}

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a named read-only statement of store/sql."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return list(await conn.fetch(Q[name], *args, timeout=self._timeout))

    async def fetchval_named(self, name: str, *args: object) -> Any:
        """The single value of a named read-only statement of store/sql."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return await conn.fetchval(Q[name], *args, timeout=self._timeout)

    async def ping(self) -> int:
        """The applied schema version; raises Unavailable when the database is unreachable."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return int(await conn.fetchval(Q["schema_version"], timeout=self._timeout))
