"""Enterprise API accounts: log in for a bearer token, and who a token or password belongs to."""

from __future__ import annotations

import asyncio
import hashlib
import time

from resolver.auth import TokenError, Tokens
from resolver.core import secrets
from resolver.core.errors import RC, HandleError
from resolver.core.permissions import Identity
from resolver.store.db import HandleStore

# How long a worker trusts that an account is still enabled before asking the database again.
ACCOUNT_RECHECK_SECONDS = 10.0
_MAX_REMEMBERED = 10_000


def _not_logged_in(message: str) -> HandleError:
    return HandleError(RC.AUTHENTICATION_NEEDED, message)


def user_identity(user_id: int, enterprise_id: int, username: str) -> Identity:
    """The identity an enterprise user acts with: its enterprise, named for the audit trail."""
    return Identity(0, f"user:{user_id}", username, actor=f"user:{username}", enterprise_id=enterprise_id)


class Accounts:
    """Checks enterprise users' passwords and tokens."""

    def __init__(self, store: HandleStore, tokens: Tokens) -> None:
        self.store = store
        self.tokens = tokens
        self._enabled: dict[int, float] = {}
        self._passwords: dict[tuple[str, str], bytes] = {}

    async def _user(self, username: str) -> tuple[int, int, str, str, bool] | None:
        rows = await self.store.fetch_named("user_by_name", username)
        if not rows:
            return None
        row = rows[0]
        return int(row[0]), int(row[1]), str(row[2]), str(row[3]), bool(row[4])

    async def check_password(self, username: str, password: str) -> Identity:
        """The identity of a user name and password, or -1 (not logged in)."""
        user = await self._user(username)
        if user is None or user[4]:
            raise _not_logged_in("用户名或密码错误，或账号已停用")
        user_id, enterprise_id, name, stored, _ = user
        fingerprint = hashlib.sha256(password.encode("utf-8")).digest()
        if self._passwords.get((name, stored)) != fingerprint:
            if not await asyncio.to_thread(secrets.verify_secret, password.encode("utf-8"), stored):
                raise _not_logged_in("用户名或密码错误，或账号已停用")
            if len(self._passwords) >= _MAX_REMEMBERED:
                self._passwords.clear()
            self._passwords[(name, stored)] = fingerprint
        return user_identity(user_id, enterprise_id, name)

    async def login(self, username: str, password: str) -> tuple[str, float]:
        """A bearer token and its expiry for a user name and password."""
        identity = await self.check_password(username, password)
        assert identity.enterprise_id is not None
        user_id = int(identity.key.partition(":")[2])
        return self.tokens.issue(user_id, identity.enterprise_id, identity.text, time.time())

    async def from_token(self, token: str) -> Identity:
        """The identity a bearer token names, while its account is enabled."""
        now = time.time()
        try:
            user_id, enterprise_id, username = self.tokens.verify(token, now)
        except TokenError as exc:
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
