"""`Authorization: Handle` parsing and the signed response it stands for, from the reference:
`HandleAuthorizationHeader.fromHeader` and `StandardHandleAuthenticator.constructSignedResponse`
(MistraR/handle net/handle/server/servletcontainer/auth), `Util.constructPbkdf2Encoding`; and the
secure-channel rule of `StandardHandleAuthenticationFilter` (401 off TLS becomes 403)."""

from __future__ import annotations

import base64
import ssl
import struct

import pytest
from aiohttp.test_utils import make_mocked_request

from resolver.core.errors import HandleError
from resolver.http.sessions import secure
from resolver.services.handle_sessions import answer_fields, parse_handle_header


def test_fields_are_tokens_or_quoted_strings_and_only_id_is_percent_decoded():
    parsed = parse_handle_header(
        'handle  sessionId="abc", id=300%3A0.NA%2F88.123 ,type=HS_PUBKEY, cnonce="a\\"b", Unknown=1, alg=SHA256'
    )
    assert parsed is not None
    assert parsed.fields == {
        "sessionid": "abc",
        "id": "300:0.NA/88.123",
        "type": "HS_PUBKEY",
        "cnonce": 'a"b',
        "alg": "SHA256",
    }
    assert parsed.authenticating
    assert not parse_handle_header('Handle sessionId="abc"').authenticating  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "header",
    ["Basic abc", "Handle", "Handle   ", "Handle a=b c=d", 'Handle a="b', "Handle =x", "Handle id=%ff"],
)
def test_what_the_reference_does_not_parse_is_none(header):
    assert parse_handle_header(header) is None


def header(**fields: str):
    parsed = parse_handle_header("Handle " + ", ".join(f'{k}="{v}"' for k, v in fields.items()))
    assert parsed is not None
    return parsed


SIG = base64.b64encode(b"\x01\x02\x03").decode()
CNONCE = base64.b64encode(b"cn").decode()


def test_a_pubkey_answer_is_the_hash_name_and_the_signature_each_with_its_length():
    _, auth_type, _, cnonce, response = answer_fields(
        header(id="300:x/y", type="HS_PUBKEY", cnonce=CNONCE, alg="sha-256", signature=SIG)
    )
    assert auth_type == "HS_PUBKEY" and cnonce == b"cn"
    assert response == struct.pack(">I", 7) + b"SHA-256" + struct.pack(">I", 3) + b"\x01\x02\x03"


@pytest.mark.parametrize(
    ("alg", "code"),
    [("SHA1", 2), ("SHA", 2), ("MD5", 1), ("HMAC-SHA256", 0x13), ("hmacsha1", 0x12), ("SHA-2", 3)],
)
def test_a_seckey_answer_is_the_code_octet_and_the_digest(alg, code):
    *_, response = answer_fields(
        header(id="300:x/y", type="HS_SECKEY", cnonce=CNONCE, alg=alg, signature=SIG)
    )
    assert response == bytes([code]) + b"\x01\x02\x03"


def test_a_pbkdf2_answer_carries_salt_iterations_and_length():
    salt = base64.b64encode(b"salty").decode()
    *_, response = answer_fields(
        header(
            id="300:x/y",
            type="HS_SECKEY",
            cnonce=CNONCE,
            alg="PBKDF2-HMAC-SHA1",
            salt=salt,
            iterations="10000",
            length="160",
            signature=SIG,
        )
    )
    expected = (
        struct.pack(">I", 5)
        + b"salty"
        + struct.pack(">II", 10000, 160)
        + struct.pack(">I", 3)
        + b"\x01\x02\x03"
    )
    assert response == bytes([0x22]) + expected


@pytest.mark.parametrize(
    "fields",
    [
        {"id": "300:x/y", "type": "HS_SECKEY", "alg": "SHA1", "signature": SIG},  # no cnonce
        {"id": "300:x/y", "type": "HS_SECKEY", "cnonce": "!!", "alg": "SHA1", "signature": SIG},
        {"id": "300:x/y", "type": "HS_SECKEY", "cnonce": CNONCE, "alg": "ROT13", "signature": SIG},
        {"id": "300:x/y", "type": "HS_OTHER", "cnonce": CNONCE, "alg": "SHA1", "signature": SIG},
        {
            "id": "300:x/y",
            "type": "HS_SECKEY",
            "cnonce": CNONCE,
            "alg": "PBKDF2-HMAC-SHA1",
            "signature": SIG,
            "salt": "AA==",
            "iterations": "many",
            "length": "160",
        },
    ],
)
def test_incomplete_or_malformed_answers_are_refused(fields):
    with pytest.raises(HandleError):
        answer_fields(header(**fields))


def _request(peer: str, scheme_https: bool = False):
    context = ssl.create_default_context() if scheme_https else None
    return make_mocked_request("GET", "/api/sessions", sslcontext=context).clone(remote=peer)


def test_the_scheme_needs_tls_or_a_loopback_client():
    assert secure(_request("127.0.0.1")) and secure(_request("::1"))
    assert not secure(_request("192.0.2.7"))
    assert secure(_request("192.0.2.7", scheme_https=True))
