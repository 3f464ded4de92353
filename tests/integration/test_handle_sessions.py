"""The Handle API's sessions and `Authorization: Handle` (issue 17 item 6), against a real node and
Postgres, with answers computed here from the reference's rules rather than with the node's code:

- `SessionsServlet` (MistraR/handle net/handle/server/servletcontainer/servlets): POST opens a
  session (201, Location /api/sessions/this, sessionId and base64 nonce); PUT/GET/DELETE of
  /api/sessions/this; a sessionId on POST is 400; any other /api/sessions/<x> is 403.
- `StandardHandleAuthenticator.authenticateViaHandleAuthorizationHeaderWhichIsAuthenticatingInSession`
  and `verifyIdentityViaServer`: what is signed or MACed is nonce || cnonce; `constructSignedResponse`
  maps `alg`; `Util.doPbkdf2HmacSHA1` for PBKDF2 answers (salt, iterations, length in the header).
- `SecretKeyAuthenticationInfo(handle, index, secret, true)`: a client of a hashed secret key uses
  the hex of SHA-1(secret) as its key (Encoder.encodeSecretKey(secret, true)).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.native.signing import encode_public_key
from tests.helpers import ADMIN_SECRET, ADMIN_USER, basic, url_value

KEYHOLDER = "88.123/keyholder"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def handle_header(**fields: str) -> dict[str, str]:
    return {"Authorization": "Handle " + ", ".join(f'{name}="{value}"' for name, value in fields.items())}


async def open_session(
    client: Any, headers: dict[str, str] | None = None
) -> tuple[str, bytes, dict[str, Any]]:
    resp = await client.post("/api/sessions", headers=headers or {})
    body = await resp.json()
    assert resp.status == 201 and resp.headers["Location"] == "/api/sessions/this", body
    return body["sessionId"], base64.b64decode(body["nonce"]), body


def pubkey_answer(session: str, nonce: bytes, key: rsa.RSAPrivateKey, who: str) -> dict[str, str]:
    cnonce = os.urandom(16)
    signature = key.sign(nonce + cnonce, padding.PKCS1v15(), hashes.SHA256())
    return handle_header(
        version="0",
        sessionId=session,
        id=who,
        type="HS_PUBKEY",
        cnonce=b64(cnonce),
        alg="SHA256",
        signature=b64(signature),
    )


def pbkdf2_answer(session: str, nonce: bytes, secret: str, who: str = ADMIN_USER) -> dict[str, str]:
    """What a Handle client with the hash option sends: the key is hex(SHA-1(secret))."""
    key = hashlib.sha1(secret.encode()).hexdigest().encode()
    cnonce, salt = os.urandom(16), os.urandom(16)
    derived = hashlib.pbkdf2_hmac("sha1", key, salt, 10000, 20)
    mac = hmac.new(derived, nonce + cnonce, "sha1").digest()
    return handle_header(
        sessionId=session,
        id=who,
        type="HS_SECKEY",
        cnonce=b64(cnonce),
        alg="PBKDF2-HMAC-SHA1",
        salt=b64(salt),
        iterations="10000",
        length="160",
        signature=b64(mac),
    )


@pytest.fixture
async def keyholder(client: Any) -> rsa.RSAPrivateKey:
    """An identity with an RSA key, administrator of 88.123/owned only."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pubkey = {"format": "base64", "value": b64(encode_public_key(key.public_key()))}
    resp = await client.put(
        f"/api/handles/{KEYHOLDER}",
        json=[{"index": 300, "type": "HS_PUBKEY", "data": pubkey}],
        headers=basic(),
    )
    assert resp.status in (200, 201), await resp.json()
    admin = {"handle": KEYHOLDER, "index": 300, "permissions": "011111110011"}
    values = [
        {"index": 100, "type": "HS_ADMIN", "data": {"format": "admin", "value": admin}},
        url_value(1, "https://e.x/a"),
    ]
    resp = await client.put("/api/handles/88.123/owned", json=values, headers=basic())
    assert resp.status in (200, 201), await resp.json()
    return key


async def test_a_public_key_authenticates_a_session_that_then_acts_alone_until_deleted(client, keyholder):
    session, nonce, body = await open_session(client)
    assert len(nonce) == 16 and "authenticated" not in body
    resp = await client.put(
        "/api/sessions/this", headers=pubkey_answer(session, nonce, keyholder, f"300:{KEYHOLDER}")
    )
    body = await resp.json()
    assert resp.status == 200 and body["authenticated"] is True and body["id"] == f"300:{KEYHOLDER}", body
    alone = handle_header(sessionId=session)
    resp = await client.get("/api/sessions/this", headers=alone)
    assert (await resp.json())["id"] == f"300:{KEYHOLDER}"
    resp = await client.put(
        "/api/handles/88.123/owned?index=1", json=[url_value(1, "https://e.x/b")], headers=alone
    )
    assert resp.status == 200, await resp.json()
    assert (await (await client.get("/api/handles/88.123/owned")).json())["values"][0]["data"][
        "value"
    ] == "https://e.x/b"
    # the identity's rights, no more: a handle administered by the node administrator only
    resp = await client.put(
        "/api/handles/88.123/not-theirs", json=[url_value(1, "https://e.x")], headers=alone
    )
    assert resp.status in (401, 403) and (await resp.json())["responseCode"] in (400, 401, 402), (
        await resp.json()
    )
    resp = await client.delete("/api/sessions/this", headers=alone)
    assert resp.status == 204
    resp = await client.put(
        "/api/handles/88.123/owned?index=1", json=[url_value(1, "https://e.x/c")], headers=alone
    )
    assert resp.status == 401 and (await resp.json())["responseCode"] == 402


