"""HS_SECKEY values stored sealed: the reference's hashed key (`Encoder.encodeSecretKey(secret,
true)` in MistraR/handle net/handle/hdllib/Encoder.java: hex of SHA-1) under AES-256-GCM with a
key of the node's key directory (resolver/core/secrets.py Seal, resolver/services/seckeys.py)."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest

from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.secrets import Seal, password_matches, reference_hash
from resolver.services.seckeys import SEAL_FILE, SealError, SecretKeys, read_or_make_seal


def seckey(data: dict[str, object], index: int = 300) -> dict[str, object]:
    return {"index": index, "type": "HS_SECKEY", "data": data}


def test_the_hashed_key_is_the_references_hex_sha1():
    assert reference_hash(b"password") == b"5baa61e4c9b93f3f0682250b6cf8331b7ee68fd8"


def test_a_sealed_value_opens_only_with_its_seal_and_untouched():
    seal, other = Seal(os.urandom(32)), Seal(os.urandom(32))
    text = seal.seal(b"s3cret")
    assert b"s3cret" not in text.encode() and reference_hash(b"s3cret").decode() not in text
    assert seal.unseal(text) == reference_hash(b"s3cret")
    assert seal.seal(b"s3cret") != text  # a fresh nonce each time
    assert other.unseal(text) is None
    head, _, body = text.rpartition(".")
    flipped = body[:10] + ("A" if body[10] != "A" else "B") + body[11:]
    assert seal.unseal(f"{head}.{flipped}") is None
    for garbage in (None, 5, "", "v1.", f"v1.{seal.key_id}.", f"v1.{seal.key_id}.{'A' * 20}", text + "x"):
        assert seal.unseal(garbage) is None


def test_basic_accepts_the_secret_or_the_hashed_key_itself():
    """`StandardHandleAuthenticator.checkSecretKey` (servletcontainer/auth): a Basic password is
    compared with the stored data as it is, so clients of a hashed key may send the hex."""
    hashed = reference_hash(b"s3cret")
    assert password_matches(b"s3cret", hashed)
    assert password_matches(hashed, hashed)
    assert not password_matches(b"s3cret ", hashed) and not password_matches(b"", hashed)


def test_prepare_seals_given_secrets_and_keeps_only_values_it_can_open():
    keys = SecretKeys(Seal(os.urandom(32)))
    values = [
        seckey({"format": "string", "value": "s3cret"}),
        seckey({"format": "hex", "value": b"s3cret".hex()}, 301),
        seckey({"format": "base64", "value": "czNjcmV0"}, 302),
    ]
    keys.prepare(values)  # type: ignore[arg-type]
    assert {keys.hashed_key(v["data"]) for v in values} == {reference_hash(b"s3cret")}
    kept = [seckey(dict(values[0]["data"]))]  # type: ignore[arg-type]
    keys.prepare(kept)  # type: ignore[arg-type]
    assert kept[0]["data"] == values[0]["data"]
    foreign = SecretKeys(Seal(os.urandom(32))).stored(b"x")
    with pytest.raises(HandleError) as refused:
        keys.prepare([seckey(foreign)])  # type: ignore[list-item]
    assert refused.value.rc == RC.INVALID_VALUE and "sealed" in refused.value.message
    legacy = [seckey({"format": "scrypt", "value": secrets.hash_secret(b"x")})]
    keys.prepare(legacy)  # type: ignore[arg-type]
    assert legacy[0]["data"]["format"] == "scrypt"  # type: ignore[index]


def test_first_starts_at_once_agree_on_one_seal_key(tmp_path):
    found: list[str] = []
    threads = [
        threading.Thread(target=lambda: found.append(read_or_make_seal(tmp_path).key_id)) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1 and len(found) == 8
    assert [p.name for p in tmp_path.iterdir()] == [SEAL_FILE]
    assert (tmp_path / SEAL_FILE).stat().st_mode & 0o777 == 0o600


def test_an_unreadable_seal_key_is_a_clear_error(tmp_path):
    (tmp_path / SEAL_FILE).write_text("not hex\n")
    with pytest.raises(SealError, match="cannot be read"):
        read_or_make_seal(tmp_path)
    (tmp_path / SEAL_FILE).write_text(hashlib.sha256(b"x").hexdigest()[:10] + "\n")
    with pytest.raises(SealError, match="cannot be read"):
        read_or_make_seal(tmp_path)
