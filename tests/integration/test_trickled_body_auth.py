"""A write is authorized by the credentials as they are when its body has arrived, not when its
headers did: a client that sends the headers with a stolen credential and holds the body back
while the owner changes the password, disables the user, revokes the tokens or rotates the prefix
secret cannot complete the write afterwards (401, nothing stored)."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace

import orjson
import pytest

from tests.enterprise_helpers import admit, product, user_token
from tests.helpers import basic, no_rate_limits, serving, url_value

PASSWORD = "password-123"
PREFIX = "88.123.45"
# bounds a broken server, never asserted on
_IO_BOUND = 30.0


@pytest.fixture
def config(config):
    return replace(config, rate=no_rate_limits())


@pytest.fixture
async def node(config):
    async with serving(config) as client:
        yield client


class HeldWrite:
    """A raw HTTP/1.1 request whose headers and first bytes of body are sent, the rest held back."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, rest: bytes) -> None:
        self._reader, self._writer, self._rest = reader, writer, rest

    @classmethod
    async def start(cls, client, method: str, path: str, authorization: str, body: bytes) -> HeldWrite:
        reader, writer = await asyncio.open_connection(client.host, client.port)
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n"
            f"Authorization: {authorization}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        writer.write(head + body[:5])
        await writer.drain()
        return cls(reader, writer, body[5:])

    async def finish(self) -> tuple[int, dict]:
        """Send the rest of the body; the HTTP status and the JSON answer."""
        try:
            async with asyncio.timeout(_IO_BOUND):
                self._writer.write(self._rest)
                await self._writer.drain()
                answer = await self._reader.read()
        finally:
            self._writer.close()
            with contextlib.suppress(ConnectionError):
                await self._writer.wait_closed()
        head, _, body = answer.partition(b"\r\n\r\n")
        return int(head.split(b" ", 2)[1]), orjson.loads(body)


async def operator(client, method: str, path: str, body: dict | None = None) -> dict:
    resp = await client.request(method, path, json=body, headers=basic())
    answer = await resp.json()
    assert resp.status == 200 and answer["status"] == 1, answer
    return answer


async def user_id(client, enterprise_id: int, username: str) -> int:
    detail = (await (await client.get(f"/admin/enterprises/{enterprise_id}", headers=basic())).json())["data"]
    return next(u["id"] for u in detail["users"] if u["username"] == username)


@pytest.mark.parametrize(
    ("method", "suffix", "change"),
    [
        ("PUT", "", {"password": "another-password"}),
        ("PUT", "", {"disabled": True}),
        ("DELETE", "/tokens", None),
    ],
    ids=["password", "disabled", "revoked"],
)
async def test_an_enterprise_write_held_while_its_token_is_voided_is_refused(node, method, suffix, change):
    eid, _ = await admit(node, PREFIX, 1)
    token = await user_token(node, eid, "acme", PASSWORD)
    uid = await user_id(node, eid, "acme")
    item = orjson.dumps(product(f"{PREFIX}/HELD-0001"))
    held = await HeldWrite.start(node, "POST", "/identityv2/data", f"Bearer {token}", item)
    await operator(node, method, f"/admin/enterprises/{eid}/users/{uid}{suffix}", change)
    status, answer = await held.finish()
    assert status == 401 and answer["status"] == -1, answer
    # nothing was stored: the node administrator finds no such identifier
    found = await node.get("/api/handles/88.123.45/HELD-0001")
    assert found.status == 404, await found.text()


async def test_a_batch_held_while_the_password_changes_is_refused(node):
    eid, _ = await admit(node, PREFIX, 1)
    token = await user_token(node, eid, "acme", PASSWORD)
    uid = await user_id(node, eid, "acme")
    items = orjson.dumps([product(f"{PREFIX}/HELD-0002")])
    held = await HeldWrite.start(node, "POST", "/identityv2/data/batchCreate", f"Bearer {token}", items)
    await operator(node, "PUT", f"/admin/enterprises/{eid}/users/{uid}", {"password": "another-password"})
    status, answer = await held.finish()
    assert status == 401 and answer["status"] == -1, answer
    assert (await node.get("/api/handles/88.123.45/HELD-0002")).status == 404


async def test_a_handle_put_held_while_the_prefix_secret_rotates_is_refused(node):
    _, secret = await admit(node, PREFIX, 1)
    user = f"300:0.NA/{PREFIX}"
    credentials = basic(user, secret)["Authorization"]
    # the secret works, and is remembered (no hash for the held request's check)
    works = await node.put(
        "/api/handles/88.123.45/HELD-0003",
        json={"values": [url_value(1, "https://example.com/ok")]},
        headers=basic(user, secret),
    )
    assert works.status in (200, 201), await works.text()
    body = orjson.dumps({"values": [url_value(1, "https://attacker.example/")]})
    held = await HeldWrite.start(node, "PUT", "/api/handles/88.123.45/HELD-0004", credentials, body)
    await operator(node, "POST", f"/admin/prefixes/{PREFIX}/credentials", {})
    status, answer = await held.finish()
    assert status == 401 and answer["responseCode"] == 402 and answer["handle"] == "88.123.45/HELD-0004", (
        answer
    )
    assert "wrong secret" in answer["message"], answer
    assert (await node.get("/api/handles/88.123.45/HELD-0004")).status == 404
