import base64
import hashlib

import pytest

from resolver.core import secrets
from resolver.core.secrets import DUMMY_HASH, hash_secret, is_hash, verify_secret

NODE = (1 << 14, 8, 1)


@pytest.fixture
def scrypt_calls(monkeypatch):
    """Every scrypt computation as (n, r, p), counted instead of timed."""
    calls: list[tuple[int, int, int]] = []
    real = hashlib.scrypt

    def counting(password, *, salt, n, r, p, maxmem=0, dklen=64):
        calls.append((n, r, p))
        return real(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)

    monkeypatch.setattr(secrets.hashlib, "scrypt", counting)
    return calls


def foreign(n: int, r: int, p: int) -> str:
    """A well-formed hash with other parameters than the node's (as a tenant could send one)."""
    salt, digest = base64.b64encode(b"s" * 16).decode(), base64.b64encode(b"d" * 32).decode()
    return f"{n}${r}${p}${salt}${digest}"


def test_hash_verifies_and_is_salted():
    first, second = hash_secret(b"s3cret"), hash_secret(b"s3cret")
    assert first != second and is_hash(first)
    assert verify_secret(b"s3cret", first) and verify_secret(b"s3cret", second)
    assert not verify_secret(b"other", first)
    assert b"s3cret" not in first.encode()


def test_malformed_hashes_never_verify():
    for stored in ("", "plain", "1$2$3$x$y", "99999999$8$1$AAAA$AAAA"):
        assert not verify_secret(b"x", stored)


# The parameters seen in the issue: 5.7 s of CPU each, or a ValueError (500) from hashlib.
FOREIGN = {
    "524288-2-4": foreign(524288, 2, 4),
    "3-1-1": foreign(3, 1, 1),
    "16384-0-1": foreign(16384, 0, 1),
    "1048576-16-4": foreign(1048576, 16, 4),
    "16384-8-2": foreign(16384, 8, 2),
    "32768-8-1": foreign(32768, 8, 1),
    "unicode-digit": "³$8$1$" + foreign(1, 1, 1).split("$", 3)[3],  # str.isdigit() accepts it
    "salt-not-base64": "16384$8$1$" + "é" * 24 + "$" + base64.b64encode(b"d" * 32).decode(),
    "short-digest": "16384$8$1$"
    + base64.b64encode(b"s" * 16).decode()
    + "$"
    + base64.b64encode(b"d" * 8).decode(),
    "leading-zero": "016384$8$1$" + foreign(1, 1, 1).split("$", 3)[3],
}


@pytest.mark.parametrize("stored", FOREIGN.values(), ids=FOREIGN.keys())
def test_only_the_nodes_own_parameters_are_a_hash(stored):
    assert not is_hash(stored)


@pytest.mark.parametrize("stored", FOREIGN.values(), ids=FOREIGN.keys())
def test_foreign_parameters_cost_one_hash_with_the_nodes_parameters_and_never_match(stored, scrypt_calls):
    assert not verify_secret(b"x", stored)
    assert scrypt_calls == [NODE]


@pytest.mark.parametrize("stored", ["", "plain", None, 42, "1$2$3$x$y"])
def test_anything_else_costs_one_hash_too(stored, scrypt_calls):
    assert not verify_secret(b"x", stored)
    assert scrypt_calls == [NODE]


def test_the_dummy_costs_what_a_real_hash_costs_and_matches_nothing(scrypt_calls):
    real = hash_secret(b"")
    scrypt_calls.clear()
    assert is_hash(DUMMY_HASH)
    for secret in (b"", b"\x00", b"x" * 10_000):
        assert not verify_secret(secret, DUMMY_HASH)
    assert verify_secret(b"", real)
    assert scrypt_calls == [NODE] * 4


def test_hashes_are_made_with_the_nodes_parameters(scrypt_calls):
    stored = hash_secret(b"pw")
    assert stored.startswith("16384$8$1$") and scrypt_calls == [NODE]
