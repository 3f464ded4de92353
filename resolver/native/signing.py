"""What the reference Handle implementation signs, and the encodings around it (pure, no I/O).

Follows CNRI's Handle.Net sources (public mirror `MistraR/handle`, `src/main/java/net/handle/`);
docs/trust-reference.md states the rules with the file and function of each:

- message signatures (RFC 3652 credential, `hdllib/AbstractMessage.signMessage(Signature)` and
  `verifyMessage(PublicKey)`): the envelope-derived prefix by protocol version, then the encoded
  header and body; the HS_SIGNED credential layout;
- HS_PUBKEY octets (`hdllib/Util.getBytesFromPublicKey` / `getPublicKeyFromBytes`): RSA_PUB_KEY
  and DSA_PUB_KEY, integers as Java's `BigInteger.toByteArray()`;
- the challenge-response digests (`PublicKeyAuthenticationInfo.authenticate`,
  `SecretKeyAuthenticationInfo.authenticate`, `Util.doMac`) and the reference's hashed secret key
  (`Encoder.encodeSecretKey`);
- the per-index value digest of HS_SIGNATURE (`hdllib/trust/HandleValueDigester`).

The message helpers work on the octets `resolver.native.protocol.answer` produces (header, body,
an empty credential), so a certified answer is the plain one with its credential replaced.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import struct
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, padding, rsa

from resolver.native.protocol import ProtocolError, Reader

# credential types (hdllib Common.CREDENTIAL_TYPE_*)
CREDENTIAL_SIGNED = b"HS_SIGNED"
CREDENTIAL_OLD_SIGNED = b"HS_DSAPUBKEY"  # read as HS_SIGNED by verifyMessage(PublicKey)
CREDENTIAL_MAC = b"HS_MAC"

# hash names in a credential (hdllib Common.HASH_ALG_*), and their one-octet codes (HASH_CODE_*)
HASH_SHA1 = b"SHA1"
HASH_SHA256 = b"SHA-256"
HASH_MD5 = b"MD5"
CODE_MD5_OLD, CODE_MD5, CODE_SHA1, CODE_SHA256 = 0, 1, 2, 3
CODE_HMAC_SHA1, CODE_HMAC_SHA256, CODE_PBKDF2_HMAC_SHA1 = 0x12, 0x13, 0x22

# public key encodings (hdllib Common.KEY_ENCODING_*)
RSA_PUBLIC = b"RSA_PUB_KEY"
DSA_PUBLIC = b"DSA_PUB_KEY"

_HASH_NAMES: dict[bytes, str] = {
    HASH_SHA1: "sha1",
    b"SHA-1": "sha1",
    HASH_SHA256: "sha256",
    b"SHA256": "sha256",
    HASH_MD5: "md5",
    bytes([CODE_SHA1]): "sha1",
    bytes([CODE_SHA256]): "sha256",
    bytes([CODE_MD5]): "md5",
}
_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1,
    "sha256": hashes.SHA256,
    "md5": hashes.MD5,
}

PublicKey = rsa.RSAPublicKey | dsa.DSAPublicKey
PrivateKey = rsa.RSAPrivateKey | dsa.DSAPrivateKey


class SignatureError(Exception):
    """A credential or key this module cannot read, or a hash name the reference does not know."""


def _octets(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def _at_least(major: int, minor: int, version: tuple[int, int]) -> bool:
    """`AbstractMessage.hasEqualOrGreaterVersion` (major 5 is an old client's mistake for 2.0)."""
    if major == 5:
        return version[0] == 5 and minor >= version[1]
    if version[0] == 5:
        return True
    return (major, minor) >= version


# -- message signatures ------------------------------------------------------------------------


def signed_prefix(
    version: tuple[int, int],
    suggested: tuple[int, int],
    session_id: int,
    request_id: int,
    session_counter: int = 0,
) -> bytes:
    """The envelope-derived octets signed before the header and body (`signMessage(Signature)`):
    none before 2.6; from 2.8 the version, suggested version, session id, request id and session
    counter (16 octets); 2.7 the same without the suggested version (14). For 2.6 the reference
    writes the three integers with `offset = writeInt(...)` (the "painful bug"), so each lands at
    octet 2 or 4 over the previous one: major, minor, the session id's first two octets, the
    session counter, six zero octets."""
    major, minor = version
    if not _at_least(major, minor, (2, 6)):
        return b""
    ints = (session_id & 0xFFFFFFFF, request_id & 0xFFFFFFFF, session_counter & 0xFFFFFFFF)
    if _at_least(major, minor, (2, 8)):
        return struct.pack(">BBBBIII", major, minor, suggested[0], suggested[1], *ints)
    if _at_least(major, minor, (2, 7)):
        return struct.pack(">BBIII", major, minor, *ints)
    buffer = bytearray(14)
    buffer[0], buffer[1] = major, minor
    struct.pack_into(">I", buffer, 2, ints[0])
    struct.pack_into(">I", buffer, 4, ints[1])
    struct.pack_into(">I", buffer, 4, ints[2])
    return bytes(buffer)


def signed_data(
    header_and_body: bytes,
    version: tuple[int, int],
    suggested: tuple[int, int],
    session_id: int,
    request_id: int,
    session_counter: int = 0,
) -> bytes:
    """Everything a message signature covers: the prefix, then the header and body as sent."""
    return signed_prefix(version, suggested, session_id, request_id, session_counter) + header_and_body


@dataclass(frozen=True)
class Credential:
    """The signature part of a message (the octets after its int4 length)."""

    kind: bytes  # HS_SIGNED, HS_MAC (or HS_DSAPUBKEY, an old HS_SIGNED)
    hash_name: bytes  # b"SHA-256", b"SHA1", ... (HS_MAC: b"HMAC-SHA256", ...)
    signature: bytes
    session_counter: int = 0
    signer_handle: bytes = b""  # unused by the reference: always empty


def encode_credential(credential: Credential) -> bytes:
    """The credential's octets, as `signMessage` lays them out: version 0, reserved 0, flags
    (int2, 0), signer handle (empty), the session counter in the signer index, the type, the
    section length, the hash name and the signature (each with its int4 length)."""
    section = _octets(credential.hash_name) + _octets(credential.signature)
    return b"".join(
        [
            struct.pack(">BBH", 0, 0, 0),
            _octets(credential.signer_handle),
            struct.pack(">I", credential.session_counter & 0xFFFFFFFF),
            _octets(credential.kind),
            struct.pack(">I", len(section)),
            section,
        ]
    )


def parse_credential(data: bytes) -> Credential:
    """Reads what `encode_credential` writes (`verifyMessage`: version, reserved and flags are read
    and ignored; so is the section length, the two fields after it carry their own)."""
    if len(data) < 4:
        raise SignatureError("a credential starts with 4 octets of version, reserved and flags")
    reader = Reader(data)
    reader.at = 4
    try:
        signer = reader.octets()
        counter = reader.int4()
        kind = reader.octets()
        reader.int4()  # section length
        hash_name = reader.octets()
        signature = reader.octets()
    except ProtocolError as exc:
        raise SignatureError(f"the credential is cut short: {exc}") from None
    return Credential(kind, hash_name, signature, counter, signer)


def message_hash(version: tuple[int, int], key: PublicKey | PrivateKey) -> bytes:
    """The hash the reference server signs answers with (`HandleServer.supportsSha256Signature`):
    SHA-256 from 2.11, or from 2.7 unless the key is DSA; SHA-1 before."""
    major, minor = version
    if _at_least(major, minor, (2, 11)):
        return HASH_SHA256
    if isinstance(key, (dsa.DSAPublicKey, dsa.DSAPrivateKey)):
        return HASH_SHA1
    return HASH_SHA256 if _at_least(major, minor, (2, 7)) else HASH_SHA1


def _hash(name: bytes) -> hashes.HashAlgorithm:
    """The hash a credential or challenge answer names (`Util.getSigIdFromHashAlgId`)."""
    try:
        return _HASHES[_HASH_NAMES[name]]()
    except KeyError:
        raise SignatureError(f"unknown hash algorithm {name!r:.40}") from None


def sign(key: PrivateKey, data: bytes, hash_name: bytes) -> bytes:
    """`<hash>with<RSA|DSA>` as Java's `Signature` makes it: PKCS#1 v1.5 for RSA, DER for DSA."""
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(data, padding.PKCS1v15(), _hash(hash_name))
    return key.sign(data, _hash(hash_name))


def verify(key: PublicKey, data: bytes, hash_name: bytes, signature: bytes) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, data, padding.PKCS1v15(), _hash(hash_name))
        else:
            key.verify(signature, data, _hash(hash_name))
    except InvalidSignature:
        return False
    return True


