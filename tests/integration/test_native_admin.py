"""Administration over the native Handle protocol (issue 17 item 6), over real TCP and UDP
sockets, checked with the client written from RFC 3652 (tests/handle_client.py), not the node's
codec.

Reference: hdllib Encoder.decodeCreateHandleRequest / decodeAddValueRequest / decodeModifyValueRequest
/ decodeRemoveValueRequest / decodeDeleteHandleRequest / decodeListHandlesRequest (the bodies),
Encoder.encodeChallenge and decodeChallengeAnswer (the challenge: request digest, then nonce,
under a fresh session id; the answer: auth type, identity handle and index, signed response),
HandleServer.processRequest / createChallenge (the pending request by session id; RC_AUTHEN_TIMEOUT
when there is none), HandleServer.doModifyValue (a missing index is RC_VALUES_NOT_FOUND),
SecretKeyAuthenticationInfo.authenticate and PublicKeyAuthenticationInfo.authenticate (what the
client signs: nonce || request digest)."""

from __future__ import annotations

import asyncio
import hashlib
import os
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.native import admin as admin_module
from tests.enterprise_helpers import admit
from tests.faults import CuttableProxy
from tests.handle_client import (
    OC_ADD_VALUE,
    OC_CREATE_HANDLE,
    OC_DELETE_HANDLE,
    OC_LIST_HANDLES,
    OC_MODIFY_VALUE,
    OC_REMOVE_VALUE,
    OC_RESPONSE_TO_CHALLENGE,
    OP_FLAG_DIGEST,
    Answer,
    admin_value_data,
    challenge_answer_body,
    over_tcp,
    over_udp,
    request_message,
    resolution_body,
    rsa_key_octets,
    seckey_answer_octets,
    u32,
    utf8,
    value_octets,
    values_body,
)
from tests.helpers import ADMIN_SECRET, basic, serving
from tests.integration import test_native

node = test_native.node  # the fixture: the app served with native listeners on a free port
free_port = test_native.free_port


def hashed(secret: str) -> bytes:
    """The reference's hashed secret key (`Encoder.encodeSecretKey(secret, true)`)."""
    return hashlib.sha1(secret.encode()).hexdigest().encode()


def seckey(identity: str, secret: str):
    index, _, handle = identity.partition(":")

    def sign(challenge: Answer) -> bytes:
        nonce = challenge.body[4:]
        signed = seckey_answer_octets(hashed(secret), nonce, challenge.digest or b"", os.urandom(16))
        return challenge_answer_body("HS_SECKEY", handle, int(index), signed)

    return sign


def pubkey(identity: str, key: rsa.RSAPrivateKey):
    index, _, handle = identity.partition(":")

    def sign(challenge: Answer) -> bytes:
        nonce = challenge.body[4:]
        signature = key.sign(nonce + (challenge.digest or b""), padding.PKCS1v15(), hashes.SHA256())
        return challenge_answer_body("HS_PUBKEY", handle, int(index), utf8("SHA-256") + utf8(signature))

    return sign


async def administer(port: int, opcode: int, body: bytes, sign) -> tuple[Answer, Answer]:
    """(challenge, outcome): the request on one connection, the answer on a new one, as hdllib's
    HandleResolver may send it."""
    request, header_and_body = request_message(opcode, body, flags=0, version=(2, 10), request_id=41)
    (challenge,) = await asyncio.to_thread(over_tcp, port, request)
    assert challenge.rc == 402, challenge.message_text()
    assert challenge.digest == hashlib.sha256(header_and_body).digest()  # RRDG always set
    assert len(challenge.body) == 4 + 16 and challenge.session_id != 0
    answer, _ = request_message(
        OC_RESPONSE_TO_CHALLENGE, sign(challenge), flags=0, request_id=42, session_id=challenge.session_id
    )
    (outcome,) = await asyncio.to_thread(over_tcp, port, answer)
    assert outcome.request_id == 42
    return challenge, outcome


