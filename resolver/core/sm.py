"""SM2 signatures with SM3 (GB/T 32918 / GM/T 0003, GM/T 0009), behind one small API.

The library underneath is gmssl-pyx (GmSSL 3 linked into the wheel); callers never see it. Only the
recommended curve sm2p256v1 (GB/T 32918.5) exists here. A signature is over e = SM3(ZA || M), where
ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA) binds it to the signer's user id and public
key; the id defaults to "1234567812345678" (GM/T 0009-2012), which JWS and the IDIS SDKs use.

Forms, all documented and stable:
- signature: 64 bytes, r || s, each 32 bytes big-endian (what JWS puts in its third part);
- public key raw: 64 bytes X || Y (65 bytes with a leading 0x04 are accepted on input); PEM: an
  X.509 SubjectPublicKeyInfo "PUBLIC KEY" (id-ecPublicKey with the SM2 curve OID 1.2.156.10197.1.301),
  as `openssl pkey -pubout` writes it;
- private key raw: 32 bytes d big-endian; PEM: unencrypted PKCS#8 "PRIVATE KEY", as
  `openssl genpkey -algorithm SM2` writes it (the public key included).

`verify` answers False for any signature that is not a valid one (wrong length, r or s outside
[1, n-1], wrong key, message or id); malformed keys and ids raise `SMError`.

GmSSL writes two lines (source file and function) to the process's stderr for each signature that
fails to verify; nothing else, and nothing for a signature refused here before the library sees it.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field

import gmssl_pyx  # type: ignore[import-untyped,import-not-found,unused-ignore]
from cryptography.hazmat.primitives.asymmetric.utils import (
    decode_dss_signature,
    encode_dss_signature,
)

DEFAULT_USER_ID = b"1234567812345678"
SIGNATURE_BYTES = 64
# ENTL is the id's length in bits in two bytes.
MAX_USER_ID_BYTES = 0xFFFF // 8

# sm2p256v1, GB/T 32918.5-2017.
P = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFF
A = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC
B = 0x28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93
N = 0xFFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFF7203DF6B21C6052B53BBF40939D54123
GX = 0x32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7
GY = 0xBC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0

_CURVE_BYTES = b"".join(v.to_bytes(32, "big") for v in (A, B, GX, GY))
# DER around the key bytes: id-ecPublicKey (1.2.840.10045.2.1) with the SM2 curve (1.2.156.10197.1.301).
_ALGORITHM = bytes.fromhex("301306072a8648ce3d020106082a811ccf5501822d")
_SPKI_PREFIX = bytes.fromhex("3059") + _ALGORITHM + bytes.fromhex("03420004")
_PKCS8_PREFIX = bytes.fromhex("308187020100") + _ALGORITHM + bytes.fromhex("046d306b0201010420")
_PKCS8_PUBLIC = bytes.fromhex("a14403420004")
_PKCS8_BARE_PREFIX = bytes.fromhex("3041020100") + _ALGORITHM + bytes.fromhex("042730250201010420")
_PEM_RE = re.compile(rb"-----BEGIN ([A-Z ]+)-----\s*([A-Za-z0-9+/=\s]+?)\s*-----END \1-----")


class SMError(ValueError):
    """A key, id or input in a form this module refuses; the message says which."""


def sm3(data: bytes) -> bytes:
    """The 32-byte SM3 digest of data (GB/T 32905-2016)."""
    return bytes(gmssl_pyx.sm3_hash(bytes(data)))


def _on_curve(x: int, y: int) -> bool:
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _multiply_generator(k: int) -> tuple[int, int]:
    """k·G in affine coordinates: used only when a key is loaded from its private half alone."""
    result: tuple[int, int] | None = None
    addend = (GX, GY)
    while k:
        if k & 1:
            result = addend if result is None else _add(result, addend)
        addend = _add(addend, addend)
        k >>= 1
    if result is None:
        raise SMError("SM2 private key is zero")
    return result


def _add(p1: tuple[int, int], p2: tuple[int, int]) -> tuple[int, int]:
    (x1, y1), (x2, y2) = p1, p2
    if x1 == x2:
        if (y1 + y2) % P == 0:
            raise SMError("SM2 point at infinity")
        slope = (3 * x1 * x1 + A) * pow(2 * y1, -1, P) % P
    else:
        slope = (y2 - y1) * pow(x2 - x1, -1, P) % P
    x3 = (slope * slope - x1 - x2) % P
    return x3, (slope * (x1 - x3) - y1) % P


def _pem_body(pem: bytes | str, label: str) -> bytes:
    text = pem.encode() if isinstance(pem, str) else pem
    match = _PEM_RE.search(text)
    if match is None or match.group(1) != label.encode():
        raise SMError(f"not a PEM {label}")
    try:
        return base64.b64decode(b"".join(match.group(2).split()), validate=True)
    except ValueError as exc:
        raise SMError(f"PEM {label} is not valid base64") from exc


def _pem(label: str, der: bytes) -> bytes:
    body = base64.b64encode(der)
    lines = b"\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    return b"-----BEGIN %s-----\n%s\n-----END %s-----\n" % (label.encode(), lines, label.encode())


@dataclass(frozen=True)
class SM2PublicKey:
    """A point of sm2p256v1 other than infinity; checked on the curve when built."""

    x: int
    y: int

    def __post_init__(self) -> None:
        if not _on_curve(self.x, self.y):
            raise SMError("SM2 public key is not a point of the curve")

    @classmethod
    def from_raw(cls, raw: bytes) -> SM2PublicKey:
        """From X || Y (64 bytes) or 04 || X || Y (65 bytes)."""
        if len(raw) == 65 and raw[0] == 4:
            raw = raw[1:]
        if len(raw) != 64:
            raise SMError(f"SM2 public key must be 64 bytes X||Y (or 65 with 04), got {len(raw)}")
        return cls(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SM2PublicKey:
        """From a SubjectPublicKeyInfo PEM ("PUBLIC KEY") of an SM2 key."""
        der = _pem_body(pem, "PUBLIC KEY")
        if len(der) != len(_SPKI_PREFIX) + 64 or not der.startswith(_SPKI_PREFIX):
            raise SMError("PUBLIC KEY is not an uncompressed SM2 SubjectPublicKeyInfo")
        return cls.from_raw(der[len(_SPKI_PREFIX) :])

    def raw(self) -> bytes:
        """X || Y, 64 bytes."""
        return self.x.to_bytes(32, "big") + self.y.to_bytes(32, "big")

    def to_pem(self) -> bytes:
        """The SubjectPublicKeyInfo PEM, as `openssl pkey -pubout` writes it."""
        return _pem("PUBLIC KEY", _SPKI_PREFIX + self.raw())


@dataclass(frozen=True)
class SM2PrivateKey:
    """d in [1, n-2] with its public key; the repr never shows d."""

    d: int = field(repr=False)
    public_key: SM2PublicKey

    def __post_init__(self) -> None:
        # d = n-1 is excluded by GB/T 32918.1: signing divides by 1 + d.
        if not 1 <= self.d <= N - 2:
            raise SMError("SM2 private key out of range [1, n-2]")

    @classmethod
    def generate(cls) -> SM2PrivateKey:
        """A new key pair from the library's generator."""
        public, private = gmssl_pyx.sm2_key_generate()
        return cls(int.from_bytes(private, "big"), SM2PublicKey.from_raw(bytes(public)))

    @classmethod
    def from_raw(cls, raw: bytes, public_key: SM2PublicKey | None = None) -> SM2PrivateKey:
        """From d (32 bytes big-endian); the public key is derived (and a given one checked)."""
        if len(raw) != 32:
            raise SMError(f"SM2 private key must be 32 bytes, got {len(raw)}")
        d = int.from_bytes(raw, "big")
        if not 1 <= d <= N - 2:
            raise SMError("SM2 private key out of range [1, n-2]")
        derived = SM2PublicKey(*_multiply_generator(d))
        if public_key is not None and public_key != derived:
            raise SMError("SM2 public key does not belong to the private key")
        return cls(d, derived)

    @classmethod
    def from_pem(cls, pem: bytes | str) -> SM2PrivateKey:
        """From an unencrypted PKCS#8 PEM ("PRIVATE KEY") of an SM2 key, with or without its public key."""
        der = _pem_body(pem, "PRIVATE KEY")
        if der.startswith(_PKCS8_PREFIX) and len(der) == len(_PKCS8_PREFIX) + 32 + len(_PKCS8_PUBLIC) + 64:
            start = len(_PKCS8_PREFIX)
            if der[start + 32 : start + 32 + len(_PKCS8_PUBLIC)] != _PKCS8_PUBLIC:
                raise SMError("PRIVATE KEY is not an SM2 PKCS#8 key")
            public = SM2PublicKey.from_raw(der[start + 32 + len(_PKCS8_PUBLIC) :])
            return cls.from_raw(der[start : start + 32], public)
        if der.startswith(_PKCS8_BARE_PREFIX) and len(der) == len(_PKCS8_BARE_PREFIX) + 32:
            return cls.from_raw(der[len(_PKCS8_BARE_PREFIX) :])
        raise SMError("PRIVATE KEY is not an SM2 PKCS#8 key")

    def raw(self) -> bytes:
        """d, 32 bytes big-endian."""
        return self.d.to_bytes(32, "big")

    def to_pem(self) -> bytes:
        """The unencrypted PKCS#8 PEM with the public key, as `openssl genpkey -algorithm SM2` writes it."""
        der = _PKCS8_PREFIX + self.raw() + _PKCS8_PUBLIC + self.public_key.raw()
        return _pem("PRIVATE KEY", der)


