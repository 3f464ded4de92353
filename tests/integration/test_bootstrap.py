"""The node administrator is created once even when several processes start together, and its
secret key is stored sealed (resolver.services.seckeys)."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace

import asyncpg
import orjson
import pytest

from resolver.core import secrets
from resolver.core.secrets import Seal
from resolver.services.bootstrap import ensure_node_admin
from resolver.services.seckeys import SEAL_FILE, SealError, SecretKeys, load_seal
from resolver.store.connections import Readers
from resolver.store.handles import HandleStore


async def test_two_processes_bootstrapping_a_new_node_at_once_both_succeed(config):
    fresh = replace(config, node_prefix="88.777")
    keys = SecretKeys(Seal(os.urandom(32)))
    pools = [await asyncpg.create_pool(fresh.dsn, min_size=1, max_size=2) for _ in range(4)]
    try:
        stores = [HandleStore(pool, Readers(fresh.dsn, 1, 3.0), 3.0) for pool in pools]
        await asyncio.gather(*(ensure_node_admin(fresh, store, keys) for store in stores))
        conn = await asyncpg.connect(fresh.dsn)
        try:
            assert await conn.fetchval("select count(*) from handles where key = '0.na/88.777'") == 1
        finally:
            await conn.close()
    finally:
        for pool in pools:
            await pool.close()


async def _admin_seckey(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        values = orjson.loads(await conn.fetchval("select vals::text from handles where key = '0.na/88.123'"))
    finally:
        await conn.close()
    return next(v["data"] for v in values if v["type"] == "HS_SECKEY")


async def test_an_admin_secret_stored_as_scrypt_is_sealed_at_the_next_start(config):
    """Nodes installed before sealing stored the administrator's secret as a scrypt hash; the
    configured secret is in hand at start, so the start seals it."""
    keys = SecretKeys(Seal(os.urandom(32)))
    pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=2)
    try:
        store = HandleStore(pool, Readers(config.dsn, 1, 3.0), 3.0)
        await ensure_node_admin(config, store, keys)
        first = await _admin_seckey(config.dsn)
        assert first["format"] == "sealed"
        assert keys.hashed_key(first) == secrets.reference_hash(config.admin_secret.encode())
        await ensure_node_admin(config, store, keys)
        assert await _admin_seckey(config.dsn) == first  # the same secret: left as it is
        conn = await asyncpg.connect(config.dsn)
        try:
            legacy = secrets.hash_secret(config.admin_secret.encode())
            await conn.execute(
                "update handles set vals = (select json_agg(case when v->>'type' = 'HS_SECKEY' then"
                " jsonb_set(v::jsonb, '{data}', $1::jsonb)::json else v end) from json_array_elements(vals) v)"
                " where key = '0.na/88.123'",
                orjson.dumps({"format": "scrypt", "value": legacy}).decode(),
            )
        finally:
            await conn.close()
        assert (await _admin_seckey(config.dsn))["format"] == "scrypt"
        await ensure_node_admin(config, store, keys)
        converted = await _admin_seckey(config.dsn)
        assert converted["format"] == "sealed" and keys.hashed_key(converted) is not None
    finally:
        await pool.close()


async def test_an_instance_with_another_seal_key_refuses_to_start(config, tmp_path):
    """The database remembers the id of the seal its secret keys are sealed with: an instance whose
    key directory holds another key would write values no other instance can read."""
    pool = await asyncpg.create_pool(config.dsn, min_size=1, max_size=2)
    try:
        store = HandleStore(pool, Readers(config.dsn, 1, 3.0), 3.0)
        first = await load_seal(tmp_path / "first", store)
        assert (await load_seal(tmp_path / "first", store)).key_id == first.key_id
        assert oct((tmp_path / "first" / SEAL_FILE).stat().st_mode & 0o777) == "0o600"
        with pytest.raises(SealError, match="give every instance the same --key-dir"):
            await load_seal(tmp_path / "second", store)
    finally:
        await pool.close()
