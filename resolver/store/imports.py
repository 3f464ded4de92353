"""The bulk importer's and exporter's statements: an import's progress and committed chunks,
a chunk's rows COPied into `handles` (straight, or through a staging table and a merge), its
search terms, its audit entry, notifications and daily counts, and the handles of a prefix for
an export. Statements in sql/imports.sql.

Every function takes the connection the importer writes on; those writing a chunk run in the
transaction that `chunk_transaction` opens.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from datetime import date
from typing import NamedTuple, TypeVar, cast

import asyncpg
import asyncpg.transaction
import orjson

from resolver.config import Config
from resolver.core.templates import Template, parse_template
from resolver.store.connections import Connection
from resolver.store.queries import Q
from resolver.store.rows import AuditEntry, PrefixInfo
from resolver.store.statistics import Counts, add_daily_counts
from resolver.store.tx import Tx, listening_caches, notify, write_audit

T = TypeVar("T")

HANDLE_COLUMNS = ["key", "handle", "prefix", "vals"]
TERM_COLUMNS = ["key", "term", "prefix"]


class ImportState(NamedTuple):
    """An import as recorded (by the sha256 of its file): the counts its last run recorded when it
    finished (or, before chunks were recorded one by one, as far as it came)."""

    rows_done: int
    accepted: int
    rejected: int
    finished: bool


class CommittedChunk(NamedTuple):
    """A chunk of an import that committed: its first and last line, its counts."""

    first_line: int
    last_line: int
    accepted: int
    rejected: int


class StoredValues(NamedTuple):
    """A handle that existed before its row was imported: its stored values as JSON text."""

    key: str
    values: str


class ExportedHandle(NamedTuple):
    """A handle as export writes it: the handle as registered, its values as JSON text."""

    handle: str
    values: str


async def connect_writer(dsn: str) -> asyncpg.Connection:
    """A further connection to write chunks on (`resolver import --writers N`)."""
    return await asyncpg.connect(dsn)


@contextlib.asynccontextmanager
async def transaction(conn: Connection, config: Config) -> AsyncIterator[Tx]:
    """A write transaction of the Registry's kind on the importer's connection: its audit
    entries and cache notifications are written when it commits."""
    async with conn.transaction():
        tx = Tx(conn, config.db_timeout, frozenset(config.search_types))
        yield tx
        await tx.flush()


async def enterprise_prefixes(conn: Connection) -> list[PrefixInfo]:
    """Every allocated enterprise prefix, with its state and owner."""
    return [
        PrefixInfo(row[0], int(row[1]), int(row[2]), bool(row[3]))
        for row in await conn.fetch(Q["enterprise_prefix_all"])
    ]


async def all_templates(conn: Connection) -> dict[tuple[str, str], Template]:
    """Every stored template, by (prefix, version); prefix '' for the shared ones."""
    templates = {}
    for prefix, version, codes, items in await conn.fetch(Q["templates_all"]):
        raw = {"version": version, "industryCodes": list(codes), "items": orjson.loads(items)}
        templates[(prefix, version)] = parse_template(raw, prefix)
    return templates


async def import_state(conn: Connection, digest: str) -> ImportState | None:
    """The import of the file with this sha256, if one was started."""
    row = await conn.fetchrow(Q["import_get"], digest)
    if row is None:
        return None
    return ImportState(int(row[1]), int(row[2]), int(row[3]), bool(row[4]))


async def start_import(conn: Connection, digest: str, path: str) -> None:
    """Record that the import of this file has begun (nothing when it was begun before)."""
    await conn.execute(Q["import_start"], digest, path)


async def committed_chunks(conn: Connection, digest: str) -> list[CommittedChunk]:
    """The chunks of this import that committed, by first line."""
    return [
        CommittedChunk(int(r[0]), int(r[1]), int(r[2]), int(r[3]))
        for r in await conn.fetch(Q["import_chunks_of"], digest)
    ]


async def finish_import(conn: Connection, digest: str, rows: int, accepted: int, rejected: int) -> None:
    """Record that the import is finished, with its totals."""
    await conn.execute(Q["import_finish"], digest, rows, accepted, rejected)


async def analyze_handles(conn: Connection) -> None:
    """Fresh planner statistics for `handles` (and for the identifiers gauge, pg_class.reltuples)."""
    await conn.execute(Q["analyze_handles"])


def chunk_transaction(conn: Connection) -> asyncpg.transaction.Transaction:
    """The transaction a chunk is written and recorded in."""
    return conn.transaction()


async def retry_deadlocks(attempt: Callable[[], Awaitable[T]], attempts: int = 3) -> T:
    """Run `attempt` (a chunk's transaction) again when Postgres broke a deadlock by failing it:
    two chunks holding the same handles, taken in different orders. The last failure propagates."""
    for attempted in range(1, attempts + 1):
        try:
            return await attempt()
        except asyncpg.DeadlockDetectedError:
            if attempted == attempts:
                raise
    raise AssertionError("unreachable")


async def _blocks(data: bytes | memoryview, size: int = 1 << 20) -> AsyncIterator[bytes]:
    # Views, not copies: asyncpg takes any buffer (its stubs say bytes).
    view = memoryview(data)
    for start in range(0, len(view), size):
        yield cast(bytes, view[start : start + size])


async def copy_new_handles(conn: Connection, rows: bytes | memoryview) -> bool:
    """COPY a chunk's rows (binary COPY of key, handle, prefix, vals) straight into `handles`, in
    a savepoint; False, with nothing written, when one of them exists already."""
    try:
        async with conn.transaction():
            await conn.copy_to_table("handles", source=_blocks(rows), columns=HANDLE_COLUMNS, format="binary")
    except asyncpg.UniqueViolationError:
        return False
    return True


async def stage(conn: Connection, rows: bytes | memoryview) -> None:
    """COPY a chunk's rows (binary COPY of key, handle, prefix, vals) into the staging table (a
    temporary table emptied when the transaction commits)."""
    await conn.execute(Q["import_staging_create"])
    await conn.copy_to_table("import_staging", source=_blocks(rows), columns=HANDLE_COLUMNS, format="binary")


async def merge_staged(conn: Connection) -> set[str]:
    """Insert the staged rows that do not exist yet, in key order; returns the keys inserted."""
    return {row[0] for row in await conn.fetch(Q["import_merge"])}


async def stored_values(conn: Connection, keys: Sequence[str]) -> list[StoredValues]:
    """The stored values of those of these handles that exist."""
    return [StoredValues(key, values) for key, values in await conn.fetch(Q["import_conflicts"], keys)]


async def copy_terms(conn: Connection, terms: bytes | memoryview) -> None:
    """COPY search terms (binary COPY of key, term, prefix) into `search_terms`."""
    await conn.copy_to_table("search_terms", source=_blocks(terms), columns=TERM_COLUMNS, format="binary")


async def insert_terms(conn: Connection, terms: Sequence[tuple[str, str, str]]) -> None:
    """Insert search terms given as (key, term, prefix)."""
    await conn.copy_records_to_table("search_terms", records=terms, columns=TERM_COLUMNS)


async def record_chunk(
    conn: Connection,
    digest: str,
    lines: tuple[int, int],
    accepted: int,
    rejected: int,
    audit: AuditEntry,
) -> None:
    """Record a chunk as committed (`lines`: its first and last line), with its audit entry."""
    await write_audit(conn, [audit])
    await conn.execute(Q["import_chunk_done"], digest, lines[0], lines[1], accepted, rejected)


async def announce_added(
    conn: Connection, keys: list[str], per_prefix: Mapping[str, int], day: date, origin: str = ""
) -> None:
    """Notify the workers' caches of the handles a chunk added (`origin`: where they acknowledge,
    `resolver.store.coherence`), and count them as registrations of `day`."""
    await notify(conn, keys, origin=origin)
    await add_daily_counts(conn, day, {p: Counts(registrations=n) for p, n in per_prefix.items()})


async def prefix_handles(conn: Connection, prefix: str) -> AsyncIterator[ExportedHandle]:
    """Every handle under `prefix` (folded), by key, read in one transaction."""
    async with conn.transaction():
        async for row in conn.cursor(Q["export_prefix"], prefix, prefetch=5000):
            yield ExportedHandle(row[0], row[1])


async def caches_listening(conn: Connection) -> set[int] | None:
    """The change feeds a chunk's commit waits for (`resolver.store.tx.listening_caches`)."""
    return await listening_caches(conn)
