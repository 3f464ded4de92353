"""What one trust operation costs the CPU, in this process (no network, no database): an HS_SIGNATURE
made for a typical product record (record_trust.with_signature: five values, RS256 or SM2SM3), the
same checked (a JWS signature and the per-index digests: what a client does per record), an HS_CERT
signed, and a native session setup answered (resolver/native/sessions.py: the DH value in a
1024-bit group, then the RSA-2048 message signature). Each operation runs --seconds, bounded.

Usage: python benchmarks/trust_costs.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import secrets
import struct
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric import rsa

from resolver.core import sm
from resolver.native import protocol as p
from resolver.native import record_trust, sessions, signing, trust
from resolver.native.trust_keys import public_of

VALUES = [
    {
        "index": 1,
        "type": "URL",
        "data": {"format": "string", "value": "https://example.com/p/1"},
        "ttl": 86400,
    },
    {
        "index": 1001,
        "type": "templateVersion",
        "data": {"format": "string", "value": "general-product-1.0"},
        "ttl": 86400,
    },
    {"index": 2000, "type": "productName", "data": {"format": "string", "value": "螺栓 M8"}, "ttl": 86400},
    {"index": 2001, "type": "productModel", "data": {"format": "string", "value": "GB/T 5782"}, "ttl": 86400},
    {"index": 2004, "type": "manufacturer", "data": {"format": "string", "value": "测试企业"}, "ttl": 86400},
]
P1024 = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74020BBEA63B139B22514A08798E3404DD"
    "EF9519B3CD3A431B302B0A6DF25F14374FE1356D6D51C245E485B576625E7EC6F44C42E9A637ED6B0BFF5CB6F406B7ED"
    "EE386BFB5A899FA5AE9F24117C4B1FE649286651ECE65381FFFFFFFFFFFFFFFF",
    16,
)


def per_call(function, seconds: float) -> float:
    """Microseconds of CPU per call, over at least `seconds` of CPU."""
    function()  # warm
    calls, started = 0, time.process_time()
    while time.process_time() - started < seconds:
        function()
        calls += 1
    return (time.process_time() - started) / calls * 1e6


def setup_request() -> p.Request:
    def big(n: int) -> bytes:
        raw = n.to_bytes(n.bit_length() // 8 + 1, "big")
        return struct.pack(">I", len(raw)) + raw

    key = (
        struct.pack(">I", 10)
        + b"DH_PUB_KEY"
        + b"\0\0"
        + big(pow(2, secrets.randbits(256), P1024))
        + big(P1024)
        + big(2)
    )
    body = struct.pack(">Hi", 4, 86400) + struct.pack(">I", 11) + b"0.NA/88.123" + struct.pack(">I", 300)
    body += struct.pack(">I", len(key)) + key + b"\0\0"
    header = struct.pack(">IIIHBBII", 400, 0, p.FLAG_CERTIFY | p.FLAG_REQUEST_DIGEST, 0, 0, 0, 0, len(body))
    envelope = p.Envelope(2, 10, 0, (2, 10), 0, 7, 0, len(header) + len(body) + 4)
    return p.parse_request(envelope, header + body + b"\0\0\0\0")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    sm2_key = sm.SM2PrivateKey.generate()
    for name, key in (("RSA-2048 RS256", rsa_key), ("SM2 SM2SM3", sm2_key)):
        issuer = record_trust.reference(301, "0.NA/88.123.45")
        signed = record_trust.with_signature("88.123.45/P-1", VALUES, issuer, key)
        jws = trust.read_jws(signed[-1]["data"])
        encoded = record_trust.encoded_answer(VALUES)
        public = public_of(key)
        sign_us = per_call(
            lambda key=key, issuer=issuer: record_trust.with_signature("88.123.45/P-1", VALUES, issuer, key),
            args.seconds,
        )
        verify_us = per_call(
            lambda jws=jws, public=public, encoded=encoded: (
                jws.verifies_with(public) and trust.check_values(jws.claims, encoded).holds
            ),
            args.seconds,
        )
        cert_us = per_call(
            lambda key=key: record_trust.prefix_certificate(
                "88.123", 301, key, "88.123.45", 301, public_of(key)
            ),
            args.seconds,
        )
        print(
            f"{name:15}  sign a record {sign_us:7,.0f} µs  verify a record {verify_us:7,.0f} µs  sign an HS_CERT {cert_us:7,.0f} µs"
        )
    request = setup_request()

    def setup() -> bytes:
        answer, session_id = sessions.setup_answer(request)
        return signing.sign_message(
            answer, rsa_key, sessions.SESSION_VERSION, p.SERVER_VERSION, session_id, 7
        )

    print(
        f"session setup answered (DH in 1024 bits + RSA-2048 signature): {per_call(setup, args.seconds):,.0f} µs"
    )


if __name__ == "__main__":
    main()
