"""The node's HS_CERT / HS_SIGNATURE values (resolver/native/record_trust.py) checked with the
verifier written from the reference's rules (resolver/native/trust.py verify_chain: hdllib
trust/ChainBuilder.buildChain and ChainVerifier; check_values: HandleVerifier.verifyValues;
needs_signature: HandleRecordTrustVerifier.valueNeedsSignature)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from resolver.native import record_trust as rt
from resolver.native import trust

NOW = 1_796_000_000.0
NODE, PREFIX, HANDLE = "88.123", "88.123.45", "88.123.45/P-1"


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


VALUES = [
    {"index": 1, "type": "URL", "data": "https://example.com/p/1", "ttl": 86400, "timestamp": 1_700_000_000},
    {"index": 2, "type": "secret", "data": "admin only", "ttl": 86400, "permissions": "1100"},
    {"index": 2000, "type": "productName", "data": "螺栓 M8", "ttl": 86400},
]


def published(keys):
    node_key, prefix_key = keys
    root = rt.root_certificate(NODE, 300, node_key, NOW)
    cert = rt.prefix_certificate(NODE, 300, node_key, PREFIX, 300, prefix_key.public_key(), NOW)
    records = {f"0.NA/{NODE}": [root], f"0.NA/{PREFIX}": [cert]}
    signed = rt.with_signature(HANDLE, VALUES, rt.reference(300, f"0.NA/{PREFIX}"), prefix_key, NOW)
    return records, signed


def verdict(keys, records, answer):
    signature = next(v for v in answer if v["type"] == "HS_SIGNATURE")
    jws = trust.read_jws(signature["data"])
    links = trust.verify_chain(jws, HANDLE, rt.certificate_lookup(records), [keys[0].public_key()], NOW)
    return links, trust.check_values(jws.claims, rt.encoded_answer(answer))


def test_a_signed_record_verifies_through_the_prefix_cert_to_the_node_root(keys):
    """ChainBuilder.buildChain without a chain claim: the issuer's handle's HS_CERT whose sub is
    the child's iss; ChainVerifier: each link verified with its parent's key and permitted."""
    records, signed = published(keys)
    assert records[f"0.NA/{NODE}"][0]["index"] == 400 and signed[-1]["index"] == 400
    links, values = verdict(keys, records, signed)
    assert links == [f"300:0.NA/{PREFIX}", f"300:0.NA/{NODE}"]
    # the admin-only value is not signed (valueNeedsSignature) nor is the signature itself
    assert values.holds and values.verified == [1, 2000] and values.missing == []


def test_a_filtered_answer_verifies_a_tampered_one_does_not(keys):
    """HandleVerifier.verifyValues: per-index digests."""
    records, signed = published(keys)
    public = [v for v in signed if v["index"] != 2]
    assert verdict(keys, records, public)[1].verified == [1, 2000]
    tampered = [dict(v, data="螺栓 M10") if v["index"] == 2000 else v for v in public]
    assert verdict(keys, records, tampered)[1].bad_digest == [2000]


def test_resigning_replaces_the_signature(keys):
    """One HS_SIGNATURE per record, at index 400, over the values as they are now."""
    records, signed = published(keys)
    changed = [dict(v, data="https://example.com/p/2") if v["index"] == 1 else v for v in signed]
    resigned = rt.with_signature(HANDLE, changed, rt.reference(300, f"0.NA/{PREFIX}"), keys[1], NOW)
    assert sum(v["type"] == "HS_SIGNATURE" for v in resigned) == 1
    assert verdict(keys, records, resigned)[1].verified == [1, 2000]
    assert verdict(keys, records, changed)[1].bad_digest == [1]


def test_the_prefix_cert_does_not_cover_another_prefix_and_a_stranger_root_fails(keys):
    """HandleVerifier.verifyPermissionsAreAuthorizedOverHandle; ChainVerifier root check."""
    records, signed = published(keys)
    jws = trust.read_jws(signed[-1]["data"])
    fetch = rt.certificate_lookup(records)
    with pytest.raises(trust.TrustError, match="does not permit"):
        trust.verify_chain(jws, "88.123.46/P-1", fetch, [keys[0].public_key()], NOW)
    with pytest.raises(trust.TrustError, match="not one this verifier trusts"):
        trust.verify_chain(jws, HANDLE, fetch, [keys[1].public_key()], NOW)


def test_resolver_verify_reports_per_index(keys):
    """resolver/commands/verify.py verify_record over records as the HTTP Handle API serves them:
    ChainBuilder.buildChain / ChainVerifier (the node root noted as not 0.0/0.0), then
    HandleVerifier.verifyValues per index."""
    from resolver.commands.verify import verify_record

    records, signed = published(keys)
    served = {**records, HANDLE: [v for v in signed if v["index"] != 2]}
    lines, ok = verify_record(HANDLE, served.get, [keys[0].public_key()], NOW)
    assert ok and "  index 1: verified" in lines and "  index 2000: verified" in lines
    assert any("stock hdllib" in line for line in lines)
    served[HANDLE] = [dict(v, data="x") if v["index"] == 1 else v for v in served[HANDLE]]
    lines, ok = verify_record(HANDLE, served.get, [keys[0].public_key()], NOW)
    assert not ok and "  index 1: bad digest" in lines
    lines, ok = verify_record("88.123.45/NONE", served.get, [keys[0].public_key()], NOW)
    assert not ok
    unsigned = {HANDLE: VALUES}
    assert verify_record(HANDLE, unsigned.get, [keys[0].public_key()], NOW)[1] is False


def test_the_chain_is_found_in_records_as_the_handle_api_answers_them(keys):
    """`resolver verify` reads records over HTTP, where a value's data is {"format", "value"}: the
    certificate lookup must read the JWS from that form too (it once looked only at strings)."""
    records, signed = published(keys)
    answered = {
        handle: [{**v, "data": {"format": "string", "value": v["data"]}} for v in values]
        for handle, values in records.items()
    }
    signature = next(v for v in signed if v["type"] == "HS_SIGNATURE")
    jws = trust.read_jws(signature["data"])
    links = trust.verify_chain(jws, HANDLE, rt.certificate_lookup(answered), [keys[0].public_key()], NOW)
    assert links == [rt.reference(300, f"0.NA/{PREFIX}"), rt.reference(300, f"0.NA/{NODE}")]


def test_an_sm2_chain_verifies_and_refuses_what_rs256_would_not(keys):
    """SM2SM3 JWS (resolver/native/trust.py): the node's SM2 root certifies its SM2 key for the
    prefix; the chain verifies with the SM2 root only, a changed payload fails, and an RS256 key
    never verifies an SM2SM3 signature (the header's alg decides, as JsonWebSignatureImpl does)."""
    from resolver.core import sm

    node_key = sm.SM2PrivateKey.generate()
    root = rt.root_certificate(NODE, 302, node_key, NOW)
    cert = rt.prefix_certificate(NODE, 302, node_key, PREFIX, 302, node_key.public_key, NOW)
    records = {f"0.NA/{NODE}": [root], f"0.NA/{PREFIX}": [cert]}
    signed = rt.with_signature(HANDLE, VALUES, rt.reference(302, f"0.NA/{PREFIX}"), node_key, NOW)
    jws = trust.read_jws(next(v for v in signed if v["type"] == "HS_SIGNATURE")["data"])
    assert jws.header == {"alg": "SM2SM3"} and len(jws.signature) == 64
    links = trust.verify_chain(jws, HANDLE, rt.certificate_lookup(records), [node_key.public_key], NOW)
    assert links == [rt.reference(302, f"0.NA/{PREFIX}"), rt.reference(302, f"0.NA/{NODE}")]
    with pytest.raises(trust.TrustError, match="not one this verifier trusts"):
        trust.verify_chain(jws, HANDLE, rt.certificate_lookup(records), [keys[0].public_key()], NOW)
    assert not jws.verifies_with(keys[0].public_key())
    forged = trust.Jws(jws.header, jws.claims, jws.signing_input + b"x", jws.signature)
    assert not forged.verifies_with(node_key.public_key)
    assert trust.check_values(jws.claims, rt.encoded_answer(VALUES)).holds
