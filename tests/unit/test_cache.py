"""The cache and the coalescing loader, against an in-memory store (no database here)."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from resolver.cache import Lookup, ResolutionCache, record_expiry
from resolver.config import CacheSettings
from resolver.core.errors import Unavailable
from resolver.store.rows import Record
from tests.helpers import examples


def record(url: str, ttl: int = 86400) -> Record:
    return Record(
        "88.123/X",
        [
            {
                "index": 1,
                "type": "URL",
                "data": {"format": "string", "value": url},
                "ttl": ttl,
                "timestamp": "t",
            }
        ],
    )


class MemoryStore:
    """Stands in for the handle table: a dict, with a switch to make it unreachable."""

    def __init__(self) -> None:
        self.rows: dict[str, Record] = {}
        self.calls: list[list[str]] = []
        self.down = False
        self.gate: asyncio.Event | None = None

    async def fetch_many(self, keys: list[str]) -> dict[str, Record]:
        self.calls.append(list(keys))
        if self.gate is not None:
            await self.gate.wait()
        if self.down:
            raise Unavailable()
        return {k: self.rows[k] for k in keys if k in self.rows}


def make(settings: CacheSettings | None = None, batches: int = 2) -> tuple[Lookup, MemoryStore]:
    store = MemoryStore()
    cache = ResolutionCache(settings or CacheSettings())
    cache.trusted = True
    return Lookup(cache, store.fetch_many, max_batches=batches), store


async def test_concurrent_misses_for_one_handle_share_one_lookup():
    lookup, store = make()
    store.rows["a"] = record("https://a")
    entries = await asyncio.gather(*(lookup.get("a") for _ in range(50)))
    assert store.calls == [["a"]]
    assert all(e.record == store.rows["a"] for e in entries)


async def test_concurrent_misses_for_many_handles_share_one_query():
    lookup, store = make(batches=1)
    for i in range(100):
        store.rows[f"k{i}"] = record(f"https://{i}")
    entries = await asyncio.gather(*(lookup.get(f"k{i}") for i in range(100)))
    assert len(store.calls) == 1 and sorted(store.calls[0]) == sorted(f"k{i}" for i in range(100))
    assert [e.record.values[0]["data"]["value"] for e in entries] == [f"https://{i}" for i in range(100)]


async def test_hits_do_not_query_and_tail_holds_public_values():
    lookup, store = make()
    store.rows["a"] = record("https://a")
    await lookup.get("a")
    entry = await lookup.get("a")
    assert len(store.calls) == 1
    assert entry.tail.startswith(b',"values":[') and b"https://a" in entry.tail


async def test_negative_entries_expire_quickly():
    lookup, store = make(CacheSettings(negative_ttl=0.05))
    assert (await lookup.get("missing")).record is None
    assert (await lookup.get("missing")).record is None
    assert len(store.calls) == 1
    await asyncio.sleep(0.06)
    store.rows["missing"] = record("https://now")
    assert (await lookup.get("missing")).record is not None


async def test_entries_expire_by_smallest_ttl_capped():
    lookup, store = make(CacheSettings(max_ttl=100, ttl_floor=0))
    store.rows["short"] = record("https://s", ttl=0)
    await lookup.get("short")
    await lookup.get("short")
    assert len(store.calls) == 2  # ttl 0 and no floor: never served from the cache
    assert record_expiry(record("https://l", ttl=86400), 0.0, 100) == 100


async def test_a_ttl_of_zero_is_cached_for_the_floor_and_invalidated_by_changes():
    lookup, store = make(CacheSettings(ttl_floor=60))
    store.rows["short"] = record("https://old", ttl=0)
    for _ in range(200):
        assert (await lookup.get("short")).record.values[0]["data"]["value"] == "https://old"
    assert len(store.calls) == 1
    store.rows["short"] = record("https://new", ttl=0)
    lookup.invalidate(["short"])  # a change, through this worker or the change feed
    assert (await lookup.get("short")).record.values[0]["data"]["value"] == "https://new"
    assert len(store.calls) == 2
    assert record_expiry(record("https://x", ttl=0), 0.0, 600, CacheSettings().ttl_floor) == 1.0
    assert record_expiry(record("https://x", ttl=0), 0.0, 0.5, 1.0) == 0.5  # the cap wins


async def test_bounded_by_count_and_bytes():
    lookup, store = make(CacheSettings(max_entries=10, max_bytes=10**9))
    for i in range(30):
        store.rows[f"k{i}"] = record("https://x")
        await lookup.get(f"k{i}")
    assert len(lookup.cache) == 10
    lookup, store = make(CacheSettings(max_entries=1000, max_bytes=5000))
    for i in range(30):
        store.rows[f"k{i}"] = record("https://" + "x" * 200)
        await lookup.get(f"k{i}")
    assert lookup.cache.bytes <= 5000 and 0 < len(lookup.cache) < 30


async def test_invalidation_during_a_lookup_keeps_stale_data_out():
    lookup, store = make()
    store.rows["a"] = record("https://old")
    store.gate = asyncio.Event()
    pending = asyncio.ensure_future(lookup.get("a"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    store.rows["a"] = record("https://new")
    lookup.invalidate(["a"])  # the write committed while the read was in flight
    fresh = asyncio.ensure_future(lookup.get("a"))
    store.gate.set()
    await pending
    assert (await fresh).record.values[0]["data"]["value"] == "https://new"
    assert (await lookup.get("a")).record.values[0]["data"]["value"] == "https://new"


async def test_stale_entries_answer_when_the_store_is_down():
    lookup, store = make()
    store.rows["a"] = record("https://a")
    await lookup.get("a")
    lookup.cache.trusted = False  # the change feed is down
    store.down = True
    assert (await lookup.get("a")).record is not None
    with pytest.raises(Unavailable):
        await lookup.get("b")


async def test_untrusted_cache_reads_through():
    lookup, store = make()
    store.rows["a"] = record("https://a")
    await lookup.get("a")
    lookup.cache.trusted = False
    store.rows["a"] = record("https://changed")
    assert (await lookup.get("a")).record.values[0]["data"]["value"] == "https://changed"


class CacheAgreesWithStore(RuleBasedStateMachine):
    """Random writes (each invalidating, as the change feed does) and reads: the cache never
    answers differently from the store."""

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.lookup, self.store = make(CacheSettings(max_entries=5, max_bytes=10**6, negative_ttl=60))
        self.model: dict[str, str] = {}

    keys = st.sampled_from([f"k{i}" for i in range(8)])

    @rule(key=keys, url=st.text(max_size=5))
    def write(self, key, url):
        self.store.rows[key] = record(url)
        self.model[key] = url
        self.lookup.invalidate([key])

    @rule(key=keys)
    def delete(self, key):
        self.store.rows.pop(key, None)
        self.model.pop(key, None)
        self.lookup.invalidate([key])

    @rule(key=keys)
    def read(self, key):
        entry = self.loop.run_until_complete(self.lookup.get(key))
        got = None if entry.record is None else entry.record.values[0]["data"]["value"]
        assert got == self.model.get(key)

    @rule(keys=st.lists(keys, min_size=1, max_size=6))
    def read_many_at_once(self, keys):
        async def all_of():
            return await asyncio.gather(*(self.lookup.get(k) for k in keys))

        for key, entry in zip(keys, self.loop.run_until_complete(all_of()), strict=True):
            got = None if entry.record is None else entry.record.values[0]["data"]["value"]
            assert got == self.model.get(key)

    @invariant()
    def bounded(self):
        assert len(self.lookup.cache._entries) <= 5

    def teardown(self):
        self.loop.close()


TestCacheAgreesWithStore = CacheAgreesWithStore.TestCase
TestCacheAgreesWithStore.settings = settings(max_examples=examples(60), stateful_step_count=30, deadline=None)


def test_notification_payloads_stay_under_the_postgres_limit():
    from resolver.store.notifications import MAX_PAYLOAD_BYTES, notification_payloads, parse_payload

    keys = [f"88.123/{'x' * 200}-{i}" for i in range(500)]
    payloads = notification_payloads(keys, sent_at=1234.5)
    assert len(payloads) > 1
    assert all(len(p.encode()) <= MAX_PAYLOAD_BYTES for p in payloads)
    parsed = [parse_payload(p) for p in payloads]
    assert all(sent == 1234.5 for sent, _ in parsed)
    assert [k for _, ks in parsed for k in ks] == keys
    assert notification_payloads([]) == []


async def test_a_record_that_cannot_be_cached_fails_its_own_waiters_and_no_one_else(caplog):
    """Seen with a hand-written row: an exception while caching one record of a coalesced batch
    left every later waiter of that batch waiting for ever."""
    lookup, store = make()
    store.rows["good"] = record("https://good")
    store.rows["broken"] = Record("88.123/B", [{**record("x").values[0], "ttl": "not a time"}])
    store.gate = asyncio.Event()
    broken = asyncio.ensure_future(lookup.fetch("broken"))
    good = asyncio.ensure_future(lookup.fetch("good"))
    await asyncio.sleep(0)
    store.gate.set()
    _, pending = await asyncio.wait({broken, good}, timeout=5)
    assert not pending
    assert len(store.calls) == 1  # one coalesced query for both
    assert isinstance(broken.exception(), ValueError)
    assert good.result().record is not None
    assert "could not be cached" in caplog.text
