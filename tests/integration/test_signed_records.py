"""Trusted resolution of an enterprise prefix (issue 17 item 4): the operator turns signing on,
existing records are signed, every write path signs (Handle API, native admin, enterprise API
single and batch), and a client verifies each record over the native protocol with the verifier
of tests/trust_client.py (written from hdllib trust/: HandleVerifier, ChainBuilder, ChainVerifier),
a tampered value failing. Real Postgres, real sockets, the node's real key directory."""

from __future__ import annotations

import asyncio
import base64
import shutil
import time
from dataclasses import replace
from pathlib import Path

import asyncpg
import orjson
import pytest

from resolver.keys import KeyDirectory
from tests import trust_client
from tests.enterprise_helpers import admit, bearer, product, user_token
from tests.handle_client import (
    OC_CREATE_HANDLE,
    over_tcp,
    read_site,
    request_message,
    rsa_public_key,
    utf8,
    value_octets,
    values_body,
)
from tests.helpers import ADMIN_SECRET, basic, serving
from tests.integration import test_import_export, test_native
from tests.integration.test_native_admin import administer, seckey

VALUES = [
    {"index": 1, "type": "URL", "data": {"format": "string", "value": "https://example.com/p/1"}},
    {"index": 2, "type": "NOTE", "data": {"format": "string", "value": "admin only"}, "permissions": "1100"},
    {"index": 2000, "type": "productName", "data": {"format": "string", "value": "螺栓 M8"}},
]


@pytest.fixture
async def signing_node(config, key_dir, tmp_path):
    keys = tmp_path / "keys"
    shutil.copytree(key_dir, keys)  # the session's seal of secret keys, and now a node key
    KeyDirectory(Path(keys)).add("rsa", 0)
    port = test_native.free_port()
    async with serving(replace(config, key_dir=str(keys), native_port=port)) as client:
        yield client, port


async def put(client, handle: str, values: list[dict]) -> None:
    resp = await client.put(f"/api/handles/{handle}", json={"values": values}, headers=basic())
    assert resp.status in (200, 201), await resp.text()


async def set_signing(client, prefix: str, signed: bool) -> dict:
    resp = await client.put(f"/admin/prefixes/{prefix}/signing", json={"signed": signed}, headers=basic())
    body = await resp.json()
    assert body["status"] == 1, body
    return body["data"]


def check(port: int, handle: str) -> tuple[list[str], dict[int, str]]:
    records = trust_client.native_records(port)
    return trust_client.verify(handle, records, trust_client.node_roots(records, "88.123"))