async def test_an_answer_on_any_request_authenticates_it_and_the_session(client, keyholder):
    session, nonce, _ = await open_session(client)
    headers = pubkey_answer(session, nonce, keyholder, f"0:{KEYHOLDER}")  # 0: whichever key signed
    resp = await client.put(
        "/api/handles/88.123/owned?index=1", json=[url_value(1, "https://e.x/d")], headers=headers
    )
    assert resp.status == 200, await resp.json()
    resp = await client.get("/api/sessions/this", headers=handle_header(sessionId=session))
    assert (await resp.json())["id"] == f"300:{KEYHOLDER}"


@pytest.mark.parametrize("alg", ["PBKDF2-HMAC-SHA1", "HMAC-SHA256", "SHA1"])
async def test_a_hashed_secret_key_answers_a_challenge(client, alg):
    session, nonce, _ = await open_session(client)
    key = hashlib.sha1(ADMIN_SECRET.encode()).hexdigest().encode()
    if alg == "PBKDF2-HMAC-SHA1":
        headers = pbkdf2_answer(session, nonce, ADMIN_SECRET)
    else:
        cnonce = os.urandom(16)
        if alg == "HMAC-SHA256":
            mac = hmac.new(key, nonce + cnonce, "sha256").digest()
        else:  # Util.doMac code 2: SHA1(key || data || key)
            mac = hashlib.sha1(key + nonce + cnonce + key).digest()
        headers = handle_header(
            sessionId=session,
            id=ADMIN_USER,
            type="HS_SECKEY",
            cnonce=b64(cnonce),
            alg=alg,
            signature=b64(mac),
        )
    resp = await client.put("/api/sessions/this", headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["id"] == ADMIN_USER, body
    resp = await client.get("/api/handles?prefix=88.123", headers=handle_header(sessionId=session))
    assert resp.status == 200, await resp.json()


async def test_wrong_keys_and_bad_sessions_are_refused(client, keyholder):
    session, nonce, _ = await open_session(client)
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "another key": pubkey_answer(session, nonce, stranger, f"300:{KEYHOLDER}"),
        "the secret itself, not its hash": pbkdf2_answer(session, nonce, "not-the-secret"),
        "an answer to another nonce": pubkey_answer(session, os.urandom(16), keyholder, f"300:{KEYHOLDER}"),
        "no such identity": pubkey_answer(session, nonce, keyholder, "300:88.123/nobody"),
    }
    for case, headers in cases.items():
        resp = await client.put("/api/sessions/this", headers=headers)
        body = await resp.json()
        assert resp.status == 401 and "authenticated" not in body and body["error"], (case, body)
    forged = session[:-2] + ("AA" if session[-2:] != "AA" else "BB")
    for headers in (handle_header(sessionId=forged), handle_header(sessionId=session), handle_header(id="x")):
        resp = await client.put(
            "/api/handles/88.123/owned?index=1", json=[url_value(1, "https://e.x")], headers=headers
        )
        body = await resp.json()
        assert resp.status == 401 and body["responseCode"] == 402, body
    # a sessionId on POST, and sessions other than "this"
    resp = await client.post("/api/sessions", headers=handle_header(sessionId=session))
    assert resp.status == 400
    resp = await client.get("/api/sessions/someone-elses", headers=handle_header(sessionId=session))
    assert resp.status == 403
    resp = await client.delete("/api/sessions/this", headers=handle_header(sessionId=forged))
    assert resp.status == 403


async def test_basic_on_post_opens_an_authenticated_session(client):
    session, _, body = await open_session(client, basic())
    assert body["authenticated"] is True and body["id"] == ADMIN_USER
    resp = await client.get("/api/handles?prefix=88.123", headers=handle_header(sessionId=session))
    assert resp.status == 200


@pytest.mark.parametrize(
    "header",
    [
        "Handle",
        "Handle ",
        'Handle sessionId="unterminated',
        "Handle sessionId=a sessionId=b",
        'Handle version="1", sessionId="x"',
        "Handle id=%ff%fe",
        'Handle sessionId="' + "A" * 8_000 + '"',
        'Handle sessionId="x", id="300:0.NA/88.123", type="HS_SECKEY", cnonce="!!", alg="SHA1", signature="AA=="',
        "Handle a=b c=d",
        'Handle sessionId="x" trailing',
    ],
)
async def test_malformed_handle_headers_are_401_never_500(client, header):
    resp = await client.get("/api/handles?prefix=88.123", headers={"Authorization": header})
    body = await resp.json()
    assert resp.status in (400, 401) and body["responseCode"] in (4, 402), body


async def test_index_0_tries_only_the_first_keys_of_a_handle(client):
    """A tenant may store any number of keys in its own handle; an answer naming index 0 is checked
    against the first MAX_KEYS_TRIED (16) in index order, not all (the reference's
    HandleServer.verifyIdentityAndGetIndex tries all: here each PBKDF2 check is the node's CPU)."""
    values = [
        {"index": 300 + i, "type": "HS_SECKEY", "data": {"format": "string", "value": f"secret-{i}"}}
        for i in range(20)
    ]
    resp = await client.put("/api/handles/88.123/many-keys", json=values, headers=basic())
    assert resp.status in (200, 201), await resp.json()
    for who, secret, expected in (
        ("0:88.123/many-keys", "secret-3", 200),
        ("0:88.123/many-keys", "secret-19", 401),
        ("319:88.123/many-keys", "secret-19", 200),
    ):
        session, nonce, _ = await open_session(client)
        resp = await client.put("/api/sessions/this", headers=pbkdf2_answer(session, nonce, secret, who))
        assert resp.status == expected, (who, await resp.json())
