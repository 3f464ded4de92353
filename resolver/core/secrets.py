"""Secret keys (HS_SECKEY values) are stored only as salted scrypt hashes.

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