URL = value_octets(1, "URL", b"https://example.com/native/1")


async def test_node_admin_creates_modifies_lists_and_deletes_with_a_secret_key(node):
    client, port = node
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    _, done = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-1", [URL]), admin)
    assert (done.opcode, done.rc) == (OC_CREATE_HANDLE, 1), done.message_text()
    resp = await client.get("/api/handles/88.123/NATIVE-1")
    assert resp.status == 200
    assert [(v["index"], v["data"]["value"]) for v in (await resp.json())["values"]] == [
        (1, "https://example.com/native/1")
    ]
    # the same handle again: already exists, as over HTTP
    _, again = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-1", [URL]), admin)
    assert again.rc == 101
    email = value_octets(2, "EMAIL", b"qa@example.com")
    _, added = await administer(port, OC_ADD_VALUE, values_body("88.123/NATIVE-1", [email]), admin)
    assert added.rc == 1, added.message_text()
    _, twice = await administer(port, OC_ADD_VALUE, values_body("88.123/NATIVE-1", [email]), admin)
    assert twice.rc == 201  # VALUE_ALREADY_EXISTS
    changed = value_octets(2, "EMAIL", b"ops@example.com")
    _, modified = await administer(port, OC_MODIFY_VALUE, values_body("88.123/NATIVE-1", [changed]), admin)
    assert modified.rc == 1
    missing = value_octets(9, "EMAIL", b"x@example.com")
    _, absent = await administer(port, OC_MODIFY_VALUE, values_body("88.123/NATIVE-1", [missing]), admin)
    assert absent.rc == 200  # VALUES_NOT_FOUND (HandleServer.doModifyValue)
    # the change is seen by the next native resolution at once (cache coherence)
    (resolved,) = await asyncio.to_thread(
        over_tcp, port, request_message(1, resolution_body("88.123/NATIVE-1"))[0]
    )
    _, values = resolved.handle_and_values()
    assert {v.index: v.data for v in values} == {1: b"https://example.com/native/1", 2: b"ops@example.com"}
    _, removed = await administer(port, OC_REMOVE_VALUE, utf8("88.123/NATIVE-1") + u32(1) + u32(2), admin)
    assert removed.rc == 1
    _, listed = await administer(port, OC_LIST_HANDLES, utf8("0.NA/88.123"), admin)
    assert listed.rc == 1
    count = int.from_bytes(listed.body[:4], "big")
    names, at = [], 4
    for _ in range(count):
        size = int.from_bytes(listed.body[at : at + 4], "big")
        names.append(listed.body[at + 4 : at + 4 + size].decode())
        at += 4 + size
    assert "88.123/NATIVE-1" in names
    _, deleted = await administer(port, OC_DELETE_HANDLE, utf8("88.123/NATIVE-1"), admin)
    assert deleted.rc == 1
    assert (await client.get("/api/handles/88.123/NATIVE-1")).status == 404
    audit = await (await client.get("/admin/audit?handle=88.123/NATIVE-1", headers=basic())).json()
    entries = audit["data"]["items"]
    assert {e["operation"] for e in entries} >= {
        "handle.create",
        "handle.values.put",
        "handle.values.delete",
        "handle.delete",
    }
    assert {e["actor"] for e in entries} == {"300:0.NA/88.123"}


