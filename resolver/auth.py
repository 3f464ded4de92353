"""Authentication of `index:handle` identities against HS_SECKEY values.

Verifying a secret is slow by design (scrypt), so it runs in a thread; successful verifications
are remembered, keyed by the stored hash, so that rotating a key forgets them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
from urllib.parse import unquote

import orjson

from resolver.cache import Lookup
from resolver.config import Limits
from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.handles import fold, parse_handle
from resolver.core.permissions import Identity
from resolver.core.values import StoredValue

_MAX_REMEMBERED = 10_000


def _failed(message: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message)


def parse_basic(header: str) -> tuple[str, str]:
    """`Basic base64(user:password)` -> (percent-decoded user, password)."""
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "basic" or not token:
        raise _failed("only Basic authentication with index:handle is supported")
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise _failed("the Basic credentials are not valid base64 of UTF-8") from None
    user, colon, password = decoded.partition(":")
    if not colon:
        raise _failed("the Basic credentials have no password")
    return unquote(user, errors="strict"), password


def parse_identity(user: str, limits: Limits) -> tuple[int, str]:
    """`300:0.NA/88.123` -> (300, "0.NA/88.123"); without an index, index 0 means any."""
    head, colon, rest = user.partition(":")
    if colon and head.isdigit():
        index, handle = int(head), rest
    else:
        index, handle = 0, user
    try:
        parse_handle(handle, limits)
    except HandleError:
        raise _failed(f"the user name {user!r:.80} is not index:handle") from None
    return index, handle


class Authenticator:
    """Checks Basic credentials against the secret keys stored in handles."""

    def __init__(self, lookup: Lookup, limits: Limits) -> None:
        self._lookup = lookup
        self._limits = limits
        self._remembered: dict[tuple[str, int, str], bytes] = {}

    async def authenticate(self, header: str) -> Identity:
        """The identity the Basic header proves, or rc 402 (HTTP 401)."""
        user, password = parse_basic(header)
        index, handle = parse_identity(user, self._limits)
        key = fold(handle)
        entry = await self._lookup.get(key)
        if entry.record is None:
            raise _failed("authentication failed: the identity handle does not exist")
        candidates = [v for v in entry.record.values if _is_secret_key(v, index)]
        secret = password.encode("utf-8")
        fingerprint = hashlib.sha256(secret).digest()
        for value in candidates:
            stored = value["data"]["value"]
            if not isinstance(stored, str):
                continue
            remembered_key = (key, value["index"], stored)
            if self._remembered.get(remembered_key) == fingerprint:
                return Identity(value["index"], key, handle)
            if await asyncio.to_thread(secrets.verify_secret, secret, stored):
                if len(self._remembered) >= _MAX_REMEMBERED:
                    self._remembered.clear()
                self._remembered[remembered_key] = fingerprint
                return Identity(value["index"], key, handle)
        raise _failed("authentication failed: wrong secret for this identity")


def _is_secret_key(value: StoredValue, index: int) -> bool:
    return (
        fold(value["type"]) == "hs_seckey"
        and (index == 0 or value["index"] == index)
        and value["data"].get("format") == secrets.HASH_FORMAT
    )


class TokenError(Exception):
    """A bearer token that is malformed, forged or expired."""


class Tokens:
    """Bearer tokens of the enterprise API: signed claims, valid for a day by default.

    The signing key lives in Postgres (`node_keys`), so every worker and instance accepts every
    token. A token names its user; whether the user is still enabled is checked on use.
    """

    def __init__(self, key: bytes, ttl: float) -> None:
        self._key = key
        self.ttl = ttl

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(self, user_id: int, enterprise_id: int, username: str, now: float) -> tuple[str, float]:
        """A token and its expiry (Unix time)."""
        expires = now + self.ttl
        claims = orjson.dumps({"u": user_id, "e": enterprise_id, "n": username, "x": int(expires)})
        payload = base64.urlsafe_b64encode(claims).rstrip(b"=")
        return f"{payload.decode()}.{self._sign(payload)}", expires

    def verify(self, token: str, now: float) -> tuple[int, int, str]:
        """(user id, enterprise id, user name) of a valid token."""
        payload, dot, signature = token.partition(".")
        if not dot or not hmac.compare_digest(self._sign(payload.encode()), signature):
            raise TokenError("令牌无效")
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user_id, enterprise_id, username, expires = claims["u"], claims["e"], claims["n"], claims["x"]
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise TokenError("令牌无效") from None
        if now >= expires:
            raise TokenError("令牌已过期，请重新获取")
        return int(user_id), int(enterprise_id), str(username)
