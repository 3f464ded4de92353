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
from dataclasses import dataclass, replace
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
OC_CREATE_HANDLE = 100
OC_DELETE_HANDLE = 101
OC_ADD_VALUE = 102
OC_REMOVE_VALUE = 103
OC_MODIFY_VALUE = 104
OC_LIST_HANDLES = 105
OC_RESPONSE_TO_CHALLENGE = 200
OC_SESSION_SETUP = 400
OC_SESSION_TERMINATE = 401
OC_SESSION_EXCHANGEKEY = 402
RC_SUCCESS = 1
RC_ERROR = 2
RC_SERVER_TOO_BUSY = 3
RC_PROTOCOL_ERROR = 4
RC_OPERATION_NOT_SUPPORTED = 5
RC_HANDLE_NOT_FOUND = 100
RC_INVALID_HANDLE = 102
RC_VALUES_NOT_FOUND = 200
RC_SERVER_NOT_RESPONSIBLE = 301
RC_AUTHENTICATION_NEEDED = 402
RC_AUTHEN_TIMEOUT = 405
RC_SESSION_FAILED = 501

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


def pack_envelope(envelope: Envelope) -> bytes:
    """The 20 octets `parse_envelope` read (to keep a request whole, as a challenge does)."""
    suggested_major = envelope.suggested[0] if envelope.suggested != (envelope.major, envelope.minor) else 0
    return ENVELOPE.pack(
        envelope.major,
        envelope.minor,
        envelope.flags | (suggested_major & 0x03),
        envelope.suggested[1] if suggested_major else 0,
        envelope.session_id,
        envelope.request_id,
        envelope.sequence,
        envelope.length,
    )


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


class EncodingError(Exception):
    """Stored data that has no binary form (written before structured data was checked on write);
    answered with RC_ERROR naming the value, never a dropped answer."""


def _admin(value: dict[str, Any]) -> bytes:
    bits = value["permissions"]
    if not isinstance(bits, str) or len(bits) > 12 or set(bits) - {"0", "1"}:
        raise EncodingError("admin permissions are not twelve bits")
    # the stored string is the mask in binary, bit 0 (add-handle) last; a shorter one is read from
    # the right (Encoder.encodeAdminRecord, GsonUtility.AdminRecordGsonTypeAdapter.permsStringToArray)
    return struct.pack(">H", int(bits or "0", 2)) + _reference(value)


def _reference(reference: object) -> bytes:
    """A value reference: the handle as a UTF8-String, then the index."""
    if not isinstance(reference, dict) or not isinstance(reference.get("handle"), str):
        raise EncodingError("a value reference is not {handle, index}")
    return utf8(reference["handle"]) + struct.pack(">I", reference.get("index", 0))


def _address(host: str, resolve: bool) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """A server address as the site record needs it: an IP; a host name is looked up only for
    this node's own site record (once, at start), never for a stored value."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        if not resolve:
            raise EncodingError(f"server address {host!r:.60} is not an IP address") from None
    try:
        return ipaddress.ip_address(socket.getaddrinfo(host, None)[0][4][0])
    except (OSError, IndexError, ValueError):
        return ipaddress.ip_address("127.0.0.1")


def _key_octets(key: object) -> bytes:
    """A server's public key in a site record: `{"format": "key"|"base64"|"hex", "value": ...}`."""
    if key is None:
        return b""
    if not isinstance(key, dict):
        raise EncodingError("a server's publicKey is not {format, value}")
    value = key.get("value")
    if value is None:
        return b""
    if not isinstance(value, str):
        raise EncodingError("a server's publicKey value is not a string")
    if str(key.get("format", "key")).lower() == "hex":
        return bytes.fromhex(value)
    return base64.b64decode(value, validate=True)


def _protocol_version(text: object) -> tuple[int, int]:
    major, _, minor = str(text).partition(".")
    return int(major), int(minor or 0)


def encode_site(site: dict[str, Any], *, resolve: bool = False) -> bytes:
    """A site record in its binary form (RFC 3651 HS_SITE), from its JSON form (`resolver.upstream.site`;
    `resolver.core.structured.site` says which JSON forms a stored value may have). Also reads the
    reference implementation's `primarySite`/`multiPrimary` booleans. `resolve`: look up server
    host names (only for this node's own site record)."""
    mask = site.get("primaryMask") or {}
    if not isinstance(mask, dict):
        raise EncodingError("primaryMask is not an object")
    primary = bool(mask.get("primary")) or site.get("primarySite") is True
    multi_primary = bool(mask.get("multiPrimary")) or site.get("multiPrimary") is True
    attributes = site.get("attributes") or []
    servers = site.get("servers") or []
    out = [
        struct.pack(
            ">HBBHBB",
            site.get("version", 1),
            *_protocol_version(site.get("protocolVersion", "2.11")),
            site.get("serialNumber", 1),
            (0x80 if primary else 0) | (0x40 if multi_primary else 0),
            site.get("hashOption", 0),
        ),
        utf8(site.get("hashFilter", "")),
        struct.pack(">I", len(attributes)),
    ]
    for attribute in attributes:
        out += [utf8(attribute["name"]), utf8(attribute["value"])]
    out.append(struct.pack(">I", len(servers)))
    for server in servers:
        address = _address(server.get("address", "127.0.0.1"), resolve)
        interfaces = server.get("interfaces") or []
        out += [
            struct.pack(">I", server.get("serverId", 1)),
            address.packed.rjust(16, b"\0"),
            _octets(_key_octets(server.get("publicKey"))),
            struct.pack(">I", len(interfaces)),
        ]
        for interface in interfaces:
            kind = INTERFACE_TYPES[(interface.get("admin") is True, interface.get("query") is True)]
            transport = TRANSPORTS[interface["protocol"].upper()]
            port = interface["port"]
            if not 0 <= port <= 0xFFFF:  # four octets on the wire, but a port all the same
                raise EncodingError(f"port {port} is not a port")
            out.append(struct.pack(">BBI", kind, transport, port))
    return b"".join(out)


