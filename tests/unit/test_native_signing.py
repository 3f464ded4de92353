"""resolver/native/signing.py against vectors built by hand from the reference's rules.

The reference is CNRI's Handle.Net (public mirror MistraR/handle, `src/main/java/net/handle/`);
docs/trust-reference.md states each rule with its file and function. The expected octets below
are written out field by field from those rules, not produced by the module under test; where a
signature is involved, the check is made with `cryptography` directly over octets assembled here.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from resolver.native import protocol as p
from resolver.native import signing as s


def octets(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def dsa_key() -> dsa.DSAPrivateKey:
    return dsa.generate_private_key(key_size=1024)


# -- the signed prefix ----------------------------------------------------------------------------


def test_prefix_from_2_8_has_both_versions_and_three_ints() -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)`: from 2.8 (hasSuggest) the signer is fed
    major, minor, suggested major, suggested minor, then sessionId, requestId, sessionCounter as
    int4, before the header and body."""
    prefix = s.signed_prefix((2, 10), (2, 11), 0x01020304, 0x0A0B0C0D, 7)
    assert prefix == bytes.fromhex("02 0a 02 0b 01020304 0a0b0c0d 00000007")


def test_prefix_2_7_has_no_suggested_version() -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)`: 2.7 (newVersion, not hasSuggest):
    versionBytes is 2, then the three int4."""
    assert s.signed_prefix((2, 7), (2, 11), 1, 2, 3) == bytes.fromhex("02 07 00000001 00000002 00000003")


def test_prefix_2_6_reproduces_the_offset_bug() -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)`, the "painful bug" branch for 2.6:
    `offset = Encoder.writeInt(...)` sets offset to 4 (writeInt returns INT_SIZE). By hand:
    buffer of 2 + 12 = 14 zero octets; [0]=2, [1]=6; sessionId 0x11223344 written at 2..5, offset
    becomes 4; requestId 0x55667788 written at 4..7 (over the session id's last two octets), offset
    stays 4; sessionCounter 0x99AABBCC written at 4..7 again. Result: 02 06 11 22 99 aa bb cc and
    six zeros."""
    prefix = s.signed_prefix((2, 6), (2, 6), 0x11223344, 0x55667788, 0x99AABBCC)
    assert prefix == bytes.fromhex("02 06 1122 99aabbcc 000000000000")


def test_no_prefix_before_2_6() -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)`: the prefix is only written when
    hasEqualOrGreaterVersion(2, 6); before, only the header and body are signed."""
    assert s.signed_prefix((2, 5), (2, 5), 1, 2, 3) == b""
    assert s.signed_data(b"HB", (2, 1), (2, 1), 1, 2) == b"HB"


# -- the credential -------------------------------------------------------------------------------


def test_credential_layout_by_hand() -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)`: version 0, reserved 0, flags int2 0,
    an empty signer handle (int4 0), the session counter as the signer index, the type HS_SIGNED,
    the section length (hash name and signature with their length fields: 4+7 + 4+2 = 17), the
    hash name "SHA-256" and the signature."""
    credential = s.Credential(b"HS_SIGNED", b"SHA-256", b"\x01\x02", session_counter=5)
    expected = (
        bytes.fromhex("00 00 0000")
        + bytes.fromhex("00000000")  # signer handle: empty
        + bytes.fromhex("00000005")  # session counter
        + bytes.fromhex("00000009")
        + b"HS_SIGNED"
        + bytes.fromhex("00000011")  # 17
        + bytes.fromhex("00000007")
        + b"SHA-256"
        + bytes.fromhex("00000002 0102")
    )
    assert s.encode_credential(credential) == expected
    assert s.parse_credential(expected) == credential


def test_credential_cut_short_is_refused() -> None:
    """hdllib/AbstractMessage.java `verifyMessage(PublicKey)` reads every field with
    Encoder.readByteArray, which throws on a length past the end; so does parse_credential."""
    whole = s.encode_credential(s.Credential(b"HS_SIGNED", b"SHA-256", b"sig"))
    with pytest.raises(s.SignatureError):
        s.parse_credential(whole[:-1])


def test_hash_choice_follows_the_server() -> None:
    """net/handle/server/HandleServer.java `supportsSha256Signature`: SHA-256 from 2.11 for any
    key, from 2.7 unless the key is DSA; SHA-1 before 2.7."""
    rsa_public = rsa.RSAPublicNumbers(65537, (1 << 1023) + 1).public_key()
    assert s.message_hash((2, 11), rsa_public) == b"SHA-256"
    assert s.message_hash((2, 7), rsa_public) == b"SHA-256"
    assert s.message_hash((2, 6), rsa_public) == b"SHA1"


# -- certified answers --------------------------------------------------------------------------


def _request(version: tuple[int, int], session: int, request_id: int) -> p.Request:
    envelope = p.Envelope(version[0], version[1], 0, version, session, request_id, 0, 0)
    body = p.utf8("20.500/1") + struct.pack(">II", 0, 0)
    header = p.HEADER.pack(p.OC_RESOLUTION, 0, p.FLAG_CERTIFY, 0, 0, 0, 0, len(body))
    return p.Request(envelope, p.OC_RESOLUTION, 0, p.FLAG_CERTIFY, 0, 0, body, header + body)


def _client_verifies(message: bytes, public: rsa.RSAPublicKey, envelope: bytes) -> bool:
    """A client written from RFC 3652 and hdllib/Encoder.java `decodeMessage` +
    AbstractMessage.java `verifyMessage(PublicKey)`: read the body length from the header, take
    header+body, read the credential after its int4 length, rebuild the prefix from the answer's
    envelope (`Encoder.decodeEnvelope`) and check the PKCS#1 v1.5 signature."""
    major, minor, flags, suggested_minor, session, request_id = struct.unpack(">BBBBII", envelope[:12])
    body_length = struct.unpack(">I", message[20:24])[0]
    header_and_body = message[: 24 + body_length]
    length = struct.unpack(">I", message[24 + body_length : 28 + body_length])[0]
    credential = message[28 + body_length : 28 + body_length + length]
    at = 4
    at += 4 + struct.unpack(">I", credential[at : at + 4])[0]  # signer handle
    counter = credential[at : at + 4]
    at += 4
    kind_length = struct.unpack(">I", credential[at : at + 4])[0]
    assert credential[at + 4 : at + 4 + kind_length] == b"HS_SIGNED"
    at += 4 + kind_length + 4  # type, section length
    hash_length = struct.unpack(">I", credential[at : at + 4])[0]
    hash_name = credential[at + 4 : at + 4 + hash_length]
    at += 4 + hash_length
    signature = credential[at + 4 : at + 4 + struct.unpack(">I", credential[at : at + 4])[0]]
    assert hash_name == b"SHA-256"
    prefix = bytes([major, minor, flags & 0x03, suggested_minor]) + struct.pack(">II", session, request_id)
    try:
        public.verify(signature, prefix + counter + header_and_body, padding.PKCS1v15(), hashes.SHA256())
    except Exception:
        return False
    return True


def test_certified_answer_verifies_with_a_client_written_from_the_rules(rsa_key: rsa.RSAPrivateKey) -> None:
    """hdllib/AbstractMessage.java `signMessage(Signature)` / `verifyMessage(PublicKey)` and
    HandleResolver.java `verifyResponseWithServerPublicKey`: the answer protocol.answer makes,
    signed for the envelope protocol.envelopes writes (answer version, suggested 2.11), verifies
    with the public key alone; a changed body octet or another envelope request id does not."""
    request = _request((2, 10), 0, 0x01020304)
    plain = p.answer(request, p.RC_SUCCESS, p.encode_values([]))
    signed = s.sign_message(plain, rsa_key, request.version, p.SERVER_VERSION, 0, 0x01020304)
    assert signed[: len(plain) - 4] == plain[:-4]
    (envelope,) = p.envelopes(request.envelope, signed, 1 << 20)
    assert _client_verifies(signed, rsa_key.public_key(), envelope)
    tampered = bytearray(signed)
    tampered[25] ^= 1
    assert not _client_verifies(bytes(tampered), rsa_key.public_key(), envelope)
    other = envelope[:8] + struct.pack(">I", 0x01020305) + envelope[12:]
    assert not _client_verifies(signed, rsa_key.public_key(), other)


def test_sign_and_verify_message_round_trip(rsa_key: rsa.RSAPrivateKey, dsa_key: dsa.DSAPrivateKey) -> None:
    """hdllib/AbstractMessage.java `verifyMessage(PublicKey)`: the session counter comes from the
    credential; HandleServer.java `supportsSha256Signature` picks SHA1withDSA below 2.11."""
    request = _request((2, 8), 9, 77)
    plain = p.answer(request, p.RC_SUCCESS, b"")
    for key, hash_name in ((rsa_key, b"SHA-256"), (dsa_key, b"SHA1")):
        signed = s.sign_message(plain, key, (2, 8), (2, 11), 9, 77)
        header_and_body, credential = signed[: len(plain) - 4], signed[len(plain) :]
        assert s.parse_credential(credential).hash_name == hash_name
        public = key.public_key()
        assert s.verify_message(header_and_body, credential, public, (2, 8), (2, 11), 9, 77)
        assert not s.verify_message(header_and_body, credential, public, (2, 8), (2, 10), 9, 77)
    with pytest.raises(s.SignatureError):
        s.sign_message(signed, rsa_key, (2, 8), (2, 11), 9, 77)


# -- HS_PUBKEY ------------------------------------------------------------------------------------


def test_rsa_public_key_octets_by_hand() -> None:
    """hdllib/Util.java `getBytesFromPublicKey`: bytes "RSA_PUB_KEY", int2 flags 0, bytes exponent,
    bytes modulus, each integer as BigInteger.toByteArray(): 65537 is 01 00 01 (3 octets); a
    2048-bit modulus has its top bit set, so it takes 257 octets with a leading 00."""
    n = (1 << 2047) | (0xABCDEF << 100) | 1
    key = rsa.RSAPublicNumbers(65537, n).public_key()
    expected = (
        bytes.fromhex("0000000b")
        + b"RSA_PUB_KEY"
        + bytes.fromhex("0000")
        + bytes.fromhex("00000003 010001")
        + bytes.fromhex("00000101")
        + b"\x00"
        + n.to_bytes(256, "big")
    )
    assert s.encode_public_key(key) == expected
    assert s.decode_public_key(expected).public_numbers() == key.public_numbers()


def test_public_key_reader_takes_integers_without_the_sign_octet() -> None:
    """hdllib/Util.java `getPublicKeyFromBytes` reads with new BigInteger(1, bytes): a modulus
    written without its leading zero (other implementations) gives the same key."""
    n = (1 << 2047) | 1
    data = octets(b"RSA_PUB_KEY") + b"\0\0" + octets(b"\x01\x00\x01") + octets(n.to_bytes(256, "big"))
    key = s.decode_public_key(data)
    assert isinstance(key, rsa.RSAPublicKey)
    assert key.public_numbers().n == n


def test_dsa_public_key_round_trip(dsa_key: dsa.DSAPrivateKey) -> None:
    """hdllib/Util.java `getBytesFromPublicKey` / `getPublicKeyFromBytes` for DSA: bytes
    "DSA_PUB_KEY", int2 flags, then q, p, g, y in that order."""
    public = dsa_key.public_key()
    data = s.encode_public_key(public)
    numbers = public.public_numbers()
    q = numbers.parameter_numbers.q
    assert data.startswith(octets(b"DSA_PUB_KEY") + b"\0\0" + octets(s.java_integer(q)))
    assert s.decode_public_key(data).public_numbers() == numbers


def test_other_key_types_are_refused_like_the_reference() -> None:
    """hdllib/Util.java `getPublicKeyFromBytes`: only DSA_PUB_KEY, RSA_PUB_KEY (and DH_PUB_KEY, for
    session keys) are known; anything else (an SM2 key, say) throws "Unknown format for public key"."""
    sm2 = octets(b"SM2_PUB_KEY") + b"\0\0" + octets(b"\x04" + bytes(64))
    with pytest.raises(s.SignatureError, match="Unknown format for public key"):
        s.decode_public_key(sm2)
    with pytest.raises(s.SignatureError):
        s.decode_public_key(octets(b"RSA_PUB_KEY") + b"\0\0" + octets(b"\x01\x00\x01"))


def test_java_integer_is_minimal_twos_complement() -> None:
    """java.math.BigInteger.toByteArray() as hdllib/Util.java `getBytesFromPublicKey` uses it."""
    assert s.java_integer(0) == b"\x00"
    assert s.java_integer(0x7F) == b"\x7f"
    assert s.java_integer(0x80) == b"\x00\x80"
    assert s.java_integer(65537) == b"\x01\x00\x01"


# -- challenge-response ---------------------------------------------------------------------------


def test_pubkey_answer_signs_nonce_and_digest(rsa_key: rsa.RSAPrivateKey) -> None:
    """hdllib/PublicKeyAuthenticationInfo.java `authenticate`: sign nonce || requestDigest with
    SHA256withRSA from 2.7; the answer is bytes "SHA-256", bytes signature. Checked here with
    cryptography directly over the octets, then with check_pubkey_answer
    (server/HandleServer.java `verifyIdentityAndGetIndex`); a different nonce fails."""
    nonce, digest = bytes(range(16)), hashlib.sha256(b"request").digest()
    answer = s.pubkey_answer(rsa_key, nonce, digest, (2, 11))
    assert answer[:11] == octets(b"SHA-256")
    signature = answer[15:]
    assert struct.unpack(">I", answer[11:15])[0] == len(signature)
    rsa_key.public_key().verify(signature, nonce + digest, padding.PKCS1v15(), hashes.SHA256())
    assert s.check_pubkey_answer(rsa_key.public_key(), nonce, digest, answer)
    assert not s.check_pubkey_answer(rsa_key.public_key(), bytes(16), digest, answer)
    assert s.pubkey_answer(rsa_key, nonce, digest, (2, 6))[:8] == octets(b"SHA1")


def test_pbkdf2_answer_from_the_rfc_6070_vector() -> None:
    """hdllib/Util.java `doPbkdf2HmacSHA1` / `constructPbkdf2Encoding` and
    SecretKeyAuthenticationInfo.java `authenticate` (code 0x22 from 2.7): K = PBKDF2-HMAC-SHA1(
    secret, salt, iterations, 160 bits); MAC = HMAC-SHA1(K, nonce || digest); the answer is 0x22,
    bytes salt, int4 iterations, int4 bits, bytes MAC. K for "password"/"salt"/1 iteration is
    RFC 6070's first vector 0c60c80f961f0e71f3a9b524af6012062fe037a6."""
    derived = bytes.fromhex("0c60c80f961f0e71f3a9b524af6012062fe037a6")
    nonce, digest = b"N" * 16, b"D" * 32
    mac = hmac.new(derived, nonce + digest, "sha1").digest()
    answer = b"\x22" + octets(b"salt") + struct.pack(">II", 1, 160) + octets(mac)
    assert s.check_seckey_answer(b"password", nonce, digest, answer)
    assert not s.check_seckey_answer(b"passw0rd", nonce, digest, answer)
    params, parsed_mac = s.parse_pbkdf2(answer[1:])
    assert (params, parsed_mac) == (s.Pbkdf2Params(b"salt", 1, 160), mac)


def test_older_seckey_digests() -> None:
    """hdllib/Util.java `doMac`: code 2 is SHA1(key || data || key), 3 SHA256(key || data || key),
    0x13 HMAC-SHA256 (key as the HMAC key); HandleServer.java `verifyChallenge` compares after the
    code octet."""
    key, data = b"secret", b"N" * 16 + b"D" * 20
    sha1 = hashlib.sha1(b"secret" + data + b"secret").digest()
    assert s.check_seckey_answer(key, data[:16], data[16:], b"\x02" + sha1)
    assert s.seckey_mac(3, data, key) == hashlib.sha256(key + data + key).digest()
    assert s.seckey_mac(0x13, data, key) == hmac.new(key, data, "sha256").digest()
    with pytest.raises(s.SignatureError):
        s.seckey_mac(0x7F, data, key)


def test_hashed_secret_is_hex_sha1() -> None:
    """hdllib/Encoder.java `encodeSecretKey(secret, true)`: lower-case hex of SHA-1 as ASCII; the
    SHA-1 of "password" is the well-known 5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8."""
    assert s.hashed_secret(b"password") == b"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"


# -- HS_SIGNATURE digests -------------------------------------------------------------------------


def test_value_digest_skips_index_and_timestamp() -> None:
    """hdllib/trust/HandleValueDigester.java `digestHandleValue`: SHA-256 over
    Encoder.encodeHandleValue from offset 8 (after index and timestamp), base64 with padding. By
    hand for URL "x", relative TTL 86400, permissions 1110 (admin read+write, public read: 0x0e),
    no references: 00 | 00015180 | 0e | 00000003 "URL" | 00000001 "x" | 00000000."""
    value: dict[str, Any] = {"index": 1, "type": "URL", "data": {"format": "string", "value": "x"}}
    tail = bytes.fromhex("00 00015180 0e") + octets(b"URL") + octets(b"x") + bytes(4)
    expected = base64.b64encode(hashlib.sha256(tail).digest()).decode()
    assert s.value_digest(p.encode_value(value)) == expected
    moved = dict(value, index=2, timestamp="2020-01-01T00:00:00Z")
    assert s.value_digest(p.encode_value(moved)) == expected
