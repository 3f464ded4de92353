"""What one authentication check costs the node, by kind (CPU µs, median of batches).

Issue 17 item 6 moved HS_SECKEY values from salted scrypt to sealed hashed keys: Basic became a
decryption and a comparison, and challenge answers became checkable (PBKDF2-HMAC-SHA1 with the
client's iteration count, HMAC, or an RSA signature). This times each check as the node makes it,
through the node's own functions:

    .venv/bin/python benchmarks/secret_checks.py [--seconds 2]

Each kind runs in batches for at most --seconds (bounded); nothing touches the network.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import struct
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.core import secrets
from resolver.native import signing


def _per_call(check: Callable[[], object], seconds: float) -> float:
    """Median CPU µs per call over batches, for at most `seconds` of CPU."""
    check()
    batch, samples = 1, list[float]()
    deadline = time.process_time() + seconds
    while time.process_time() < deadline or len(samples) < 3:
        started = time.process_time()
        for _ in range(batch):
            check()
        spent = time.process_time() - started
        samples.append(spent / batch * 1e6)
        if spent < 0.05:
            batch *= 2
        if len(samples) >= 50:
            break
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per kind at most")
    args = parser.parse_args()
    secret = b"correct horse battery staple"
    nonce, digest = os.urandom(16), os.urandom(32)
    scrypt_hash = secrets.hash_secret(secret)
    seal = secrets.Seal(os.urandom(32))
    sealed = seal.seal(secret)
    hashed = secrets.reference_hash(secret)
    salt = os.urandom(16)
    pbkdf2 = bytes([signing.CODE_PBKDF2_HMAC_SHA1]) + signing.seckey_mac(
        signing.CODE_PBKDF2_HMAC_SHA1, nonce + digest, hashed, signing.Pbkdf2Params(salt, 10000, 160)
    )
    hmac256 = bytes([signing.CODE_HMAC_SHA256]) + hmac.new(hashed, nonce + digest, hashlib.sha256).digest()
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signature = key.sign(nonce + digest, padding.PKCS1v15(), hashes.SHA256())
    hash_name = signing.HASH_SHA256
    answer = struct.pack(">I", len(hash_name)) + hash_name + struct.pack(">I", len(signature)) + signature
    public = key.public_key()
    kinds: dict[str, Callable[[], object]] = {
        "Basic, scrypt hash (before)": lambda: secrets.verify_secret(secret, scrypt_hash),
        "Basic, sealed hashed key (now)": lambda: secrets.password_matches(
            secret, seal.unseal(sealed) or b""
        ),
        "answer HS_SECKEY PBKDF2-HMAC-SHA1, 10,000 iterations": lambda: signing.check_seckey_answer(
            seal.unseal(sealed) or b"", nonce, digest, pbkdf2
        ),
        "answer HS_SECKEY HMAC-SHA256": lambda: signing.check_seckey_answer(
            seal.unseal(sealed) or b"", nonce, digest, hmac256
        ),
        "answer HS_PUBKEY RSA-2048 SHA-256": lambda: signing.check_pubkey_answer(
            public, nonce, digest, answer
        ),
        "seal one secret key (a write)": lambda: seal.seal(secret),
    }
    print("| check | CPU µs |")
    print("|---|---|")
    for name, check in kinds.items():
        assert check() or name.startswith("seal"), name
        print(f"| {name} | {_per_call(check, args.seconds):,.1f} |")


if __name__ == "__main__":
    main()
