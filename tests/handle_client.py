"""A small Handle protocol client written from RFC 3651/3652 for the tests, independent of the
server's own codec (resolver/native): it builds requests and reads answers octet by octet.

Envelope (20): major, minor, flags|suggested major, suggested minor, session id, request id,
sequence number, message length. Header (24): opCode, responseCode, opFlags, site serial (2),
recursion count (1), reserved (1), expiration, body length. Body. Credential (4-octet length).
"""

from __future__ import annotations

import hashlib
import hmac
import socket
import struct
from dataclasses import dataclass, field

OP_FLAG_PUBLIC_ONLY = 0x01000000
OP_FLAG_DIGEST = 0x00800000
OP_FLAG_KEEP_ALIVE = 0x02000000
OP_FLAG_CERTIFY = 0x40000000


def u32(value: int) -> bytes:
    return struct.pack("!I", value)


def utf8(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return u32(len(raw)) + raw


def request_message(
    opcode: int,
    body: bytes,
    flags: int = OP_FLAG_PUBLIC_ONLY,
    version: tuple[int, int] = (2, 10),
    request_id: int = 7,
    body_length: int | None = None,
    session_id: int = 0,
) -> tuple[bytes, bytes]:
    """(the whole request with its envelope, its header and body: what a digest covers)."""
    length = len(body) if body_length is None else body_length
    header = u32(opcode) + u32(0) + u32(flags) + struct.pack("!HBB", 0, 0, 0) + u32(0) + u32(length)
    message = header + body + u32(0)
    envelope = (
        bytes([version[0], version[1], 0, 0]) + u32(session_id) + u32(request_id) + u32(0) + u32(len(message))
    )
    return envelope + message, header + body


def resolution_body(handle: str, indexes: list[int] = (), types: list[str] = ()) -> bytes:  # type: ignore[assignment]
    return (
        utf8(handle)
        + u32(len(indexes))
        + b"".join(u32(i) for i in indexes)
        + u32(len(types))
        + b"".join(utf8(t) for t in types)
    )


@dataclass
class Value:
    index: int
    type: str
    data: bytes
    permissions: int
    ttl_type: int
    ttl: int
    timestamp: int
    references: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class Answer:
    version: tuple[int, int]
    suggested: tuple[int, int]
    request_id: int
    opcode: int
    rc: int
    flags: int
    body: bytes
    packets: int = 1
    digest: bytes | None = None
    digest_algorithm: int | None = None
    session_id: int = 0
    signed: bytes = b""  # header and body as received (what a message signature covers after its prefix)
    credential: bytes = b""  # the signature section without its length (empty: not signed)

    def handle_and_values(self) -> tuple[str, list[Value]]:
        at = 0

        def take(n: int) -> bytes:
            nonlocal at
            chunk = self.body[at : at + n]
            if len(chunk) != n:
                raise ValueError("answer body too short")
            at += n
            return chunk

        def integer() -> int:
            return int(struct.unpack("!I", take(4))[0])

        def octets() -> bytes:
            return take(integer())

        handle = octets().decode()
        values = []
        for _ in range(integer()):
            index, stamp, ttl_type, ttl, perms = struct.unpack("!IIBiB", take(14))
            value_type = octets().decode()
            data = octets()
            refs = [(octets().decode(), integer()) for _ in range(integer())]
            values.append(Value(index, value_type, data, perms, ttl_type, ttl, stamp, refs))
        assert at == len(self.body), "octets left after the values"
        return handle, values

    def message_text(self) -> str:
        if len(self.body) < 4:
            return ""
        length = struct.unpack("!I", self.body[:4])[0]
        return self.body[4 : 4 + length].decode()


def read_answer(message: bytes, envelope: bytes, packets: int = 1) -> Answer:
    opcode, rc, flags, _serial, _rec, _res, _exp, body_length = struct.unpack("!IIIHBBII", message[:24])
    body = message[24 : 24 + body_length]
    digest = algorithm = None
    if flags & OP_FLAG_DIGEST:
        algorithm = body[0]
        size = {1: 16, 2: 20, 3: 32}[algorithm]
        digest, body = body[1 : 1 + size], body[1 + size :]
    credential_length = struct.unpack("!I", message[24 + body_length : 28 + body_length])[0]
    credential = message[28 + body_length : 28 + body_length + credential_length]
    assert len(credential) == credential_length and len(message) == 28 + body_length + credential_length
    suggested_major = envelope[2] & 0x03
    return Answer(
        (envelope[0], envelope[1]),
        (suggested_major, envelope[3]),
        struct.unpack("!I", envelope[8:12])[0],
        opcode,
        rc,
        flags,
        body,
        packets,
        digest,
        algorithm,
        struct.unpack("!I", envelope[4:8])[0],
        message[: 24 + body_length],
        credential,
    )


class Fields:
    """Reads int4 numbers and int4-length octet strings, in order."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def skip(self, count: int) -> None:
        self.at += count

    def int4(self) -> int:
        value = int(struct.unpack_from("!I", self.data, self.at)[0])
        self.at += 4
        return value

    def octets(self) -> bytes:
        length = self.int4()
        chunk = self.data[self.at : self.at + length]
        assert len(chunk) == length, "cut short"
        self.at += length
        return chunk


def rsa_public_key(octets: bytes) -> tuple[int, int]:
    """(exponent, modulus) of an HS_PUBKEY RSA key (RFC 3652 names the key types; the reference
    client writes "RSA_PUB_KEY", two zero octets, then the exponent and the modulus, each with
    an int4 length, big-endian)."""
    fields = Fields(octets)
    assert fields.octets() == b"RSA_PUB_KEY"
    fields.skip(2)  # flags
    exponent = int.from_bytes(fields.octets(), "big")
    modulus = int.from_bytes(fields.octets(), "big")
    assert fields.at == len(octets)
    return exponent, modulus


def verify_certified(answer: Answer, exponent: int, modulus: int) -> str:
    """Check an answer's message signature (RFC 3652 section 2.2.4) with RSA PKCS#1 v1.5: the
    signature covers, from protocol 2.8 on, the answer's major and minor version, the suggested
    major and minor (not in 2.7), the session id, the request id and the signer's session counter, then the
    header and body as sent. Returns the hash name; raises when the signature does not verify."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    assert answer.credential, "the answer is not signed"
    fields = Fields(answer.credential)
    fields.skip(4)  # version, reserved, flags
    fields.octets()  # signer handle (empty)
    counter = fields.int4()
    assert fields.octets() == b"HS_SIGNED"
    fields.skip(4)  # length of the signed-data section
    hash_name = fields.octets()
    signature = fields.octets()
    assert answer.version >= (2, 7)
    if answer.version >= (2, 8):
        prefix = struct.pack(
            "!BBBBIII", *answer.version, *answer.suggested, answer.session_id, answer.request_id, counter
        )
    else:  # 2.7 (AbstractMessage.signMessage): no suggested version yet
        prefix = struct.pack("!BBIII", *answer.version, answer.session_id, answer.request_id, counter)
    algorithm = {b"SHA-256": hashes.SHA256(), b"SHA1": hashes.SHA1()}[hash_name]
    public = rsa.RSAPublicNumbers(exponent, modulus).public_key()
    public.verify(signature, prefix + answer.signed, padding.PKCS1v15(), algorithm)
    return hash_name.decode()


def over_udp(port: int, request: bytes, timeout: float = 5.0) -> Answer:
    """Send one datagram; gather the answer's packets by sequence number until the length is complete."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(request, ("127.0.0.1", port))
        parts: dict[int, bytes] = {}
        total = None
        envelope = b""
        while total is None or sum(len(p) for p in parts.values()) < total:
            packet, _ = sock.recvfrom(65535)
            envelope = packet[:20]
            sequence, total = struct.unpack("!II", packet[12:20])
            parts[sequence] = packet[20:]
        message = b"".join(parts[i] for i in sorted(parts))
        return read_answer(message, envelope, len(parts))


def over_tcp(port: int, *requests: bytes, timeout: float = 5.0) -> list[Answer]:
    """Send requests on one connection (set keep-alive on all but the last); read an answer each."""
    answers = []
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        for request in requests:
            sock.sendall(request)
            envelope = recv_exactly(sock, 20)
            length = struct.unpack("!I", envelope[16:20])[0]
            answers.append(read_answer(recv_exactly(sock, length), envelope))
    return answers


def recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(data)} of {size} octets")
        data += chunk
    return data


def sha(algorithm: int, data: bytes) -> bytes:
    return hashlib.sha256(data).digest() if algorithm == 3 else hashlib.sha1(data).digest()


def read_site(data: bytes) -> dict[str, object]:
    """A site record: version, protocol, serial, servers with their address and interfaces."""
    at = 0

    def take(n: int) -> bytes:
        nonlocal at
        chunk = data[at : at + n]
        at += n
        return chunk

    def integer() -> int:
        return int(struct.unpack("!I", take(4))[0])

    version, major, minor, serial, mask, _hash = struct.unpack("!HBBHBB", take(8))
    take(integer())  # hash filter
    attributes = {take(integer()).decode(): take(integer()).decode() for _ in range(integer())}
    servers = []
    for _ in range(integer()):
        server_id = integer()
        address = take(16)
        key = take(integer())
        interfaces = [struct.unpack("!BBI", take(6)) for _ in range(integer())]
        servers.append({"id": server_id, "address": address, "key": key, "interfaces": interfaces})
    assert at == len(data)
    return {
        "version": version,
        "protocol": (major, minor),
        "serial": serial,
        "primary": bool(mask & 0x80),
        "multi_primary": bool(mask & 0x40),
        "attributes": attributes,
        "servers": servers,
    }


# -- administration (RFC 3652 section 3.5; hdllib Encoder.encodeCreateHandleRequest and friends) --

OC_CREATE_HANDLE, OC_DELETE_HANDLE, OC_ADD_VALUE, OC_REMOVE_VALUE, OC_MODIFY_VALUE, OC_LIST_HANDLES = (
    100,
    101,
    102,
    103,
    104,
    105,
)
OC_RESPONSE_TO_CHALLENGE = 200


def value_octets(
    index: int,
    value_type: str,
    data: bytes,
    permissions: int = 0xE,
    ttl: int = 86400,
    references: list[tuple[str, int]] = (),  # type: ignore[assignment]
) -> bytes:
    """`Encoder.encodeHandleValue`: index, timestamp, ttl type and ttl, permissions, type, data,
    references."""
    return (
        struct.pack("!IIBiB", index, 0, 0, ttl, permissions)
        + utf8(value_type)
        + utf8(data)
        + u32(len(references))
        + b"".join(utf8(h) + u32(i) for h, i in references)
    )


def admin_value_data(handle: str, index: int, mask: int = 0x0FF3) -> bytes:
    """`Encoder.encodeAdminRecord`: the permission mask in two octets (default: all but add and
    delete prefix, AdminRecord bits 2 and 3), the admin handle, its index."""
    return struct.pack("!H", mask) + utf8(handle) + u32(index)


def values_body(handle: str, values: list[bytes]) -> bytes:
    return utf8(handle) + u32(len(values)) + b"".join(values)


def rsa_key_octets(exponent: int, modulus: int) -> bytes:
    """`Util.getBytesFromPublicKey` for RSA: the type name, two flag octets, exponent and modulus,
    and the four zero octets hdllib appends."""

    def big(number: int) -> bytes:
        return utf8(number.to_bytes((number.bit_length() + 8) // 8, "big"))

    return utf8("RSA_PUB_KEY") + b"\0\0" + big(exponent) + big(modulus) + u32(0)


def seckey_answer_octets(hashed_secret: bytes, nonce: bytes, digest: bytes, salt: bytes) -> bytes:
    """`SecretKeyAuthenticationInfo.authenticate` from protocol 2.7: code 0x22 (PBKDF2-HMAC-SHA1),
    then `Util.constructPbkdf2Encoding`: salt, iterations, key bits, and the HMAC-SHA1 of
    nonce || digest under the derived key (`Util.doMac`)."""
    derived = hashlib.pbkdf2_hmac("sha1", hashed_secret, salt, 10000, 20)
    mac = hmac.new(derived, nonce + digest, "sha1").digest()
    return b"\x22" + utf8(salt) + u32(10000) + u32(160) + utf8(mac)


def challenge_answer_body(auth_type: str, handle: str, index: int, signed: bytes) -> bytes:
    """`Encoder.encodeChallengeAnswer`."""
    return utf8(auth_type) + utf8(handle) + u32(index) + utf8(signed)
