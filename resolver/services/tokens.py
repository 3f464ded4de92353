"""Bearer tokens of the enterprise API: signed claims, checked on every request (their revocation
state lives in resolver/services/accounts.py)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from typing import NamedTuple

import orjson


class TokenError(Exception):
    """A bearer token that is malformed, forged or expired (`str(exc)` English, `exc.zh` Chinese)."""

    def __init__(self, message: str, zh: str) -> None:
        super().__init__(message)
        self.zh = zh


class TokenExpired(TokenError):
    """A token the node issued, past its expiry."""


class TokenClaims(NamedTuple):
    """What a valid token says: whose it is, the user's token generation when it was issued, and
    when it expires (Unix time)."""

    user_id: int
    enterprise_id: int
    username: str
    generation: int
    expires: float


class Tokens:
    """Bearer tokens of the enterprise API: signed claims, valid for a day by default.

    The signing key lives in Postgres (`node_keys`), so every worker and instance accepts every
    token. A token names its user and the user's token generation; whether the user still exists,
    is enabled, is still at that generation and has not logged this token out is checked on use
    (`resolver.services.accounts`).
    """

    def __init__(self, key: bytes, ttl: float) -> None:
        self._key = key
        self.ttl = ttl

    def _sign(self, payload: bytes) -> str:
        digest = hmac.new(self._key, payload, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def issue(
        self, user_id: int, enterprise_id: int, username: str, generation: int, now: float
    ) -> tuple[str, float]:
        """A token and its expiry (Unix time). Two tokens of one user issued in the same second
        differ (a random nonce), so that logging one out leaves the other valid."""
        expires = now + self.ttl
        nonce = base64.urlsafe_b64encode(os.urandom(9)).decode()
        claims = orjson.dumps(
            {"u": user_id, "e": enterprise_id, "n": username, "g": generation, "i": nonce, "x": int(expires)}
        )
        payload = base64.urlsafe_b64encode(claims).rstrip(b"=")
        return f"{payload.decode()}.{self._sign(payload)}", expires

    def verify(self, token: str, now: float) -> TokenClaims:
        """The claims of a token this node signed and that has not expired (TokenExpired when it has)."""
        payload, dot, signature = token.partition(".")
        # compare_digest refuses str that is not ASCII: such a token is simply not ours
        if not dot or not token.isascii() or not hmac.compare_digest(self._sign(payload.encode()), signature):
            raise TokenError("the token is not valid", "令牌无效")
        try:
            claims = orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
            user_id, enterprise_id, username, expires = claims["u"], claims["e"], claims["n"], claims["x"]
            # tokens issued before revocation existed carry no generation: the first one
            parsed = TokenClaims(
                int(user_id), int(enterprise_id), str(username), int(claims.get("g", 0)), float(expires)
            )
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            raise TokenError("the token is not valid", "令牌无效") from None
        if now >= parsed.expires:
            raise TokenExpired("the token has expired; get a new one", "令牌已过期，请重新获取")
        return parsed


def token_digest(token: str) -> bytes:
    """What a logged-out token is remembered by (sha256 of the token as sent; never the token)."""
    return hashlib.sha256(token.encode("ascii")).digest()
