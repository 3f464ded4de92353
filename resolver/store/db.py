"""Connections, the handle store, and the one place where driver errors become domain errors."""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import asyncpg.pool
import asyncpg.prepared_stmt
import orjson

from resolver.core.errors import RC, HandleError, Unavailable
from resolver.core.handles import fold
from resolver.core.search import SearchPlan, SearchTimeout, TooManySearches
from resolver.core.values import StoredValue
from resolver.store.queries import Q

CHANNEL = "resolver_handles"
Connection = asyncpg.Connection | asyncpg.pool.PoolConnectionProxy
# Errors meaning "the database is not there right now", as opposed to a bug in a statement.
# InternalClientError is asyncpg's protocol state machine finding itself mid-operation: it is what
# a connection that the server terminated under it raises (asyncpg issues 784 and 1069; seen here on
# BEGIN while Postgres shut down), and such a connection is terminated, not reused, by the pool.
_UNAVAILABLE = (
    asyncpg.InternalClientError,
    OSError,
    asyncio.TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.CannotConnectNowError,
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)


class Record:
    """A stored handle: as first registered, and its values."""

    __slots__ = ("handle", "values")

    def __init__(self, handle: str, values: list[StoredValue]) -> None:
        self.handle = handle
        self.values = values

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Record) and (self.handle, self.values) == (
            other.handle,
            other.values,
        )

    def __repr__(self) -> str:
        return f"Record({self.handle!r}, {self.values!r})"


# Postgres refuses NOTIFY payloads of 8000 bytes or more.
MAX_PAYLOAD_BYTES = 7900


def notification_payloads(keys: list[str], sent_at: float | None = None) -> list[str]:
    """The changed keys, newline-separated, split into payloads Postgres accepts.

    Each payload starts with `@<unix time>` (keys never start with '@'), so that listeners can
    measure how long an invalidation took to reach them.
    """
    stamp = f"@{time.time() if sent_at is None else sent_at:.4f}"
    payloads: list[str] = []
    current: list[str] = [stamp]
    size = len(stamp) + 1
    for key in keys:
        length = len(key.encode("utf-8")) + 1
        if len(current) > 1 and size + length > MAX_PAYLOAD_BYTES:
            payloads.append("\n".join(current))
            current, size = [stamp], len(stamp) + 1
        current.append(key)
        size += length
    if len(current) > 1:
        payloads.append("\n".join(current))
    return payloads


def parse_payload(payload: str) -> tuple[float | None, list[str]]:
    """(when it was sent, the keys) of a change notification."""
    lines = payload.split("\n")
    if lines and lines[0].startswith("@"):
        try:
            return float(lines[0][1:]), lines[1:]
        except ValueError:
            return None, lines[1:]
    return None, lines


# A line of a change notification naming an enterprise user whose tokens' state changed. A handle
# key is a prefix (letters, digits, '.', '-', '_'), '/' and a suffix, so it never starts like this.
USER_LINE = "user:"


def user_line(user_id: int) -> str:
    """The notification line telling every worker that `user_id`'s token state changed."""
    return f"{USER_LINE}{user_id}"


def split_users(lines: list[str]) -> tuple[list[str], list[int]]:
    """(the handle keys, the enterprise user ids) named by the lines of a change notification."""
    if not any(line.startswith(USER_LINE) for line in lines):
        return lines, []
    keys: list[str] = []
    users: list[int] = []
    for line in lines:
        if not line.startswith(USER_LINE):
            keys.append(line)
        elif line[len(USER_LINE) :].isdigit():
            users.append(int(line[len(USER_LINE) :]))
    return keys, users


def is_unavailable(exc: BaseException) -> bool:
    """True when an exception means the database cannot be reached."""
    return isinstance(exc, _UNAVAILABLE)


