"""Secret keys (HS_SECKEY values) are stored only as salted scrypt hashes.

Hashing is deliberately slow, so callers run these functions in a thread, never on the event loop.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

# scrypt with N=2^14, r=8, p=1 costs about 16 MiB and tens of milliseconds per hash.
_N, _R, _P = 1 << 14, 8, 1
HASH_FORMAT = "scrypt"


def hash_secret(secret: bytes) -> str:
    """A self-describing salted hash: `n$r$p$salt$digest` (base64 parts)."""
    salt = os.urandom(16)
    digest = hashlib.scrypt(secret, salt=salt, n=_N, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32)
    return "$".join(
        [
            str(_N),
            str(_R),
            str(_P),
            base64.b64encode(salt).decode(),
            base64.b64encode(digest).decode(),
        ]
    )


def is_hash(text: object) -> bool:
    """True when `text` has the shape `hash_secret` produces."""
    if not isinstance(text, str):
        return False
    parts = text.split("$")
    return len(parts) == 5 and all(p.isdigit() for p in parts[:3])


def verify_secret(secret: bytes, stored: str) -> bool:
    """Constant-time check of a secret against a stored hash."""
    if not is_hash(stored):
        return False
    n, r, p, salt_b64, digest_b64 = stored.split("$")
    try:
        salt = base64.b64decode(salt_b64)
        expected = base64.b64decode(digest_b64)
        n_i, r_i, p_i = int(n), int(r), int(p)
    except ValueError:
        return False
    if n_i > 1 << 20 or r_i > 16 or p_i > 4:
        return False
    actual = hashlib.scrypt(
        secret, salt=salt, n=n_i, r=r_i, p=p_i, maxmem=256 * 1024 * 1024, dklen=len(expected)
    )
    return hmac.compare_digest(actual, expected)
