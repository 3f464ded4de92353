"""Handle sessions as CNRI's HandleResolver opens them before admin requests (RFC 3652 section
3.5; hdllib HandleResolver.setupSessionWithServer, Encoder.encodeSessionSetupRequest /
decodeSetupSessionResponse, Util.getBytesFromPublicKey for DH_PUB_KEY; the server side:
HandleServer.doSessionSetup and createChallenge). Checked with the client written from those
(tests/handle_client.py), over real sockets, against a node with a key: the setup answer is signed
in protocol 2.7 and carries the node's DH key in the client's group; admin requests in the session
are still challenged, in that session; other key exchanges, bad groups and UDP are refused."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import struct

from tests.handle_client import (
    OC_CREATE_HANDLE,
    OC_RESPONSE_TO_CHALLENGE,
    OP_FLAG_CERTIFY,
    OP_FLAG_DIGEST,
    Fields,
    over_tcp,
    over_udp,
    read_site,
    request_message,
    rsa_public_key,
    u32,
    utf8,
    value_octets,
    values_body,
    verify_certified,
)
from tests.helpers import ADMIN_SECRET
from tests.integration.test_native_admin import seckey
from tests.integration.test_signed_records import signing_node  # noqa: F401 (the fixture: a node with a key)

OC_SESSION_SETUP, OC_SESSION_TERMINATE, OC_SESSION_EXCHANGEKEY = 400, 401, 402
# RFC 2409 section 6.2, the 1024-bit MODP group (hdllib makes a 1024-bit group of its own)
P1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)


def dh_public(y: int, p: int = P1024, g: int = 2) -> bytes:
    """Util.getBytesFromPublicKey of a DHPublicKey: the name, two flag octets, y, p and g."""

    def big(n: int) -> bytes:
        return utf8(n.to_bytes(n.bit_length() // 8 + 1, "big"))

    return utf8("DH_PUB_KEY") + b"\0\0" + big(y) + big(p) + big(g)


def setup_body(mode: int = 4, key: bytes | None = None) -> bytes:
    """Encoder.encodeSessionSetupRequest: mode (2 octets), timeout, identity, index, the key, and
    the two octets the reference's length counts but never writes."""
    return (
        struct.pack("!Hi", mode, 86400)
        + utf8("0.NA/88.123")
        + u32(300)
        + (utf8(key) if key is not None else b"")
        + b"\0\0"
    )


def site_key(port: int) -> tuple[int, int]:
    (site,) = over_tcp(port, request_message(2, utf8(""))[0])
    return rsa_public_key(read_site(site.body)["servers"][0]["key"])  # type: ignore[index]


async def test_a_dh_setup_is_answered_signed_in_2_7_with_the_nodes_key_in_the_clients_group(signing_node):  # noqa: F811
    _, port = signing_node
    x = secrets.randbits(256)
    request, header_and_body = request_message(
        OC_SESSION_SETUP,
        setup_body(key=dh_public(pow(2, x, P1024))),
        flags=OP_FLAG_CERTIFY | OP_FLAG_DIGEST,
        request_id=9,
    )
    (answer,) = await asyncio.to_thread(over_tcp, port, request)
    assert (answer.opcode, answer.rc, answer.version) == (OC_SESSION_SETUP, 1, (2, 7)), answer.message_text()
    assert answer.session_id != 0 and answer.request_id == 9
    assert answer.digest == hashlib.sha256(header_and_body).digest()
    assert verify_certified(answer, *await asyncio.to_thread(site_key, port)) == "SHA-256"
    fields = Fields(answer.body)
    assert struct.unpack("!H", answer.body[:2])[0] == 4  # KEY_EXCHANGE_DH
    fields.skip(2)
    data = Fields(fields.octets())
    assert data.int4() == 3  # ENCRYPT_ALG_AES
    assert data.octets() == b"DH_PUB_KEY"
    data.skip(2)
    y_server, p, g = (int.from_bytes(data.octets(), "big") for _ in range(3))
    assert (p, g) == (P1024, 2) and 1 < y_server < P1024 - 1
    # both ends reach the same secret (the node keeps none: it derives none and uses none)
    assert pow(y_server, x, P1024) != 1


async def test_admin_requests_in_a_session_are_challenged_in_that_session(signing_node):  # noqa: F811
    client, port = signing_node
    admin = seckey("300:0.NA/88.123", ADMIN_SECRET)
    request, _ = request_message(
        OC_SESSION_SETUP,
        setup_body(key=dh_public(pow(2, 12345, P1024))),
        flags=OP_FLAG_CERTIFY | OP_FLAG_DIGEST,
    )
    (setup,) = await asyncio.to_thread(over_tcp, port, request)
    session = setup.session_id
    for n in (1, 2):  # an authenticated session still challenges the next request
        body = values_body(f"88.123/IN-SESSION-{n}", [value_octets(1, "URL", b"https://example.com/s")])
        create, _ = request_message(OC_CREATE_HANDLE, body, flags=0, version=(2, 7), session_id=session)
        (challenge,) = await asyncio.to_thread(over_tcp, port, create)
        assert challenge.rc == 402 and challenge.session_id == session
        answer, _ = request_message(
            OC_RESPONSE_TO_CHALLENGE, admin(challenge), flags=0, version=(2, 7), session_id=session
        )
        (done,) = await asyncio.to_thread(over_tcp, port, answer)
        assert (done.rc, done.session_id) == (1, session), done.message_text()
        assert (await client.get(f"/api/handles/88.123/IN-SESSION-{n}")).status == 200
    (ended,) = await asyncio.to_thread(
        over_tcp, port, request_message(OC_SESSION_TERMINATE, b"", flags=0, session_id=session)[0]
    )
    assert ended.rc == 1


async def test_what_the_node_does_not_offer_is_refused(signing_node):  # noqa: F811
    _, port = signing_node
    refused = {
        "RSA key transport (CIPHER_SERVER)": setup_body(mode=2),
        "a 512-bit group": setup_body(key=dh_public(5, p=(1 << 511) + 187)),
        "an even modulus": setup_body(key=dh_public(5, p=P1024 + 1)),
        "y = 1": setup_body(key=dh_public(1)),
        "not a DH key": setup_body(key=utf8("RSA_PUB_KEY") + b"\0\0"),
        "cut short": struct.pack("!Hi", 4, 1) + utf8("0.NA/88.123"),
    }
    for label, body in refused.items():
        (answer,) = await asyncio.to_thread(
            over_tcp, port, request_message(OC_SESSION_SETUP, body, flags=OP_FLAG_CERTIFY)[0]
        )
        assert answer.rc == 501, (label, answer.rc, answer.message_text())  # RC_SESSION_FAILED
    (exchange,) = await asyncio.to_thread(
        over_tcp, port, request_message(OC_SESSION_EXCHANGEKEY, u32(0), flags=0)[0]
    )
    assert exchange.rc == 501
    # over UDP: told to use TCP, nothing signed (a spoofed source would make the node sign for nothing)
    udp = await asyncio.to_thread(
        over_udp,
        port,
        request_message(OC_SESSION_SETUP, setup_body(key=dh_public(7)), flags=OP_FLAG_CERTIFY)[0],
    )
    assert udp.rc == 2 and udp.credential == b""
