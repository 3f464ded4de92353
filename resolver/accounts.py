"""Enterprise API accounts: log in for a bearer token, and who a token or password belongs to."""

from __future__ import annotations

import time

from resolver.auth import (
    UNTHROTTLED,
    SecretChecks,
    Throttle,
    TokenError,
    Tokens,
    encode_secret,
)
from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.store.db import HandleStore

# How long a worker trusts that an account is still enabled before asking the database again.
ACCOUNT_RECHECK_SECONDS = 10.0
_MAX_REMEMBERED = 10_000
# Longer names than this are no account's (operators create at most 64 characters); they are not
# looked up, but cost the same dummy hash as an unknown name.
_MAX_USERNAME_CHARS = 256
_WRONG = "用户名或密码错误，或账号已停用"


def _not_logged_in(message: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message)


def user_identity(user_id: int, enterprise_id: int, username: str) -> Identity:
    """The identity an enterprise user acts with: its enterprise, named for the audit trail."""
    return Identity(0, f"user:{user_id}", username, actor=f"user:{username}", enterprise_id=enterprise_id)


def account_identity(username: str) -> str:
    """The name the failed-authentication limits count an enterprise user name under."""
    return f"user:{username}"


def _could_exist(username: str) -> bool:
    """False for names Postgres cannot even compare (NUL, lone surrogates) or no account has."""
    if len(username) > _MAX_USERNAME_CHARS or "\x00" in username:
        return False
    try:
        username.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Accounts:
    """Checks enterprise users' passwords and tokens."""

    def __init__(self, store: HandleStore, tokens: Tokens) -> None:
        self.store = store
        self.tokens = tokens
        self._enabled: dict[int, float] = {}
        self._checks = SecretChecks()

    async def _user(self, username: str) -> tuple[int, int, str, str, bool] | None:
        rows = await self.store.fetch_named("user_by_name", username)
        if not rows:
            return None
        row = rows[0]
        return int(row[0]), int(row[1]), str(row[2]), str(row[3]), bool(row[4])

    async def check_password(
        self, username: str, password: str, throttle: Throttle = UNTHROTTLED
    ) -> Identity:
        """The identity of a user name and password, or -1 (not logged in); 429 past the limits.

        Unknown and disabled users cost one hash (a dummy), like a wrong password of a known one.
        """
        identity = account_identity(username)
        throttle.check(identity)
        user = await self._user(username) if _could_exist(username) else None
        secret = encode_secret(password)
        if user is None or user[4]:
            await self._checks.check(("unknown", username), secret, secrets.DUMMY_HASH, throttle, identity)
            raise _not_logged_in(_WRONG)
        user_id, enterprise_id, name, stored, _ = user
        if not await self._checks.check((name, stored), secret, stored, throttle, identity):
            raise _not_logged_in(_WRONG)
        return user_identity(user_id, enterprise_id, name)

    async def login(
        self, username: str, password: str, throttle: Throttle = UNTHROTTLED
    ) -> tuple[str, float]:
        """A bearer token and its expiry for a user name and password (`throttle`: the request's
        failed-authentication limits)."""
        identity = await self.check_password(username, password, throttle)
        assert identity.enterprise_id is not None
        user_id = int(identity.key.partition(":")[2])
        return self.tokens.issue(user_id, identity.enterprise_id, identity.text, time.time())

    async def from_token(self, token: str, throttle: Throttle = UNTHROTTLED) -> Identity:
        """The identity a bearer token names, while its account is enabled.

        Checking a token costs no hash: only tokens that fail count against the address's limit.
        """
        now = time.time()
        try:
            user_id, enterprise_id, username = self.tokens.verify(token, now)
        except TokenError as exc:
            throttle.failed(None)
            raise _not_logged_in(str(exc)) from None
        checked = self._enabled.get(user_id)
        if checked is None or now - checked > ACCOUNT_RECHECK_SECONDS:
            rows = await self.store.fetch_named("user_by_id", user_id)
            if not rows or rows[0][4]:
                self._enabled.pop(user_id, None)
                raise _not_logged_in("账号不存在或已停用")
            if len(self._enabled) >= _MAX_REMEMBERED:
                self._enabled.clear()
            self._enabled[user_id] = now
        return user_identity(user_id, enterprise_id, username)
