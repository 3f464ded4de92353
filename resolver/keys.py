"""The node's key pairs: made, shown and rotated by `resolver keys`, kept in files outside the
database (a dump of the database carries no private key).

A key directory (`--key-dir`, mode 0700) holds one PKCS#8 PEM file per private key (mode 0600,
encrypted when RESOLVER_KEY_PASSPHRASE is set), its public key as PEM, and `keys.json`, the list
of keys with their algorithm, creation time and the moment each one signs from.

Rotation overlaps: `rotate` adds a key that is published at once (next to the current one) but
signs only from `signs_from`, `--overlap` seconds later (default a day, the TTL of the node's
HS_SITE and HS_PUBKEY values), so clients that cached the old record have fetched the new key
before they see a signature made with it. The previous key stays published for another overlap
after that, for answers signed just before the switch, and is then left out (`retired`). The key
that signs is the newest whose `signs_from` has come.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

ALGORITHMS = ("rsa", "sm2")  # RSA-2048, or SM2 with SM3 (resolver/core/sm.py)
RSA_BITS = 2048
DEFAULT_OVERLAP = 86400.0  # seconds: the TTL of the node's HS_SITE and HS_PUBKEY values
PASSPHRASE_ENV = "RESOLVER_KEY_PASSPHRASE"
MANIFEST = "keys.json"


class KeyDirectoryError(Exception):
    """A key directory that cannot be used as asked (missing, unreadable, wrong passphrase)."""


@dataclass(frozen=True)
class NodeKey:
    """One key pair as `keys.json` lists it (the private key stays in its file until needed)."""

    id: str
    algorithm: str
    created: datetime.datetime
    signs_from: datetime.datetime
    public_pem: bytes

    @property
    def fingerprint(self) -> str:
        """SHA-256 of the public key's DER (SubjectPublicKeyInfo), as hex pairs."""
        digest = hashlib.sha256(self.public_der).hexdigest()
        return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))

    @property
    def public_der(self) -> bytes:
        """The SubjectPublicKeyInfo DER: the PEM's body (any key type, SM2 included)."""
        body = b"".join(
            line for line in self.public_pem.splitlines() if line and not line.startswith(b"-----")
        )
        return base64.b64decode(body)

    def to_json(self, state: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "algorithm": self.algorithm,
            "created": self.created.isoformat(),
            "signsFrom": self.signs_from.isoformat(),
            "state": state,
            "fingerprint": self.fingerprint,
        }


