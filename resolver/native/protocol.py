"""The Handle protocol's wire format (RFC 3652), the parts a resolution server needs.

A message is an envelope (20 octets: version, flags, session, request and sequence ids, length),
then a header (24 octets: opCode, responseCode, opFlags, site serial, recursion count, expiration,
body length), the body, and a credential (a 4-octet length, 0 here: answers are not signed).
Integers are big-endian; strings and byte strings are a 4-octet length and the octets.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

ENVELOPE = struct.Struct(">BBBBIIII")
HEADER = struct.Struct(">IIIHBBII")
ENVELOPE_SIZE = ENVELOPE.size  # 20
HEADER_SIZE = HEADER.size  # 24
UDP_PACKET_SIZE = 512
UDP_DATA_SIZE = UDP_PACKET_SIZE - ENVELOPE_SIZE
MAX_REQUEST_BYTES = 64 * 1024

# opCodes and response codes (RFC 3652 section 2.2.2)
OC_RESOLUTION = 1
OC_GET_SITE_INFO = 2
RC_SUCCESS = 1
RC_ERROR = 2
RC_SERVER_TOO_BUSY = 3
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_HANDLE_NOT_FOUND = 100
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_SERVER_NOT_RESPONSIBLE = 301

# opFlags
FLAG_AUTHORITATIVE = 0x80000000
FLAG_CERTIFY = 0x40000000
FLAG_KEEP_ALIVE = 0x02000000
FLAG_PUBLIC_ONLY = 0x01000000
FLAG_REQUEST_DIGEST = 0x00800000

# envelope flags (third octet; its two low bits carry the suggested major version)
ENV_COMPRESSED = 0x80
ENV_ENCRYPTED = 0x40
ENV_TRUNCATED = 0x20

# request digest algorithm identifiers
DIGEST_SHA1 = 2
DIGEST_SHA256 = 3

# the newest protocol version this server speaks; answers use the client's version up to it
SERVER_VERSION = (2, 11)

PERM_ADMIN_READ, PERM_ADMIN_WRITE, PERM_PUBLIC_READ, PERM_PUBLIC_WRITE = 0x8, 0x4, 0x2, 0x1
TTL_RELATIVE, TTL_ABSOLUTE = 0, 1
INTERFACE_TYPES = {(True, True): 3, (False, True): 2, (True, False): 1, (False, False): 0}  # (admin, query)
TRANSPORTS = {"UDP": 0, "TCP": 1, "HTTP": 2, "HTTPS": 3}
_ADMIN_BITS = [0x0800, 0x0400, 0x0200, 0x0100, 0x0080, 0x0040, 0x0020, 0x0010, 0x0008, 0x0004, 0x0002, 0x0001]


class ProtocolError(Exception):
    """A message this server cannot read: answered with RC_PROTOCOL_ERROR (or dropped)."""


@dataclass(frozen=True)
class Envelope:
    major: int
    minor: int
    flags: int
    suggested: tuple[int, int]
    session_id: int
    request_id: int
    sequence: int
    length: int


@dataclass(frozen=True)
class Request:
    envelope: Envelope
    opcode: int
    response_code: int
    flags: int
    serial: int
    recursion: int
    body: bytes
    header_and_body: bytes  # what a request digest covers

    @property
    def version(self) -> tuple[int, int]:
        return answer_version(self.envelope)


def answer_version(envelope: Envelope) -> tuple[int, int]:
    """The version an answer is written in: the client's, up to the server's."""
    if envelope.major != SERVER_VERSION[0]:
        return SERVER_VERSION
    return min((envelope.major, envelope.minor), SERVER_VERSION)


def parse_envelope(data: bytes) -> Envelope:
    if len(data) < ENVELOPE_SIZE:
        raise ProtocolError(f"a message envelope is {ENVELOPE_SIZE} octets, got {len(data)}")
    major, minor, flags, suggested_minor, session, request, sequence, length = ENVELOPE.unpack_from(data)
    suggested_major = flags & 0x03
    suggested = (suggested_major, suggested_minor) if suggested_major else (major, minor)
    return Envelope(major, minor, flags & 0xFC, suggested, session, request, sequence, length)


def parse_request(envelope: Envelope, message: bytes) -> Request:
    """Header and body of a request (`message` is everything after the envelope)."""
    if envelope.major != 2:
        raise ProtocolError(f"protocol version {envelope.major}.{envelope.minor} is not supported (2.x is)")
    if envelope.flags & (ENV_COMPRESSED | ENV_ENCRYPTED):
        raise ProtocolError("compressed or encrypted messages are not supported")
    if len(message) < HEADER_SIZE:
        raise ProtocolError(f"a message header is {HEADER_SIZE} octets, got {len(message)}")
    opcode, rc, flags, serial, recursion, _reserved, _expiration, body_length = HEADER.unpack_from(message)
    if body_length > len(message) - HEADER_SIZE:
        raise ProtocolError(
            f"the header announces a {body_length}-octet body, {len(message) - HEADER_SIZE} arrived"
        )
    body = message[HEADER_SIZE : HEADER_SIZE + body_length]
    return Request(envelope, opcode, rc, flags, serial, recursion, body, message[: HEADER_SIZE + body_length])


class Reader:
    """Reads the body's fields, refusing anything that would run past its end."""

    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def int4(self) -> int:
        if self.at + 4 > len(self.data):
            raise ProtocolError("the body ends inside an integer")
        (value,) = struct.unpack_from(">I", self.data, self.at)
        self.at += 4
        return int(value)

    def octets(self, limit: int = 65536) -> bytes:
        length = self.int4()
        if length > limit or self.at + length > len(self.data):
            raise ProtocolError("a string runs past the end of the body")
        value = self.data[self.at : self.at + length]
        self.at += length
        return value

    def text(self) -> str:
        try:
            return self.octets().decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("a string is not UTF-8") from None


