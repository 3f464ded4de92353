"""The node's key directory (resolver/keys.py): files and modes, the passphrase, and the states of a
rotation over time (published before it signs, the old key published as long again after)."""

from __future__ import annotations

import datetime
import stat

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from resolver.keys import PASSPHRASE_ENV, KeyDirectory, KeyDirectoryError

T0 = datetime.datetime(2026, 12, 1, 8, 0, tzinfo=datetime.UTC)
HOUR = datetime.timedelta(hours=1)


def test_init_writes_a_private_key_only_its_owner_reads(tmp_path, monkeypatch):
    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    keys = KeyDirectory(tmp_path / "keys")
    key = keys.add("rsa", 0, now=T0)
    assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "keys" / f"{key.id}.key.pem").stat().st_mode) == 0o600
    signer = keys.signing_key(T0)
    assert signer is not None and signer[0].id == key.id
    signature = signer[1].sign(b"answer", padding.PKCS1v15(), hashes.SHA256())
    from cryptography.hazmat.primitives import serialization

    public = serialization.load_pem_public_key(key.public_pem)
    public.verify(signature, b"answer", padding.PKCS1v15(), hashes.SHA256())  # raises when wrong
    assert len(key.fingerprint) == 95 and key.fingerprint.count(":") == 31


def test_a_passphrase_encrypts_the_key_and_a_wrong_one_is_named(tmp_path, monkeypatch):
    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    keys = KeyDirectory(tmp_path)
    key = keys.add("rsa", 0, now=T0)
    assert b"ENCRYPTED" in (tmp_path / f"{key.id}.key.pem").read_bytes()
    assert keys.signing_key(T0) is not None
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(KeyDirectoryError, match=PASSPHRASE_ENV):
        keys.signing_key(T0)
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyDirectoryError, match=PASSPHRASE_ENV):
        keys.signing_key(T0)


def test_rotation_publishes_first_then_signs_then_retires_the_old_key(tmp_path):
    keys = KeyDirectory(tmp_path)
    old = keys.add("rsa", 0, now=T0)
    new = keys.add("rsa", 3600, now=T0 + HOUR)  # an hour of overlap

    def at(moment):
        return {key.id: state for key, state in keys.states(moment)}

    assert at(T0 + HOUR * 1.5) == {old.id: "current", new.id: "next"}
    assert [k.id for k in keys.published(T0 + HOUR * 1.5)] == [old.id, new.id]
    assert keys.signing_key(T0 + HOUR * 1.5)[0].id == old.id  # type: ignore[index]
    assert at(T0 + HOUR * 2.5) == {old.id: "previous", new.id: "current"}
    assert keys.signing_key(T0 + HOUR * 2.5)[0].id == new.id  # type: ignore[index]
    assert at(T0 + HOUR * 3.5) == {old.id: "retired", new.id: "current"}
    assert [k.id for k in keys.published(T0 + HOUR * 3.5)] == [new.id]


def test_an_sm2_key_lives_beside_the_rsa_key_and_rotates_apart(tmp_path, monkeypatch):
    """SM2 keys (resolver/core/sm.py): PKCS#8 as `openssl genpkey -algorithm SM2` writes it, sealed
    with AES-256-GCM under the passphrase (cryptography cannot load the SM2 curve); the states of
    each algorithm are their own, so adding an SM2 key does not retire the RSA one."""
    from resolver.core import sm

    monkeypatch.delenv(PASSPHRASE_ENV, raising=False)
    keys = KeyDirectory(tmp_path)
    rsa_key = keys.add("rsa", 0, now=T0)
    sm2_key = keys.add("sm2", 0, now=T0 + HOUR)
    assert b"BEGIN PRIVATE KEY" in (tmp_path / f"{sm2_key.id}.key.pem").read_bytes()
    assert stat.S_IMODE((tmp_path / f"{sm2_key.id}.key.pem").stat().st_mode) == 0o600
    assert {k.id: state for k, state in keys.states(T0 + HOUR * 2)} == {
        rsa_key.id: "current",
        sm2_key.id: "current",
    }
    signer = keys.signing_key(T0 + HOUR * 2, algorithm="sm2")
    assert signer is not None and signer[0].id == sm2_key.id
    public = sm.SM2PublicKey.from_pem(sm2_key.public_pem)
    assert sm.verify(public, b"record", sm.sign(signer[1], b"record"))
    assert keys.signing_key(T0 + HOUR * 2)[0].id == rsa_key.id  # type: ignore[index]
    assert len(sm2_key.fingerprint) == 95
    newer = keys.add("sm2", 0, now=T0 + HOUR * 3)  # an SM2 rotation retires the SM2 key only
    states = {k.id: state for k, state in keys.states(T0 + HOUR * 4)}
    assert states == {rsa_key.id: "current", sm2_key.id: "retired", newer.id: "current"}

    monkeypatch.setenv(PASSPHRASE_ENV, "correct horse")
    sealed = KeyDirectory(tmp_path / "sealed")
    key = sealed.add("sm2", 0, now=T0)
    text = (tmp_path / "sealed" / f"{key.id}.key.pem").read_bytes()
    assert b"ENCRYPTED SM2 PRIVATE KEY" in text and b"BEGIN PRIVATE KEY" not in text
    assert sealed.signing_key(T0, algorithm="sm2") is not None
    monkeypatch.setenv(PASSPHRASE_ENV, "wrong")
    with pytest.raises(KeyDirectoryError, match=PASSPHRASE_ENV):
        sealed.signing_key(T0, algorithm="sm2")
    monkeypatch.delenv(PASSPHRASE_ENV)
    with pytest.raises(KeyDirectoryError, match=PASSPHRASE_ENV):
        sealed.signing_key(T0, algorithm="sm2")


def test_unknown_algorithm_and_broken_manifest(tmp_path):
    keys = KeyDirectory(tmp_path)
    with pytest.raises(KeyDirectoryError, match="unknown key algorithm"):
        keys.add("dsa", 0)
    assert keys.keys() == [] and keys.signing_key() is None
    (tmp_path / "keys.json").write_text("{not json")
    with pytest.raises(KeyDirectoryError, match="cannot be read"):
        keys.keys()


def test_the_keys_command(tmp_path):
    import json
    import subprocess
    import sys

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "resolver", "keys", *args, "--key-dir", str(tmp_path / "k")],
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert "no key" in run("show").stdout
    assert run("rotate").returncode == 2
    made = run("init")
    assert made.returncode == 0 and "signing now" in made.stdout, made.stderr
    again = run("init")
    assert again.returncode == 2 and "already holds" in again.stderr
    assert run("rotate", "--overlap", "3600").returncode == 0
    waiting = run("rotate")
    assert waiting.returncode == 2 and "already waiting" in waiting.stderr
    states = [k["state"] for k in json.loads(run("show", "--json").stdout)]
    assert states == ["current", "next"]


def test_serve_refuses_keys_it_cannot_load(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv(PASSPHRASE_ENV, "at rest")
    KeyDirectory(tmp_path / "k").add("rsa", 0)
    env = {k: v for k, v in __import__("os").environ.items() if k != PASSPHRASE_ENV}
    done = subprocess.run(
        [sys.executable, "-m", "resolver", "serve", "--port", "0", "--key-dir", str(tmp_path / "k")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    assert done.returncode == 2 and "node keys" in done.stderr and PASSPHRASE_ENV in done.stderr, done.stderr