def sign_message(
    message: bytes,
    key: PrivateKey,
    version: tuple[int, int],
    suggested: tuple[int, int],
    session_id: int,
    request_id: int,
) -> bytes:
    """A certified answer: `message` as `protocol.answer` makes it (header, body, empty
    credential) with the credential replaced by an HS_SIGNED one. `version`, `suggested`, the
    session and request ids must be what the answer's envelope carries (`protocol.envelopes`:
    the answer version and `protocol.SERVER_VERSION` as the suggested one)."""
    if message[-4:] != b"\0\0\0\0":
        raise SignatureError("the message already has a credential")
    header_and_body = message[:-4]
    hash_name = message_hash(version, key)
    data = signed_data(header_and_body, version, suggested, session_id, request_id)
    credential = encode_credential(Credential(CREDENTIAL_SIGNED, hash_name, sign(key, data, hash_name)))
    return header_and_body + _octets(credential)


def verify_message(
    header_and_body: bytes,
    credential: bytes,
    key: PublicKey,
    version: tuple[int, int],
    suggested: tuple[int, int],
    session_id: int,
    request_id: int,
) -> bool:
    """`verifyMessage(PublicKey)`: the credential (without its length) checked over the received
    header and body, with the session counter the credential carries."""
    parsed = parse_credential(credential)
    if parsed.kind not in (CREDENTIAL_SIGNED, CREDENTIAL_OLD_SIGNED):
        raise SignatureError(f"unknown signature type {parsed.kind!r:.40}")
    data = signed_data(header_and_body, version, suggested, session_id, request_id, parsed.session_counter)
    return verify(key, data, parsed.hash_name, parsed.signature)