def parse_resolution(body: bytes) -> tuple[str, list[int], list[str]]:
    """A resolution request: the handle, the wanted indexes and types (empty: all)."""
    reader = Reader(body)
    handle = reader.text()
    count = reader.int4()
    if count > 1024:
        raise ProtocolError("too many indexes")
    indexes = [reader.int4() for _ in range(count)]
    count = reader.int4()
    if count > 1024:
        raise ProtocolError("too many types")
    types = [reader.text() for _ in range(count)]
    return handle, indexes, types


# -- encoding ----------------------------------------------------------------------------------


def _octets(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def utf8(text: str) -> bytes:
    """A UTF8-String: its length, then its octets."""
    return _octets(text.encode("utf-8"))


def _epoch(stamp: object) -> int:
    if isinstance(stamp, str):
        try:
            return int(datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp())
        except ValueError:
            return 0
    return 0


def _admin(value: dict[str, Any]) -> bytes:
    bits = str(value.get("permissions", ""))
    mask = 0
    for position, char in enumerate(bits[-12:].rjust(12, "0")):
        if char == "1":
            mask |= _ADMIN_BITS[position]
    return (
        struct.pack(">H", mask)
        + utf8(str(value.get("handle", "")))
        + struct.pack(">I", int(value.get("index", 0)))
    )


def _address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A server address as the site record needs it: an IP (a host name is looked up once)."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
    except (OSError, IndexError, ValueError):
        return ipaddress.ip_address("127.0.0.1")


def encode_site(site: dict[str, Any]) -> bytes:
    """A site record in its binary form (RFC 3651 HS_SITE)."""
    version = str(site.get("protocolVersion", "2.11")).split(".")
    mask = site.get("primaryMask", {})
    out = [
        struct.pack(
            ">HBBHBB",
            int(site.get("version", 1)),
            int(version[0]),
            int(version[1]) if len(version) > 1 else 0,
            int(site.get("serialNumber", 1)),
            (0x80 if mask.get("primary") else 0) | (0x40 if mask.get("multiPrimary") else 0),
            int(site.get("hashOption", 0)),
        ),
        utf8(str(site.get("hashFilter", ""))),
        struct.pack(">I", len(site.get("attributes", []))),
    ]
    for attribute in site.get("attributes", []):
        out += [utf8(str(attribute["name"])), utf8(str(attribute["value"]))]
    servers = site.get("servers", [])
    out.append(struct.pack(">I", len(servers)))
    for server in servers:
        address = _address(str(server.get("address", "127.0.0.1")))
        packed = address.packed.rjust(16, b"\0")
        key = server.get("publicKey", {}).get("value")
        key_bytes = base64.b64decode(key) if isinstance(key, str) else b""
        interfaces = server.get("interfaces", [])
        out += [struct.pack(">I", int(server.get("serverId", 1))), packed, _octets(key_bytes)]
        out.append(struct.pack(">I", len(interfaces)))
        for interface in interfaces:
            kind = INTERFACE_TYPES[(bool(interface.get("admin")), bool(interface.get("query")))]
            transport = TRANSPORTS.get(str(interface.get("protocol", "")).upper(), 1)
            out.append(struct.pack(">BBI", kind, transport, int(interface.get("port", 0))))
    return b"".join(out)


def value_data(data: object) -> bytes:
    """The octets of a stored value's data, by its format."""
    if not isinstance(data, dict):
        return str(data).encode("utf-8")
    fmt, value = data.get("format"), data.get("value")
    try:
        if fmt == "string":
            return str(value).encode("utf-8")
        if fmt == "base64":
            return base64.b64decode(str(value))
        if fmt == "hex":
            return bytes.fromhex(str(value))
        if fmt == "admin" and isinstance(value, dict):
            return _admin(value)
        if fmt == "vlist" and isinstance(value, list):
            return struct.pack(">I", len(value)) + b"".join(
                utf8(str(r.get("handle", ""))) + struct.pack(">I", int(r.get("index", 0))) for r in value
            )
        if fmt == "site" and isinstance(value, dict):
            return encode_site(value)
        if fmt == "key" and isinstance(value, str):
            return base64.b64decode(value)
    except (ValueError, TypeError):
        pass
    return b"" if value is None else str(value).encode("utf-8")


def encode_value(value: dict[str, Any]) -> bytes:
    """One handle value (RFC 3651 section 3.1 layout)."""
    ttl = value.get("ttl", 86400)
    if isinstance(ttl, str):
        ttl_type, ttl_number = TTL_ABSOLUTE, _epoch(ttl)
    else:
        ttl_type, ttl_number = TTL_RELATIVE, int(ttl)
    perms = str(value.get("permissions", "1110"))
    permission = sum(bit for bit, char in zip((8, 4, 2, 1), perms, strict=False) if char == "1")
    references = value.get("references") or []
    return b"".join(
        [
            struct.pack(
                ">IIBiB",
                int(value["index"]) & 0xFFFFFFFF,
                _epoch(value.get("timestamp")) & 0xFFFFFFFF,
                ttl_type,
                max(-(2**31), min(2**31 - 1, ttl_number)),
                permission,
            ),
            utf8(str(value["type"])),
            _octets(value_data(value.get("data"))),
            struct.pack(">I", len(references)),
            *(utf8(str(r["handle"])) + struct.pack(">I", int(r["index"])) for r in references),
        ]
    )


def encode_values(values: Sequence[dict[str, Any]]) -> bytes:
    return struct.pack(">I", len(values)) + b"".join(encode_value(v) for v in values)


def digest_of(request: Request) -> bytes:
    """The request digest: SHA-256 from protocol 2.7 on, SHA-1 before, with its identifier."""
    if request.version >= (2, 7):
        return bytes([DIGEST_SHA256]) + hashlib.sha256(request.header_and_body).digest()
    return bytes([DIGEST_SHA1]) + hashlib.sha1(request.header_and_body).digest()


def answer(request: Request, rc: int, body: bytes, expires_in: int = 3600) -> bytes:
    """Header, body (after the request digest when asked for) and an empty credential."""
    flags = FLAG_AUTHORITATIVE | (request.flags & (FLAG_PUBLIC_ONLY | FLAG_REQUEST_DIGEST | FLAG_KEEP_ALIVE))
    if request.flags & FLAG_REQUEST_DIGEST:
        body = digest_of(request) + body
    header = HEADER.pack(
        request.opcode, rc, flags, 1, request.recursion, 0, int(time.time()) + expires_in, len(body)
    )
    return header + body + b"\0\0\0\0"


def error_body(message: str) -> bytes:
    return utf8(message)


def envelopes(env: Envelope, message: bytes, packet_data: int) -> list[bytes]:
    """The answer to the request of envelope `env`, cut into packets of at most `packet_data`
    octets, each with its envelope."""
    major, minor = answer_version(env)
    flags = SERVER_VERSION[0] & 0x03
    packets = []
    for sequence, start in enumerate(range(0, max(1, len(message)), packet_data)):
        head = ENVELOPE.pack(
            major, minor, flags, SERVER_VERSION[1], env.session_id, env.request_id, sequence, len(message)
        )
        packets.append(head + message[start : start + packet_data])
    return packets


def refusal(envelope: Envelope, rc: int, message: str) -> bytes:
    """An error answer to a message whose header could not be read (opCode 0)."""
    fake = Request(envelope, 0, 0, 0, 0, 0, b"", b"")
    return answer(fake, rc, error_body(message))
