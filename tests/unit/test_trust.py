"""HS_SIGNATURE and HS_CERT (resolver/native/trust.py) against the reference's rules
(docs/trust-reference.md section 5: hdllib trust/HandleSigner.signHandleValues and
signPermissions, HandleValueDigester.digestHandleValue, HandleVerifier.verifyValues and
verifyPermissionsAreAuthorizedOverHandle, ChainBuilder.buildChain, ChainVerifier).

The chain is the one a node would build: its self-issued root for `0.NA/88.123`, a certificate
for an enterprise key over `88.123.45`, the enterprise's signature over its handle's values."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from resolver.native import protocol as p
from resolver.native import trust

NOW = 1_796_000_000.0


@pytest.fixture(scope="module")
def node_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def enterprise_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


VALUES = [
    {"index": 1, "type": "URL", "data": "https://example.com/p/1", "ttl": 86400, "timestamp": 1_700_000_000},
    {"index": 2000, "type": "productName", "data": "螺栓 M8", "ttl": 86400, "timestamp": 1_700_000_001},
]


def encoded(values=VALUES) -> dict[int, bytes]:
    return {v["index"]: p.encode_value(v) for v in values}


def chain(node_key, enterprise_key, perms=(("0.NA/88.123.45", "handlesUnderThisPrefix"),), now=NOW):
    root = trust.sign_jws(
        trust.certificate_claims(
            "300:0.NA/88.123",
            "300:0.NA/88.123",
            node_key.public_key(),
            [("0.NA/88.123", "derivedPrefixes")],
            now,
        ),
        node_key,
    )
    middle = trust.sign_jws(
        trust.certificate_claims(
            "300:0.NA/88.123.45", "300:0.NA/88.123", enterprise_key.public_key(), perms, now
        ),
        node_key,
    )
    return {"300:0.NA/88.123": root, "300:0.NA/88.123.45": middle}


def test_the_jws_is_what_the_reference_reads(node_key):
    token = trust.sign_jws({"sub": "88.123/X", "iss": "300:0.NA/88.123"}, node_key)
    header, payload, signature = token.split(".")
    assert "=" not in token and base64.urlsafe_b64decode(header + "==") == b'{"alg":"RS256"}'
    # SHA256withRSA (PKCS#1 v1.5) over header "." payload, checked without the module
    node_key.public_key().verify(
        base64.urlsafe_b64decode(signature + "=" * (-len(signature) % 4)),
        f"{header}.{payload}".encode(),
        padding.PKCS1v15(),
        hashes.SHA256(),
    )
    assert trust.read_jws(token).verifies_with(node_key.public_key())


def test_digests_skip_index_and_timestamp_and_are_standard_base64(node_key):
    claims = trust.signature_claims("88.123.45/P-1", encoded(), "300:0.NA/88.123.45", NOW)
    by_index = {d["index"]: d["digest"] for d in claims["digests"]["digests"]}
    raw = p.encode_value(VALUES[0])
    assert by_index[1] == base64.b64encode(hashlib.sha256(raw[8:]).digest()).decode()
    # a new timestamp alone does not change the digest
    later = dict(VALUES[0], timestamp=1_800_000_000)
    assert trust.check_values(claims, {1: p.encode_value(later)}).verified == [1]


def test_a_filtered_answer_still_verifies_and_a_changed_value_does_not(node_key):
    claims = trust.signature_claims("88.123.45/P-1", encoded(), "300:0.NA/88.123.45", NOW)
    filtered = trust.check_values(claims, {1: encoded()[1]})
    assert filtered.holds and filtered.verified == [1] and filtered.missing == [2000]
    changed = dict(VALUES[1], data="螺栓 M10")
    tampered = trust.check_values(claims, {1: encoded()[1], 2000: p.encode_value(changed)})
    assert not tampered.holds and tampered.bad_digest == [2000]
    extra = {**encoded(), 3: p.encode_value({"index": 3, "type": "EMAIL", "data": "x@y", "ttl": 1})}
    assert trust.check_values(claims, extra).unsigned == [3]


def test_a_chain_to_the_node_root_holds(node_key, enterprise_key):
    certs = chain(node_key, enterprise_key)
    token = trust.sign_jws(
        trust.signature_claims("88.123.45/P-1", encoded(), "300:0.NA/88.123.45", NOW), enterprise_key
    )
    links = trust.verify_chain(
        trust.read_jws(token), "88.123.45/P-1", certs.get, [node_key.public_key()], NOW
    )
    assert links == ["300:0.NA/88.123.45", "300:0.NA/88.123"]


def test_what_breaks_a_chain(node_key, enterprise_key):
    certs = chain(node_key, enterprise_key)
    signed = trust.read_jws(
        trust.sign_jws(
            trust.signature_claims("88.123.45/P-1", encoded(), "300:0.NA/88.123.45", NOW), enterprise_key
        )
    )
    roots = [node_key.public_key()]
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(trust.TrustError, match="not one this verifier trusts"):
        trust.verify_chain(signed, "88.123.45/P-1", certs.get, [stranger.public_key()], NOW)
    with pytest.raises(trust.TrustError, match="does not permit"):  # another enterprise's handle
        trust.verify_chain(signed, "88.123.46/P-1", certs.get, roots, NOW)
    with pytest.raises(trust.TrustError, match="expired"):
        trust.verify_chain(signed, "88.123.45/P-1", certs.get, roots, NOW + 3 * 365 * 86400)
    with pytest.raises(trust.TrustError, match="no certificate"):
        trust.verify_chain(signed, "88.123.45/P-1", {}.get, roots, NOW)
    forged = trust.read_jws(
        trust.sign_jws(
            trust.signature_claims("88.123.45/P-1", encoded(), "300:0.NA/88.123.45", NOW), stranger
        )
    )
    with pytest.raises(trust.TrustError, match="does not verify"):
        trust.verify_chain(forged, "88.123.45/P-1", certs.get, roots, NOW)
    broken = dict(certs)
    broken["300:0.NA/88.123.45"] = certs["300:0.NA/88.123"]  # a certificate for someone else
    with pytest.raises(trust.TrustError, match="chain is broken"):
        trust.verify_chain(signed, "88.123.45/P-1", broken.get, roots, NOW)


@pytest.mark.parametrize(
    "perm, handle, allowed",
    [
        ({"handle": "0.NA/88.123", "perm": "everything"}, "99.1/x", True),
        ({"handle": "0.NA/88.123", "perm": "derivedPrefixes"}, "88.123.45/x", True),
        ({"handle": "0.NA/88.123", "perm": "derivedPrefixes"}, "0.NA/88.123.45", True),
        ({"handle": "0.NA/88.123", "perm": "derivedPrefixes"}, "88.1234/x", False),
        ({"handle": "0.NA/88.123.45", "perm": "handlesUnderThisPrefix"}, "88.123.45/x", True),
        ({"handle": "0.NA/88.123.45", "perm": "handlesUnderThisPrefix"}, "88.123.45.1/x", False),
        # Util.equalsPrefixCI: the suffix is compared exactly (tests/unit/test_hdllib_vectors.py)
        ({"handle": "88.123.45/x", "perm": "thisHandle"}, "88.123.45/X", False),
        ({"handle": "88.123.45/x", "perm": "thisHandle"}, "88.123.45/y", False),
        ({"handle": "0.NA/88.123", "perm": "somethingElse"}, "88.123/x", False),
    ],
)
def test_permissions(perm, handle, allowed):
    assert trust.permits(perm, handle) is allowed


@pytest.mark.parametrize(
    "text",
    ["", "a.b", "a.b.c.d", "!!!.e30.", "eyJhbGciOiJub25lIn0.e30.", "W10.e30."],
)
def test_malformed_jws_is_refused_with_a_reason(text):
    with pytest.raises(trust.TrustError):
        trust.read_jws(text)


def test_unknown_permission_is_refused(node_key):
    with pytest.raises(trust.TrustError, match="unknown permission"):
        trust.certificate_claims("300:0.NA/88.123", "300:0.NA/88.123", node_key.public_key(), [("x", "all")])
    assert json.loads(json.dumps(trust.jwk(node_key.public_key())))["kty"] == "RSA"
