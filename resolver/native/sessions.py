"""Handle sessions (OC_SESSION_SETUP, RFC 3652 section 3.5) as far as CNRI's client needs them to
administer the node with its default settings.

hdllib's `HandleResolver` opens a session before its first admin request to a server
(`HandleResolver()` installs a `ClientSessionTracker` with a `SessionSetupInfo`: Diffie-Hellman
key exchange, a 1024-bit group of its own) and gives up on the server when the setup fails; it
never falls back to plain challenge-response. So the node answers the setup as the reference
server does (`HandleServer.doSessionSetup`): its own DH public key in the client's group, after the
encryption algorithm (AES, 3), signed with the node's RSA key since the client asks for a
certified answer (`setupSessionWithServer` sets `certify`), under a new session id.

What the node does not do with a session: it keeps no session key (it derives none), MACs and
decrypts nothing, and treats no session as authenticated. Every admin request in a session is
challenged like any other (resolver/native/admin.py; the challenge goes back in the request's
session, as `HandleServer.createChallenge` sends it), so a session adds no trust and a stolen
session id gives nothing. The setup is answered in protocol 2.7, so that the client, which uses
the setup answer's version for the whole session, does not encrypt requests (hdllib encrypts
CREATE, ADD and MODIFY with non-public values from 2.8 on, `CreateHandleRequest.shouldEncrypt`);
a message that is encrypted all the same is refused (RC_PROTOCOL_ERROR, `protocol.parse_request`).
"""

from __future__ import annotations

import secrets
import struct

from resolver.native import protocol as p
from resolver.native import signing

KEY_EXCHANGE_DH = 4  # Common.KEY_EXCHANGE_DH; the other modes (RSA key transport) are not offered
ENCRYPT_ALG_AES = 3  # HdlSecurityProvider.ENCRYPT_ALG_AES, what the reference server answers
SESSION_VERSION = (2, 7)
DH_PUBLIC = b"DH_PUB_KEY"
MIN_GROUP_BITS, MAX_GROUP_BITS = 1024, 4096  # hdllib's own group is 1024 bits
EXPONENT_BITS = 320  # the node's private DH exponent: well above twice the group's strength


class SessionRefused(Exception):
    """A setup the node does not take, with the reason (answered RC_SESSION_FAILED)."""


def _dh_key(data: bytes) -> tuple[int, int, int]:
    """(y, p, g) of a DH_PUB_KEY (`Util.getPublicKeyFromBytes`), checked for size and range."""
    reader = p.Reader(data)
    try:
        if reader.octets() != DH_PUBLIC:
            raise SessionRefused("the exchange key is not a DH_PUB_KEY")
        reader.at += 2  # flags
        y, prime, g = (int.from_bytes(reader.octets(), "big") for _ in range(3))
    except p.ProtocolError as exc:
        raise SessionRefused(f"the exchange key is cut short: {exc}") from None
    if not MIN_GROUP_BITS <= prime.bit_length() <= MAX_GROUP_BITS or not prime & 1:
        raise SessionRefused(
            f"the DH group must be an odd prime of {MIN_GROUP_BITS} to {MAX_GROUP_BITS} bits"
        )
    if not 1 < g < prime - 1 or not 1 < y < prime - 1:
        raise SessionRefused("the DH generator and public value must lie in 2..p-2")
    return y, prime, g


def parse_setup(body: bytes) -> tuple[int, int, bytes, int, bytes]:
    """(mode, timeout, identity handle, identity index, exchange key) of a SessionSetupRequest
    (`Encoder.decodeSessionSetupRequest`; the two octets the client's length counts past the
    mode are ignored, as the reference's decoder ignores them)."""
    if len(body) < 6:
        raise SessionRefused("the session setup is cut short")
    mode, timeout = struct.unpack_from(">Hi", body)
    reader = p.Reader(body)
    reader.at = 6
    try:
        identity = reader.octets()
        index = reader.int4()
        key = reader.octets() if mode == KEY_EXCHANGE_DH else b""
    except p.ProtocolError as exc:
        raise SessionRefused(f"the session setup is cut short: {exc}") from None
    return mode, timeout, identity, index, key


def setup_answer(request: p.Request) -> tuple[bytes, int]:
    """(the SessionSetupResponse message, unsigned, the new session id) for a DH setup;
    SessionRefused for anything else."""
    mode, _timeout, _identity, _index, key = parse_setup(request.body)
    if mode != KEY_EXCHANGE_DH:
        raise SessionRefused(f"key exchange mode {mode} is not offered: Diffie-Hellman (4) is")
    _y, prime, g = _dh_key(key)
    own = pow(g, secrets.randbits(EXPONENT_BITS) | 1 << (EXPONENT_BITS - 1), prime)
    public = (
        struct.pack(">I", len(DH_PUBLIC))
        + DH_PUBLIC
        + b"\0\0"
        + b"".join(_octets(signing.java_integer(v)) for v in (own, prime, g))
    )
    data = struct.pack(">I", ENCRYPT_ALG_AES) + public
    body = struct.pack(">H", KEY_EXCHANGE_DH) + _octets(data) + b"\0\0"  # Encoder.encodeSessionSetupResponse
    session_id = secrets.randbelow(2**31 - 1) + 1
    return p.answer(request, p.RC_SUCCESS, body), session_id


def _octets(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data