# Unique constraints whose violation is a client's mistake, with what to tell the client.
_UNIQUE: dict[str, tuple[RC, str]] = {
    "handles_pkey": (RC.HANDLE_ALREADY_EXISTS, "the handle already exists"),
    "enterprises_credit_code_key": (RC.HANDLE_ALREADY_EXISTS, "该统一社会信用代码的企业已登记"),
    "enterprise_users_username_key": (RC.HANDLE_ALREADY_EXISTS, "用户名已被使用"),
    "enterprise_prefixes_pkey": (RC.HANDLE_ALREADY_EXISTS, "该前缀已分配"),
}


@asynccontextmanager
async def translated_errors() -> AsyncIterator[None]:
    """Turn driver exceptions into domain errors, chosen by class and constraint name."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        known = _UNIQUE.get(exc.constraint_name or "")
        if known is None:
            raise
        raise HandleError(*known) from None
    except _UNAVAILABLE as exc:
        raise Unavailable() from exc


async def connect(dsn: str, timeout: float = 5.0, name: str = "resolver") -> asyncpg.Connection:
    """One connection with the settings every node connection uses (`name`: its application_name)."""
    return await asyncpg.connect(dsn, timeout=timeout, server_settings={"application_name": name})


async def wait_for_database(dsn: str, attempts: int = 60) -> asyncpg.Connection:
    """Connect, retrying while the database is starting or briefly away."""
    delay = 0.1
    for attempt in range(attempts):
        try:
            return await connect(dsn)
        except Exception as exc:
            if not is_unavailable(exc) or attempt == attempts - 1:
                raise
            logging.getLogger("resolver").warning("database not reachable (%s); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(2.0, delay * 2)
    raise AssertionError("unreachable")


def _record(row: Any) -> Record:
    return Record(row[1], orjson.loads(row[2]))


def encode_values(values: list[StoredValue]) -> str:
    """The jsonb text of a list of stored values."""
    return orjson.dumps(values).decode()


class Readers:
    """A few dedicated connections for coalesced lookups, handed out first come, first served.

    asyncpg's pool resets every connection on release and wakes waiters unfairly; for one small
    prepared statement that costs more than the query, so lookups use these connections instead.
    """

    def __init__(self, dsn: str, size: int, timeout: float) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._idle: list[asyncpg.Connection | None] = [None] * size
        self._statements: dict[asyncpg.Connection, asyncpg.prepared_stmt.PreparedStatement] = {}
        self._waiters: collections.deque[asyncio.Future[asyncpg.Connection | None]] = collections.deque()
        self._closed = False

    async def _take(self) -> asyncpg.Connection | None:
        if self._idle:
            return self._idle.pop()
        waiter: asyncio.Future[asyncpg.Connection | None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            return await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self._give(waiter.result())
            raise

    def _give(self, conn: asyncpg.Connection | None) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        self._idle.append(conn)

    async def fetch_many(self, keys: list[str]) -> dict[str, Record]:
        """Look up many handles in one statement on one connection."""
        conn = await self._take()
        try:
            if conn is None or conn.is_closed():
                self._statements.pop(conn, None)  # type: ignore[arg-type]
                conn = await connect(self._dsn, self._timeout)
                self._statements[conn] = await conn.prepare(Q["lookup_many"])
            rows = await self._statements[conn].fetch(keys, timeout=self._timeout)
        except BaseException:
            if conn is not None:
                self._statements.pop(conn, None)
                conn.terminate()
            self._give(None)
            raise
        self._give(conn)
        return {fold(row[0]): Record(row[0], orjson.loads(row[1])) for row in rows}

    async def close(self) -> None:
        """Close every idle connection."""
        self._closed = True
        conns = [c for c in self._idle if c is not None]
        self._idle.clear()
        self._statements.clear()
        for conn in conns:
            conn.terminate()


@dataclass(frozen=True, slots=True)
class PrefixInfo:
    """An enterprise prefix: its state and owner."""

    prefix: str
    state: int
    enterprise_id: int


@dataclass(frozen=True, slots=True)
class AuditEntry:
    """One line of the audit trail, written with the transaction that it describes."""

    actor: str
    operation: str
    handle: str | None = None
    enterprise_id: int | None = None
    before: object = None
    after: object = None
    detail: object = None


def _json_or_none(value: object, known: str | None = None) -> str | None:
    """The JSON of an audited value (`known`: its encoding, when the caller already made it)."""
    if value is None:
        return None
    if known is not None:
        if "hs_seckey" not in known.lower():
            return known
        return orjson.dumps(_redacted(value)).decode()
    encoded = orjson.dumps(value)
    if b"hs_seckey" in encoded.lower():  # rare: only then look for secrets value by value
        encoded = orjson.dumps(_redacted(value))
    return encoded.decode()


def _redacted(value: object) -> object:
    """Audit entries never hold secrets, not even their hashes."""
    if isinstance(value, list):
        return [
            {**v, "data": {"format": v["data"].get("format"), "value": "<redacted>"}}
            if isinstance(v, dict) and isinstance(v.get("type"), str) and fold(v["type"]) == "hs_seckey"
            else v
            for v in value
        ]
    return value


class Tx:
    """The statements of one write transaction.

    Besides the rows it writes, it gathers audit entries and reverse-lookup terms and writes them
    in one statement each when it commits, whatever the number of handles.
    """

    def __init__(self, conn: Connection, timeout: float, search_types: frozenset[str]) -> None:
        self._conn = conn
        self._timeout = timeout
        self._search_types = search_types
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
        record = self._locked[key] = _record(row)
        return record

    async def lock_many(self, keys: list[str]) -> dict[str, Record]:
        """Read several handles and lock their rows (in key order, so batches cannot deadlock)."""
        rows = await self._conn.fetch(Q["lock_many"], keys, timeout=self._timeout)
        locked = {row[0]: _record(row) for row in rows}
        self._locked.update(locked)
        return locked

    async def fetch_many(self, keys: Iterable[str]) -> dict[str, Record]:
        """Read several handles inside the transaction."""
        rows = await self._conn.fetch(Q["fetch_many"], list(keys), timeout=self._timeout)
        return {row[0]: _record(row) for row in rows}

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
        deleted = {row[0]: _record(row) for row in rows}
        self._locked.update(deleted)
        for key in deleted:
            self.changed.append(key)
            self._index(key, "", None)
        return deleted

    async def prefix_info(self, prefixes: list[str]) -> dict[str, PrefixInfo]:
        """The enterprise prefixes among these, with their states and owners."""
        rows = await self._conn.fetch(Q["prefix_info"], prefixes, timeout=self._timeout)
        return {row[0]: PrefixInfo(row[0], row[1], row[2]) for row in rows}

    async def templates(
        self, prefixes: list[str], versions: list[str]
    ) -> list[tuple[str, str, list[str], str]]:
        """Template rows (prefix, version, industry codes, items JSON) of these prefixes and versions."""
        rows = await self._conn.fetch(Q["templates_for"], prefixes, versions, timeout=self._timeout)
        return [(row[0], row[1], list(row[2]), row[3]) for row in rows]

    async def execute_named(self, name: str, *args: object) -> str:
        """Run one named statement of queries.sql (operator writes)."""
        return str(await self._conn.execute(Q[name], *args, timeout=self._timeout))

    async def fetchrow_named(self, name: str, *args: object) -> asyncpg.Record | None:
        """One row of a named statement of queries.sql."""
        return await self._conn.fetchrow(Q[name], *args, timeout=self._timeout)

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a named statement of queries.sql."""
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
            entries = self._audit
            await self._conn.execute(
                Q["audit_many"],
                [e.actor for e in entries],
                [e.enterprise_id for e in entries],
                [e.operation for e in entries],
                [e.handle for e in entries],
                [_json_or_none(e.before) for e in entries],
                [_json_or_none(e.after, self._encoded.get(id(e.after))) for e in entries],
                [_json_or_none(e.detail) for e in entries],
                timeout=self._timeout,
            )
            self._audit = []
            self._encoded = {}
        if self.changed or self.changed_users:
            payloads = notification_payloads(self.changed + [user_line(u) for u in self.changed_users])
            await self._conn.execute(Q["notify_many"], CHANNEL, payloads, timeout=self._timeout)


