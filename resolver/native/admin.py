"""Administration over the native Handle protocol: create and delete handles, add, modify and
remove values, list handles, each authenticated by challenge-response (RFC 3652 section 3.5).

The flow is the reference server's (`HandleServer.processRequest`, `createChallenge`): an admin
request is answered with RC_AUTHENTICATION_NEEDED, a nonce and the digest of the request, under
a fresh session id; the client signs `nonce || digest` with its HS_PUBKEY or MACs it with its
HS_SECKEY and sends that as OC_RESPONSE_TO_CHALLENGE in that session; the server checks it
(`Authenticator.verify_answer`, the same check as `Authorization: Handle` over HTTP) and carries out
the original request as that identity. The pending request is kept in Postgres
(resolver/store/challenges.py): the answer often comes over a new TCP connection, which may land on
another worker or instance.

The operations are the Registry's, as the HTTP API calls them: the same permission rules, prefix
states, template checks, audit entries, write rate limits and cache coherence. Over UDP an admin
request is told to use TCP (RC_ERROR, which makes the reference client move on): a challenge to a
spoofed source would make the node keep state for nothing.
"""

from __future__ import annotations

import base64
import dataclasses
import secrets
import struct
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from resolver.core import request_context
from resolver.core.errors import HandleError, RateLimited
from resolver.core.handles import parse_handle, strip_scheme
from resolver.core.permissions import Identity
from resolver.http.ratelimit import client_network
from resolver.native import protocol as p
from resolver.store import challenges

ADMIN_OPCODES = frozenset(
    {
        p.OC_CREATE_HANDLE,
        p.OC_DELETE_HANDLE,
        p.OC_ADD_VALUE,
        p.OC_REMOVE_VALUE,
        p.OC_MODIFY_VALUE,
        p.OC_LIST_HANDLES,
    }
)
OPERATIONS = {
    p.OC_CREATE_HANDLE: "CREATE_HANDLE",
    p.OC_DELETE_HANDLE: "DELETE_HANDLE",
    p.OC_ADD_VALUE: "ADD_VALUE",
    p.OC_REMOVE_VALUE: "REMOVE_VALUE",
    p.OC_MODIFY_VALUE: "MODIFY_VALUE",
    p.OC_LIST_HANDLES: "LIST_HANDLES",
    p.OC_RESPONSE_TO_CHALLENGE: "CHALLENGE_ANSWER",
}
CHALLENGE_SECONDS = 60  # how long an answer is waited for (the reference's challenge timeout order)
NONCE_OCTETS = 16  # Common.CHALLENGE_NONCE_SIZE
MAX_VALUES = 1000
MAX_INDEXES = 1000
# handles sent in one LIST_HANDLES answer: the reference streams them in continued messages; this
# node sends one message, so a larger prefix is listed through the HTTP API's pages
LIST_PAGE = 10_000
# Challenges waiting for an answer, from one client network (an IPv4 address or an IPv6 /64) and
# from everyone: an anonymous admin request keeps up to a request's octets in Postgres for a
# minute, so these bound what strangers can park there (16 x 64 KiB from one network, 1024 in all).
# A client answers each challenge at once; past a cap the request is SERVER_TOO_BUSY.
PENDING_PER_NETWORK = 16
PENDING_IN_ALL = 1024


@dataclass(frozen=True)
class AdminRequest:
    opcode: int
    handle: str
    values: list[dict[str, Any]]
    indexes: list[int]


@dataclass(frozen=True)
class Answer:
    auth_type: str
    handle: str
    index: int
    signed: bytes