async def test_a_wrong_secret_a_replayed_answer_and_udp_are_refused(node):
    client, port = node
    wrong = seckey("300:0.NA/88.123", "not-the-secret")
    _, refused = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-2", [URL]), wrong)
    assert refused.rc == 403, refused.message_text()  # AUTHENTICATION_FAILED
    assert (await client.get("/api/handles/88.123/NATIVE-2")).status == 404
    # an answer serves once: sent again in the same session, there is no challenge left
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    challenge, done = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-2", [URL]), admin)
    assert done.rc == 1
    replay, _ = request_message(
        OC_RESPONSE_TO_CHALLENGE, admin(challenge), flags=0, request_id=43, session_id=challenge.session_id
    )
    (again,) = await asyncio.to_thread(over_tcp, port, replay)
    assert again.rc == 405  # RC_AUTHEN_TIMEOUT
    # an answer to no challenge at all
    stray, _ = request_message(OC_RESPONSE_TO_CHALLENGE, admin(challenge), flags=0, session_id=12345)
    (none,) = await asyncio.to_thread(over_tcp, port, stray)
    assert none.rc == 405
    # over UDP: told to use TCP, nothing kept
    request, _ = request_message(OC_DELETE_HANDLE, utf8("88.123/NATIVE-2"), flags=0)
    udp = await asyncio.to_thread(over_udp, port, request)
    assert udp.rc == 2
    assert (await client.get("/api/handles/88.123/NATIVE-2")).status == 200
    # a body that cannot be read: a protocol error, no challenge
    (broken,) = await asyncio.to_thread(
        over_tcp, port, request_message(OC_CREATE_HANDLE, utf8("88.123/X") + u32(5), flags=0)[0]
    )
    assert broken.rc == 4