# Values longer than this are not indexed for reverse lookup: a btree entry must stay under
# 2704 bytes (the limit is on bytes: 1,000 four-byte characters are too many).
MAX_TERM_LENGTH = 1000
MAX_TERM_BYTES = 2000


def term_fits(term: str) -> bool:
    """True when a reverse-lookup term is small enough for its btree index."""
    return len(term) <= MAX_TERM_BYTES // 4 or (
        len(term) <= MAX_TERM_BYTES and len(term.encode("utf-8", "surrogatepass")) <= MAX_TERM_BYTES
    )


def search_terms(values: list[StoredValue], search_types: frozenset[str]) -> list[str]:
    """The reverse-lookup terms of a record: `<type folded>=<value>` for the searchable types."""
    terms = []
    for value in values:
        value_type = fold(value["type"])
        if value_type in search_types:
            data = value["data"]["value"]
            if isinstance(data, str) and len(data) <= MAX_TERM_LENGTH:
                term = f"{value_type}={data}"
                if term_fits(term):
                    terms.append(term)
    return terms


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
        # This worker's token states (resolver.services.accounts), told of a user change at once after its
        # commit; the change feed tells every other worker.
        self.on_users_changed: Callable[[list[int]], None] | None = None

    def use_replica(self, replica: Readers, primary: Readers, window: float) -> None:
        self.readers, self.primary, self.recent_window = replica, primary, window

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
            if not fresh:
                return await self.readers.fetch_many(keys)
            rest = [k for k in keys if recent.get(k, 0.0) <= now]
            found = await primary.fetch_many(fresh)
            if rest:
                found.update(await self.readers.fetch_many(rest))
            return found

    async def fetch_primary(self, keys: list[str]) -> dict[str, Record]:
        """Current records read from the primary, whatever the replica says."""
        async with translated_errors():
            return await (self.primary or self.readers).fetch_many(keys)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[Tx]:
        """A transaction that notifies every cache of the handles it changed, on commit."""
        stage = "open"
        async with translated_errors():
            try:
                async with self._pool.acquire(timeout=self._timeout) as conn:
                    async with conn.transaction():
                        tx = Tx(conn, self._timeout, self.search_types)
                        yield tx
                        await tx.flush()
                        stage = "committing"
                    stage = "committed"
            except _UNAVAILABLE as exc:
                if stage == "committed":  # stored; only giving the connection back failed
                    logging.getLogger("resolver").warning("connection lost after a commit: %r", exc)
                    return
                raise Unavailable(uncertain=stage == "committing") from exc

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

    async def templates(
        self, prefixes: list[str], versions: list[str]
    ) -> list[tuple[str, str, list[str], str]]:
        """Template rows (prefix, version, industry codes, items JSON), read outside a transaction."""
        rows = await self.fetch_named("templates_for", prefixes, versions)
        return [(row[0], row[1], list(row[2]), row[3]) for row in rows]

    async def fetch_named(self, name: str, *args: object) -> list[asyncpg.Record]:
        """The rows of a named read-only statement of queries.sql."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return list(await conn.fetch(Q[name], *args, timeout=self._timeout))

    async def fetchval_named(self, name: str, *args: object) -> Any:
        """The single value of a named read-only statement of queries.sql."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return await conn.fetchval(Q[name], *args, timeout=self._timeout)

    async def ping(self) -> int:
        """The applied schema version; raises Unavailable when the database is unreachable."""
        async with translated_errors(), self._pool.acquire(timeout=self._timeout) as conn:
            return int(await conn.fetchval(Q["schema_version"], timeout=self._timeout))