def parse_admin(request: p.Request) -> AdminRequest:
    """The body of an admin request (`Encoder.decode*Request`); ProtocolError when it cannot be
    read, InvalidValue-style HandleError when a value has no stored form."""
    reader = p.Reader(request.body)
    handle = reader.text()
    values: list[dict[str, Any]] = []
    indexes: list[int] = []
    if request.opcode in (p.OC_CREATE_HANDLE, p.OC_ADD_VALUE, p.OC_MODIFY_VALUE):
        count = reader.int4()
        if count > MAX_VALUES:
            raise p.ProtocolError(f"at most {MAX_VALUES} values in one request")
        values = [_value(reader) for _ in range(count)]
    elif request.opcode == p.OC_REMOVE_VALUE:
        count = reader.int4()
        if count > MAX_INDEXES:
            raise p.ProtocolError(f"at most {MAX_INDEXES} indexes in one request")
        indexes = [reader.int4() for _ in range(count)]
    return AdminRequest(request.opcode, handle, values, indexes)


def _value(reader: p.Reader) -> dict[str, Any]:
    """One handle value (`Encoder.decodeHandleValue`) in the JSON form the Handle API takes."""
    if reader.at + 14 > len(reader.data):
        raise p.ProtocolError("the body ends inside a handle value")
    index, _timestamp, ttl_type, ttl, permission = struct.unpack_from(">IIBiB", reader.data, reader.at)
    reader.at += 14
    value_type = reader.text()
    data = reader.octets()
    references = [{"handle": reader.text(), "index": reader.int4()} for _ in range(_count(reader))]
    perms = "".join("1" if permission & bit else "0" for bit in (8, 4, 2, 1))
    if ttl_type == p.TTL_ABSOLUTE:
        expires: int | str = datetime.fromtimestamp(max(0, ttl), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    else:
        expires = ttl
    return {
        "index": index,
        "type": value_type,
        "data": _data(value_type, data),
        "ttl": expires,
        "permissions": perms,
        "references": references,
    }


def _count(reader: p.Reader) -> int:
    count = reader.int4()
    if count > MAX_VALUES:
        raise p.ProtocolError(f"at most {MAX_VALUES} references in one value")
    return count


def _data(value_type: str, octets: bytes) -> dict[str, Any]:
    """A value's data as the Handle API writes it: HS_ADMIN and HS_VLIST in their structured
    forms (`Encoder.decodeAdminRecord`, `decodeValueReferenceList`), text as text, the rest as
    base64 (the native encoder sends these octets back unchanged)."""
    kind = value_type.upper()
    if kind == "HS_ADMIN":
        reader = p.Reader(octets)
        if len(octets) < 2:
            raise p.ProtocolError("an HS_ADMIN value is shorter than its permissions")
        (mask,) = struct.unpack_from(">H", octets)
        reader.at = 2
        handle, index = reader.text(), reader.int4()
        return {
            "format": "admin",
            "value": {"handle": handle, "index": index, "permissions": format(mask, "012b")},
        }
    if kind == "HS_VLIST":
        reader = p.Reader(octets)
        listed = [{"handle": reader.text(), "index": reader.int4()} for _ in range(_count(reader))]
        return {"format": "vlist", "value": listed}
    if kind == "HS_PUBKEY":
        return {"format": "key", "value": base64.b64encode(octets).decode("ascii")}
    try:
        text = octets.decode("utf-8")
    except UnicodeDecodeError:
        return {"format": "base64", "value": base64.b64encode(octets).decode("ascii")}
    if kind == "HS_SITE" or "\x00" in text:
        return {"format": "base64", "value": base64.b64encode(octets).decode("ascii")}
    return {"format": "string", "value": text}


def parse_answer(body: bytes) -> Answer:
    """A ChallengeAnswerRequest (`Encoder.decodeChallengeAnswer`)."""
    reader = p.Reader(body)
    auth_type = reader.text()
    handle = reader.text()
    index = reader.int4()
    return Answer(auth_type, handle, index, reader.octets())


def challenge_message(request: p.Request, nonce: bytes) -> bytes:
    """The ChallengeResponse (`Encoder.encodeChallenge`, protocol 2.1 and later): the request
    digest, always present (the RRDG flag set), then the nonce."""
    flags = p.FLAG_AUTHORITATIVE | p.FLAG_REQUEST_DIGEST | (request.flags & p.FLAG_KEEP_ALIVE)
    body = p.digest_of(request) + struct.pack(">I", len(nonce)) + nonce
    header = p.HEADER.pack(
        request.opcode,
        p.RC_AUTHENTICATION_NEEDED,
        flags,
        1,
        request.recursion,
        0,
        int(time.time()) + CHALLENGE_SECONDS,
        len(body),
    )
    return header + body + b"\0\0\0\0"


def error_answer(request: p.Request, exc: HandleError) -> tuple[int, bytes]:
    rc = int(exc.rc)
    return rc, p.answer(request, rc, p.error_body(exc.message))


class NativeAdmin:
    """Challenges admin requests and carries out the ones whose answer proves an identity."""

    def __init__(self, app: Any) -> None:
        from resolver.http.keys import AUTHENTICATOR, CONFIG, DAILY, METRICS, RATE_LIMITER, REGISTRY

        self.config = app[CONFIG]
        self.registry = app[REGISTRY]
        self.authenticator = app[AUTHENTICATOR]
        self.limiter = app[RATE_LIMITER]
        self.metrics = app[METRICS]
        self.daily = app[DAILY]

    async def challenge(self, request: p.Request, data: bytes, address: str) -> tuple[int, bytes]:
        """(rc, answer) to an admin request: a challenge under a fresh session id, or the error
        that stops it before (a body that cannot be read, a handle not homed here, 429)."""
        if request.version < (2, 1):
            message = "administration needs protocol 2.1 or later"
            return p.RC_OPERATION_NOT_SUPPORTED, p.answer(
                request, p.RC_OPERATION_NOT_SUPPORTED, p.error_body(message)
            )
        try:
            self.limiter.check_write(address)
            admin = parse_admin(request)
            if admin.opcode != p.OC_LIST_HANDLES:
                self.registry.check_responsible(parse_handle(strip_scheme(admin.handle), self.config.limits))
        except p.ProtocolError as exc:
            return p.RC_PROTOCOL_ERROR, p.answer(request, p.RC_PROTOCOL_ERROR, p.error_body(str(exc)))
        except HandleError as exc:
            return error_answer(request, exc)
        nonce = secrets.token_bytes(NONCE_OCTETS)
        expires = time.time() + CHALLENGE_SECONDS
        network = client_network(address)
        caps = (PENDING_PER_NETWORK, PENDING_IN_ALL)
        # in a Handle session the challenge goes back in that session (`HandleServer.createChallenge`:
        # cri.sessionId = req.sessionId); otherwise under a fresh session id
        in_session = request.envelope.session_id
        for _ in range(1 if in_session else 8):
            session_id = in_session or secrets.randbelow(2**31 - 1) + 1
            try:
                put = await challenges.put(
                    self.registry.store, session_id, address, network, nonce, data, expires, caps
                )
            except challenges.TooManyPending:
                message = "too many administration requests wait for their challenge answers; retry shortly"
                return p.RC_SERVER_TOO_BUSY, p.answer(request, p.RC_SERVER_TOO_BUSY, p.error_body(message))
            if put:
                return p.RC_AUTHENTICATION_NEEDED, p.in_session(challenge_message(request, nonce), session_id)
        if in_session:
            message = "a challenge in this session waits for its answer; answer it first"
            return p.RC_SERVER_TOO_BUSY, p.answer(request, p.RC_SERVER_TOO_BUSY, p.error_body(message))
        raise RuntimeError("no free challenge session id in 8 draws")

    async def answered(self, request: p.Request, address: str) -> tuple[int, bytes]:
        """(rc, answer) to an OC_RESPONSE_TO_CHALLENGE: the original request carried out as the
        identity the answer proves, answered as the reference does (the original's opcode and
        session, the answer's request id)."""
        taken = await challenges.take(self.registry.store, request.envelope.session_id, address)
        if taken is None:
            message = "no challenge is pending in this session (it expired or was answered)"
            return p.RC_AUTHEN_TIMEOUT, p.answer(request, p.RC_AUTHEN_TIMEOUT, p.error_body(message))
        nonce, data = taken
        # the audit entries name the client and the request, as for the HTTP APIs
        request_context.client_address.set(address)
        request_context.request_id.set(f"native-{request.envelope.session_id}-{request.envelope.request_id}")
        envelope = p.parse_envelope(data)
        original = p.parse_request(envelope, data[p.ENVELOPE_SIZE :])
        # the answer's request id, but the digest in the original's version (the one the
        # challenge's digest was computed in)
        original_reply = p.Request(
            dataclasses.replace(request.envelope, major=envelope.major, minor=envelope.minor),
            original.opcode,
            0,
            original.flags,
            original.serial,
            original.recursion,
            original.body,
            original.header_and_body,
        )
        throttle = self.limiter.failed_auth.at(address)
        try:
            answer = parse_answer(request.body)
            identity = await self.authenticator.verify_answer(
                answer.auth_type,
                answer.handle,
                answer.index,
                nonce,
                p.digest_of(original)[1:],
                answer.signed,
                throttle,
            )
            # the per-credential limit of the HTTP APIs, keyed by the identity proven
            self.limiter.check_identity(identity)
            body = await self._carry_out(parse_admin(original), identity)
        except p.ProtocolError as exc:
            rc, reply = (
                p.RC_PROTOCOL_ERROR,
                p.answer(original_reply, p.RC_PROTOCOL_ERROR, p.error_body(str(exc))),
            )
        except RateLimited as exc:
            rc, reply = (
                p.RC_SERVER_TOO_BUSY,
                p.answer(original_reply, p.RC_SERVER_TOO_BUSY, p.error_body(exc.message)),
            )
        except HandleError as exc:
            rc, reply = error_answer(original_reply, exc)
        else:
            rc, reply = p.RC_SUCCESS, p.answer(original_reply, p.RC_SUCCESS, body)
        return rc, p.in_session(reply, envelope.session_id)

    async def _carry_out(self, admin: AdminRequest, identity: Identity) -> bytes:
        """Do what the request asks, as `identity`, through the Registry; the answer's body."""
        registry = self.registry
        if admin.opcode == p.OC_LIST_HANDLES:
            prefix = strip_scheme(admin.handle)
            prefix = prefix[len("0.NA/") :] if prefix.upper().startswith("0.NA/") else prefix
            size = max(1, min(self.config.limits.max_page_size, LIST_PAGE))
            handles: list[str] = []
            for page in range(-(-LIST_PAGE // size)):  # one answer: at most LIST_PAGE handles
                _total, some = await registry.list_handles(prefix, page, size, identity)
                handles += some
                if len(some) < size:
                    break
            return struct.pack(">I", len(handles)) + b"".join(p.utf8(h) for h in handles)
        name = parse_handle(strip_scheme(admin.handle), self.config.limits)
        if admin.opcode == p.OC_CREATE_HANDLE:
            try:
                await registry.create_or_replace(name, list(admin.values), identity, overwrite=False)
            except HandleError:
                self.metrics.registered("native", "single", [False])
                raise
            self.metrics.registered("native", "single", [True])
            self.daily.registered(name.prefix)
        elif admin.opcode == p.OC_DELETE_HANDLE:
            await registry.delete_handle(name, identity)
        elif admin.opcode == p.OC_ADD_VALUE:
            await registry.put_values(name, list(admin.values), None, identity, overwrite=False)
        elif admin.opcode == p.OC_MODIFY_VALUE:
            # only values that exist are replaced (`HandleServer.doModifyValue`: RC_VALUES_NOT_FOUND)
            await registry.put_values(
                name, list(admin.values), None, identity, overwrite=True, must_exist=True
            )
        elif admin.opcode == p.OC_REMOVE_VALUE:
            await registry.delete_values(name, frozenset(admin.indexes), identity)
        return b""