async def test_enterprise_keys_act_only_on_what_is_theirs(node):
    client, port = node
    _, secret = await admit(client, "88.123.45", 45)
    await admit(client, "88.123.46", 46)
    tenant = seckey("300:0.NA/88.123.45", secret)
    _, mine = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/N-1", [URL]), tenant)
    assert mine.rc == 1, mine.message_text()
    _, theirs = await administer(port, OC_CREATE_HANDLE, values_body("88.123.46/N-1", [URL]), tenant)
    assert theirs.rc in (400, 401), theirs.message_text()
    assert (await client.get("/api/handles/88.123.46/N-1")).status == 404

    # a public key: the tenant publishes it in a handle of its own, and names it in HS_ADMIN
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    numbers = key.public_key().public_numbers()
    keyholder = [
        value_octets(300, "HS_PUBKEY", rsa_key_octets(numbers.e, numbers.n)),
        value_octets(100, "HS_ADMIN", admin_value_data("0.NA/88.123.45", 300)),
    ]
    _, published = await administer(
        port, OC_CREATE_HANDLE, values_body("88.123.45/DEVICE", keyholder), tenant
    )
    assert published.rc == 1, published.message_text()
    managed = [URL, value_octets(100, "HS_ADMIN", admin_value_data("88.123.45/DEVICE", 300))]
    _, made = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/N-2", managed), tenant)
    assert made.rc == 1, made.message_text()
    device = pubkey("300:88.123.45/DEVICE", key)
    extra = value_octets(2, "EMAIL", b"device@example.com")
    _, added = await administer(port, OC_ADD_VALUE, values_body("88.123.45/N-2", [extra]), device)
    assert added.rc == 1, added.message_text()
    # the device key has no rights on the prefix: it cannot create handles under it
    _, create = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/N-3", [URL]), device)
    assert create.rc in (400, 401), create.message_text()
    stranger = pubkey("300:88.123.45/DEVICE", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    _, forged = await administer(port, OC_DELETE_HANDLE, utf8("88.123.45/N-2"), stranger)
    assert forged.rc == 403
    assert (await client.get("/api/handles/88.123.45/N-2")).status == 200

    # a disabled prefix: refused as over HTTP
    resp = await client.put("/admin/prefixes/88.123.45/state", json={"state": 0}, headers=basic())
    assert (await resp.json())["status"] == 1
    _, off = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/N-4", [URL]), tenant)
    assert off.rc != 1
    assert (await client.get("/api/handles/88.123.45/N-4")).status == 404


async def test_an_identity_that_is_no_handle_is_refused_without_touching_the_database(node):
    """A NUL, or 60 KB of name, in the answer's identity handle: AUTHENTICATION_FAILED, the
    connection and the node unharmed (once, a NUL reached Postgres, whose error failed the lookup
    batch and closed the connection)."""
    _, port = node
    for bogus in ("0.NA/88.123\x00", "0.NA/" + "x" * 60_000):

        def sign(challenge: Answer, bogus=bogus) -> bytes:
            return challenge_answer_body("HS_SECKEY", bogus, 300, b"\x22")

        _, refused = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-NUL", [URL]), sign)
        assert refused.rc == 403, refused.message_text()
        assert "is not a handle" in refused.message_text()
    # the node still resolves and administers
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    _, done = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-NUL", [URL]), admin)
    assert done.rc == 1, done.message_text()


async def test_a_pbkdf2_answer_pays_for_its_key_length(node):
    """10,000 iterations are hdllib's; with a 4096-bit key they would cost the node 26 times that
    (PBKDF2 runs every iteration once per 160-bit block), so the cap counts blocks too."""
    _, port = node

    def long_key(challenge: Answer) -> bytes:
        signed = b"\x22" + utf8(os.urandom(16)) + u32(10_000) + u32(4096) + utf8(b"\0" * 20)
        return challenge_answer_body("HS_SECKEY", "0.NA/88.123", 300, signed)

    _, refused = await administer(port, OC_CREATE_HANDLE, values_body("88.123/NATIVE-KEY", [URL]), long_key)
    assert refused.rc == 403
    assert "160-bit" in refused.message_text(), refused.message_text()


async def test_a_stranger_cannot_find_out_which_indexes_exist_by_writing(node):
    """HandleServer.doAddValue / doModifyValue / doRemoveValue check the permission before looking
    at the indexes: a tenant writing another's handle hears 'no permission' whether or not the
    index is there, never VALUE_ALREADY_EXISTS or VALUES_NOT_FOUND."""
    client, port = node
    _, secret = await admit(client, "88.123.45", 45)
    _, other = await admit(client, "88.123.46", 46)
    owner = seckey("300:0.NA/88.123.45", secret)
    hidden = value_octets(7, "NOTE", b"private", permissions=0x0C)  # admin read/write only
    _, made = await administer(port, OC_CREATE_HANDLE, values_body("88.123.45/HIDDEN", [URL, hidden]), owner)
    assert made.rc == 1, made.message_text()
    stranger = seckey("300:0.NA/88.123.46", other)
    probes = {
        "add existing": (OC_ADD_VALUE, values_body("88.123.45/HIDDEN", [value_octets(7, "NOTE", b"x")])),
        "add absent": (OC_ADD_VALUE, values_body("88.123.45/HIDDEN", [value_octets(8, "NOTE", b"x")])),
        "modify existing": (
            OC_MODIFY_VALUE,
            values_body("88.123.45/HIDDEN", [value_octets(7, "NOTE", b"x")]),
        ),
        "modify absent": (OC_MODIFY_VALUE, values_body("88.123.45/HIDDEN", [value_octets(8, "NOTE", b"x")])),
        "remove existing": (OC_REMOVE_VALUE, utf8("88.123.45/HIDDEN") + u32(1) + u32(7)),
        "remove absent": (OC_REMOVE_VALUE, utf8("88.123.45/HIDDEN") + u32(1) + u32(8)),
    }
    answers = {}
    for name, (opcode, body) in probes.items():
        _, outcome = await administer(port, opcode, body, stranger)
        answers[name] = (outcome.rc, outcome.message_text())
    assert {rc for rc, _ in answers.values()} == {401}, answers
    assert answers["modify existing"][1] == answers["modify absent"][1]
    assert answers["remove existing"][1] == answers["remove absent"][1]
    # the owner still gets the precise answers
    _, absent = await administer(port, *probes["modify absent"], owner)
    assert absent.rc == 200
    _, exists = await administer(port, *probes["add existing"], owner)
    assert exists.rc == 201


async def test_the_reply_digest_is_in_the_version_of_the_request_it_answers(node):
    """A request in protocol 2.5 (SHA-1 digests) answered in 2.10 (SHA-256): the outcome's digest
    is the SHA-1 one the challenge carried, the digest of the request it carries out."""
    _, port = node
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    request, header_and_body = request_message(
        OC_CREATE_HANDLE, values_body("88.123/NATIVE-V25", [URL]), flags=OP_FLAG_DIGEST, version=(2, 5)
    )
    (challenge,) = await asyncio.to_thread(over_tcp, port, request)
    assert challenge.rc == 402 and challenge.digest == hashlib.sha1(header_and_body).digest()
    answer, _ = request_message(
        OC_RESPONSE_TO_CHALLENGE, admin(challenge), flags=0, version=(2, 10), session_id=challenge.session_id
    )
    (outcome,) = await asyncio.to_thread(over_tcp, port, answer)
    assert outcome.rc == 1, outcome.message_text()
    assert (outcome.digest_algorithm, outcome.digest) == (2, hashlib.sha1(header_and_body).digest())


@pytest.fixture
async def limited(config):
    port = free_port()
    rate = replace(config.rate, per_credential=0.01, per_credential_burst=2)
    async with serving(replace(config, native_port=port, rate=rate)) as client:
        yield client, port


async def test_native_writes_spend_the_identitys_credential_budget(limited):
    _, port = limited
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    outcomes = []
    for number in range(3):
        _, outcome = await administer(
            port, OC_CREATE_HANDLE, values_body(f"88.123/NATIVE-R{number}", [URL]), admin
        )
        outcomes.append(outcome.rc)
    assert outcomes == [1, 1, 3]  # the third: SERVER_TOO_BUSY


async def test_anonymous_admin_requests_cannot_fill_the_challenge_table(node):
    """Anyone may send an admin request, and each challenged one is kept until answered: one
    network gets PENDING_PER_NETWORK waiting, then SERVER_TOO_BUSY until some are answered or
    expire; answering one makes room."""
    _, port = node
    requests = [
        request_message(OC_DELETE_HANDLE, utf8(f"88.123/FLOOD-{n}"), flags=0)[0]
        for n in range(admin_module.PENDING_PER_NETWORK + 1)
    ]
    answers = [(await asyncio.to_thread(over_tcp, port, request))[0] for request in requests]
    assert [a.rc for a in answers] == [402] * admin_module.PENDING_PER_NETWORK + [3]
    assert "too many" in answers[-1].message_text()
    # answered (here: wrongly), a challenge leaves the table, and a new request is challenged
    wrong = seckey("300:0.NA/88.123", "not-the-secret")
    reply, _ = request_message(
        OC_RESPONSE_TO_CHALLENGE, wrong(answers[0]), flags=0, session_id=answers[0].session_id
    )
    (refused,) = await asyncio.to_thread(over_tcp, port, reply)
    assert refused.rc == 403
    (again,) = await asyncio.to_thread(over_tcp, port, requests[-1])
    assert again.rc == 402


@pytest.fixture
async def cuttable(config):
    proxy = CuttableProxy(config.dsn)
    await proxy.start()
    port = free_port()
    async with serving(replace(config, dsn=proxy.dsn, db_timeout=1.0, native_port=port)) as client:
        yield client, port, proxy
    await proxy.cut()


async def test_the_database_away_is_an_answer_not_a_closed_connection(cuttable):
    """Postgres unreachable while a challenge is to be kept: SERVER_TOO_BUSY on the same
    connection (once, the connection was closed without a word)."""
    _, port, proxy = cuttable
    await proxy.cut()
    request, _ = request_message(OC_DELETE_HANDLE, utf8("88.123/AWAY"), flags=0)
    (answer,) = await asyncio.to_thread(over_tcp, port, request, timeout=15.0)
    assert answer.rc == 3, answer.message_text()