def za(public_key: SM2PublicKey, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """ZA = SM3(ENTL || ID || a || b || xG || yG || xA || yA) (GB/T 32918.2 section 5.5)."""
    if not 1 <= len(user_id) <= MAX_USER_ID_BYTES:
        raise SMError(f"SM2 user id must be 1 to {MAX_USER_ID_BYTES} bytes, got {len(user_id)}")
    entl = (len(user_id) * 8).to_bytes(2, "big")
    return sm3(entl + user_id + _CURVE_BYTES + public_key.raw())


def _digest(public_key: SM2PublicKey, message: bytes, user_id: bytes) -> bytes:
    return sm3(za(public_key, user_id) + message)


def sign(private_key: SM2PrivateKey, message: bytes, user_id: bytes = DEFAULT_USER_ID) -> bytes:
    """The SM2 signature of message as 64 bytes r || s (random k from the library)."""
    digest = _digest(private_key.public_key, message, user_id)
    der = gmssl_pyx.sm2_sign_sm3_digest(private_key.raw(), digest)
    r, s = decode_dss_signature(bytes(der))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")


def verify(
    public_key: SM2PublicKey, message: bytes, signature: bytes, user_id: bytes = DEFAULT_USER_ID
) -> bool:
    """Whether signature (64 bytes r || s) is public_key's SM2 signature of message under user_id."""
    digest = _digest(public_key, message, user_id)
    if len(signature) != SIGNATURE_BYTES:
        return False
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:], "big")
    if not (1 <= r < N and 1 <= s < N):
        return False
    try:
        return bool(gmssl_pyx.sm2_verify_sm3_digest(public_key.raw(), digest, encode_dss_signature(r, s)))
    except gmssl_pyx.GmsslInnerError:
        return False
