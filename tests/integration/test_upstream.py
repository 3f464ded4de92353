"""The outbox to the top-level node: written with the change, delivered in order per lane, retried
with backoff, idempotent at the receiver; daily statistics after a day closes; resync; status."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

from resolver.upstream.toplevel import HttpUpstream, deliver_due, queue_closed_days, resync, status
from tests.enterprise_helpers import admit
from tests.helpers import basic
from tests.simulator import module


@pytest.fixture
async def simulator():
    sim = module()
    async with TestClient(TestServer(sim.create_app("node-88.123", "upstream-secret"))) as client:
        yield client


@pytest.fixture
def upstream_config(config, simulator):
    return replace(
        config,
        upstream_url=str(simulator.make_url("")).rstrip("/"),
        upstream_user="node-88.123",
        upstream_secret="upstream-secret",
        public_url="http://127.0.0.1:8123",
    )


async def outbox(config):
    conn = await asyncpg.connect(config.dsn)
    try:
        return [
            dict(r)
            for r in await conn.fetch(
                "select id, lane, kind, body::text as body, attempts, delivered_at from outbox order by id"
            )
        ]
    finally:
        await conn.close()


async def deliver(config):
    upstream = HttpUpstream(config.upstream_url, config.upstream_user, config.upstream_secret)
    conn = await asyncpg.connect(config.dsn)
    try:
        return await deliver_due(conn, upstream)
    finally:
        await conn.close()
        await upstream.close()


async def sim_state(simulator):
    return await (await simulator.get("/upstream/v1/state")).json()


async def test_enabling_and_disabling_a_prefix_queue_its_record_in_the_same_transaction(client, config):
    await admit(client, "88.123.45", 41)
    rows = await outbox(config)
    assert [(r["lane"], r["kind"]) for r in rows] == [("prefix:88.123.45", "prefix")]
    assert '"op":"upsert"' in rows[0]["body"] and "HS_SITE" in rows[0]["body"]
    await client.put("/admin/prefixes/88.123.45/state", json={"state": 0}, headers=basic())
    rows = await outbox(config)
    assert len(rows) == 2 and '"op":"delete"' in rows[1]["body"]
    # a refused transition writes nothing, not even a message
    refused = await client.put("/admin/prefixes/88.123.45/state", json={"state": 4}, headers=basic())
    assert (await refused.json())["status"] != 1
    assert len(await outbox(config)) == 2


async def test_delivery_in_order_with_retries_and_a_record_that_points_here(upstream_config, simulator):
    async with _serving(upstream_config) as client:
        await admit(client, "88.123.45", 42)
        await admit(client, "88.123.46", 43)
        await client.put("/admin/prefixes/88.123.45/state", json={"state": 0}, headers=basic())
    # the receiver is down for one message: that lane waits, the other lane goes on
    await simulator.post("/simulator/fail", json={"count": 1})
    delivered, failed = await deliver(upstream_config)
    assert (delivered, failed) == (1, 1)
    rows = await outbox(upstream_config)
    first = rows[0]
    assert first["attempts"] == 1 and first["delivered_at"] is None
    state = await sim_state(simulator)
    assert list(state["prefixes"]) == ["0.na/88.123.46"]
    # not before its backoff has passed
    assert await deliver(upstream_config) == (0, 0)
    await _due_now(upstream_config)
    assert await deliver(upstream_config) == (1, 0)  # the upsert of 88.123.45
    await _due_now(upstream_config)
    assert await deliver(upstream_config) == (1, 0)  # then, and only then, its deletion
    state = await sim_state(simulator)
    assert list(state["prefixes"]) == ["0.na/88.123.46"]
    record = (await (await simulator.get("/api/handles/0.NA/88.123.46")).json())["values"][0]
    server = record["data"]["value"]["servers"][0]
    assert record["type"] == "HS_SITE"
    assert (server["address"], server["interfaces"][0]["port"]) == ("127.0.0.1", 8123)
    assert (await status_of(upstream_config)).pending == 0


async def test_a_repeated_delivery_is_acknowledged_and_ignored(upstream_config, simulator):
    async with _serving(upstream_config) as client:
        await admit(client, "88.123.45", 44)
    assert await deliver(upstream_config) == (1, 0)
    conn = await asyncpg.connect(upstream_config.dsn)
    try:  # as if the acknowledgement had been lost: the same message goes again
        await conn.execute("update outbox set delivered_at = null")
    finally:
        await conn.close()
    assert await deliver(upstream_config) == (1, 0)
    state = await sim_state(simulator)
    assert (state["received"], state["duplicates"], len(state["prefixes"])) == (2, 1, 1)


async def test_wrong_credentials_keep_messages_in_the_outbox(upstream_config, simulator):
    wrong = replace(upstream_config, upstream_secret="not-the-secret")
    async with _serving(wrong) as client:
        await admit(client, "88.123.45", 45)
    assert await deliver(wrong) == (0, 1)
    state = await status_of(wrong)
    assert state.pending == 1 and "401" in state.messages[0]["lastError"]


async def test_statistics_of_a_closed_day_are_queued_once_and_delivered(upstream_config, simulator):
    yesterday = date.today() - timedelta(days=1)
    conn = await asyncpg.connect(upstream_config.dsn)
    try:
        await conn.execute(
            "insert into daily_counts values ($1, '88.123.45', 7, 1000, 3), ($1, '88.123', 2, 50, 1)",
            yesterday,
        )
        now = datetime.combine(date.today(), datetime.min.time(), UTC) + timedelta(minutes=5)
        assert await queue_closed_days(conn, upstream_config, now) == 1
        assert await queue_closed_days(conn, upstream_config, now) == 0
        # shortly after midnight the day is not closed yet: workers may still be flushing
        early = datetime.combine(date.today(), datetime.min.time(), UTC) + timedelta(seconds=5)
        await conn.execute("delete from outbox")
        assert await queue_closed_days(conn, upstream_config, early) == 0
        assert await queue_closed_days(conn, upstream_config, now) == 1
    finally:
        await conn.close()
    assert await deliver(upstream_config) == (1, 0)
    report = (await sim_state(simulator))["statistics"][f"88.123/{yesterday.isoformat()}"]
    assert report["total"] == {"registrations": 9, "resolutions": 1050, "notFound": 4}
    assert {p["prefix"]: p["resolutions"] for p in report["prefixes"]} == {"88.123": 50, "88.123.45": 1000}


async def test_resync_queues_every_enabled_prefix_and_the_node_prefix(upstream_config, simulator):
    async with _serving(upstream_config) as client:
        await admit(client, "88.123.45", 46)
        await admit(client, "88.123.46", 47)
        await client.put("/admin/prefixes/88.123.46/state", json={"state": 0}, headers=basic())
    conn = await asyncpg.connect(upstream_config.dsn)
    try:
        await conn.execute("update outbox set delivered_at = now()")
        assert await resync(conn, upstream_config) == (2, 0)
    finally:
        await conn.close()
    await deliver(upstream_config)
    assert sorted((await sim_state(simulator))["prefixes"]) == ["0.na/88.123", "0.na/88.123.45"]


async def _due_now(config):
    conn = await asyncpg.connect(config.dsn)
    try:
        await conn.execute("update outbox set next_attempt = now() where delivered_at is null")
    finally:
        await conn.close()


async def status_of(config):
    conn = await asyncpg.connect(config.dsn)
    try:
        return await status(conn)
    finally:
        await conn.close()


def _serving(config):
    """The node without its own deliverer, so that the test drives delivery step by step."""
    from tests.helpers import serving

    return serving(replace(config, upstream_url=None))
