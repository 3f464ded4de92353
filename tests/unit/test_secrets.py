from resolver.core.secrets import hash_secret, is_hash, verify_secret


def test_hash_verifies_and_is_salted():
    first, second = hash_secret(b"s3cret"), hash_secret(b"s3cret")
    assert first != second and is_hash(first)
    assert verify_secret(b"s3cret", first) and verify_secret(b"s3cret", second)
    assert not verify_secret(b"other", first)
    assert b"s3cret" not in first.encode()


def test_malformed_hashes_never_verify():
    for stored in ("", "plain", "1$2$3$x$y", "99999999$8$1$AAAA$AAAA"):
        assert not verify_secret(b"x", stored)