class KeyDirectory:
    """The key directory of one node (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path.expanduser()

    # -- reading --------------------------------------------------------------------------------

    def keys(self) -> list[NodeKey]:
        """Every key, oldest first ([] when the directory has none)."""
        manifest = self.path / MANIFEST
        if not manifest.exists():
            return []
        try:
            entries = orjson.loads(manifest.read_bytes())
            return [
                NodeKey(
                    entry["id"],
                    entry["algorithm"],
                    datetime.datetime.fromisoformat(entry["created"]),
                    datetime.datetime.fromisoformat(entry["signsFrom"]),
                    (self.path / f"{entry['id']}.pub.pem").read_bytes(),
                )
                for entry in entries
            ]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyDirectoryError(f"{manifest} cannot be read: {exc}") from exc

    def states(self, now: datetime.datetime | None = None) -> list[tuple[NodeKey, str]]:
        """Each key with its state now: `next` (published, not signing yet), `current` (signs),
        `previous` (the one before, published for as long an overlap as its successor was given,
        for answers signed before the switch), `retired` (left out)."""
        now = now or datetime.datetime.now(datetime.UTC)
        keys = self.keys()
        currents: set[str] = set()
        previouses: set[str] = set()
        for algorithm in {k.algorithm for k in keys}:  # an RSA and an SM2 key rotate apart
            started = [k for k in keys if k.signs_from <= now and k.algorithm == algorithm]
            current = started[-1] if started else None
            previous = started[-2] if len(started) > 1 else None
            if previous is not None and current is not None:
                overlap = current.signs_from - current.created
                if now - current.signs_from >= overlap:
                    previous = None
            currents |= {current.id} if current is not None else set()
            previouses |= {previous.id} if previous is not None else set()
        found = []
        for key in keys:
            if key.id in currents:
                state = "current"
            elif key.signs_from > now:
                state = "next"
            elif key.id in previouses:
                state = "previous"
            else:
                state = "retired"
            found.append((key, state))
        return found

    def signing_key(
        self, now: datetime.datetime | None = None, algorithm: str = "rsa"
    ) -> tuple[NodeKey, Any] | None:
        """The current key of `algorithm` and its private key object (None when there is none)."""
        for key, state in self.states(now):
            if state == "current" and key.algorithm == algorithm:
                return key, self._private(key)
        return None

    def load_published(self) -> list[tuple[NodeKey, Any]]:
        """Every published key with its private key; KeyDirectoryError when one cannot be loaded."""
        return [(key, self._private(key)) for key in self.published()]

    def published(self, now: datetime.datetime | None = None) -> list[NodeKey]:
        """The keys clients should be able to find: current, next and previous."""
        return [key for key, state in self.states(now) if state != "retired"]

    def _private(self, key: NodeKey) -> Any:
        from cryptography.hazmat.primitives import serialization

        path = self.path / f"{key.id}.key.pem"
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if key.algorithm == "sm2":
            return _read_sm2(path, passphrase)
        try:
            return serialization.load_pem_private_key(
                path.read_bytes(), passphrase.encode() if passphrase else None
            )
        except TypeError as exc:  # encrypted without a passphrase, or the other way round
            raise KeyDirectoryError(f"{path}: {exc}; set or unset {PASSPHRASE_ENV}") from exc
        except ValueError as exc:
            raise KeyDirectoryError(
                f"{path} cannot be decrypted with {PASSPHRASE_ENV} (or is not a key)"
            ) from exc
        except OSError as exc:
            raise KeyDirectoryError(f"{path} cannot be read: {exc.strerror}") from exc

    # -- writing --------------------------------------------------------------------------------

    def add(self, algorithm: str, signs_in: float, now: datetime.datetime | None = None) -> NodeKey:
        """A new key pair, signing `signs_in` seconds from now (0: at once)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        if algorithm not in ALGORITHMS:
            raise KeyDirectoryError(f"unknown key algorithm {algorithm!r}; known: {', '.join(ALGORITHMS)}")
        now = now or datetime.datetime.now(datetime.UTC)
        keys = self.keys()
        self.path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.path, 0o700)
        passphrase = os.environ.get(PASSPHRASE_ENV)
        if algorithm == "sm2":
            from resolver.core import sm

            sm2_key = sm.SM2PrivateKey.generate()
            private_pem = _sealed_sm2(sm2_key.to_pem(), passphrase) if passphrase else sm2_key.to_pem()
            public_pem = sm2_key.public_key.to_pem()
        else:
            private = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
            encryption: serialization.KeySerializationEncryption = (
                serialization.BestAvailableEncryption(passphrase.encode())
                if passphrase
                else serialization.NoEncryption()
            )
            private_pem = private.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
            public_pem = private.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        key_id = f"node-{len(keys) + 1}-{base64.b32encode(os.urandom(5)).decode().lower()}"
        _write_private(self.path / f"{key_id}.key.pem", private_pem)
        (self.path / f"{key_id}.pub.pem").write_bytes(public_pem)
        key = NodeKey(key_id, algorithm, now, now + datetime.timedelta(seconds=signs_in), public_pem)
        self._write_manifest([*keys, key])
        return key

    def _write_manifest(self, keys: list[NodeKey]) -> None:
        entries = [
            {
                "id": k.id,
                "algorithm": k.algorithm,
                "created": k.created.isoformat(),
                "signsFrom": k.signs_from.isoformat(),
            }
            for k in keys
        ]
        temporary = self.path / f".{MANIFEST}.tmp"
        temporary.write_bytes(orjson.dumps(entries, option=orjson.OPT_INDENT_2))
        os.replace(temporary, self.path / MANIFEST)  # never a half-written list


# An SM2 private key under RESOLVER_KEY_PASSPHRASE: `cryptography` cannot load the SM2 curve, so
# its PKCS#8 PEM is sealed here: scrypt (n=2^15, r=8, p=1) of the passphrase and a random salt
# keys AES-256-GCM; the file holds salt, nonce and ciphertext in one PEM block of its own label.
_SM2_SEALED = "ENCRYPTED SM2 PRIVATE KEY"


