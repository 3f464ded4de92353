"""An in-memory stand-in for the handle store, for unit tests of the registry and batch rules.

It implements the part of `resolver.store.handles.HandleStore` and `resolver.store.tx.Tx` that
`resolver.services.registry.Registry` and `resolver.services.batches.Batches` use, backed by dicts,
in the manner of procrastinate's `InMemoryConnector` (procrastinate/testing.py): one method per store
method, the same semantics, no SQL. Postgres stays the truth: tests/integration/test_fake_store_agrees.py
runs one scripted sequence against both and compares what they hold.

Semantics kept from the real store:
- values travel as JSON text, so every read hands out fresh copies (a caller mutating a record it
  read changes nothing stored);
- keys are the case-folded handles that callers pass; the fake refuses a key that is not folded,
  where Postgres would silently store or miss it;
- `insert`/`insert_many` skip existing keys (`on conflict do nothing`), the first of duplicates wins;
- an update or single delete of a handle not read under lock first is a programming error
  (`Tx._index` raises AssertionError for it);
- a transaction's writes, audit entries and change notifications become visible only when it
  commits; an exception inside `write()` discards them all. Transactions run one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import NamedTuple

import orjson

from resolver.core.handles import fold
from resolver.core.values import StoredValue
from resolver.store.notifications import user_line
from resolver.store.rows import AuditEntry, PrefixInfo, Record, TemplateRow, encode_values


class Row(NamedTuple):
    """One stored handle, as the `handles` table holds it."""

    handle: str
    prefix: str
    vals: str  # JSON text


def _record(row: Row) -> Record:
    return Record(row.handle, orjson.loads(row.vals))


def _folded(key: str) -> str:
    if key != fold(key):
        raise AssertionError(f"store keys are case-folded handles; {key!r} is not")
    return key


class FakeTx:
    """The fake of `Tx`: reads and writes a private copy of the handles until commit."""

    def __init__(self, store: FakeStore) -> None:
        self._store = store
        self.handles: dict[str, Row] = dict(store.handles)
        self.changed: list[str] = []
        self.changed_users: list[int] = []
        self.audit_entries: list[AuditEntry] = []
        self._locked: set[str] = set()

    def audit(self, entry: AuditEntry) -> None:
        """Record an audit entry; it is kept with the transaction."""
        self.audit_entries.append(entry)

    def _must_be_locked(self, key: str) -> None:
        if key not in self._locked:
            raise AssertionError(f"{key} changed without being read under lock first")

    async def lock(self, key: str) -> Record | None:
        row = self.handles.get(_folded(key))
        if row is None:
            return None
        self._locked.add(key)
        return _record(row)

    async def lock_many(self, keys: list[str]) -> dict[str, Record]:
        locked = {k: _record(self.handles[k]) for k in sorted(set(keys)) if _folded(k) in self.handles}
        self._locked.update(locked)
        return locked

    async def fetch_many(self, keys: Iterable[str]) -> dict[str, Record]:
        return {k: _record(self.handles[k]) for k in keys if _folded(k) in self.handles}

    async def insert(self, key: str, handle: str, prefix: str, values: list[StoredValue]) -> bool:
        if _folded(key) in self.handles:
            return False
        self.handles[key] = Row(handle, prefix, encode_values(values))
        self.changed.append(key)
        return True

    async def insert_many(self, rows: list[tuple[str, str, str, list[StoredValue]]]) -> set[str]:
        done: set[str] = set()
        for key, handle, prefix, values in sorted(rows, key=lambda r: r[0]):
            if _folded(key) in self.handles:
                continue
            self.handles[key] = Row(handle, prefix, encode_values(values))
            self.changed.append(key)
            done.add(key)
        return done

    async def update(self, key: str, values: list[StoredValue]) -> None:
        self._must_be_locked(key)
        row = self.handles.get(key)
        if row is not None:
            self.handles[key] = row._replace(vals=encode_values(values))
        self.changed.append(key)

    async def update_many(self, rows: list[tuple[str, list[StoredValue]]]) -> None:
        for key, values in sorted(rows, key=lambda r: r[0]):
            await self.update(key, values)

    async def delete(self, key: str) -> bool:
        if _folded(key) not in self.handles:
            return False
        self._must_be_locked(key)
        del self.handles[key]
        self.changed.append(key)
        return True

    async def delete_many(self, keys: list[str]) -> dict[str, Record]:
        deleted = {k: _record(self.handles.pop(k)) for k in sorted(set(keys)) if _folded(k) in self.handles}
        self._locked.update(deleted)
        self.changed.extend(deleted)
        return deleted

    async def prefix_info(self, prefixes: list[str]) -> dict[str, PrefixInfo]:
        return await self._store.prefix_info(prefixes)

    async def templates(self, prefixes: list[str], versions: list[str]) -> list[TemplateRow]:
        return await self._store.templates(prefixes, versions)


class FakeStore:
    """The fake of `HandleStore`, plus the seeding helpers a test sets its world up with."""

    def __init__(self) -> None:
        self.handles: dict[str, Row] = {}
        self.enterprise_prefixes: dict[str, PrefixInfo] = {}
        self.stored_templates: dict[tuple[str, str], TemplateRow] = {}
        self.audit_log: list[AuditEntry] = []
        # The change notifications of every committed transaction: handle keys, then user lines.
        self.notifications: list[str] = []
        self.commits = 0
        self.primary = None  # no replica
        self._writer = asyncio.Lock()

    # -- seeding (behind every service's back, like a test writing rows with SQL) ------------

    def put(self, handle: str, values: list[StoredValue]) -> None:
        """Store a handle with these values, replacing what it held."""
        self.handles[fold(handle)] = Row(handle, fold(handle.partition("/")[0]), encode_values(values))

    def allocate(self, prefix: str, state: int, enterprise_id: int) -> None:
        """Make `prefix` an enterprise prefix in `state`, owned by `enterprise_id`."""
        self.enterprise_prefixes[fold(prefix)] = PrefixInfo(fold(prefix), state, enterprise_id)

    def put_template(self, row: TemplateRow) -> None:
        self.stored_templates[(row.prefix, row.version)] = row

    def values(self, handle: str) -> list[StoredValue] | None:
        """What a handle holds now (None: it does not exist)."""
        row = self.handles.get(fold(handle))
        return None if row is None else _record(row).values

    # -- the HandleStore interface ------------------------------------------------------------

    async def fetch_many(self, keys: list[str]) -> dict[str, Record]:
        return {k: _record(self.handles[k]) for k in keys if _folded(k) in self.handles}

    async def fetch_primary(self, keys: list[str]) -> dict[str, Record]:
        return await self.fetch_many(keys)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[FakeTx]:
        async with self._writer:
            tx = FakeTx(self)
            yield tx
            self.handles = tx.handles
            self.audit_log.extend(tx.audit_entries)
            self.notifications.extend(tx.changed)
            self.notifications.extend(user_line(u) for u in tx.changed_users)
            self.commits += 1

    async def list_prefix(self, prefix: str, page: int, page_size: int) -> tuple[int, list[str]]:
        keys = sorted(k for k, row in self.handles.items() if row.prefix == prefix)
        start = page * page_size
        return len(keys), [self.handles[k].handle for k in keys[start : start + page_size]]

    async def prefix_handles(self) -> list[str]:
        return [self.handles[k].handle for k in sorted(self.handles) if self.handles[k].prefix == "0.na"]

    async def prefix_info(self, prefixes: list[str]) -> dict[str, PrefixInfo]:
        return {p: self.enterprise_prefixes[p] for p in prefixes if p in self.enterprise_prefixes}

    async def templates(self, prefixes: list[str], versions: list[str]) -> list[TemplateRow]:
        return [
            row
            for (prefix, version), row in sorted(self.stored_templates.items())
            if prefix in prefixes and version in versions
        ]

    def changed(self, keys: list[str] | None) -> None:
        """Replica bookkeeping of the real store: nothing to do without a replica."""
