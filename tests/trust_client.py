"""A verifier of HS_SIGNATURE / HS_CERT records written for the tests from the reference's rules
(hdllib trust/: JsonWebSignatureImpl, HandleValueDigester, HandleVerifier.verifyValues and
verifyPermissionsAreAuthorizedOverHandle, ChainBuilder.buildChain, ChainVerifier; summarised in
docs/trust-reference.md section 5), not with the node's resolver/native/trust.py. It reads records
over the native protocol (tests/handle_client.py), so the octets it digests are those a Handle
client receives."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.core import sm  # checked against the GB/T 32918 vectors (tests/unit/test_sm_vectors.py)
from tests.handle_client import (
    Fields,
    Value,
    over_tcp,
    request_message,
    resolution_body,
    rsa_public_key,
    u32,
    utf8,
)

Records = Callable[[str], list[Value]]


def native_records(port: int) -> Records:
    def fetch(handle: str) -> list[Value]:
        (answer,) = over_tcp(port, request_message(1, resolution_body(handle))[0])
        if answer.rc != 1:
            return []
        return answer.handle_and_values()[1]

    return fetch


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Jws:
    claims: dict
    signed: bytes
    signature: bytes

    alg: str = "RS256"

    def verifies_with(self, key) -> bool:
        if isinstance(key, sm.SM2PublicKey):  # SM2 with SM3, signature r || s (GB/T 32918.2)
            return self.alg == "SM2SM3" and sm.verify(key, self.signed, self.signature)
        if self.alg != "RS256":
            return False
        try:
            key.verify(self.signature, self.signed, padding.PKCS1v15(), hashes.SHA256())
        except Exception:
            return False
        return True


def read_jws(text: str) -> Jws:
    header, payload, signature = text.split(".")
    alg = json.loads(_unb64url(header))["alg"]
    assert alg in ("RS256", "SM2SM3"), alg
    return Jws(json.loads(_unb64url(payload)), f"{header}.{payload}".encode(), _unb64url(signature), alg)


def jwk_key(claim: dict):
    if claim["kty"] == "EC":
        assert claim["crv"] == "SM2"
        return sm.SM2PublicKey.from_raw(_unb64url(claim["x"]) + _unb64url(claim["y"]))
    assert claim["kty"] == "RSA"
    n, e = (int.from_bytes(_unb64url(claim[k]), "big") for k in ("n", "e"))
    return rsa.RSAPublicNumbers(e, n).public_key()


def _same_key(a, b) -> bool:
    if isinstance(a, sm.SM2PublicKey) or isinstance(b, sm.SM2PublicKey):
        return a == b
    return a.public_numbers() == b.public_numbers()


def octets(value: Value) -> bytes:
    """Encoder.encodeHandleValue of a value as received."""
    import struct

    return (
        struct.pack("!IIBiB", value.index, value.timestamp, value.ttl_type, value.ttl, value.permissions)
        + utf8(value.type)
        + utf8(value.data)
        + u32(len(value.references))
        + b"".join(utf8(h) + u32(i) for h, i in value.references)
    )


def digest(value: Value) -> str:
    """HandleValueDigester: SHA-256 of the encoding after index and timestamp, base64."""
    return base64.b64encode(hashlib.sha256(octets(value)[8:]).digest()).decode()


def _prefix_of(handle: str) -> str:
    return handle.partition("/")[0].upper()


def authorizes(perms: list[dict], handle: str) -> bool:
    """verifyPermissionsAreAuthorizedOverHandle for the two permissions the node issues."""
    for perm in perms:
        target = perm["handle"].upper()
        assert target.startswith("0.NA/")
        if perm["perm"] == "handlesUnderThisPrefix" and _prefix_of(handle) == target[5:]:
            return True
        if perm["perm"] == "derivedPrefixes":
            zero_na = handle.upper() if handle.upper().startswith("0.NA/") else "0.NA/" + _prefix_of(handle)
            if zero_na == target or zero_na.startswith(target + "."):
                return True
    return False


def verify(handle: str, records: Records, roots: list[rsa.RSAPublicKey]) -> tuple[list[str], dict[int, str]]:
    """(the chain from the signature to the root, the verdict per public value index: verified,
    bad digest, unsigned). AssertionError when the chain does not hold."""
    values = records(handle)
    (signature,) = [v for v in values if v.type == "HS_SIGNATURE"]
    jws = read_jws(signature.data.decode())
    assert jws.claims["sub"] == handle, "signed for another handle"
    now = time.time()
    chain, child, subject = [jws.claims["iss"]], jws, handle
    for _ in range(50):
        assert child.claims["nbf"] <= now < child.claims["exp"], "out of its validity"
        issuer = child.claims["iss"]
        cert_handle = issuer.partition(":")[2]
        certs = [read_jws(v.data.decode()) for v in records(cert_handle) if v.type == "HS_CERT"]
        matching = [c for c in certs if c.claims["sub"] == issuer]
        assert matching, f"no HS_CERT for {issuer} in {cert_handle}"
        parent = max(matching, key=lambda c: c.claims["iat"])
        assert child.verifies_with(jwk_key(parent.claims["publicKey"])), f"{issuer} did not sign it"
        assert authorizes(parent.claims["perms"], subject), f"{issuer} may not sign {subject}"
        if parent.claims["sub"] == parent.claims["iss"]:  # self-issued: the root
            root = jwk_key(parent.claims["publicKey"])
            assert any(_same_key(root, r) for r in roots), "root not trusted"
            assert parent.verifies_with(jwk_key(parent.claims["publicKey"]))
            break
        child, subject = parent, parent.claims["sub"].partition(":")[2]
        chain.append(parent.claims["iss"])
    else:
        raise AssertionError("chain longer than 50")
    signed = {d["index"]: d["digest"] for d in jws.claims["digests"]["digests"]}
    verdict = {}
    for value in values:
        if value.type == "HS_SIGNATURE":
            continue
        if value.index not in signed:
            verdict[value.index] = "unsigned"
        else:
            verdict[value.index] = "verified" if signed[value.index] == digest(value) else "bad digest"
    return chain, verdict


def node_roots(records: Records, node_prefix: str) -> list[rsa.RSAPublicKey]:
    """The HS_PUBKEY values of `0.NA/<node prefix>`, as a client configured with them would trust."""
    keys = []
    for value in records(f"0.NA/{node_prefix}"):
        if value.type != "HS_PUBKEY":
            continue
        fields = Fields(value.data)
        if fields.octets() == b"SM2_PUB_KEY":  # the node's layout: name, two octets, 04 || X || Y
            fields.skip(2)
            keys.append(sm.SM2PublicKey.from_raw(fields.octets()))
        else:
            exponent, modulus = rsa_public_key(value.data)
            keys.append(rsa.RSAPublicNumbers(exponent, modulus).public_key())
    return keys