def _sealed_sm2(pem: bytes, passphrase: str) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    salt, nonce = os.urandom(16), os.urandom(12)
    key = hashlib.scrypt(passphrase.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32)
    body = base64.encodebytes(salt + nonce + AESGCM(key).encrypt(nonce, pem, None))
    return f"-----BEGIN {_SM2_SEALED}-----\n".encode() + body + f"-----END {_SM2_SEALED}-----\n".encode()


def _read_sm2(path: Path, passphrase: str | None) -> Any:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from resolver.core import sm

    try:
        text = path.read_bytes()
    except OSError as exc:
        raise KeyDirectoryError(f"{path} cannot be read: {exc.strerror}") from exc
    sealed = text.startswith(f"-----BEGIN {_SM2_SEALED}-----".encode())
    if sealed != bool(passphrase):
        raise KeyDirectoryError(
            f"{path}: {'encrypted' if sealed else 'not encrypted'}; set or unset {PASSPHRASE_ENV}"
        )
    try:
        if sealed:
            assert passphrase is not None
            raw = base64.b64decode(b"".join(text.splitlines()[1:-1]))
            salt, nonce, box = raw[:16], raw[16:28], raw[28:]
            key = hashlib.scrypt(
                passphrase.encode(), salt=salt, n=2**15, r=8, p=1, maxmem=64 * 1024 * 1024, dklen=32
            )
            text = AESGCM(key).decrypt(nonce, box, None)
        return sm.SM2PrivateKey.from_pem(text)
    except (InvalidTag, ValueError) as exc:
        raise KeyDirectoryError(
            f"{path} cannot be decrypted with {PASSPHRASE_ENV} (or is not a key)"
        ) from exc


def _write_private(path: Path, pem: bytes) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(pem)


class Signers:
    """A worker's node keys in memory: every key not retired, with its private key, loaded at start
    and again on SIGHUP (after `resolver keys rotate`); the one that signs is chosen by the clock, so
    a rotation's switch needs no signal. Empty when the node has no key (answers stay unsigned)."""

    def __init__(self, path: Path) -> None:
        self.directory = KeyDirectory(path)
        self._keys: list[tuple[NodeKey, Any, bytes]] = []
        self.load()

    def load(self) -> bool:
        """Read the directory; on failure keep what was loaded (logged) and answer False."""
        from resolver.native.trust_keys import encode_trust_key, public_of

        try:
            self._keys = [
                (key, private, encode_trust_key(public_of(private)))
                for key, private in self.directory.load_published()
            ]
        except (KeyDirectoryError, ValueError) as exc:
            logging.getLogger("resolver").error("node keys not loaded, the previous ones stay: %s", exc)
            return False
        return True

    def current(
        self, now: datetime.datetime | None = None, algorithm: str = "rsa"
    ) -> tuple[NodeKey, Any, bytes] | None:
        """(key, private key, its HS_PUBKEY octets) of the `algorithm` key that signs now (RSA by
        default: what the native protocol's certified answers and site record can carry)."""
        now = now or datetime.datetime.now(datetime.UTC)
        chosen = None
        for entry in self._keys:
            if entry[0].signs_from <= now and entry[0].algorithm == algorithm:
                chosen = entry
        return chosen

    def entries(self) -> list[tuple[NodeKey, Any, bytes]]:
        """(key, private key, HS_PUBKEY octets) of every key loaded (next, current, previous)."""
        return list(self._keys)

    def published_octets(self) -> list[bytes]:
        """The HS_PUBKEY octets of every RSA key clients should find (next, current, previous):
        what the prefix records sent to the top-level node carry (hdllib reads RSA and DSA only)."""
        return [octets for key, _, octets in self._keys if key.algorithm == "rsa"]


def public_octets(path: Path) -> tuple[bytes, list[bytes]]:
    """(the HS_PUBKEY octets of the key that signs now or b"", those of every published key) for
    the records that carry them: `resolver siteinfo` and the prefix records sent to the top-level
    node. A key directory that cannot be read gives none (logged by Signers)."""
    signers = Signers(path)
    current = signers.current()
    return (b"" if current is None else current[2]), signers.published_octets()