async def test_turning_signing_on_signs_old_and_new_records_on_every_write_path(signing_node, config):
    client, port = signing_node
    eid, _secret = await admit(client, "88.123.45", 45)
    await put(client, "88.123.45/OLD-1", VALUES)
    assert "HS_SIGNATURE" not in {
        v["type"] for v in (await (await client.get("/api/handles/88.123.45/OLD-1")).json())["values"]
    }

    done = await set_signing(client, "88.123.45", True)
    assert done == {"prefix": "88.123.45", "signed": True, "changed": 1, "refused": 0, "complete": True}
    chain, verdict = await asyncio.to_thread(check, port, "88.123.45/OLD-1")
    assert chain == ["301:0.NA/88.123.45", "301:0.NA/88.123"]
    assert verdict == {1: "verified", 2000: "verified"}  # the admin-only value is not public
    again = await set_signing(client, "88.123.45", True)
    assert again["changed"] == 0  # signed with the current key already: skipped

    # the Handle API: create, add a value, change one, remove one
    await put(client, "88.123.45/P-1", VALUES)
    resp = await client.put(
        "/api/handles/88.123.45/P-1?index=3",
        json={
            "values": [{"index": 3, "type": "EMAIL", "data": {"format": "string", "value": "qa@example.com"}}]
        },
        headers=basic(),
    )
    assert resp.status == 200, await resp.text()
    assert (await asyncio.to_thread(check, port, "88.123.45/P-1"))[1] == {
        1: "verified",
        3: "verified",
        2000: "verified",
    }
    resp = await client.delete("/api/handles/88.123.45/P-1?index=3", headers=basic())
    assert resp.status == 200, await resp.text()
    assert (await asyncio.to_thread(check, port, "88.123.45/P-1"))[1] == {1: "verified", 2000: "verified"}

    # a pyhandle-style full replace that echoes the signature it read is signed anew
    read = (await (await client.get("/api/handles/88.123.45/P-1")).json())["values"]
    changed = [
        v if v["index"] != 1 else {**v, "data": {"format": "string", "value": "https://example.com/v2"}}
        for v in read
    ]
    await put(client, "88.123.45/P-1", changed)
    assert (await asyncio.to_thread(check, port, "88.123.45/P-1"))[1] == {1: "verified", 2000: "verified"}
    # another type at the node's index 400 is refused
    resp = await client.put(
        "/api/handles/88.123.45/P-2",
        json={"values": [*VALUES, {"index": 400, "type": "URL", "data": {"format": "string", "value": "x"}}]},
        headers=basic(),
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 202

    # native administration (challenge-response with the node admin's secret key)
    url = value_octets(1, "URL", b"https://example.com/native")
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    _, made = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/N-1", [url]), admin)
    assert made.rc == 1, made.message_text()
    assert (await asyncio.to_thread(check, port, "88.123.45/N-1"))[1] == {1: "verified"}

    # the enterprise API, one and a batch
    token = await user_token(client, eid, "signer")
    body = await (
        await client.post("/identityv2/data", json=product("88.123.45/E-1"), headers=bearer(token))
    ).json()
    assert body["status"] == 1, body
    items = [product(f"88.123.45/B-{n}") for n in range(12)]
    body = await (await client.post("/identityv2/data/batchCreate", json=items, headers=bearer(token))).json()
    assert body["status"] == 1, body
    body = await (
        await client.post("/identityv2/data/batchCreate", json=items[:3], headers=bearer(token))
    ).json()
    assert body["status"] == 1 and all(r["code"] == 1 for r in body["data"]), body  # identical again: success
    for handle in ["88.123.45/E-1", "88.123.45/B-0", "88.123.45/B-11"]:
        _, verdict = await asyncio.to_thread(check, port, handle)
        assert verdict and set(verdict.values()) == {"verified"}, (handle, verdict)

    # a value changed behind the node's back (in the database, of a record no one resolved yet,
    # so the cache has not got it) no longer verifies
    conn = await asyncpg.connect(config.dsn)
    try:
        row = await conn.fetchrow("select vals::text from handles where key = '88.123.45/b-5'")
        values = orjson.loads(row[0])
        for value in values:
            if value["index"] == 2000:
                value["data"]["value"] = "假冒产品"
        tampered = orjson.dumps(values).decode()
        await conn.execute("update handles set vals = $1::json where key = '88.123.45/b-5'", tampered)
    finally:
        await conn.close()
    _, verdict = await asyncio.to_thread(check, port, "88.123.45/B-5")
    assert verdict[2000] == "bad digest" and {v for i, v in verdict.items() if i != 2000} == {"verified"}

    # turned off: the node's signatures go, records stay
    off = await set_signing(client, "88.123.45", False)
    assert off["complete"] and off["changed"] == 16  # OLD-1, P-1, N-1, E-1, B-0..B-11
    read = (await (await client.get("/api/handles/88.123.45/OLD-1")).json())["values"]
    assert {v["index"] for v in read} == {1, 2000}
    audit = await (await client.get("/admin/audit?handle=0.na/88.123.45", headers=basic())).json()
    assert {"prefix.signing", "trust.certificate"} <= {e["operation"] for e in audit["data"]["items"]}


async def test_signing_needs_a_node_key_and_an_enabled_prefix(client):
    await admit(client, "88.123.45", 45)
    resp = await client.put("/admin/prefixes/88.123.45/signing", json={"signed": True}, headers=basic())
    body = await resp.json()
    assert body["status"] != 1 and "resolver keys init" in body["message"], body
    resp = await client.put("/admin/prefixes/88.123.45/signing", json={"signed": "yes"}, headers=basic())
    assert (await resp.json())["status"] != 1
    resp = await client.put("/admin/prefixes/88.123.45/signing", json={"signed": True})
    assert resp.status == 401


async def test_a_bulk_import_into_a_signed_prefix_is_signed_row_by_row(signing_node, config, tmp_path):
    """`resolver import` signs the rows of signed prefixes in its reader process with the node key
    (certificates written first, as an API write does); rows of unsigned prefixes stay unsigned,
    and a row putting another type at index 400 of a signed prefix is rejected with its reason."""
    client, port = signing_node
    await admit(client, "88.123.45", 45)
    await admit(client, "88.123.46", 46)
    await set_signing(client, "88.123.45", True)
    path = tmp_path / "rows.csv"
    rows = [
        [f"88.123.45/IMP-{n}", f"产品{n}", "测试企业", "2026-11-01", f"https://example.com/i/{n}"]
        for n in range(30)
    ]
    rows += [["88.123.46/IMP-0", "产品", "测试企业", "2026-11-01", "https://example.com/u"]]
    test_import_export.write_csv(path, rows)
    result = await test_import_export.import_file(
        replace(config, key_dir=str(tmp_path / "keys")), path, chunk_rows=8
    )
    assert (result.accepted, result.rejected) == (31, 0), result
    for handle in ("88.123.45/IMP-0", "88.123.45/IMP-29"):
        chain, verdict = await asyncio.to_thread(check, port, handle)
        assert chain == ["301:0.NA/88.123.45", "301:0.NA/88.123"]
        assert verdict and set(verdict.values()) == {"verified"}, verdict
    unsigned = (await (await client.get("/api/handles/88.123.46/IMP-0")).json())["values"]
    assert "HS_SIGNATURE" not in {v["type"] for v in unsigned}

    # without the node's key directory, the rows of the signed prefix are rejected, the rest kept
    more = tmp_path / "more.csv"
    test_import_export.write_csv(
        more,
        [
            ["88.123.45/NOKEY-1", "产品", "测试企业", "2026-11-01", "https://example.com/n"],
            ["88.123.46/NOKEY-2", "产品", "测试企业", "2026-11-01", "https://example.com/n"],
        ],
    )
    result = await test_import_export.import_file(replace(config, key_dir=str(tmp_path / "no-keys")), more)
    assert (result.accepted, result.rejected) == (1, 1), result
    report = result.report.read_text(encoding="utf-8-sig")
    assert "可信解析" in report and "88.123.45/NOKEY-1" in report
    # the same rows in another file: identical content (only the signature's time differs)
    again = tmp_path / "again.csv"
    test_import_export.write_csv(again, rows[:5])
    result = await test_import_export.import_file(replace(config, key_dir=str(tmp_path / "keys")), again)
    assert (result.accepted, result.rejected) == (5, 0), result


@pytest.fixture
async def sm2_node(config, key_dir, tmp_path):
    """A node with an RSA key (node-1: certified native answers, the site record) and an SM2 key
    (node-2), records signed with SM2 (--record-key sm2)."""
    keys = tmp_path / "keys"
    shutil.copytree(key_dir, keys)
    directory = KeyDirectory(Path(keys))
    directory.add("rsa", 0)
    directory.add("sm2", 0)
    port = test_native.free_port()
    async with serving(replace(config, key_dir=str(keys), native_port=port, record_key="sm2")) as client:
        yield client, port


async def test_records_signed_with_sm2_verify_and_native_answers_stay_rsa(sm2_node):
    client, port = sm2_node
    await admit(client, "88.123.45", 45)
    await set_signing(client, "88.123.45", True)
    await put(client, "88.123.45/SM2-1", VALUES)
    chain, verdict = await asyncio.to_thread(check, port, "88.123.45/SM2-1")
    assert chain == ["302:0.NA/88.123.45", "302:0.NA/88.123"]
    assert verdict == {1: "verified", 2000: "verified"}
    records = trust_client.native_records(port)
    (signature,) = [
        v for v in await asyncio.to_thread(records, "88.123.45/SM2-1") if v.type == "HS_SIGNATURE"
    ]
    assert trust_client.read_jws(signature.data.decode()).alg == "SM2SM3"
    # the node's own `resolver verify` logic agrees, over the HTTP API
    from resolver.commands import verify

    base = str(client.make_url("/")).rstrip("/")
    fetch = verify.http_records(base)
    roots = await asyncio.to_thread(verify.node_roots, fetch, "88.123")
    lines, ok = await asyncio.to_thread(verify.verify_record, "88.123.45/SM2-1", fetch, roots)
    assert ok, lines
    # the site record (hdllib reads RSA and DSA keys only) names the RSA key
    (site,) = await asyncio.to_thread(over_tcp, port, request_message(2, utf8(""))[0])
    assert rsa_public_key(read_site(site.body)["servers"][0]["key"])[0] == 65537


async def test_an_enterprise_signs_with_its_own_key_certified_by_the_node(signing_node):
    """The operator registers the enterprise's public key; the node publishes it with an HS_CERT
    from its root; the enterprise signs its record itself (tests/trust_client.py's rules: JWS
    RS256 over per-index SHA-256 digests) and writes it; a verifier chains it to the node's root.
    Revoked, the record no longer verifies; a tenant's own signature in an unsigned prefix is kept."""
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    client, port = signing_node
    await admit(client, "88.123.46", 46)
    enterprise = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = enterprise.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    resp = await client.post(
        "/admin/prefixes/88.123.46/keys", json={"publicKey": pem.decode()}, headers=basic()
    )
    body = await resp.json()
    assert body["status"] == 1, body
    assert body["data"]["issuer"] == "500:0.NA/88.123.46" and body["data"]["certifiedBy"] == "301:0.NA/88.123"
    for bad in ({"publicKey": "not a key"}, {"publicKey": pem.decode(), "index": 400}, {}):
        refused = await (
            await client.post("/admin/prefixes/88.123.46/keys", json=bad, headers=basic())
        ).json()
        assert refused["status"] != 1, (bad, refused)

    # the enterprise signs its record (the digests of the values as a client receives them)
    await put(client, "88.123.46/OWN-1", VALUES)
    received = await asyncio.to_thread(trust_client.native_records(port), "88.123.46/OWN-1")
    digests = [{"index": v.index, "digest": trust_client.digest(v)} for v in received]
    now = int(time.time())
    claims = {
        "digests": {"alg": "SHA-256", "digests": digests},
        "iss": "500:0.NA/88.123.46",
        "sub": "88.123.46/OWN-1",
        "exp": now + 3600,
        "nbf": now - 60,
        "iat": now,
    }

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    head = b64(b'{"alg":"RS256"}') + "." + b64(orjson.dumps(claims))
    jws = head + "." + b64(enterprise.sign(head.encode(), padding.PKCS1v15(), hashes.SHA256()))
    resp = await client.put(
        "/api/handles/88.123.46/OWN-1?index=400",
        json={"values": [{"index": 400, "type": "HS_SIGNATURE", "data": {"format": "string", "value": jws}}]},
        headers=basic(),
    )
    assert resp.status == 200, await resp.text()
    chain, verdict = await asyncio.to_thread(check, port, "88.123.46/OWN-1")
    assert chain == ["500:0.NA/88.123.46", "301:0.NA/88.123"]
    assert verdict == {1: "verified", 2000: "verified"}

    resp = await client.delete("/admin/prefixes/88.123.46/keys/500", headers=basic())
    assert (await resp.json())["status"] == 1
    with pytest.raises(AssertionError, match="no HS_CERT"):
        await asyncio.to_thread(check, port, "88.123.46/OWN-1")


async def test_what_an_attack_review_of_signing_found(signing_node, config):
    """Findings of the review of a7b82ca..c81c1d2, each checked: handles of undelegated sub-prefixes
    verify (derivedPrefixes); turning signing off removes the node's certificates, so an old node
    signature replayed in a record no longer verifies; certificates an operator removed come back
    when signing is turned on again; the node never overwrites someone's value at its key index; a
    value of another type at index 400 is refused, never silently dropped; `resolver verify` fails
    a signature for another handle and a record that lost a signed value."""
    from resolver.commands import verify

    client, port = signing_node
    await admit(client, "88.123.45", 45)
    await set_signing(client, "88.123.45", True)
    await put(client, "88.123.45.7/SUB-1", VALUES)
    chain, verdict = await asyncio.to_thread(check, port, "88.123.45.7/SUB-1")
    assert chain == ["301:0.NA/88.123.45", "301:0.NA/88.123"] and set(verdict.values()) == {"verified"}

    # resolver verify: a node signature of another handle, copied, and a removed value
    await put(client, "88.123.45/A", VALUES)
    base = str(client.make_url("/")).rstrip("/")
    fetch = verify.http_records(base)
    roots = await asyncio.to_thread(verify.node_roots, fetch, "88.123")
    conn = await asyncpg.connect(config.dsn)
    try:
        # read from the database, not through the node: its cache must not hold A before the change
        row = await conn.fetchval("select vals::text from handles where key = '88.123.45/a'")
        stolen = [v for v in orjson.loads(row) if v["type"] == "HS_SIGNATURE"]
        values = [
            v for v in orjson.loads(row) if v["index"] != 2000
        ]  # a signed value removed behind the node's back
        await conn.execute(
            "update handles set vals = $1::json where key = '88.123.45/a'", orjson.dumps(values).decode()
        )
        await conn.execute(
            "insert into handles (key, handle, prefix, vals) values ('88.123.45/b', '88.123.45/B', '88.123.45', $1::json)",
            orjson.dumps(
                [{**v, "index": 400} for v in values if v["index"] == 1]
                + [{**stolen[0], "timestamp": "2026-12-04T00:00:00Z"}]
            ).decode(),
        )
    finally:
        await conn.close()
    lines, ok = await asyncio.to_thread(verify.verify_record, "88.123.45/A", fetch, roots)
    assert not ok and any("missing" in line for line in lines), lines
    lines, ok = await asyncio.to_thread(verify.verify_record, "88.123.45/B", fetch, roots)
    assert not ok and any("not this handle" in line for line in lines), lines

    # off: the certificates go; a node signature replayed at another index no longer verifies
    await put(client, "88.123.45/C", VALUES)
    old = next(
        v
        for v in (await (await client.get("/api/handles/88.123.45/C")).json())["values"]
        if v["type"] == "HS_SIGNATURE"
    )
    await set_signing(client, "88.123.45", False)
    prefix_record = (await (await client.get("/api/handles/0.NA/88.123.45")).json())["values"]
    assert not {"HS_CERT"} & {v["type"] for v in prefix_record}
    resp = await client.put(
        "/api/handles/88.123.45/C", json={"values": [*VALUES, {**old, "index": 5}]}, headers=basic()
    )
    assert resp.status == 200
    stored = (await (await client.get("/api/handles/88.123.45/C")).json())["values"]
    assert "HS_SIGNATURE" not in {v["type"] for v in stored}  # the node's signatures are the node's to place

    # on again after an operator removed the certificate: it comes back, whatever the memo says
    await set_signing(client, "88.123.45", True)
    await set_signing(client, "88.123.45", False)
    await set_signing(client, "88.123.45", True)
    assert (await asyncio.to_thread(check, port, "88.123.45/C"))[1] == {1: "verified", 2000: "verified"}

    # a value of another type at 400, stored before signing: the write is refused, not the value dropped
    conn = await asyncpg.connect(config.dsn)
    try:
        row = await conn.fetchval("select vals::text from handles where key = '88.123.45/c'")
        values = [v for v in orjson.loads(row) if v["index"] != 400] + [
            {
                "index": 400,
                "type": "URL",
                "data": {"format": "string", "value": "https://example.com/x"},
                "ttl": 86400,
                "timestamp": "2026-12-04T00:00:00Z",
            }
        ]
        await conn.execute(
            "update handles set vals = $1::json where key = '88.123.45/c'", orjson.dumps(values).decode()
        )
    finally:
        await conn.close()
    resp = await client.put(
        "/api/handles/88.123.45/C?index=3",
        json={
            "values": [{"index": 3, "type": "EMAIL", "data": {"format": "string", "value": "x@example.com"}}]
        },
        headers=basic(),
    )
    assert resp.status == 400 and (await resp.json())["responseCode"] == 202
    assert (await client.delete("/api/handles/88.123.45/C?index=400", headers=basic())).status == 200

    # the node's key index holds someone's key: never overwritten
    await admit(client, "88.123.46", 46)
    resp = await client.put(
        "/api/handles/0.NA/88.123.46?index=301",
        json={
            "values": [
                {
                    "index": 301,
                    "type": "HS_PUBKEY",
                    "data": {"format": "base64", "value": "AAAAC1JTQV9QVUJfS0VZAAA="},
                }
            ]
        },
        headers=basic(),
    )
    assert resp.status == 200, await resp.text()
    resp = await client.put("/admin/prefixes/88.123.46/signing", json={"signed": True}, headers=basic())
    body = await resp.json()
    assert body["status"] != 1 and "301" in body["message"], body
