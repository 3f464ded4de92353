"""The in-memory store of the unit tests (tests/fakestore.py) agrees with the real one.

One scripted sequence runs against both: the store's own operations inside and outside
transactions (their answers compared step by step), then writes through the registry and the
batches, and a transaction that fails. Afterwards both must hold the same handles, the same audit
trail and have notified the same changes. Postgres is the truth: when they differ, the fake is wrong.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson
import pytest

from resolver.cache import Lookup, ResolutionCache
from resolver.config import CacheSettings, Config
from resolver.core.audit import audit_json
from resolver.core.enterprises import PrefixState
from resolver.core.errors import HandleError
from resolver.core.handles import parse_handle
from resolver.core.permissions import Identity
from resolver.core.secrets import Seal
from resolver.services.batches import Batches
from resolver.services.registry import Registry
from resolver.services.seckeys import SecretKeys
from resolver.store.connections import Readers
from resolver.store.handles import HandleStore
from resolver.store.notifications import CHANNEL, parse_payload
from resolver.store.rows import TemplateRow
from tests.fakestore import FakeStore, Row
from tests.helpers import url_value

NODE_ADMIN = Identity(300, "0.na/88.123", "0.NA/88.123")
ACME = Identity(0, "user:1", "acme", actor="user:acme", enterprise_id=1)


def values(*urls: str) -> list[dict[str, Any]]:
    return [
        {"index": i, "type": "URL", "data": {"format": "string", "value": u}, "ttl": 86400, "timestamp": "t"}
        for i, u in enumerate(urls, start=1)
    ]


@dataclass
class Side:
    """One store with the services over it."""

    store: Any
    registry: Registry
    batches: Batches
    changed: list[list[str]]


async def seed(conn: asyncpg.Connection) -> None:
    await conn.execute(
        "insert into enterprises (id, name, credit_code) values (1, 'a', 'x1'), (2, 'b', 'x2')"
    )
    await conn.execute(
        "insert into enterprise_prefixes (prefix, display, enterprise_id, state) values "
        "('88.123.45', '88.123.45', 1, $1), ('88.123.46', '88.123.46', 2, $2)",
        PrefixState.ENABLED,
        PrefixState.DISABLED,
    )
    await conn.execute(
        "insert into handles (key, handle, prefix, vals) values ('88.123/seed', '88.123/Seed', '88.123', $1::json)",
        orjson.dumps(values("https://seed")).decode(),
    )


async def copy_into(fake: FakeStore, conn: asyncpg.Connection) -> None:
    """The fake starts from what the database holds after migrating and seeding."""
    for r in await conn.fetch("select key, handle, prefix, vals::text from handles"):
        fake.handles[r[0]] = Row(r[1], r[2], r[3])
    for r in await conn.fetch("select prefix, state, enterprise_id from enterprise_prefixes"):
        fake.allocate(r[0], r[1], r[2])
    for r in await conn.fetch("select prefix, version, industry_codes, items::text from templates"):
        fake.put_template(TemplateRow(r[0], r[1], list(r[2]), r[3]))


def services(store: Any, lookup: Lookup) -> Side:
    registry = Registry(Config(node_prefix="88.123"), store, lookup, SecretKeys(Seal(os.urandom(32))))
    return Side(store, registry, Batches(registry), [])


@pytest.fixture
async def sides(config: Config) -> AsyncIterator[tuple[Side, Side, asyncpg.Connection]]:
    assert config.dsn is not None
    conn = await asyncpg.connect(config.dsn)
    pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=2)
    readers = Readers(config.dsn, 1, config.db_timeout)
    real = HandleStore(pool, readers, config.db_timeout, frozenset(config.search_types))
    fake = FakeStore()
    lookups = [
        Lookup(ResolutionCache(CacheSettings()), store.fetch_many, max_batches=1) for store in (real, fake)
    ]
    try:
        await seed(conn)
        await copy_into(fake, conn)
        yield services(real, lookups[0]), services(fake, lookups[1]), conn
    finally:
        for lookup in lookups:
            await lookup.close()
        await readers.close()
        await pool.close()
        await conn.close()


Step = Callable[[Any], Awaitable[Any]]


def plain(answer: Any) -> Any:
    """An answer in a comparable shape (records by their fields, sets sorted)."""
    if isinstance(answer, dict):
        return {k: plain(v) for k, v in answer.items()}
    if isinstance(answer, set):
        return sorted(answer)
    if isinstance(answer, list):
        return [plain(v) for v in answer]
    if hasattr(answer, "handle") and hasattr(answer, "values"):
        return (answer.handle, answer.values)
    return answer


async def in_tx(side: Side, steps: list[Step]) -> list[Any]:
    """Run `steps` in one transaction; their answers, then the keys it notified."""
    answers = []
    async with side.store.write() as tx:
        for step in steps:
            answers.append(plain(await step(tx)))
    side.changed.append(sorted(tx.changed))
    return answers


TX_SCRIPT: list[list[Step]] = [
    [
        lambda tx: tx.insert("88.123/a", "88.123/A", "88.123", values("https://a")),
        lambda tx: tx.insert("88.123/a", "88.123/A", "88.123", values("https://again")),
        lambda tx: tx.insert_many(
            [
                ("88.123/c", "88.123/C", "88.123", values("https://c")),
                ("88.123/b", "88.123/b", "88.123", values("https://b")),
                ("88.123/seed", "88.123/SEED", "88.123", values("https://not")),
            ]
        ),
        lambda tx: tx.fetch_many(["88.123/a", "88.123/b", "88.123/missing"]),
    ],
    [
        lambda tx: tx.lock("88.123/a"),
        lambda tx: tx.lock("88.123/missing"),
        lambda tx: tx.update("88.123/a", values("https://a2", "https://a3")),
        lambda tx: tx.lock_many(["88.123/c", "88.123/b", "88.123/nope"]),
        lambda tx: tx.update_many([("88.123/c", values("https://c2")), ("88.123/b", values())]),
        lambda tx: tx.delete("88.123/missing"),
        lambda tx: tx.lock("88.123/seed"),
        lambda tx: tx.delete("88.123/seed"),
        lambda tx: tx.prefix_info(["88.123.45", "88.123.46", "88.123.47"]),
        lambda tx: tx.templates(["", "88.123.45"], ["general-product-1.0", "none"]),
    ],
    [
        lambda tx: tx.delete_many(["88.123/b", "88.123/missing"]),
        lambda tx: tx.fetch_many(["88.123/b", "88.123/c"]),
    ],
]


async def service_script(side: Side) -> list[Any]:
    """Writes through the registry and the batches; their answers or errors."""
    reg, batches = side.registry, side.batches
    name = lambda text: parse_handle(text, reg.limits)  # noqa: E731
    calls: list[Callable[[], Awaitable[Any]]] = [
        lambda: reg.create_or_replace(
            name("88.123/R-1"), [url_value(1, "https://r")], NODE_ADMIN, overwrite=False
        ),
        lambda: reg.create_or_replace(
            name("88.123/r-1"), [url_value(1, "https://r")], NODE_ADMIN, overwrite=False
        ),
        lambda: reg.put_values(
            name("88.123/R-1"), [url_value(2, "https://r2")], frozenset({2}), NODE_ADMIN, overwrite=False
        ),
        lambda: reg.delete_values(name("88.123/R-1"), frozenset({1}), NODE_ADMIN),
        lambda: reg.delete_values(name("88.123/R-1"), frozenset({9}), NODE_ADMIN),
        lambda: reg.list_handles("88.123", 0, 2, NODE_ADMIN),
        lambda: reg.list_handles("88.123", 1, 2, NODE_ADMIN),
        lambda: reg.owner_of(name("88.123.45/x")),
        lambda: reg.prefixes(),
        lambda: batches.create(
            ACME,
            batches.parse_items(
                [
                    {"handle": "88.123.45/E-1", "value": [url_value(1, "https://e")]},
                    {"handle": "88.123.46/E-2", "value": [url_value(1, "https://e")]},
                    {"handle": "88.123.45/E-1", "value": [url_value(1, "https://e")]},
                ]
            ),
        ),
        lambda: batches.update(
            ACME, batches.parse_items([{"handle": "88.123.45/E-1", "value": [url_value(3, "https://e3")]}])
        ),
        lambda: batches.delete(ACME, ["88.123.45/E-1", "88.123.45/none", 7]),
        lambda: reg.delete_handle(name("88.123/R-1"), NODE_ADMIN),
        lambda: reg.delete_handle(name("88.123/R-1"), NODE_ADMIN),
    ]
    answers = []
    for call in calls:
        try:
            answers.append(plain(await call()))
        except HandleError as exc:
            answers.append(("error", exc.rc, exc.message))
    return answers


def without_stamps(stored: Any) -> Any:
    """Stored values without their timestamps (each side stamped its own writes)."""
    if isinstance(stored, dict):
        return {k: without_stamps(v) for k, v in stored.items() if k != "timestamp"}
    if isinstance(stored, list | tuple):
        return [without_stamps(v) for v in stored]
    return stored


async def test_the_fake_store_agrees_with_postgres(sides):
    real, fake, conn = sides
    notified: list[str] = []
    arrived = asyncio.Event()

    def listen(*args: Any) -> None:
        notified.extend(parse_payload(args[3])[1])
        arrived.set()

    await conn.add_listener(CHANNEL, listen)
    for steps in TX_SCRIPT:
        assert await in_tx(real, steps) == await in_tx(fake, steps)
    assert real.changed == fake.changed

    class Boom(Exception):
        pass

    for side in (real, fake):
        with pytest.raises(Boom):
            async with side.store.write() as tx:
                await tx.insert("88.123/lost", "88.123/lost", "88.123", values("https://lost"))
                raise Boom

    reads: list[Step] = [
        lambda s: s.fetch_many(["88.123/a", "88.123/c", "88.123/lost", "88.123/seed"]),
        lambda s: s.fetch_primary(["88.123/a"]),
        lambda s: s.list_prefix("88.123", 0, 10),
        lambda s: s.list_prefix("88.123", 1, 1),
        lambda s: s.prefix_handles(),
        lambda s: s.prefix_info(["88.123.45", "88.123.46", "88.123.9"]),
        lambda s: s.templates([""], ["general-product-1.0"]),
    ]
    for read in reads:
        assert plain(await read(real.store)) == plain(await read(fake.store))

    real_answers = await service_script(real)
    fake_answers = await service_script(fake)
    assert real_answers == fake_answers

    rows = await conn.fetch("select key, handle, prefix, vals::text from handles order by key")
    assert [(r[0], r[1], r[2], without_stamps(orjson.loads(r[3]))) for r in rows] == [
        (k, row.handle, row.prefix, without_stamps(orjson.loads(row.vals)))
        for k, row in sorted(fake.store.handles.items())
    ]
    audited = await conn.fetch(
        "select actor, operation, handle, enterprise_id, before::text, after::text from audit order by id"
    )
    assert [
        (
            a[0],
            a[1],
            a[2],
            a[3],
            without_stamps(orjson.loads(a[4] or "null")),
            without_stamps(orjson.loads(a[5] or "null")),
        )
        for a in audited
    ] == [
        (
            e.actor,
            e.operation,
            e.handle,
            e.enterprise_id,
            without_stamps(orjson.loads(audit_json(e.before) or "null")),
            without_stamps(orjson.loads(audit_json(e.after) or "null")),
        )
        for e in fake.store.audit_log
    ]
    assert len(audited) == 7
    # what each side told the caches (as multisets: Postgres orders a batch delete's keys its own way)

    async def all_arrived() -> None:
        while len(notified) < len(fake.store.notifications):
            arrived.clear()
            await arrived.wait()

    await asyncio.wait_for(all_arrived(), 5)
    assert sorted(notified) == sorted(fake.store.notifications) and fake.store.notifications
