"""Trusted resolution through the real processes (issue 17 item 4): `resolver keys init`, `resolver
serve` with two workers, the operator turning signing on for an enterprise prefix over HTTP,
registrations landing on either worker, and `resolver verify` (another process, a client of the
HTTP API only) checking each record's chain and digests; a value changed in the database fails;
after `resolver keys rotate` and SIGHUP new records are signed by the new key and old ones still
verify. Reference: hdllib trust/ HandleVerifier, ChainBuilder, ChainVerifier (docs/trust-reference.md)."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import requests

from tests.e2e.test_certified_resolution import keys
from tests.enterprise_helpers import credit_code
from tests.helpers import admin_json
from tests.nodes import start_node

pytestmark = pytest.mark.e2e

PRODUCT = [
    {"index": 1, "type": "URL", "data": "https://example.com/p"},
    {"index": 2000, "type": "productName", "data": "螺栓 M8"},
]


def verify(url: str, handle: str) -> tuple[int, str]:
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "verify", handle, "--url", url, "--node-prefix", "88.123"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


async def tamper(dsn: str, key: str) -> None:
    """Change the URL of a record in the database, behind the node's back."""
    conn = await asyncpg.connect(dsn)
    try:
        values = json.loads(await conn.fetchval("select vals::text from handles where key = $1", key))
        values[0]["data"]["value"] = "https://evil.example/"
        await conn.execute("update handles set vals = $2::json where key = $1", key, json.dumps(values))
    finally:
        await conn.close()


def ok(response: requests.Response) -> dict:
    body = response.json()
    assert body.get("status") == 1, body
    return body["data"]


def test_signed_prefix_records_verify_with_the_cli_across_workers_and_a_rotation(
    fresh_database: str, tmp_path: Path
):
    key_dir = tmp_path / "keys"
    keys(key_dir, "init")
    node = start_node(tmp_path, "--dsn", fresh_database, "--workers", "2", "--key-dir", str(key_dir))
    try:
        base, admin = node.url, admin_json()
        enterprise = ok(
            requests.post(
                f"{base}/admin/enterprises",
                json={
                    "name": "签名企业",
                    "creditCode": credit_code(7),
                    "contact": {"name": "李四", "phone": "13900000000"},
                },
                headers=admin,
                timeout=10,
            )
        )
        ok(
            requests.post(
                f"{base}/admin/enterprises/{enterprise['id']}/prefixes",
                json={"prefix": "88.123.7"},
                headers=admin,
                timeout=10,
            )
        )
        for state in (5, 1):
            ok(
                requests.put(
                    f"{base}/admin/prefixes/88.123.7/state", json={"state": state}, headers=admin, timeout=10
                )
            )
        turned = ok(
            requests.put(
                f"{base}/admin/prefixes/88.123.7/signing", json={"signed": True}, headers=admin, timeout=30
            )
        )
        assert turned["complete"] and turned["signed"]

        for n in range(10):  # new connections: both workers write, each signing with its loaded key
            put = requests.put(
                f"{base}/api/handles/88.123.7/S-{n}",
                json=PRODUCT,
                headers={**admin, "Connection": "close"},
                timeout=10,
            )
            assert put.status_code in (200, 201), put.text
        for n in (0, 9):
            code, out = verify(base, f"88.123.7/S-{n}")
            assert code == 0, out
            assert "chain 301:0.NA/88.123.7 -> 301:0.NA/88.123" in out and "index 1: verified" in out, out

        asyncio.run(tamper(fresh_database, "88.123.7/s-5"))
        code, out = verify(base, "88.123.7/S-5")
        assert code == 1 and "index 1: bad digest" in out, out

        keys(key_dir, "rotate", "--overlap", "0")
        node.process.send_signal(signal.SIGHUP)
        deadline, attempt = time.monotonic() + 20, 0
        while True:  # until a worker that reloaded signs a new record with key 2
            attempt += 1
            handle = f"88.123.7/R-{attempt}"
            put = requests.put(
                f"{base}/api/handles/{handle}",
                json=PRODUCT,
                headers={**admin, "Connection": "close"},
                timeout=10,
            )
            assert put.status_code in (200, 201), put.text
            code, out = verify(base, handle)
            if "chain 302:0.NA/88.123.7 -> 302:0.NA/88.123" in out:
                break
            assert time.monotonic() < deadline, out
            time.sleep(0.3)
        assert code == 0, out
        code, out = verify(base, "88.123.7/S-0")  # signed by key 1 before: still verifies
        assert code == 0 and "301:0.NA/88.123.7" in out, out
    finally:
        assert node.stop() == 0, node.log.read_text()