def value_data(data: object) -> bytes:
    """The octets of a stored value's data, by its format (EncodingError when it has none)."""
    if not isinstance(data, dict):
        return str(data).encode("utf-8")
    fmt, value = data.get("format"), data.get("value")
    if fmt == "string":
        return str(value).encode("utf-8")
    if fmt == "base64":
        return base64.b64decode(str(value))
    if fmt == "hex":
        return bytes.fromhex(str(value))
    if fmt == "admin":
        if not isinstance(value, dict):
            raise EncodingError("an admin value is not an object")
        return _admin(value)
    if fmt == "vlist":
        if not isinstance(value, list):
            raise EncodingError("a vlist value is not a list")
        return struct.pack(">I", len(value)) + b"".join(_reference(r) for r in value)
    if fmt == "site":
        if not isinstance(value, dict):
            raise EncodingError("a site value is not an object")
        return encode_site(value)
    if fmt == "key":
        if not isinstance(value, str):
            raise EncodingError("a key value is not a base64 string")
        return base64.b64decode(value, validate=True)
    return b"" if value is None else str(value).encode("utf-8")


def encode_value(value: dict[str, Any]) -> bytes:
    """One handle value (RFC 3651 section 3.1 layout); EncodingError naming the value when its
    stored form has no binary form."""
    try:
        return _encode_value(value)
    except EncodingError as exc:
        raise EncodingError(f"value {value.get('index')}: {exc}") from None
    except (ValueError, TypeError, KeyError, AttributeError, IndexError, OverflowError, struct.error) as exc:
        raise EncodingError(f"value {value.get('index')} has no binary form ({type(exc).__name__})") from None


def _encode_value(value: dict[str, Any]) -> bytes:
    ttl = value.get("ttl", 86400)
    if isinstance(ttl, str):
        ttl_type, ttl_number = TTL_ABSOLUTE, _epoch(ttl)
    else:
        ttl_type, ttl_number = TTL_RELATIVE, int(ttl)
    # admin read 0x8, admin write 0x4, public read 0x2, public write 0x1 (Encoder.encodeHandleValue);
    # the stored string has the four in that order, a shorter one is read from the right
    perms = str(value.get("permissions", "1110"))
    perms = ("1110"[: max(0, 4 - len(perms))] + perms)[-4:]
    permission = sum(bit for bit, char in zip((8, 4, 2, 1), perms, strict=True) if char == "1")
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
            *(_reference(r) for r in references),
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


class SessionReply(bytes):
    """An answer sent under another session id than the request's: a challenge names the session
    its answer must come back in (`HandleServer.createChallenge`), a session setup the session it
    opens; `version`, when set, is the protocol version its envelope says (else the client's)."""

    session_id: int
    version: tuple[int, int] | None = None


def in_session(message: bytes, session_id: int, version: tuple[int, int] | None = None) -> SessionReply:
    reply = SessionReply(message)
    reply.session_id = session_id
    reply.version = version
    return reply


def envelopes(env: Envelope, message: bytes, packet_data: int) -> list[bytes]:
    """The answer to the request of envelope `env`, cut into packets of at most `packet_data`
    octets, each with its envelope (a `SessionReply` under its own session id)."""
    if isinstance(message, SessionReply):
        env = replace(env, session_id=message.session_id)
        if message.version is not None:
            env = replace(env, major=message.version[0], minor=message.version[1])
    major, minor = answer_version(env)
    flags = SERVER_VERSION[0] & 0x03
    packets = []
    for sequence, start in enumerate(range(0, max(1, len(message)), packet_data)):
        head = ENVELOPE.pack(
            major, minor, flags, SERVER_VERSION[1], env.session_id, env.request_id, sequence, len(message)
        )
        packets.append(head + message[start : start + packet_data])
    return packets


def udp_size(message_length: int) -> int:
    """The octets of the UDP packets that carry a message of `message_length` octets."""
    packets = max(1, -(-message_length // UDP_DATA_SIZE))
    return message_length + packets * ENVELOPE_SIZE


def refusal(envelope: Envelope, rc: int, message: str) -> bytes:
    """An error answer to a message whose header could not be read (opCode 0)."""
    fake = Request(envelope, 0, 0, 0, 0, 0, b"", b"")
    return answer(fake, rc, error_body(message))
