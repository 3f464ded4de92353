"""The node's keys as trust values carry them: HS_PUBKEY octets and public keys of RSA, DSA and
SM2 keys alike (resolver/native/signing.py reads and writes the RSA and DSA forms the reference
knows; SM2 is this node's addition, issue 17 item 5)."""

from __future__ import annotations

from typing import Any

from resolver.native.protocol import ProtocolError, Reader
from resolver.native.signing import SignatureError, _octets, decode_public_key, encode_public_key

SM2_PUBLIC = b"SM2_PUB_KEY"


def public_of(private: Any) -> Any:
    """The public key of an RSA, DSA or SM2 private key."""
    from resolver.core import sm

    return private.public_key if isinstance(private, sm.SM2PrivateKey) else private.public_key()


def encode_trust_key(key: Any) -> bytes:
    """HS_PUBKEY octets of a node key: `encode_public_key` for RSA and DSA; for SM2 the same layout
    with the name SM2_PUB_KEY and the uncompressed point 04 || X || Y. Handle defines no SM2 key
    type: hdllib refuses this one ("Unknown format"), which is why certified native answers and the
    site record keep RSA."""
    from resolver.core import sm

    if isinstance(key, sm.SM2PublicKey):
        return _octets(SM2_PUBLIC) + b"\0\0" + _octets(b"\x04" + key.raw())
    return encode_public_key(key)


def decode_trust_key(data: bytes) -> Any:
    """A node key from HS_PUBKEY octets: what `decode_public_key` reads, and SM2_PUB_KEY."""
    from resolver.core import sm

    reader = Reader(data)
    try:
        if reader.octets() == SM2_PUBLIC:
            reader.at += 2
            return sm.SM2PublicKey.from_raw(reader.octets())
    except (ProtocolError, sm.SMError) as exc:
        raise SignatureError(f"not a valid SM2 public key: {exc}") from None
    return decode_public_key(data)
