"""Stored secrets: passwords as salted scrypt hashes; HS_SECKEY values sealed (see below).

Hashing is deliberately slow, so callers run these functions in a thread, never on the event loop.
The hash parameters are the node's: a stored value with other parameters (a tenant's choice, or
garbage) is never computed with them, since they would set the price of every request presenting it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re

# scrypt with N=2^14, r=8, p=1 costs about 16 MiB and tens of milliseconds per hash.
_N, _R, _P = 1 << 14, 8, 1
_SALT_BYTES, _DIGEST_BYTES = 16, 32
_MAXMEM = 64 * 1024 * 1024
HASH_FORMAT = "scrypt"
PARAMETERS = f"N={_N}, r={_R}, p={_P}"

_HASH_RE = re.compile(rf"{_N}\${_R}\${_P}\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)")
# Verifying against this costs what verifying against a real hash costs, and never matches: it
# stands in for identities that do not exist, so that their answers take as long as wrong secrets.
_DUMMY_SALT = bytes(_SALT_BYTES)
DUMMY_HASH = "$".join(
    [str(_N), str(_R), str(_P), base64.b64encode(_DUMMY_SALT).decode(), base64.b64encode(bytes(32)).decode()]
)


def _scrypt(secret: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(secret, salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=_DIGEST_BYTES)


def hash_secret(secret: bytes) -> str:
    """A self-describing salted hash: `n$r$p$salt$digest` (base64 parts), with the node's parameters."""
    salt = os.urandom(_SALT_BYTES)
    return "$".join(
        [
            str(_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(_scrypt(secret, salt)).decode(),
        ]
    )


def _salt_and_digest(text: object) -> tuple[bytes, bytes] | None:
    """The salt and digest of a hash made with the node's parameters; None for anything else."""
    if not isinstance(text, str):
        return None
    match = _HASH_RE.fullmatch(text)
    if match is None:
        return None
    try:
        salt = base64.b64decode(match[1], validate=True)
        digest = base64.b64decode(match[2], validate=True)
    except (binascii.Error, ValueError):
        return None
    if len(salt) < _SALT_BYTES or len(salt) > 64 or len(digest) != _DIGEST_BYTES:
        return None
    return salt, digest


def is_hash(text: object) -> bool:
    """True when `text` is a hash as `hash_secret` makes them: the node's parameters, its sizes."""
    return _salt_and_digest(text) is not None


def verify_secret(secret: bytes, stored: str) -> bool:
    """Constant-time check of a secret against a stored hash.

    Always costs exactly one scrypt computation with the node's parameters: a stored value that is
    not such a hash (other parameters, malformed) is checked against a dummy and never matches.
    """
    parsed = _salt_and_digest(stored)
    salt, expected = parsed if parsed is not None else (_DUMMY_SALT, None)
    actual = _scrypt(secret, salt)
    return expected is not None and hmac.compare_digest(actual, expected)


# -- HS_SECKEY values: the reference's hashed key, sealed with a node key --------------------------
#
# A secret key must be checkable in challenge-response (the MAC key is the stored form itself, see
# docs/trust-reference.md section 4), so it cannot be a salted slow hash. The node stores what the
# reference calls the hashed secret key (`Encoder.encodeSecretKey(secret, true)`: the lower-case hex
# of SHA-1 of the secret, which clients with the hash option use as their key) and seals it with
# AES-256-GCM under a key kept in the key directory, outside the database: a dump or a backup of
# the database holds neither the secret nor anything that answers a challenge.

SEALED_FORMAT = "sealed"
SEAL_KEY_BYTES = 32
_SEALED_RE = re.compile(r"v1\.([0-9a-f]{16})\.([A-Za-z0-9_-]{20,200})")
_NONCE_BYTES = 12
_SEAL_CONTEXT = b"HS_SECKEY hashed secret key"


def reference_hash(secret: bytes) -> bytes:
    """`Encoder.encodeSecretKey(secret, true)`: the lower-case hex of SHA-1(secret), as ASCII."""
    return hashlib.sha1(secret).hexdigest().encode("ascii")


class Seal:
    """Seals and unseals the stored form of HS_SECKEY values with one node key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != SEAL_KEY_BYTES:
            raise ValueError(f"a seal key has {SEAL_KEY_BYTES} octets")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(b"seal key id" + key).hexdigest()[:16]

    def seal(self, secret: bytes) -> str:
        """The stored text for a secret key as the client sends it (hashed here first)."""
        return self.seal_hashed(reference_hash(secret))

    def seal_hashed(self, hashed: bytes) -> str:
        """The stored text for a key already in the reference's hashed form."""
        nonce = os.urandom(_NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, hashed, _SEAL_CONTEXT)
        return f"v1.{self.key_id}.{base64.urlsafe_b64encode(sealed).rstrip(b'=').decode()}"

    def unseal(self, text: object) -> bytes | None:
        """The hashed key inside a value this seal made; None for anything else (another node's
        seal, a tampered value, garbage)."""
        if not isinstance(text, str):
            return None
        match = _SEALED_RE.fullmatch(text)
        if match is None or match[1] != self.key_id:
            return None
        from cryptography.exceptions import InvalidTag

        raw = base64.urlsafe_b64decode(match[2] + "=" * (-len(match[2]) % 4))
        if len(raw) <= _NONCE_BYTES:
            return None
        try:
            return self._aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _SEAL_CONTEXT)
        except InvalidTag:
            return None


def password_matches(password: bytes, hashed: bytes) -> bool:
    """Basic over HTTP against a hashed key: the password itself (the reference's
    `StandardHandleAuthenticator.checkSecretKey` compares the octets it is given with the stored
    data, so a client of a hashed key may send the hex), or the password whose hash it is."""
    return hmac.compare_digest(reference_hash(password), hashed) | hmac.compare_digest(password, hashed)
