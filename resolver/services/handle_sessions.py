"""Sessions of the Handle HTTP API's `Authorization: Handle` scheme (the reference's
`SessionsServlet`, `HandleAuthenticationStatus`, `StandardHandleAuthenticator`, in MistraR/handle
net/handle/server/servletcontainer).

A session starts unauthenticated: its id carries a random part and its expiry, signed with a node
key every worker and instance shares, and its nonce is derived from it, so that any worker can
check a challenge answer against it without shared state. A client proves an identity by signing
(HS_PUBKEY) or MACing (HS_SECKEY) `nonce || cnonce` (`Authenticator.verify_answer`); from then on
the session is a row of `handle_sessions` (by a digest of the id), and requests that name only the
session act as that identity, on any worker, until it expires or is deleted.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import struct
import time
from typing import NamedTuple
from urllib.parse import unquote

from resolver.core.errors import RC, HandleError, quoted
from resolver.core.handles import fold
from resolver.core.permissions import Identity
from resolver.store import sessions as db
from resolver.store.handles import HandleStore

SESSION_KEY = "handle-api-sessions"
NONCE_BYTES = 16  # Common.CHALLENGE_NONCE_SIZE
_RANDOM = 16
_MAC = 16
_ID = re.compile(r"[A-Za-z0-9_-]{1,200}")

# HandleAuthorizationHeader: `Handle name=value, ...`, values a token or a quoted string
_TOKEN = r"[-A-Za-z0-9!#$%&'*+.`^_|~]+"
_QUOTED = r'"[^\\"]*(?:\\.[^\\"]*)*"'
_PARAM = re.compile(rf"\s*({_TOKEN})\s*=\s*({_TOKEN}|{_QUOTED})\s*(,\s*)*", re.DOTALL)
_FIELDS = {
    "version", "sessionid", "id", "cnonce", "type", "alg", "signature", "salt", "iterations", "length",
    "clientcert", "renegotiate",
}  # fmt: skip
_MAX_HEADER = 16_384


class HandleHeader(NamedTuple):
    """The fields of an `Authorization: Handle` header, by lower-case name."""

    fields: dict[str, str]

    def get(self, name: str) -> str | None:
        return self.fields.get(name)

    @property
    def authenticating(self) -> bool:
        """`HandleAuthorizationHeader.isAuthenticating`: it carries any field of an answer."""
        return any(name in self.fields for name in ("id", "type", "alg", "signature"))


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return re.sub(r"\\(.)", r"\1", text[1:-1], flags=re.DOTALL)
    return text


def parse_handle_header(header: str) -> HandleHeader | None:
    """`HandleAuthorizationHeader.fromHeader`: None when it is not `Handle` with name=value fields
    separated by commas (the `id` percent-decoded; unknown names ignored, the first of a repeated
    name kept as `put` would keep the last: the reference keeps the last, so do we)."""
    if len(header) > _MAX_HEADER:
        return None
    scheme, _, rest = header.strip().partition(" ")
    if scheme.lower() != "handle" or not rest.strip():
        return None
    fields: dict[str, str] = {}
    position, text, comma = 0, rest, True
    while position < len(text):
        match = _PARAM.match(text, position)
        if match is None or not comma:
            return None
        name, value = match[1].lower(), _unquote(match[2])
        if name == "id":
            try:
                value = unquote(value, errors="strict")
            except UnicodeDecodeError:
                return None
        if name in _FIELDS:
            fields[name] = value
        comma = bool(match[3])
        position = match.end()
    return HandleHeader(fields)


CONSOLE_ACCOUNT = "console:"  # how console accounts are named (services/console_operators.PREFIX)


class Session(NamedTuple):
    """An open session: its id as the client holds it, its nonce, when it expires (Unix time)."""

    id: str
    nonce: bytes
    expires: float


def _digest(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("ascii")).digest()


class HandleSessions:
    """Opens, checks, authenticates and ends sessions."""

    def __init__(self, key: bytes, store: HandleStore, ttl: float) -> None:
        self._key = key
        self._store = store
        self.ttl = ttl

    def _mac(self, purpose: bytes, body: bytes) -> bytes:
        return hmac.new(self._key, purpose + body, hashlib.sha256).digest()

    def start(self, now: float | None = None) -> Session:
        """A new session (`POST /api/sessions`)."""
        expires = int((time.time() if now is None else now) + self.ttl)
        body = os.urandom(_RANDOM) + struct.pack(">Q", expires)
        session_id = base64.urlsafe_b64encode(body + self._mac(b"id", body)[:_MAC]).rstrip(b"=").decode()
        return Session(session_id, self._mac(b"nonce", body)[:NONCE_BYTES], float(expires))

    def open(self, session_id: str, now: float | None = None) -> Session | None:
        """The session this node issued under `session_id`, None when it did not or it expired."""
        if not _ID.fullmatch(session_id):
            return None
        try:
            raw = base64.urlsafe_b64decode(session_id + "=" * (-len(session_id) % 4))
        except ValueError:
            return None
        if len(raw) != _RANDOM + 8 + _MAC:
            return None
        body, mac = raw[: _RANDOM + 8], raw[_RANDOM + 8 :]
        if not hmac.compare_digest(self._mac(b"id", body)[:_MAC], mac):
            return None
        (expires,) = struct.unpack(">Q", body[_RANDOM:])
        if (time.time() if now is None else now) >= expires:
            return None
        return Session(session_id, self._mac(b"nonce", body)[:NONCE_BYTES], float(expires))

    async def identity(self, session: Session, console: bool = False) -> Identity | None:
        """Who the session was authenticated as, None when it was not (or was ended). A console
        account's session (resolver/console) is the console's alone: `console` says the caller is
        the console; the Handle API does not take it."""
        found = await db.identity(self._store, _digest(session.id))
        if found is None:
            return None
        handle, index = found
        if handle.startswith(CONSOLE_ACCOUNT) and not console:
            return None
        return Identity(index, fold(handle), handle)

    async def end_all_of(self, handle: str) -> None:
        """Every session authenticated as `handle` ends (a console account disabled or changed)."""
        await db.forget_identity(self._store, handle)

    async def remember(self, session: Session, identity: Identity) -> None:
        """The session is authenticated as `identity` until it expires."""
        await db.remember(self._store, _digest(session.id), identity.text, identity.index, session.expires)

    async def end(self, session: Session) -> None:
        """`DELETE /api/sessions/this`."""
        await db.forget(self._store, _digest(session.id))


def answer_fields(header: HandleHeader) -> tuple[str, str, str, bytes, bytes]:
    """The identity, key type, algorithm, cnonce and signed response of an answering header
    (`StandardHandleAuthenticator.authenticateViaHandleAuthorizationHeaderWhichIsAuthenticatingInSession`
    and `constructSignedResponse`); rc 403 when a field is missing or malformed."""
    names = ("id", "cnonce", "type", "alg", "signature")
    missing = [name for name in names if header.get(name) is None]
    if missing:
        raise _refused("Missing fields in authentication data: " + ", ".join(missing))
    user, cnonce_text, auth_type, alg, signature_text = (str(header.get(name)) for name in names)
    try:
        cnonce = base64.b64decode(cnonce_text, validate=True)
        signature = base64.b64decode(signature_text, validate=True)
    except ValueError:
        raise _refused("cnonce and signature must be base64") from None
    if not cnonce or len(cnonce) > 1024 or not signature or len(signature) > 16_384:
        raise _refused("cnonce and signature must be 1-1024 and 1-16384 octets")
    code, name = _algorithm(alg)
    if name == b"PBKDF2-HMAC-SHA1":
        salt, iterations, length = header.get("salt"), header.get("iterations"), header.get("length")
        if salt is not None and iterations is not None and length is not None:
            try:
                salt_octets = base64.b64decode(salt, validate=True)
                count, bits = int(iterations), int(length)
            except ValueError:
                raise _refused("salt must be base64, iterations and length integers") from None
            if not (0 < count < 2**31 and 0 < bits < 2**31 and len(salt_octets) <= 1024):
                raise _refused("iterations and length are out of range")
            signature = (
                struct.pack(">I", len(salt_octets))
                + salt_octets
                + struct.pack(">II", count, bits)
                + struct.pack(">I", len(signature))
                + signature
            )
    if auth_type == "HS_SECKEY":
        response = bytes([code]) + signature
    elif auth_type == "HS_PUBKEY":
        response = struct.pack(">I", len(name)) + name + struct.pack(">I", len(signature)) + signature
    else:
        raise _refused(f"unknown authentication type {quoted(auth_type, 40)}: HS_SECKEY or HS_PUBKEY")
    return user, auth_type, alg, cnonce, response


# constructSignedResponse: the algorithm names a client may give, with the code of an HS_SECKEY
# answer and the hash name of an HS_PUBKEY one (Common.HASH_CODE_* / HASH_ALG_*)
_ALGORITHMS = {
    "md5": (1, b"MD5"),
    "sha": (2, b"SHA1"),
    "sha1": (2, b"SHA1"),
    "sha256": (3, b"SHA-256"),
    "sha2": (3, b"SHA-256"),
    "hmacsha1": (0x12, b"HMAC-SHA1"),
    "hmacsha256": (0x13, b"HMAC-SHA256"),
    "pbkdf2hmacsha1": (0x22, b"PBKDF2-HMAC-SHA1"),
    "pbkdf2withhmacsha1": (0x22, b"PBKDF2-HMAC-SHA1"),
}


def _algorithm(alg: str) -> tuple[int, bytes]:
    """`Util.equalsIgnoreCaseAndPunctuation`: case and punctuation do not count."""
    folded = re.sub(r"[^a-z0-9]", "", alg.lower())
    found = _ALGORITHMS.get(folded)
    if found is None:
        raise _refused(f"unknown alg {quoted(alg, 40)}")
    return found


def _refused(message: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_FAILED, message, zh="Handle 认证信息无效：" + message)
