"""The native Handle protocol's service: one request message in, one answer message out, for the
UDP and TCP listeners (`resolver.native.listeners`) and for native messages over HTTP.

It answers from the worker's cache and coalesced lookups, exactly as `GET /api/handles/...` does,
counts in the same metrics and daily statistics and obeys the same resolution rate limit. Only
public values are ever resolved; admin requests are challenged and carried out by
resolver/native/admin.py (TCP and HTTP; UDP is told to use TCP). A request with
the certify flag gets its answer signed with the node's current key (RFC 3652 message signature,
resolver/native/signing.py; the key the site record publishes) when the node has one; requests
for encrypted answers get clear ones.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from resolver.cache import Entry
from resolver.core.errors import RC, HandleError, RateLimited
from resolver.core.handles import fold, parse_handle, strip_scheme
from resolver.core.values import is_public, select
from resolver.native import admin, reflection, sessions, signing
from resolver.native import protocol as p
from resolver.native.memo import AnswerMemo
from resolver.upstream.site import site_record

log = logging.getLogger(__name__)

ROUTES = {"udp": "native:udp", "tcp": "native:tcp", "http": "native:http"}
SESSION_OPCODES = {
    p.OC_SESSION_SETUP: "SESSION_SETUP",
    p.OC_SESSION_TERMINATE: "SESSION_TERMINATE",
    p.OC_SESSION_EXCHANGEKEY: "SESSION_EXCHANGEKEY",
}
IDLE_TIMEOUT = 30.0
# UDP requests being answered at once by one worker; more are dropped (a client asks again)
MAX_PENDING_UDP = 1024
_USE_TCP_STATUS = 413  # how an answer replaced by USE_TCP counts in the metrics
_HTTP_STATUS = {p.RC_SUCCESS: 200, p.RC_HANDLE_NOT_FOUND: 404, p.RC_VALUES_NOT_FOUND: 200}
# how an admin answer counts in the metrics (the HTTP API's statuses for the same codes)
_ADMIN_STATUS = {
    p.RC_SUCCESS: 200,
    p.RC_ERROR: 500,
    p.RC_SERVER_TOO_BUSY: 429,
    p.RC_OPERATION_NOT_SUPPORTED: 501,
    p.RC_HANDLE_NOT_FOUND: 404,
    101: 409,
    201: 409,
    400: 403,
    401: 403,
    p.RC_AUTHENTICATION_NEEDED: 401,
    403: 403,
    p.RC_AUTHEN_TIMEOUT: 401,
}
_RC_FROM_HANDLE = {
    RC.HANDLE_NOT_FOUND: p.RC_HANDLE_NOT_FOUND,
    RC.INVALID_HANDLE: p.RC_INVALID_HANDLE,
    RC.SERVER_NOT_RESPONSIBLE: p.RC_SERVER_NOT_RESPONSIBLE,
    RC.SERVER_TOO_BUSY: p.RC_SERVER_TOO_BUSY,
}


class NativeService:
    """Turns one request message into one answer message, using the worker's application."""

    def __init__(self, app: Any) -> None:
        from resolver.http.keys import CONFIG, DAILY, LOOKUP, METRICS, NODE_KEYS, RATE_LIMITER, REGISTRY

        self.config = app[CONFIG]
        self.registry = app[REGISTRY]
        self.lookup = app[LOOKUP]
        self.metrics = app[METRICS]
        self.daily = app[DAILY]
        self.limiter = app[RATE_LIMITER]
        self.cache = self.lookup.cache
        self.keys = app[NODE_KEYS]
        self.admin = admin.NativeAdmin(app)
        self._sites: dict[bytes, bytes] = {}  # the encoded site record, by the key it publishes
        # repeated requests answered from kept bytes; not when every request must take a token
        self.memo = AnswerMemo(
            self.cache,
            self.metrics,
            self.daily,
            ROUTES,
            not self.limiter.limits_resolutions,
            self.config.cache.max_entries,
        )

    async def answer(
        self, message: bytes, envelope: p.Envelope, transport: str, address: str, budget: int | None = None
    ) -> bytes:
        """The answer to one request (`message`: what follows its envelope).

        `budget` (UDP): the most octets the answer's packets may take; a larger answer becomes the
        short USE_TCP error, and when even that does not fit the result is empty: send nothing.
        """
        started = time.perf_counter()
        request: p.Request | None = None
        try:
            request = p.parse_request(envelope, message)
        except p.ProtocolError as exc:
            reply = p.refusal(envelope, p.RC_PROTOCOL_ERROR, str(exc))
            return self._deliver(envelope, None, p.RC_PROTOCOL_ERROR, reply, None, budget, transport, started)
        if request.opcode in admin.ADMIN_OPCODES or request.opcode == p.OC_RESPONSE_TO_CHALLENGE:
            return await self._administer(request, message, transport, address, budget, started)
        if request.opcode in SESSION_OPCODES:
            return self._session(envelope, request, transport, address, budget, started)
        rc = p.RC_ERROR
        try:
            rc, body, found = await self._answer(request, address)
        except BaseException:
            self.metrics.request(ROUTES[transport], "RESOLVE", 500, time.perf_counter() - started)
            raise
        rc, reply = self._certified(envelope, request, rc, body, address, udp=budget is not None)
        return self._deliver(envelope, request, rc, reply, found, budget, transport, started)

    async def _administer(
        self,
        request: p.Request,
        message: bytes,
        transport: str,
        address: str,
        budget: int | None,
        started: float,
    ) -> bytes:
        """An admin request or a challenge answer (resolver/native/admin.py); over UDP, the
        use-TCP error."""
        operation = admin.OPERATIONS[request.opcode]
        rc = p.RC_ERROR
        try:
            if budget is not None:
                reply = use_tcp(request.envelope, request)
            elif request.response_code != 0:
                rc = p.RC_PROTOCOL_ERROR
                reply = p.answer(request, rc, p.error_body("a request must have response code 0"))
            elif request.opcode == p.OC_RESPONSE_TO_CHALLENGE:
                rc, reply = await self.admin.answered(request, address)
            else:
                rc, reply = await self.admin.challenge(
                    request, p.pack_envelope(request.envelope) + message, address
                )
        except HandleError as exc:
            # the database away while a challenge is kept or taken: an answer, not a closed connection
            rc, reply = admin.error_answer(request, exc)
        except BaseException:
            self.metrics.request(ROUTES[transport], operation, 500, time.perf_counter() - started)
            raise
        status = _ADMIN_STATUS.get(rc, 400)
        self.metrics.request(ROUTES[transport], operation, status, time.perf_counter() - started)
        return reply

    def _session(
        self,
        envelope: p.Envelope,
        request: p.Request,
        transport: str,
        address: str,
        budget: int | None,
        started: float,
    ) -> bytes:
        """OC_SESSION_SETUP, _TERMINATE and _EXCHANGEKEY (resolver/native/sessions.py): a DH
        setup answered, signed, under a new session id, over TCP and HTTP only (a signature for a
        spoofed UDP source would be work for nothing), within the certified-answer rate."""
        operation = SESSION_OPCODES[request.opcode]
        rc = p.RC_SUCCESS
        if budget is not None:
            rc, reply = p.RC_ERROR, use_tcp(envelope, request)
        elif request.opcode == p.OC_SESSION_TERMINATE:
            reply = p.answer(request, rc, b"")  # the node keeps nothing of a session
        elif request.opcode == p.OC_SESSION_EXCHANGEKEY:
            rc = p.RC_SESSION_FAILED
            reply = p.answer(
                request, rc, p.error_body("only Diffie-Hellman sessions are offered: no key to exchange")
            )
        else:
            try:
                self.limiter.check_certified(address)
                setup, session_id = sessions.setup_answer(request)
            except RateLimited as exc:
                rc, reply = (
                    p.RC_SERVER_TOO_BUSY,
                    p.answer(request, p.RC_SERVER_TOO_BUSY, p.error_body(exc.message)),
                )
            except sessions.SessionRefused as exc:
                rc, reply = (
                    p.RC_SESSION_FAILED,
                    p.answer(request, p.RC_SESSION_FAILED, p.error_body(str(exc))),
                )
            else:
                current = self.keys.current()
                if current is not None and request.flags & p.FLAG_CERTIFY:
                    setup = signing.sign_message(
                        setup,
                        current[1],
                        sessions.SESSION_VERSION,
                        p.SERVER_VERSION,
                        session_id,
                        envelope.request_id,
                    )
                reply = p.in_session(setup, session_id, sessions.SESSION_VERSION)
        status = {p.RC_SUCCESS: 200, p.RC_SERVER_TOO_BUSY: 429, p.RC_ERROR: _USE_TCP_STATUS}.get(rc, 400)
        self.metrics.request(ROUTES[transport], operation, status, time.perf_counter() - started)
        return reply

    def site(self) -> bytes:
        """The site record with the public key of the key that signs now."""
        current = self.keys.current()
        octets = b"" if current is None else current[2]
        site = self._sites.get(octets)
        if site is None:
            site = self._sites[octets] = p.encode_site(site_record(self.config, octets), resolve=True)
        return site

    def _certified(
        self, envelope: p.Envelope, request: p.Request, rc: int, body: bytes, address: str, udp: bool
    ) -> tuple[int, bytes]:
        """(response code, answer): signed when the request asks for it and the node has a key
        (else unsigned: the client then says the answer is not certified). A signature costs some
        ten plain answers of CPU, so it is only made for a client whose address TCP has proved:
        over UDP a certified request is told to use TCP (a signed answer would not fit three
        times the request anyway, and a spoofed source could make the node sign for nothing),
        and each address gets `--rate-certified-per-address` signatures a second; past that the
        answer is an unsigned SERVER_TOO_BUSY."""
        reply = p.answer(request, rc, body)
        if not request.flags & p.FLAG_CERTIFY:
            return rc, reply
        current = self.keys.current()
        if current is None:
            return rc, reply
        if udp:
            return p.RC_ERROR, use_tcp(envelope, request)
        try:
            self.limiter.check_certified(address)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            return p.RC_SERVER_TOO_BUSY, p.answer(request, p.RC_SERVER_TOO_BUSY, p.error_body(exc.message))
        return rc, signing.sign_message(
            reply,
            current[1],
            p.answer_version(envelope),
            p.SERVER_VERSION,
            envelope.session_id,
            envelope.request_id,
        )

    def answer_cached(
        self,
        message: bytes,
        envelope: p.Envelope,
        transport: str,
        address: str,
        budget: int | None = None,
        data: bytes | None = None,
    ) -> bytes | None:
        """The answer to a resolution of a handle this worker holds in its trusted cache, at once
        (no task, no coroutine: the hot path of the native protocol); None for any other request,
        which `answer` takes. Same answers, counts and limits as `answer`. With `data`, the whole
        request as received, a success answer is also kept in `memo` for its repetitions."""
        cache = self.cache
        if not cache.trusted:
            return None
        started = time.perf_counter()
        try:
            request = p.parse_request(envelope, message)
            if request.opcode != p.OC_RESOLUTION or request.response_code != 0:
                return None
            if request.flags & p.FLAG_CERTIFY and self.keys.current() is not None:
                return None  # signed per request (its id is signed): the general path
            text, indexes, types = p.parse_resolution(request.body)
        except p.ProtocolError:
            return None
        key = fold(strip_scheme(text))
        entry = cache.get(key)
        if entry is None or entry.record is None:
            return None
        try:
            self.limiter.check_resolution(address)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            rc, body, found = p.RC_SERVER_TOO_BUSY, p.error_body(exc.message), None
        else:
            self.metrics.outcomes["hit"] += 1
            rc, body = self._encode(entry, text, indexes, types)
            found = key.partition("/")[0]
        reply = p.answer(request, rc, body)
        digest = request.flags & p.FLAG_REQUEST_DIGEST  # hashes the whole request: not kept
        if data is not None and found is not None and rc == p.RC_SUCCESS and not digest:
            self.memo.remember(data, envelope, key, entry, reply, found)
        return self._deliver(envelope, request, rc, reply, found, budget, transport, started)

    def _deliver(
        self,
        envelope: p.Envelope,
        request: p.Request | None,
        rc: int,
        reply: bytes,
        found: str | None,
        budget: int | None,
        transport: str,
        started: float,
    ) -> bytes:
        """`reply` as it goes out (USE_TCP when it exceeds a UDP `budget`, empty when even that does
        not fit), counted in the metrics and, when delivered, in the daily statistics (`found`: the
        prefix of the handle found)."""
        status: int | None = None
        if budget is not None and p.udp_size(len(reply)) > budget:
            rc, status = p.RC_ERROR, _USE_TCP_STATUS
            reply = use_tcp(envelope, request)
            if p.udp_size(len(reply)) > budget:
                reply = b""
        elif found is not None:
            # only an answer delivered counts: one replaced by USE_TCP counts on its TCP retry
            self.daily.resolved(found)
        if status is None:
            status = _HTTP_STATUS.get(rc, 400 if rc != p.RC_ERROR else 500)
        self.metrics.request(ROUTES[transport], "RESOLVE", status, time.perf_counter() - started)
        return reply

    async def _answer(self, request: p.Request, address: str) -> tuple[int, bytes, str | None]:
        """(response code, body, the prefix of the handle found: counted once the answer is sent)"""
        if request.response_code != 0:
            return p.RC_PROTOCOL_ERROR, p.error_body("a request must have response code 0"), None
        if request.opcode == p.OC_GET_SITE_INFO:
            return p.RC_SUCCESS, self.site(), None
        if request.opcode != p.OC_RESOLUTION:
            message = f"operation {request.opcode} is not supported; this server resolves"
            return p.RC_OPERATION_NOT_SUPPORTED, p.error_body(message), None
        return await self._resolve(request, address)

    async def _resolve(self, request: p.Request, address: str) -> tuple[int, bytes, str | None]:
        try:
            text, indexes, types = p.parse_resolution(request.body)
        except p.ProtocolError as exc:
            return p.RC_PROTOCOL_ERROR, p.error_body(str(exc)), None
        try:
            self.limiter.check_resolution(address)
            name = parse_handle(strip_scheme(text), self.config.limits)
            entry: Entry = await self.registry.entry(name)
        except RateLimited as exc:
            self.metrics.outcomes["refused"] += 1
            return p.RC_SERVER_TOO_BUSY, p.error_body(exc.message), None
        except HandleError as exc:
            if exc.rc == RC.HANDLE_NOT_FOUND:
                self.metrics.outcomes["not_found"] += 1
                self.daily.not_found(name.prefix)  # only the lookup says not found: name is parsed
            else:
                self.metrics.outcomes["refused"] += 1
            return _RC_FROM_HANDLE.get(exc.rc, p.RC_ERROR), p.error_body(exc.message), None
        assert entry.record is not None
        self.metrics.outcomes["hit"] += 1
        rc, body = self._encode(entry, text, indexes, types)
        return rc, body, name.prefix

    @staticmethod
    def _encode(entry: Entry, text: str, indexes: list[int], types: list[str]) -> tuple[int, bytes]:
        """The answer to a resolution of a handle found: its public values, or those asked for."""
        assert entry.record is not None
        head = p.utf8(text)
        try:
            if not indexes and not types:
                encoded = entry.native
                if encoded is None:
                    encoded = entry.native = p.encode_values([v for v in entry.record.values if is_public(v)])
                return p.RC_SUCCESS, head + encoded
            public = [v for v in entry.record.values if is_public(v)]
            chosen = select(public, frozenset(indexes), types)
            if not chosen:
                return p.RC_VALUES_NOT_FOUND, p.error_body("no value matches the requested indexes and types")
            return p.RC_SUCCESS, head + p.encode_values(chosen)
        except p.EncodingError as exc:
            # stored before structured data was checked on write: say which value, send nothing else
            return p.RC_ERROR, p.error_body(f"{exc}; the handle's values cannot be sent natively")


def use_tcp(envelope: p.Envelope, request: p.Request | None) -> bytes:
    """The short RC_ERROR that makes a client ask again over TCP (the reference client moves on to
    its next protocol on RC_ERROR: HandleResolver.sendRequestToInterface)."""
    if request is None:
        return p.refusal(envelope, p.RC_ERROR, reflection.USE_TCP)
    return p.answer(request, p.RC_ERROR, p.error_body(reflection.USE_TCP))