# -- HS_PUBKEY ---------------------------------------------------------------------------------


def java_integer(value: int) -> bytes:
    """`BigInteger.toByteArray()` of a non-negative integer: minimal two's complement, so a
    leading 0x00 when the top bit of the first octet is set."""
    return value.to_bytes(value.bit_length() // 8 + 1, "big")


def encode_public_key(key: PublicKey) -> bytes:
    """HS_PUBKEY octets (`Util.getBytesFromPublicKey`): the encoding name, two reserved octets,
    then for RSA the exponent and modulus, for DSA q, p, g and y."""
    if isinstance(key, rsa.RSAPublicKey):
        numbers = key.public_numbers()
        parts = [java_integer(numbers.e), java_integer(numbers.n)]
        name = RSA_PUBLIC
    else:
        dsa_numbers = key.public_numbers()
        params = dsa_numbers.parameter_numbers
        parts = [java_integer(v) for v in (params.q, params.p, params.g, dsa_numbers.y)]
        name = DSA_PUBLIC
    return _octets(name) + b"\0\0" + b"".join(_octets(part) for part in parts)


def decode_public_key(data: bytes) -> PublicKey:
    """`Util.getPublicKeyFromBytes` for RSA_PUB_KEY and DSA_PUB_KEY (integers read unsigned, with or
    without a leading zero). Anything else, SM2 included, is refused as the reference refuses it:
    "Unknown format for public key"."""
    reader = Reader(data)
    try:
        name = reader.octets()
        reader.at += 2  # flags, reserved
        if name == RSA_PUBLIC:
            e, n = (int.from_bytes(reader.octets(), "big") for _ in range(2))
            return rsa.RSAPublicNumbers(e, n).public_key()
        if name == DSA_PUBLIC:
            q, p, g, y = (int.from_bytes(reader.octets(), "big") for _ in range(4))
            return dsa.DSAPublicNumbers(y, dsa.DSAParameterNumbers(p, q, g)).public_key()
    except ProtocolError as exc:
        raise SignatureError(f"the public key is cut short: {exc}") from None
    except ValueError as exc:
        raise SignatureError(f"not a valid public key: {exc}") from None
    raise SignatureError(f'Unknown format for public key: "{name.decode("utf-8", "replace"):.40}"')


# -- challenge-response ------------------------------------------------------------------------


def pubkey_answer(key: PrivateKey, nonce: bytes, request_digest: bytes, version: tuple[int, int]) -> bytes:
    """The signed response of an HS_PUBKEY challenge answer (`PublicKeyAuthenticationInfo.
    authenticate`): `nonce || requestDigest` (the digest without its type octet) signed with
    SHA-256 from 2.7 (SHA-1 for DSA below 2.11, `Util.getDefaultSigId`), SHA-1 before; laid out as
    the hash name and the signature, each with its int4 length."""
    major, minor = version
    sha256 = _at_least(major, minor, (2, 7))
    if isinstance(key, dsa.DSAPrivateKey) and not _at_least(major, minor, (2, 11)):
        sha256 = False
    hash_name = HASH_SHA256 if sha256 else HASH_SHA1
    return _octets(hash_name) + _octets(sign(key, nonce + request_digest, hash_name))


def check_pubkey_answer(key: PublicKey, nonce: bytes, request_digest: bytes, answer: bytes) -> bool:
    """The server's check of an HS_PUBKEY answer (`HandleServer.verifyIdentityAndGetIndex`)."""
    reader = Reader(answer)
    try:
        hash_name, signature = reader.octets(), reader.octets()
    except ProtocolError as exc:
        raise SignatureError(f"the challenge answer is cut short: {exc}") from None
    return verify(key, nonce + request_digest, hash_name, signature)


@dataclass(frozen=True)
class Pbkdf2Params:
    salt: bytes
    iterations: int
    key_bits: int


def parse_pbkdf2(encoding: bytes) -> tuple[Pbkdf2Params, bytes]:
    """A PBKDF2-HMAC-SHA1 answer after its code octet (`Util.constructPbkdf2Encoding`): salt,
    iterations, key length in bits, then the MAC."""
    reader = Reader(encoding)
    try:
        salt = reader.octets()
        iterations, bits = reader.int4(), reader.int4()
        mac = reader.octets()
    except ProtocolError as exc:
        raise SignatureError(f"the PBKDF2 answer is cut short: {exc}") from None
    if not 0 < iterations <= 10_000_000 or not 0 < bits <= 4096 or bits % 8:
        raise SignatureError("the PBKDF2 parameters are out of range")
    return Pbkdf2Params(salt, iterations, bits), mac


def _java_password(secret: bytes) -> bytes:
    """How `Util.doPBKDF2` hands the secret to Java's PBKDF2: each octet widened to a char, the
    chars encoded as UTF-8 by the provider (ASCII secrets are unchanged)."""
    return secret.decode("latin-1").encode("utf-8")


def seckey_mac(code: int, data: bytes, secret: bytes, params: Pbkdf2Params | None = None) -> bytes:
    """`Util.doMac`: the digest an HS_SECKEY answer carries after its code octet. PBKDF2 returns
    the whole encoding (parameters and MAC); `params` are the answer's, to recompute it."""
    if code == CODE_PBKDF2_HMAC_SHA1:
        if params is None:
            raise SignatureError("PBKDF2 needs the salt, iterations and length of the answer")
        derived = hashlib.pbkdf2_hmac(
            "sha1", _java_password(secret), params.salt, params.iterations, params.key_bits // 8
        )
        mac = hmac.new(derived, data, "sha1").digest()
        return _octets(params.salt) + struct.pack(">II", params.iterations, params.key_bits) + _octets(mac)
    if code == CODE_HMAC_SHA256:
        return hmac.new(secret, data, "sha256").digest()
    if code == CODE_HMAC_SHA1:
        return hmac.new(secret, data, "sha1").digest()
    names = {CODE_SHA256: "sha256", CODE_SHA1: "sha1", CODE_MD5: "md5", CODE_MD5_OLD: "md5"}
    if code not in names:
        raise SignatureError(f"Invalid hash type: {code}")
    return hashlib.new(names[code], secret + data + secret).digest()


def check_seckey_answer(secret: bytes, nonce: bytes, request_digest: bytes, answer: bytes) -> bool:
    """`HandleServer.verifyChallenge` for one HS_SECKEY value (protocol 2.1 and later: the answer
    is a code octet and the digest): recompute with the stored octets and compare."""
    if not answer:
        return False
    code, rest = answer[0], answer[1:]
    params = parse_pbkdf2(rest)[0] if code == CODE_PBKDF2_HMAC_SHA1 else None
    return hmac.compare_digest(seckey_mac(code, nonce + request_digest, secret, params), rest)


def hashed_secret(secret: bytes) -> bytes:
    """The reference's "hashed" secret key (`Encoder.encodeSecretKey(secret, true)`): the
    lower-case hex of SHA-1(secret) as ASCII. Stored as the HS_SECKEY data and used by clients
    with the hash option as the key itself, so it stands for the password in challenge-response."""
    return hashlib.sha1(secret).hexdigest().encode("ascii")


# -- HS_SIGNATURE digests ----------------------------------------------------------------------


def value_digest(encoded_value: bytes, algorithm: str = "sha256") -> str:
    """One entry of an HS_SIGNATURE's `digests` (`HandleValueDigester.digestHandleValue`): the hash
    of a value's binary encoding (`protocol.encode_value`) without its first 8 octets (index and
    timestamp), in standard base64 with padding."""
    return base64.b64encode(hashlib.new(algorithm, encoded_value[8:]).digest()).decode("ascii")
