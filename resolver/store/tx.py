"""One write transaction: the rows it writes, and the audit, reverse-lookup terms and change
notifications that it writes with them when it commits."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from resolver.core import request_context
from resolver.core.audit import audit_json
from resolver.core.search import search_terms
from resolver.core.values import StoredValue
from resolver.store.coherence import MEMBER_NAME
from resolver.store.connections import Connection
from resolver.store.errors import UNAVAILABLE
from resolver.store.notifications import CHANNEL, notification_payloads, user_line
from resolver.store.queries import Q
from resolver.store.rows import AuditEntry, PrefixInfo, Record, TemplateRow, encode_values, record_from_row


async def write_audit(
    conn: Connection,
    entries: Sequence[AuditEntry],
    encoded: Mapping[int, str] | None = None,
    timeout: float | None = None,
) -> None:
    """Write audit entries in one statement (`encoded`: the JSON of `after` values already
    encoded, by the value's id), with the id and client of the request being handled, if any."""
    encoded = encoded or {}
    request_id, client = request_context.request_id.get(), request_context.client_address.get()
    await conn.execute(
        Q["audit_many"],
        [e.actor for e in entries],
        [e.enterprise_id for e in entries],
        [e.operation for e in entries],
        [e.handle for e in entries],
        [audit_json(e.before) for e in entries],
        [audit_json(e.after, encoded.get(id(e.after))) for e in entries],
        [audit_json(e.detail) for e in entries],
        [request_id] * len(entries),
        [client] * len(entries),
        timeout=timeout,
    )


async def notify(conn: Connection, lines: list[str], timeout: float | None = None, origin: str = "") -> None:
    """Tell every worker that these handles (or user lines) changed, when the transaction commits
    (`origin`: where to acknowledge, `resolver.store.coherence`)."""
    payloads = notification_payloads(lines, origin=origin)
    await conn.execute(Q["notify_many"], CHANNEL, payloads, timeout=timeout)


async def listening_caches(conn: Connection, timeout: float | None = None) -> set[int] | None:
    """The backend pids of every listening change feed, the caches a write waits for (None: not
    known, so the write waits the whole bound; `resolver.store.coherence`)."""
    try:
        rows = await conn.fetch(Q["feed_members"], MEMBER_NAME, timeout=timeout)
    except (asyncpg.PostgresError, *UNAVAILABLE):
        return None
    return {int(row[0]) for row in rows}


class Tx:
    """The statements of one write transaction.

    Besides the rows it writes, it gathers audit entries and reverse-lookup terms and writes them
    in one statement each when it commits, whatever the number of handles.
    """

    def __init__(
        self, conn: Connection, timeout: float, search_types: frozenset[str], origin: str = ""
    ) -> None:
        self._conn = conn
        self._timeout = timeout
        self._search_types = search_types
        self._origin = origin
        self.notified = False  # its commit will notify the caches
        self.changed: list[str] = []
        # Enterprise users whose token state this transaction changed (password, disabled, deleted,
        # tokens revoked): notified with the handles, so that every worker forgets what it knew.
        self.changed_users: list[int] = []
        self._audit: list[AuditEntry] = []
        self._terms: dict[str, tuple[str, list[str]]] = {}
        # Records read under lock: their terms are what an update or delete must remove.
        self._locked: dict[str, Record] = {}
        self._stale_terms: set[tuple[str, str]] = set()
        self._encoded: dict[int, str] = {}

    @property
    def connection(self) -> Connection:
        return self._conn

    def audit(self, entry: AuditEntry) -> None:
        """Record an audit entry; it is written with the transaction."""
        self._audit.append(entry)

    def _index(self, key: str, prefix: str, values: list[StoredValue] | None, *, new: bool = False) -> None:
        terms = [] if values is None else sorted(set(search_terms(values, self._search_types)))
        self._terms[key] = (prefix, terms)
        if not new:
            old = self._locked.get(key)
            if old is None:
                raise AssertionError(f"{key} changed without being read under lock first")
            self._stale_terms.update((term, key) for term in search_terms(old.values, self._search_types))

    async def lock(self, key: str) -> Record | None:
        """Read one handle and lock its row until the transaction ends."""
        row = await self._conn.fetchrow(Q["fetch_for_update"], key, timeout=self._timeout)
        if row is None:
            return None
        record = self._locked[key] = record_from_row(row)
        return record

    async def keys_under_prefix(self, prefix: str, after: str, limit: int) -> list[str]:
        """A page of the keys of the handles directly under `prefix` (folded), in key order after `after`."""
        rows = await self._conn.fetch(
            Q["keys_under_prefix_after"], prefix, after, limit, timeout=self._timeout
        )
        return [row[0] for row in rows]

    async def lock_many(self, keys: list[str]) -> dict[str, Record]:
        """Read several handles and lock their rows (in key order, so batches cannot deadlock)."""
        rows = await self._conn.fetch(Q["lock_many"], keys, timeout=self._timeout)
        locked = {row[0]: record_from_row(row) for row in rows}
        self._locked.update(locked)
        return locked

    async def fetch_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """Read several handles inside the transaction."""
        rows = await self._conn.fetch(Q["fetch_many"], list(keys), timeout=self._timeout)
        return {row[0]: record_from_row(row) for row in rows}

    async def insert(self, key: str, handle: str, prefix: str, values: list[StoredValue]) -> bool:
        """Insert a new handle; False when it already exists."""
        inserted = await self._conn.fetchval(
            Q["insert"], key, handle, prefix, encode_values(values), timeout=self._timeout
        )
        if inserted is not None:
            self.changed.append(key)
            self._index(key, prefix, values, new=True)
        return inserted is not None

    async def insert_many(self, rows: list[tuple[str, str, str, list[StoredValue]]]) -> set[str]:
        """Insert new handles in one statement; returns the keys that were inserted."""
        if not rows:
            return set()
        # In key order, like every multi-row write, so concurrent batches lock rows in the same
        # order and cannot deadlock.
        rows = sorted(rows, key=lambda r: r[0])
        keys, handles, prefixes, values = zip(*rows, strict=True)
        encoded = [encode_values(v) for v in values]
        # the audit entries of these rows carry the same values: encoded once (by identity; the
        # lists live as long as this transaction)
        self._encoded.update(zip(map(id, values), encoded, strict=True))
        inserted = await self._conn.fetch(
            Q["insert_many"],
            list(keys),
            list(handles),
            list(prefixes),
            encoded,
            timeout=self._timeout,
        )
        done = {row[0] for row in inserted}
        for key, _handle, prefix, vals in rows:
            if key in done:
                self.changed.append(key)
                self._index(key, prefix, vals, new=True)
        return done

    async def update(self, key: str, values: list[StoredValue]) -> None:
        """Replace the values of an existing handle."""
        await self._conn.execute(Q["update"], key, encode_values(values), timeout=self._timeout)
        self.changed.append(key)
        self._index(key, key.partition("/")[0], values)

    async def update_many(self, rows: list[tuple[str, list[StoredValue]]]) -> None:
        """Replace the values of several existing (locked) handles in one statement."""
        if not rows:
            return
        rows = sorted(rows, key=lambda r: r[0])
        await self._conn.execute(
            Q["update_many"], [k for k, _ in rows], [encode_values(v) for _, v in rows], timeout=self._timeout
        )
        for key, values in rows:
            self.changed.append(key)
            self._index(key, key.partition("/")[0], values)

    async def delete(self, key: str) -> bool:
        """Delete a handle; False when it did not exist."""
        deleted = await self._conn.fetchval(Q["delete"], key, timeout=self._timeout)
        if deleted is not None:
            self.changed.append(key)
            self._index(key, "", None)
        return deleted is not None

    async def delete_many(self, keys: list[str]) -> dict[str, Record]:
        """Delete several handles in one statement; returns what each deleted one held."""
        rows = await self._conn.fetch(Q["delete_many"], keys, timeout=self._timeout)
        deleted = {row[0]: record_from_row(row) for row in rows}
        self._locked.update(deleted)
        for key in deleted:
            self.changed.append(key)
            self._index(key, "", None)
        return deleted

    async def prefix_info(self, prefixes: list[str]) -> dict[str, PrefixInfo]:
        """The enterprise prefixes among these, with their states and owners."""
        rows = await self._conn.fetch(Q["prefix_info"], prefixes, timeout=self._timeout)
        return {row[0]: PrefixInfo(row[0], row[1], row[2], row[3]) for row in rows}

    async def templates(self, prefixes: list[str], versions: list[str]) -> list[TemplateRow]:
        """The stored templates of these prefixes in these versions."""
        rows = await self._conn.fetch(Q["templates_for"], prefixes, versions, timeout=self._timeout)
        return [TemplateRow(row[0], row[1], list(row[2]), row[3]) for row in rows]

    async def execute_named(self, name: str, *args: object) -> str:
        """Run one named statement of store/sql (operator writes)."""
        return str(await self._conn.execute(Q[name], *args, timeout=self._timeout))

    async def fetchrow_named(self, name: str, *args: object) -> asyncpg.Record | None:
        """One row of a named statement of store/sql."""
        return await self._conn.fetchrow(Q[name], *args, timeout=self._timeout)

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a named statement of store/sql."""
        return list(await self._conn.fetch(Q[name], *args, timeout=self._timeout))

    async def flush(self) -> None:
        """Write the gathered audit entries and reverse-lookup terms, then notify the caches."""
        if self._terms:
            if self._stale_terms:
                stale = sorted(self._stale_terms)
                await self._conn.execute(
                    Q["terms_delete"], [t for t, _ in stale], [k for _, k in stale], timeout=self._timeout
                )
                self._stale_terms.clear()
            terms = [(t, k, p) for k, (p, ts) in self._terms.items() for t in ts]
            if terms:
                columns = list(zip(*terms, strict=True))
                await self._conn.execute(
                    Q["terms_insert"],
                    list(columns[0]),
                    list(columns[1]),
                    list(columns[2]),
                    timeout=self._timeout,
                )
            self._terms.clear()
        if self._audit:
            await write_audit(self._conn, self._audit, self._encoded, self._timeout)
            self._audit = []
            self._encoded = {}
        if self.changed or self.changed_users:
            lines = self.changed + [user_line(u) for u in self.changed_users]
            await notify(self._conn, lines, self._timeout, self._origin)
            self.notified = True
